// The records that cross threads, and the tick ring: one record per tick, read by any number
// of consumers, each with its own cursor; the loop never waits for one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { pino } from 'pino';
import {
  BroadcastRing, Chunk, Intervention, LatestSlot, MAX_HORIZON, Observation, Tick, TickRing, interventionNames,
} from '../src/rt/index.js';
import { ControlLoop, MODE_NAMES, type ControlConfig, type ControlLoopOptions } from '../src/control/index.js';
import { SimHandle } from './helpers/sim.js';
import { ScriptedChunks } from '../tools/testkit/chunks.js';
import { armConfig } from '../tools/testkit/control.js';

const silent = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('record layouts tile their records exactly, and a view written on one side reads back on the other', () => {
  for (const joints of [1, 6, 12]) {
    const layouts: Record<string, number>[] = [{ ...Observation.layout(joints) }, { ...Chunk.layout(joints) }, { ...Tick.layout(joints) }];
    for (const l of layouts) {
      // Every field starts where the previous one ends (scalars 1 wide, vectors `joints`, the chunk's actions MAX_HORIZON * joints).
      const fields = Object.entries(l).filter(([k]) => k !== 'length').sort((a, b) => a[1] - b[1]);
      for (let i = 1; i < fields.length; i++) assert.ok(fields[i]![1] > fields[i - 1]![1], `${fields[i]![0]} overlaps ${fields[i - 1]![0]}`);
    }
    assert.equal(Tick.layout(joints).length, Tick.layout(joints).command + joints);
    assert.equal(Chunk.layout(joints).length, Chunk.layout(joints).actions + MAX_HORIZON * joints);
  }
  const slot = LatestSlot.create(Observation.size(3));
  const w = Observation.view(3);
  w.tick = 7;
  w.timeMs = 123.5;
  w.mode = 1;
  w.q.set([0.1, 0.2, 0.3]);
  w.effort[2] = -1;
  slot.write(w.data);
  const r = Observation.view(3);
  assert.ok(slot.read(r.data) > 0);
  assert.deepEqual([r.tick, r.timeMs, r.mode, [...r.q], [...r.dq], [...r.effort]], [7, 123.5, 1, [0.1, 0.2, 0.3], [0, 0, 0], [0, 0, -1]]);
  const c = Chunk.view(2);
  c.horizon = 2;
  c.actions.set([1, 2, 3, 4]);
  // obsTick, horizon, generation, delay, then the actions.
  assert.deepEqual([...c.data.subarray(0, 8)], [0, 2, 0, 0, 1, 2, 3, 4]);
  assert.throws(() => Tick.view(4, new Float64Array(3)), /a tick record of 4 joints needs/);
  assert.deepEqual(interventionNames(Intervention.LIMIT | Intervention.STARVED), ['limit', 'starved']);
});

test('a broadcast ring never hands out a torn record; a reader that falls behind counts what it lost and resumes', async () => {
  const capacity = 64;
  const length = 40;
  const count = 200_000;
  const ring = BroadcastRing.create(capacity, length);
  const slow = ring.reader();
  const fast = ring.reader();
  const out = new Float64Array(length);
  const w = new Worker(new URL('./helpers/ring-writer.js', import.meta.url), { workerData: { buffer: ring.buffer, capacity, length, count } });
  const done = new Promise((r) => w.once('exit', r));
  let last = 0;
  let writerDone = false;
  void done.then(() => (writerDone = true));
  while (!writerDone || fast.behind > 0) {
    if (fast.next(out)) {
      const n = out[0]!;
      for (let i = 1; i < length; i++) assert.equal(out[i], n, 'torn record');
      assert.ok(n > last, `record ${n} after ${last}`);
      last = n;
    } else await new Promise((r) => setImmediate(r));
  }
  assert.equal(last, count);
  assert.equal(fast.taken + fast.lost, count, 'every record either taken or counted lost');
  // The slow reader took nothing while all of it was written: it resumes at the oldest record still there.
  let taken = 0;
  while (slow.next(out)) taken++;
  assert.ok(slow.overruns >= 1);
  assert.equal(slow.lost + taken, count);
  assert.ok(taken >= capacity - 2 && taken <= capacity, `took ${taken} of a ${capacity}-record ring`);
});

function config(port: string, over: Partial<ControlConfig> = {}): ControlConfig {
  return armConfig(port, { starvationLimitTicks: 50, firstChunkTicks: 50, ...over }, [
    { name: 'base', bus: 'arm', id: 1, min: -1, max: 1, maxVelocity: 3, offset: 0, direction: 1 },
    { name: 'shoulder', bus: 'arm', id: 2, min: -0.5, max: 0.5, maxVelocity: 3, offset: 0, direction: 1 },
  ]);
}

/** A two-joint loop on the simulated bus, for the time of `fn`. */
async function withLoop(opts: Partial<ControlLoopOptions>, fn: (loop: ControlLoop) => Promise<void>): Promise<void> {
  const sim = await SimHandle.start({ servos: [1, 2].map((id) => ({ id, model: 'xm430-w350' })) });
  const loop = new ControlLoop(config(sim.path), { stallMs: 500, ...opts }, silent);
  try {
    await loop.start(new AbortController().signal);
    await fn(loop);
  } finally {
    await loop.safe();
    await loop.stop();
    await sim.close();
  }
}

test('a consumer attached to a running loop sees every tick, in order, with the mode, the action and the command sent', () =>
  withLoop({}, async (loop) => {
  // The policy asks the shoulder past its limit: the command sent stops at the limit.
  const chunks = new ScriptedChunks(loop, 2, (_t, _i, out) => out.set([0.2, 0.8]));
  const reader = loop.ticks.reader();
  const seen: { tick: number; mode: string; action: number[]; command: number[]; flags: number; generation: number }[] = [];
  const drain = () => {
    while (reader.next()) {
      const r = reader.record;
      seen.push({ tick: r.tick, mode: MODE_NAMES[r.mode]!, action: [...r.action], command: [...r.command], flags: r.interventions, generation: r.generation });
    }
  };
  try {
    const missed0 = loop.status().missedDeadlines;
    for (let i = 0; i < 10; i++) {
      await sleep(50);
      drain();
    }
    await loop.startPolicy();
    const until = performance.now() + 2000;
    while (performance.now() < until) {
      await sleep(50);
      drain();
    }
    await loop.estop();
    await sleep(200);
    drain();
    const missed = loop.status().missedDeadlines - missed0;
    assert.equal(reader.overruns, 0);
    assert.equal(reader.lost, 0);
    // Tick indices only skip the deadlines the loop missed (counted); otherwise contiguous.
    let skipped = 0;
    for (let i = 1; i < seen.length; i++) {
      assert.ok(seen[i]!.tick > seen[i - 1]!.tick, `tick ${seen[i]!.tick} after ${seen[i - 1]!.tick}`);
      skipped += seen[i]!.tick - seen[i - 1]!.tick - 1;
    }
    assert.ok(skipped <= missed, `indices skip ${skipped} ticks, the loop missed ${missed}`);
    assert.ok(seen.length >= 80, `${seen.length} ticks seen`);
    // Hold first: no policy action, the command is the held pose.
    const hold = seen.filter((s) => s.mode === 'hold');
    assert.ok(hold.length > 0);
    for (const s of hold) assert.ok(s.action.every(Number.isNaN));
    // Then the policy: once it has ramped in, the base follows it and the shoulder stops at its limit.
    const policy = seen.filter((s) => s.mode === 'policy' && !Number.isNaN(s.action[0]!));
    assert.ok(policy.length > 20, `${policy.length} ticks with a policy action`);
    const settled = policy[policy.length - 1]!;
    assert.deepEqual(settled.action, [0.2, 0.8]);
    assert.ok(Math.abs(settled.command[0]! - 0.2) < 1e-9, `base command ${settled.command[0]}`);
    assert.equal(settled.command[1], 0.5);
    assert.ok(settled.flags & Intervention.LIMIT, `flags ${interventionNames(settled.flags).join(',')}`);
    assert.equal(settled.generation, 0);
    assert.ok(policy.some((s) => s.flags & Intervention.SOFT_START), 'the soft start shows in the records');
    // The e-stop shows as the mode of the ticks after it, with no policy action.
    const last = seen[seen.length - 1]!;
    assert.equal(last.mode, 'estop');
    assert.ok(last.action.every(Number.isNaN));
    // Status reads the same ring (its own consumer): the newest tick, per joint.
    const st = loop.status().lastTick!;
    assert.equal(st.mode, 'estop');
    assert.deepEqual(st.joints.map((j) => j.name), ['base', 'shoulder']);
    assert.ok(st.tick >= last.tick);
  } finally {
    await chunks.stop();
  }
  }));

test('a slow consumer counts its overruns while the loop keeps ticking', () =>
  withLoop({ tickRingCapacity: 16 }, async (loop) => {
    const reader = loop.ticks.reader();
    const from = loop.ticks.written;
    const ticks0 = loop.status().ticks;
    // Read nothing for a second: 50 ticks into a ring of 16.
    await sleep(1000);
    let taken = 0;
    while (reader.next()) taken++;
    const written = loop.ticks.written - from;
    assert.ok(loop.status().ticks - ticks0 >= 25, 'the loop kept ticking');
    assert.ok(reader.overruns >= 1, 'the overrun is seen');
    assert.ok(reader.lost > 0);
    // Every tick written since the reader attached was either taken or counted lost.
    assert.ok(Math.abs(taken + reader.lost - written) <= 1, `taken ${taken} + lost ${reader.lost} vs ${written} written`);
    assert.ok(taken <= 16);
    // From then on it keeps up again, tick by tick.
    const overruns = reader.overruns;
    await sleep(100);
    assert.ok(reader.next());
    assert.equal(reader.overruns, overruns);
  }));

test('a tick ring made over the same buffer (another thread) reads the same ticks', () => {
  const a = new TickRing(2, 8);
  const b = new TickRing(2, 8, a.buffer);
  const r = b.reader();
  const rec = Tick.view(2);
  for (let k = 0; k < 3; k++) {
    rec.tick = k;
    rec.command.set([k, 10 + k]);
    a.push(rec);
  }
  const got: number[] = [];
  while (r.next()) got.push(r.record.tick, r.record.command[1]!);
  assert.deepEqual(got, [0, 10, 1, 11, 2, 12]);
  assert.equal(b.written, 3);
});
