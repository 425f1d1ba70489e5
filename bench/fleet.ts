// The fleet link's costs on the main thread against a real Mosquitto: CPU per telemetry batch,
// how fast the durable outbox takes events (on disk, fsync'd in batches), and how fast a
// backlog of N events drains to the broker after an outage.
import { join } from 'node:path';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { pino } from 'pino';
import { CATALOG, CommandRegistry } from '../src/api/index.js';
import { FleetLink, Outbox } from '../src/fleet/index.js';
import { Mosquitto, freePort, until } from '../tools/testkit/mosquitto.js';
import { argNumber, machine, progress, result, round, summary } from './_util.js';

const N = argNumber('events', 5000, 200);
const dir = mkdtempSync(join(tmpdir(), 'reflex-bench-fleet-'));
const broker = new Mosquitto(dir, await freePort());
await broker.start();
const url = `mqtt://127.0.0.1:${broker.port}`;
// A telemetry record the size of a 6-joint arm's (loop, motors, inference, policy, camera).
const record = () => ({
  loop: { mode: 'policy', hz: 50, latenessUs: { p50: 4, p99: 13, max: 200 }, missed: 0, starved: 0, faults: 0, busFailedReads: 0 },
  motors: Array.from({ length: 6 }, (_, i) => ({ joint: `j${i}`, temperatureC: 35 + i, voltageV: 12.1, hardwareError: 0 })),
  inference: { meanMs: 11.6, p99Ms: 19.5, errors: 0 },
  policy: { name: 'act', version: '7', provider: 'tensorrt' },
  cameras: [{ name: 'top', state: 'streaming', fps: 30, ageMs: 17 }],
});
const link = new FleetLink(
  { deviceId: 'bench-01', url, username: null, passwordFile: null, caFile: null, certFile: null, keyFile: null, telemetryHz: 0.001, stateDir: dir, maxOutbox: 1_000_000, drainPerSecond: 1_000_000 },
  new CommandRegistry(CATALOG),
  record,
  pino({ level: 'silent' }),
);
await link.start();
await until('online', () => link.status().state === 'online', 10_000);

progress('telemetry batches...');
const publish = (link as unknown as { publishTelemetry(): void }).publishTelemetry.bind(link);
for (let i = 0; i < 200; i++) publish();
const cpu: number[] = [];
for (let i = 0; i < 2000; i++) {
  // The batch is built and handed to the socket synchronously, on this thread: its wall time
  // is its CPU time (process.cpuUsage ticks too coarsely to time one call).
  const t0 = performance.now();
  publish();
  cpu.push((performance.now() - t0) * 1000);
  if (i % 100 === 0) await new Promise((r) => setImmediate(r));
}

progress(`appending ${N} events to a fresh outbox...`);
const outbox = new Outbox(join(dir, 'append-only'), 'bench', 1_000_000);
const t0 = performance.now();
await Promise.all(Array.from({ length: N }, (_, i) => outbox.append('reflex/v1/bench-01/events/x', { i, note: 'an event of ordinary size' })));
const appendPerS = N / ((performance.now() - t0) / 1000);
outbox.close();

// With the outbox full, each event drops the oldest: what one append costs on the main thread
// must not grow with what the outbox holds (it once rewrote the whole file per event).
const HELD = process.argv.includes('--smoke') ? 5000 : argNumber('held', 100_000);
const fullAppendUs = async (held: number) => {
  const full = new Outbox(join(dir, `full-${held}`), 'bench', held);
  for (let k = 0; k < held; k += 10_000) {
    await Promise.all(Array.from({ length: Math.min(10_000, held - k) }, (_, i) => full.append('reflex/v1/bench-01/events/x', { i: k + i, note: 'an event of ordinary size' })));
  }
  const us: number[] = [];
  for (let i = 0; i < 500; i++) {
    const a0 = performance.now();
    const stored = full.append('reflex/v1/bench-01/events/x', { i, note: 'an event of ordinary size' });
    us.push((performance.now() - a0) * 1000);
    await stored;
  }
  full.close();
  return summary(us, 1);
};
progress(`appending to a full outbox (1000 and ${HELD} held)...`);
const fullSmall = await fullAppendUs(1000);
const fullLarge = await fullAppendUs(HELD);

progress(`outage: ${N} events queue while the broker is down, then drain...`);
await broker.stop();
await until('offline', () => link.status().state !== 'online', 10_000);
for (let i = 0; i < N; i++) void link.event('x', { i });
await new Promise((r) => setTimeout(r, 100));
await broker.start();
await until('online', () => link.status().state === 'online', 60_000);
const d0 = performance.now();
await until('drained', () => link.status().outbox.pending === 0, 120_000);
const drainPerS = N / ((performance.now() - d0) / 1000);
await link.stop();
await broker.stop();
result({
  machine: machine(),
  events: N,
  telemetry_batch_cpu_us: summary(cpu, 1),
  telemetry_batch_bytes: JSON.stringify(record()).length,
  outbox_append_per_s: round(appendPerS, 0),
  outbox_drain_per_s: round(drainPerS, 0),
  outbox_full_held: { small: 1000, large: HELD },
  outbox_full_append_us: { small: fullSmall, large: fullLarge },
});
