// The fleet link's own resilience against a real Mosquitto: files it cannot read, a state dir it
// cannot write, a full disk under its outbox, outages (the backoff), and a slow drain rate.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { Mosquitto, freePort, subscriber, until } from '../tools/testkit/mosquitto.js';
import { tempDir } from '../tools/testkit/daemon.js';
import { countingRegistry, fleetOptions, killSocket, testLink } from './helpers/fleet.js';

const dir = tempDir('reflex-fleet-link-');
const brokers: Mosquitto[] = [];
after(async () => {
  for (const b of brokers) await b.stop();
});

async function broker(): Promise<Mosquitto> {
  const b = new Mosquitto(dir, await freePort());
  await b.start();
  brokers.push(b);
  return b;
}

const fast = { minMs: 100, maxMs: 2000, stableMs: 300 };

test('a link that cannot read its files starts degraded, says why, keeps its outbox, and connects once it can', async () => {
  const b = await broker();
  const url = `mqtt://127.0.0.1:${b.port}`;
  const passwordFile = join(dir, 'password');
  const l = testLink(fleetOptions(url, 'arm-20', dir, { username: 'arm-20', passwordFile, backoff: fast }), countingRegistry({}));
  await l.start(); // before: ENOENT thrown from start(), and the daemon stopped
  try {
    assert.equal(l.status().state, 'degraded');
    assert.match(l.status().error ?? '', /password.*ENOENT|ENOENT.*password/);
    await l.event('test', { stored: 'while degraded' });
    assert.equal(l.status().outbox.pending, 1, 'events are still kept for later');
    fs.writeFileSync(passwordFile, 'secret\n');
    await until('online once the file is there', () => l.status().state === 'online', 10_000);
    assert.equal(l.status().error, null);
    await until('the event kept meanwhile is delivered', () => l.status().outbox.pending === 0, 5000);
  } finally {
    await l.stop();
  }
  const missingCa = testLink(fleetOptions(`mqtts://127.0.0.1:${b.port}`, 'arm-21', dir, { caFile: join(dir, 'no-such-ca.pem'), backoff: fast }), countingRegistry({}));
  await missingCa.start();
  assert.equal(missingCa.status().state, 'degraded');
  assert.match(missingCa.status().error ?? '', /no-such-ca\.pem/);
  await missingCa.stop();
  const fifo = join(dir, 'ca-fifo');
  spawnSync('mkfifo', [fifo]);
  const notAFile = testLink(fleetOptions(`mqtts://127.0.0.1:${b.port}`, 'arm-22', dir, { caFile: fifo, backoff: fast }), countingRegistry({}));
  await notAFile.start(); // a FIFO would block a plain read forever
  assert.match(notAFile.status().error ?? '', /not a regular file/);
  await notAFile.stop();
});

test('a state dir it cannot write: the link still connects, answers and sends telemetry; events are refused, counted and reported', async () => {
  const b = await broker();
  const url = `mqtt://127.0.0.1:${b.port}`;
  const blocked = join(dir, 'state-is-a-file');
  fs.writeFileSync(blocked, '');
  const l = testLink(fleetOptions(url, 'arm-23', dir, { stateDir: blocked }), countingRegistry({}));
  const sub = await subscriber(url, 'reflex/v1/arm-23/telemetry');
  await l.start(); // before: ENOTDIR thrown from start()
  try {
    await until('online', () => l.status().state === 'online', 5000);
    await until('telemetry', () => sub.messages.length > 0, 5000);
    await assert.rejects(l.event('fault', { reason: 'x' }));
    assert.equal(l.status().outbox.dropped, 1);
    assert.match(l.status().error ?? '', /^outbox: open: ENOTDIR/);
  } finally {
    await l.stop();
    await sub.client.endAsync();
  }
});

test('the reconnect backoff starts short again after a connection that held', async () => {
  const b = await broker();
  const url = `mqtt://127.0.0.1:${b.port}`;
  const l = testLink(fleetOptions(url, 'arm-24', dir, { backoff: fast }), countingRegistry({}));
  await l.start();
  try {
    await until('online', () => l.status().state === 'online', 5000);
    await b.stop();
    await until('a long outage: the backoff grows', () => l.status().reconnects >= 5, 20_000);
    assert.ok(l.status().backoffMs >= fast.minMs * 2 ** 3 * 0.5, `backoff ${l.status().backoffMs} ms after ${l.status().reconnects} attempts`);
    await b.start();
    await until('online again', () => l.status().state === 'online', 20_000);
    const since = performance.now();
    await until('the connection held', () => performance.now() - since > fast.stableMs + 100 && l.status().state === 'online', 5000);
    const before = l.status().reconnects;
    killSocket(l);
    await until('the next outage noticed', () => l.status().reconnects === before + 1, 5000);
    // Before: the count kept growing over every outage (25 s to reconnect after seven of them).
    assert.ok(l.status().backoffMs <= fast.minMs * 1.5, `first retry after a good connection in ${l.status().backoffMs} ms`);
    await until('back online', () => l.status().state === 'online', 5000);
  } finally {
    await l.stop();
  }
});

test('drainPerSecond below 10 is honoured: 9 events at 4/s take two seconds', async () => {
  const b = await broker();
  const url = `mqtt://127.0.0.1:${b.port}`;
  const backend = await mqtt.connectAsync(url, { protocolVersion: 5 });
  const arrivals: number[] = [];
  backend.on('message', () => arrivals.push(performance.now()));
  await backend.subscribeAsync('reflex/v1/arm-25/events/#', { qos: 1 });
  const l = testLink(fleetOptions(url, 'arm-25', dir, { drainPerSecond: 4 }), countingRegistry({}));
  await l.start();
  try {
    await until('online', () => l.status().state === 'online', 5000);
    await Promise.all(Array.from({ length: 9 }, (_, i) => l.event('x', { i })));
    await until('all delivered', () => arrivals.length === 9, 15_000);
    // 8 intervals of 250 ms; before: one per 100 ms tick whatever the rate (10/s), 0.8 s.
    const span = arrivals.at(-1)! - arrivals[0]!;
    assert.ok(span >= 1500, `9 events at 4/s arrived over ${span.toFixed(0)} ms`);
  } finally {
    await l.stop();
    await backend.endAsync();
  }
});

// A real full disk under the outbox: a small tmpfs (root only).
const mnt = join(dir, 'tmpfs');
fs.mkdirSync(mnt);
const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mnt]).status === 0;
after(() => {
  if (mounted) spawnSync('umount', ['-l', mnt]);
});

test('a full disk under the outbox (tmpfs): the link stays online, acks and drops are contained and counted, and it recovers', { skip: mounted ? false : 'cannot mount a tmpfs here (not root)' }, async () => {
  const b = await broker();
  const url = `mqtt://127.0.0.1:${b.port}`;
  const l = testLink(fleetOptions(url, 'arm-26', mnt, { stateDir: mnt, backoff: fast }), countingRegistry({}));
  let sub: Awaited<ReturnType<typeof subscriber>> | null = null;
  await l.start();
  try {
    await until('online', () => l.status().state === 'online', 5000);
    await b.stop();
    await until('offline', () => l.status().state !== 'online', 5000);
    for (let i = 1; i <= 10; i++) await l.event('x', { i });
    // The disk fills up while the events wait.
    const filler = join(mnt, 'filler');
    const fd = fs.openSync(filler, 'w');
    try {
      for (;;) fs.writeSync(fd, Buffer.alloc(4096, 1));
    } catch {
      // full
    } finally {
      fs.closeSync(fd);
    }
    await b.start();
    // Delivering acks them, and the state cannot be saved: before, ENOSPC escaped as an
    // uncaught exception and the daemon stopped.
    await until('delivered (acknowledged by the broker) on a full disk', () => l.status().outbox.delivered === 10 && l.status().outbox.pending === 0, 20_000);
    await until('the failure shows', () => /outbox: .*ENOSPC/.test(l.status().error ?? ''), 5000);
    let refused = 0;
    for (let i = 11; i <= 30; i++) await l.event('x', { i, pad: 'x'.repeat(500) }).catch(() => refused++);
    assert.ok(refused > 0);
    assert.equal(l.status().outbox.dropped, refused, 'what could not be stored is counted');
    assert.equal(l.status().state, 'online', 'the link itself keeps running');
    fs.rmSync(filler);
    sub = await subscriber(url, 'reflex/v1/arm-26/events/#');
    await l.event('x', { i: 31 });
    await until('recovered: the state saved again, the error cleared', () => l.status().error === null, 5000);
    const s = sub;
    await until('delivered after', () => s.messages.some((m) => (JSON.parse(m.payload) as { data: { i: number } }).data.i === 31), 5000);
  } finally {
    await l.stop();
    await sub?.client.endAsync();
  }
});
