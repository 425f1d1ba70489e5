// A bundle's files are checked for what they are before anything reads them, and the policy
// runtime stops within its bound whatever its workers are doing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { loadBundle, PolicyRuntime } from '../src/policy/index.js';
import { allocShared } from '../src/control/shared.js';
import { request } from '../src/api/index.js';
import type { DaemonStatus } from '../src/daemon.js';
import { spawnReflex, tempDir, testConfig, writeConfig } from '../tools/testkit/daemon.js';
import { until } from '../tools/testkit/mosquitto.js';
import { ARM, holdBundle } from './helpers/policy.js';

const silent = pino({ level: 'silent' });

/** The daemon's status once `ok` holds (or the last one, after `ms`). */
async function statusWhen(sock: string, ok: (s: DaemonStatus) => boolean, ms: number): Promise<DaemonStatus> {
  const end = Date.now() + ms;
  for (;;) {
    const s = await request(sock, 'status');
    if (ok(s) || Date.now() > end) return s;
    await new Promise((r) => setTimeout(r, 50));
  }
}

function fifoPolicyJson(): string {
  const dir = holdBundle('fifo');
  rmSync(join(dir, 'policy.json'));
  execFileSync('mkfifo', [join(dir, 'policy.json')]);
  return dir;
}

function linked(file: string, to: string): string {
  const dir = holdBundle('linked');
  rmSync(join(dir, file));
  symlinkSync(to, join(dir, file));
  return dir;
}

/** The runtime alone: no loop runs, so nothing asks for chunks; loading and stopping is what is tested. */
function runtime(over: { maxModelBytes?: number; workerStopMs?: number } = {}): PolicyRuntime {
  return new PolicyRuntime({ bundle: null, onnxruntimePath: null, providers: ['cpu'], stateDir: tempDir(), robot: { rateHz: 50, joints: ARM, cameras: [] }, ...over }, allocShared(ARM.length), silent);
}

test('a policy.json or model that is a FIFO, a device, or too large is refused at once, naming what it is', { timeout: 30_000 }, async () => {
  assert.throws(() => loadBundle(fifoPolicyJson()), /policy\.json: is a FIFO, not a regular file/);
  assert.throws(() => loadBundle(linked('policy.json', '/dev/zero')), /policy\.json: is a character device, not a regular file/);
  assert.throws(() => loadBundle(linked('model.onnx', '/dev/zero')), /model\.onnx: is a character device, not a regular file/);
  const big = holdBundle('big');
  truncateSync(join(big, 'policy.json'), 2 * 1024 * 1024);
  assert.throws(() => loadBundle(big), /policy\.json: is 2097152 bytes, more than the 1048576 allowed/);
  assert.throws(() => loadBundle(holdBundle('model'), { maxModelBytes: 100 }), /model\.onnx: is \d+ bytes, more than the 100 allowed/);

  // In the inference worker: refused, and the runtime keeps working.
  const policy = runtime({ maxModelBytes: 1024 * 1024 });
  await policy.start();
  try {
    await assert.rejects(policy.activate(fifoPolicyJson()), /is a FIFO, not a regular file/);
    await assert.rejects(policy.activate(linked('model.onnx', '/dev/zero')), /model\.onnx: is a character device/);
    const large = holdBundle('large');
    writeFileSync(join(large, 'model.onnx'), Buffer.alloc(2 * 1024 * 1024));
    await assert.rejects(policy.activate(large), /model\.onnx: is 2097152 bytes, more than the 1048576 allowed/);
    assert.equal(policy.status().state, 'failed');
    assert.equal((await policy.activate(holdBundle('good'))).name, 'good');
    assert.equal(policy.status().state, 'ready');
  } finally {
    const t0 = Date.now();
    await policy.stop();
    assert.ok(Date.now() - t0 < 2500, `stopped in ${Date.now() - t0} ms`);
  }
});

test('stop ends a worker that is blocked in a synchronous load within its bound, and the activation it served fails', { timeout: 30_000 }, async () => {
  const policy = runtime({ workerStopMs: 500 });
  await policy.start();
  policy.slowNextLoad(60_000);
  const activation = policy.activate(holdBundle('stuck'));
  const refused = assert.rejects(activation, /exited|abandoned/);
  await until('loading', () => policy.status().loading !== null, 5000);
  const t0 = Date.now();
  await policy.stop();
  assert.ok(Date.now() - t0 < 1500, `stopped in ${Date.now() - t0} ms (bound 2 x 500 ms)`);
  await refused;
});

test('a daemon whose configured policy.json is a FIFO starts, says why the policy failed, and stops on SIGTERM within its bound', { timeout: 30_000 }, async () => {
  const dir = tempDir();
  const sock = join(dir, 'control.sock');
  const d = spawnReflex(['run', '--config', writeConfig(dir, testConfig(dir, { policy: { bundle: fifoPolicyJson() } }))]);
  try {
    await d.waitForLog((l) => l.msg === 'reflex is running', 15_000);
    const s = await statusWhen(sock, (x) => x.policy.state === 'failed', 5000);
    assert.equal(s.policy.state, 'failed');
    assert.match(s.policy.error ?? '', /policy\.json: is a FIFO, not a regular file/);
    assert.equal(s.loop.mode, 'hold');
    d.proc.kill('SIGTERM');
    const t0 = Date.now();
    const { code } = await d.exited;
    assert.equal(code, 0);
    assert.ok(Date.now() - t0 < 5000, `stopped in ${Date.now() - t0} ms`);
  } finally {
    d.proc.kill('SIGKILL');
  }
});
