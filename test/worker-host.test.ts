// The one host every worker thread runs under: handshake bounds, requests by id, bounded stop
// (asked, terminated, abandoned), and a thread that dies reported with its reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, openSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkerHost } from '../src/rt/index.js';
import type { HostTestProtocol } from './helpers/host-worker.js';

const url = new URL('./helpers/host-worker.js', import.meta.url);

function host(mode: string, extra: object = {}, opts: { readyTimeoutMs?: number | null; stopMs?: number; signal?: AbortSignal } = {}) {
  return new WorkerHost<HostTestProtocol>({ name: `test-${mode}`, url, workerData: { mode, ...extra }, readyTimeoutMs: opts.readyTimeoutMs ?? 10_000, stopMs: opts.stopMs ?? 1000, ...(opts.signal ? { signal: opts.signal } : {}) });
}

test('a worker that is ready answers requests by id, sends events, and stops when asked', async () => {
  const h = host('serve');
  const events: number[] = [];
  h.onEvent((e) => events.push(e.n));
  const ready = await h.ready;
  assert.equal(ready.pid, process.pid);
  const [a, b] = await Promise.all([h.request({ echo: 'a' }, 5000), h.request({ echo: 'b' }, 5000)]);
  assert.deepEqual([a, b], ['echo a', 'echo b']);
  assert.deepEqual(events, [1]);
  await assert.rejects(h.request({ hang: true }, 100), (e: Error & { timeout?: boolean }) => e.timeout === true && /no reply within 100 ms/.test(e.message));
  let died = false;
  h.onDied(() => (died = true));
  assert.equal(await h.stop(), 'stopped');
  assert.equal(h.alive, false);
  assert.equal(died, false, 'a stop asked for is not a death');
  await assert.rejects(h.request({ echo: 'late' }, 1000), /exited/);
});

test('a worker that fails to start, never gets ready, or is cancelled rejects ready with why, within the bound', async () => {
  const failed = host('fail');
  await assert.rejects(failed.ready, /the model is not there/);
  await failed.stop();

  const slow = host('never', {}, { readyTimeoutMs: 300 });
  await assert.rejects(slow.ready, (e: Error & { timeout?: boolean }) => e.timeout === true && /not ready within 300 ms/.test(e.message));
  // It ignores the stop message (no listener): terminated after the bound.
  assert.equal(await slow.stop(), 'terminated');

  const ac = new AbortController();
  const cancelled = host('never', {}, { readyTimeoutMs: null, signal: ac.signal });
  ac.abort();
  await assert.rejects(cancelled.ready, /cancelled/);
  await cancelled.stop();
});

test('a worker that dies on its own is reported with the reason, and its pending requests fail', async () => {
  const h = host('serve');
  await h.ready;
  const died = new Promise<Error>((resolve) => h.onDied(resolve));
  const pending = h.request({ hang: true }, 10_000);
  h.post({ throw: 'the accelerator went away' });
  const reason = await died;
  assert.match(reason.message, /test-serve exited \(code 1\): the accelerator went away/);
  await assert.rejects(pending, /the accelerator went away/);
  assert.equal(h.alive, false);
});

test('stop is bounded: a worker that ignores the ask is terminated; one stuck in a native call is abandoned', async () => {
  const ignoring = host('ignore-stop', {}, { stopMs: 200 });
  await ignoring.ready;
  assert.equal(await ignoring.stop(), 'terminated');

  const dir = mkdtempSync(join(tmpdir(), 'reflex-host-'));
  const fifo = join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const stuck = host('native-stuck', { fifo }, { stopMs: 200 });
  await stuck.ready;
  const t0 = performance.now();
  const pending = stuck.request({ hang: true }, 60_000);
  assert.equal(await stuck.stop(), 'abandoned');
  const ms = performance.now() - t0;
  assert.ok(ms < 2000, `stop took ${Math.round(ms)} ms with a bound of 2 x 200 ms`);
  await assert.rejects(pending, /abandoned/);
  assert.equal(await stuck.stop(), 'abandoned', 'stop is idempotent');
  // Let the thread out of open(2): it ends then (the host no longer keeps the process alive for it).
  closeSync(openSync(fifo, 'w'));
});
