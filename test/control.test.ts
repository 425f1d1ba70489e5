import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { ControlLoop, loopHeadline, type ControlConfig, type JointSpec } from '../src/control/index.js';
import { ControlCore } from '../src/control/core.js';
import { allocShared, viewShared } from '../src/control/shared.js';
import { ScriptedBus } from './helpers/scripted-bus.js';
import { Histogram, bucketOf, bucketUpper, HIST_BUCKETS } from '../src/rt/index.js';
import { ticksToRad } from '../src/hardware/dynamixel/index.js';
import { SimHandle } from './helpers/sim.js';
import { ScriptedChunks } from '../tools/testkit/chunks.js';
import { armConfig } from '../tools/testkit/control.js';

const silent = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('histogram buckets are monotonic, quantiles land in the right bucket and never exceed the max', () => {
  let prev = -1;
  for (const us of [0, 1, 5, 20, 100, 1000, 20_000, 1e9]) {
    const b = bucketOf(us);
    assert.ok(b >= prev && b < HIST_BUCKETS);
    assert.ok(us <= bucketUpper(b) || b === HIST_BUCKETS - 1);
    prev = b;
  }
  const h = Histogram.create();
  for (let i = 0; i < 99; i++) h.record(10);
  h.record(5000);
  assert.equal(h.quantile(0.5), bucketUpper(bucketOf(10)));
  assert.equal(h.quantile(0.99), bucketUpper(bucketOf(10)));
  // The top bucket's edge is up to 9 % above what was seen: reported quantiles stop at the max.
  assert.ok(bucketUpper(bucketOf(5000)) > 5000);
  assert.equal(h.quantile(1), 5000);
  const s = h.summary();
  assert.equal(s.max, 5000);
  assert.ok(s.p99 <= s.max && s.p50 <= s.p99);
  const one = Histogram.create();
  one.record(7.8);
  assert.deepEqual([one.summary().p50, one.summary().p99, one.summary().max], [7.8, 7.8, 7.8]);
  const before = h.snapshot();
  h.record(100);
  assert.equal(h.since(before).count, 1);
  assert.ok(h.since(before).max <= 5000 && h.since(before).max >= 100);
});

test('status reports the tick as a user needs it: a stalled tick shows in duration, missed deadlines and overruns', async () => {
  const sim = await SimHandle.start({ servos: [1, 2, 3].map((id) => ({ id, model: 'xm430-w350' })) });
  const loop = new ControlLoop(config(sim.path), { stallMs: 500 }, silent);
  await loop.start(new AbortController().signal);
  try {
    await sleep(1200);
    loop.status(); // starts a rate window
    const before = loop.status();
    await sleep(1100);
    const steady = loop.status();
    // Rate is ticks per scheduled time: exactly the target while deadlines are kept.
    if (steady.missedDeadlines === before.missedDeadlines) assert.equal(steady.rateHz, 50, loopHeadline(steady));
    else assert.ok(steady.rateHz < 50, loopHeadline(steady));
    await loop.stall(130);
    await sleep(700);
    const s = loop.status();
    assert.ok(s.missedDeadlines >= before.missedDeadlines + 5, `missed ${s.missedDeadlines}`);
    assert.ok(s.overruns >= before.overruns + 1, `overruns ${s.overruns}`);
    assert.ok(s.tickDurationUs.max >= 130_000, `tick max ${s.tickDurationUs.max} us after a 130 ms stall`);
    for (const h of [s.latenessUs, s.tickDurationUs]) assert.ok(h.p50 <= h.p99 && h.p99 <= h.max, JSON.stringify(h));
    const line = loopHeadline(s);
    assert.match(line, /wake [\d.]+\/[\d.]+\/[\d.]+ us, tick [\d.]+\/[\d.]+\/\d+ us/);
    assert.match(line, new RegExp(`missed ${s.missedDeadlines}, overruns ${s.overruns}`));
  } finally {
    await loop.safe();
    await loop.stop();
    await sim.close();
  }
});

function config(port: string, over: Partial<ControlConfig> = {}): ControlConfig {
  // The shoulder's limits are tighter, and the elbow is mounted reversed with an offset.
  return armConfig(port, { starvationLimitTicks: 10, firstChunkTicks: 10, ...over }, [
    { name: 'base', bus: 'arm', id: 1, min: -1, max: 1, maxVelocity: 3, offset: 0, direction: 1 },
    { name: 'shoulder', bus: 'arm', id: 2, min: -0.5, max: 0.5, maxVelocity: 3, offset: 0, direction: 1 },
    { name: 'elbow', bus: 'arm', id: 3, min: -1, max: 1, maxVelocity: 3, offset: 0.1, direction: -1 },
  ]);
}

async function motorRad(sim: SimHandle, id: number): Promise<number> {
  return ticksToRad((await sim.servo(id)).ticks);
}

test('the loop drives simulated servos at 50 Hz from scripted chunks, within limits; faults latch and reset', async () => {
  const sim = await SimHandle.start({ servos: [1, 2, 3].map((id) => ({ id, model: 'xm430-w350' })) });
  const loop = new ControlLoop(config(sim.path), { stallMs: 500 }, silent);
  await loop.start(new AbortController().signal);
  const target = [0.5, 0.9, -0.3]; // the shoulder's 0.9 is beyond its 0.5 limit
  const source = new ScriptedChunks(loop, 3, (_t, _i, out) => out.set(target));
  try {
    assert.equal(loop.mode, 'hold');
    await sleep(300);
    // In hold nothing moves: the loop holds the pose it found.
    assert.ok(Math.abs(await motorRad(sim, 1)) < 0.01);

    await loop.startPolicy();
    assert.equal(loop.mode, 'policy');
    await sleep(2000);
    assert.ok(Math.abs((await motorRad(sim, 1)) - 0.5) < 0.02, `base at ${await motorRad(sim, 1)}`);
    assert.ok(Math.abs((await motorRad(sim, 2)) - 0.5) < 0.02, 'shoulder held at its limit');
    // elbow: joint = -motor + 0.1, so motor = 0.1 - joint = 0.4
    assert.ok(Math.abs((await motorRad(sim, 3)) - 0.4) < 0.02, `elbow motor at ${await motorRad(sim, 3)}`);
    const s = loop.status();
    assert.ok(s.ticks > 100 && s.rateHz > 40 && s.rateHz < 60, `${s.ticks} ticks at ${s.rateHz} Hz`);
    assert.ok(s.safety.limitClamps > 0, 'the limit clamp was counted');
    // ... on the shoulder, the joint asked past its limit, and on no other.
    const by = Object.fromEntries(s.safety.byJoint.map((j) => [j.joint, j]));
    assert.equal(by.shoulder?.limitClamps, s.safety.limitClamps);
    assert.equal(by.base?.limitClamps, 0);
    assert.equal(by.elbow?.limitClamps, 0);
    assert.ok(s.policyTimeS > 1.5 && s.policyTimeS < 3, `policy time ${s.policyTimeS} s`);
    // Chunks of 50 asked for with 20 left, answered in ~30 ms: the one playing is under a second old.
    assert.ok(s.chunks.ageMs !== null && s.chunks.ageMs >= 0 && s.chunks.ageMs < 1000, `chunk age ${s.chunks.ageMs}`);
    assert.ok(s.safety.deltaClamps > 0, 'the velocity clamp was counted');
    assert.equal(s.safety.softStarts, 1);
    assert.ok(s.chunks.received >= 2 && source.answered >= 2);
    assert.equal(s.starvedTicks, 0);

    // E-stop: motion stops within a tick or two and stays stopped.
    target[0] = -0.8;
    await sleep(150);
    await loop.estop();
    assert.equal(loop.mode, 'estop');
    await sleep(100);
    const stopped = await motorRad(sim, 1);
    await sleep(400);
    assert.ok(Math.abs((await motorRad(sim, 1)) - stopped) < 0.01, 'stays where e-stop caught it');
    await loop.startPolicy();
    assert.equal(loop.mode, 'estop', 'a policy cannot start while e-stopped');
    await loop.reset();
    assert.equal(loop.mode, 'hold');

    // A policy that stops answering: hold, count, then fault past the bound; latched until reset.
    await loop.startPolicy();
    await sleep(500);
    source.paused = true;
    await sleep(2000);
    assert.equal(loop.mode, 'fault');
    assert.match(loop.status().fault ?? '', /^policy starved: no action for 11 ticks \(limit 10\)$/);
    assert.ok(loop.status().starvedTicks >= 10);
    await loop.startPolicy();
    assert.equal(loop.mode, 'fault', 'latched');
    source.paused = false;
    await loop.reset();
    assert.equal(loop.mode, 'hold');
    assert.equal(loop.healthy(), true);
  } finally {
    await source.stop();
    await loop.safe();
    await loop.stop();
    await sim.close();
  }
});

test('a dead bus faults the loop within its error budget and the joints hold', async () => {
  const sim = await SimHandle.start({ servos: [1, 2, 3].map((id) => ({ id, model: 'xm430-w350' })) });
  const loop = new ControlLoop(config(sim.path), { stallMs: 500 }, silent);
  await loop.start(new AbortController().signal);
  const faults: string[] = [];
  loop.on('fault', (r: string) => faults.push(r));
  try {
    await sim.faults({ silent: true });
    await sleep(600);
    assert.equal(loop.mode, 'fault');
    assert.match(faults[0] ?? '', /^arm: reads failing for \d+ ms \(budget 200 ms\); missing 1, 2, 3$/);
    assert.equal(loop.healthy(), true, 'the loop itself keeps ticking');
    await sim.faults({ silent: false });
    await loop.reset();
    await sleep(100);
    assert.equal(loop.mode, 'hold');
  } finally {
    await loop.stop();
    await sim.close();
  }
});

test('the loop skips missed periods without bunching after a stall, and a stalled loop is unhealthy', async () => {
  const loop = new ControlLoop({ ...config('unused'), joints: [], buses: [] }, { stallMs: 200 }, silent);
  await loop.start(new AbortController().signal);
  try {
    await sleep(1000);
    const s1 = loop.status();
    assert.ok(s1.ticks >= 40 && s1.ticks <= 56, `ticks after 1 s: ${s1.ticks}`);
    await loop.stall(500);
    await sleep(300);
    assert.equal(loop.healthy(), false, 'a stalled loop is unhealthy');
    await sleep(400);
    const afterStall = loop.status().ticks;
    await sleep(100);
    const burst = loop.status().ticks - afterStall;
    assert.ok(burst <= 8, `ticks in the 100 ms after a stall: ${burst} (bunched catch-up would be ~30)`);
    const s2 = loop.status();
    assert.ok(s2.missedDeadlines >= 20, `missed ${s2.missedDeadlines}`);
    assert.equal(loop.healthy(), true);
  } finally {
    await loop.safe();
    await loop.stop();
    await loop.stop();
  }
  assert.equal(loop.healthy(), false);
});

test('stopping a loop stuck in its tick is bounded: the worker is terminated, and a second loop starts after it', async () => {
  const cfg = { ...config('unused'), joints: [], buses: [] };
  const loop = new ControlLoop(cfg, { stallMs: 200, stopTimeoutMs: 300 }, silent);
  await loop.start(new AbortController().signal);
  let died = false;
  loop.on('died', () => (died = true));
  await loop.stall(60_000);
  await sleep(100);
  const t0 = performance.now();
  await loop.stop();
  const ms = performance.now() - t0;
  assert.ok(ms < 2000, `stop took ${Math.round(ms)} ms with a 300 ms bound (the tick is stuck for 60 s)`);
  assert.equal(loop.healthy(), false);
  assert.equal(died, false, 'a loop stopped on purpose did not die');
  await assert.rejects(loop.reset(), /not running/);
  const again = new ControlLoop(cfg, { stallMs: 200 }, silent);
  await again.start(new AbortController().signal);
  await again.stop();
});

test('the control core counts interventions and failed reads per joint, retries per bus, and the age of the chunk it plays', () => {
  const joints: JointSpec[] = [
    { name: 'base', bus: 'a', id: 1, min: -1, max: 1, maxVelocity: 100, offset: 0, direction: 1 },
    { name: 'shoulder', bus: 'a', id: 2, min: -0.5, max: 0.5, maxVelocity: 100, offset: 0, direction: 1 },
    { name: 'wrist', bus: 'b', id: 7, min: -1, max: 1, maxVelocity: 1, offset: 0, direction: 1 },
  ];
  const cfg = { ...armConfig('unused', { softStartTicks: 0, firstChunkTicks: 100, starvationLimitTicks: 100 }, joints), buses: [] };
  const a = new ScriptedBus('a', [1, 2]);
  const b = new ScriptedBus('b', [7]);
  const shared = viewShared(allocShared(3, 64, 2));
  const faults: string[] = [];
  const core = new ControlCore(cfg, [a, b], shared, { fault: (r) => faults.push(r), warning: () => undefined, lost: () => undefined });
  const joint = (j: number) => ({ ...Object.fromEntries((['limitClamps', 'deltaClamps', 'nonFinite', 'failedReads'] as const).map((k) => [k, shared.perJoint[j]!.get(k)])) });
  let k = 0;
  const tick = () => core.tick(k++, k * 20);

  tick();
  for (let j = 0; j < 3; j++) assert.deepEqual(joint(j), { limitClamps: 0, deltaClamps: 0, nonFinite: 0, failedReads: 0 });

  // The shoulder's motor does not answer for 3 ticks: its failed reads, not the base's on the same bus.
  a.silent[1] = 1;
  a.errors.retries += 3;
  for (let i = 0; i < 3; i++) tick();
  a.silent[1] = 0;
  tick();
  assert.equal(joint(1).failedReads, 3);
  assert.equal(joint(0).failedReads, 0);
  assert.equal(joint(2).failedReads, 0);
  assert.equal(shared.perBus[0]!.get('failedReads'), 3);
  assert.equal(shared.perBus[0]!.get('retries'), 3);
  assert.equal(shared.perBus[1]!.get('failedReads'), 0);
  assert.equal(shared.counters.get('busFailedReads'), 3);

  // A bus reopened counts its retries from 0 again: the loop's count goes on from where it was.
  a.errors.retries = 1;
  tick();
  assert.equal(shared.perBus[0]!.get('retries'), 4);
  assert.equal(shared.counters.get('busRetries'), 4);

  // A policy that asks the shoulder past its limit and the wrist faster than its velocity
  // limit: each counted on its own joint only (a chunk with NaN never gets this far).
  core.startPolicy();
  const rec = shared.link.chunkRecord();
  rec.obsTick = k;
  rec.horizon = 40;
  rec.generation = 0;
  for (let i = 0; i < 40; i++) rec.actions.set([0.2, 0.9, 0.9], i * 3);
  shared.chunk.write(rec.data);
  const obsTick = k;
  for (let i = 0; i < 5; i++) tick();
  assert.equal(shared.counters.get('policyTicks'), 5);
  // Action i plays at tick obsTick + i: the chunk is 4 ticks old at the 5th tick.
  assert.equal(shared.counters.get('chunkAgeTicks'), k - 1 - obsTick);
  assert.deepEqual(joint(0), { limitClamps: 0, deltaClamps: 0, nonFinite: 0, failedReads: 0 });
  assert.equal(joint(1).limitClamps, 5);
  assert.equal(joint(1).deltaClamps, 0);
  // 0.02 rad a tick: 0.9 takes 45 ticks, each of these 5 clamped.
  assert.equal(joint(2).deltaClamps, 5);
  assert.equal(joint(2).limitClamps, 0);
  assert.equal(shared.counters.get('limitClamps'), 5);

  // A lost bus is not read at all: every joint on it fails, the other bus's do not.
  b.lost = 'bus b lost: unplugged';
  tick();
  tick();
  assert.equal(joint(2).failedReads, 2);
  assert.equal(joint(0).failedReads, 0);
  assert.equal(shared.perBus[1]!.get('failedReads'), 2);
  assert.equal(faults.length, 1);
  assert.equal(shared.counters.get('chunkAgeTicks'), -1, 'no chunk plays in fault');
});
