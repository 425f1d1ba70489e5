import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChunkExecutor, type ExecutorOptions } from '../src/control/executor.js';

const base: ExecutorOptions = { dof: 2, blend: 'crossfade', overlapTicks: 4, ensembleDecay: 0.01, refillTicks: 10, requestTimeoutTicks: 25 };

/** A chunk whose action i is [start + i, -(start + i)]: easy to tell which tick each came from. */
function ramp(start: number, horizon: number, dof = 2): Float64Array {
  const a = new Float64Array(horizon * dof);
  for (let i = 0; i < horizon; i++) for (let j = 0; j < dof; j++) a[i * dof + j] = (j === 0 ? 1 : -1) * (start + i);
  return a;
}

test('actions already in the past when a chunk arrives are dropped: the action for now is played now', () => {
  const ex = new ChunkExecutor(base);
  // Observation at tick 100; inference took 7 ticks; the chunk arrives at tick 107.
  assert.equal(ex.ingest(107, 100, ramp(100, 50), 50), true);
  const out = new Float64Array(2);
  assert.equal(ex.next(107, out), true);
  assert.deepEqual([...out], [107, -107]);
  assert.equal(ex.stats.staleActions, 7);
  assert.equal(ex.remaining(107), 43);
});

test('a chunk entirely in the past, a NaN, or an observation from the future is refused', () => {
  const ex = new ChunkExecutor(base);
  assert.equal(ex.ingest(200, 100, ramp(100, 50), 50), false);
  const bad = ramp(0, 10);
  bad[7] = NaN;
  assert.equal(ex.ingest(5, 0, bad, 10), false);
  const inf = ramp(0, 10);
  inf[3] = Infinity;
  assert.equal(ex.ingest(5, 0, inf, 10), false);
  assert.equal(ex.ingest(5, 9, ramp(0, 10), 10), false);
  assert.equal(ex.stats.rejectedChunks, 4);
  assert.equal(ex.next(5, new Float64Array(2)), false);
});

test('crossfade: a new chunk fades in over the running one without a jump', () => {
  const ex = new ChunkExecutor({ ...base, overlapTicks: 4 });
  const out = new Float64Array(2);
  ex.ingest(0, 0, new Float64Array(40 * 2).fill(0), 40);
  for (let t = 0; t < 10; t++) ex.next(t, out);
  // A new chunk that wants 1.0 everywhere arrives at tick 10.
  ex.ingest(10, 10, new Float64Array(40 * 2).fill(1), 40);
  const seen: number[] = [];
  for (let t = 10; t < 20; t++) {
    assert.equal(ex.next(t, out), true);
    seen.push(out[0]!);
  }
  assert.deepEqual(seen.slice(0, 5).map((v) => Math.round(v * 100) / 100), [0.2, 0.4, 0.6, 0.8, 1]);
  for (let i = 1; i < seen.length; i++) assert.ok(Math.abs(seen[i]! - seen[i - 1]!) <= 0.2 + 1e-9, 'no step larger than one fade increment');
});

test('temporal ensembling averages every prediction for a tick, oldest weighted most', () => {
  const ex = new ChunkExecutor({ ...base, blend: 'ensemble', ensembleDecay: 0.5 });
  ex.ingest(0, 0, new Float64Array(20 * 2).fill(0), 20);
  ex.ingest(0, 0, new Float64Array(20 * 2).fill(1), 20);
  const out = new Float64Array(2);
  ex.next(0, out);
  const w0 = 1;
  const w1 = Math.exp(-0.5);
  assert.ok(Math.abs(out[0]! - w1 / (w0 + w1)) < 1e-12);
  // Ticks only the newest chunk covers take its action alone.
  ex.ingest(1, 1, new Float64Array(40 * 2).fill(2), 40);
  for (let t = 1; t < 25; t++) ex.next(t, out);
  assert.equal(out[0], 2);
});

test('refill is requested early enough, once, and again if the answer never comes', () => {
  const ex = new ChunkExecutor({ ...base, refillTicks: 10, requestTimeoutTicks: 25 });
  assert.equal(ex.wantsRefill(0), true, 'nothing queued: ask');
  assert.equal(ex.wantsRefill(1), false, 'already asked');
  ex.ingest(3, 0, ramp(0, 50), 50);
  assert.equal(ex.wantsRefill(30), false, '20 left > 10');
  assert.equal(ex.wantsRefill(40), true, '10 left: ask now, while 10 ticks of actions remain');
  assert.equal(ex.wantsRefill(41), false);
  assert.equal(ex.wantsRefill(66), true, 'no answer in 25 ticks: ask again');
  assert.equal(ex.stats.refillRequests, 3);
});

test('starvation is counted tick by tick and the count resets when actions come back', () => {
  const ex = new ChunkExecutor(base);
  const out = new Float64Array(2);
  ex.ingest(0, 0, ramp(0, 5), 5);
  for (let t = 0; t < 5; t++) assert.equal(ex.next(t, out), true);
  for (let t = 5; t < 12; t++) assert.equal(ex.next(t, out), false);
  assert.equal(ex.consecutiveStarved, 7);
  assert.equal(ex.stats.starvedTicks, 7);
  ex.ingest(12, 12, ramp(12, 5), 5);
  assert.equal(ex.next(12, out), true);
  assert.equal(ex.consecutiveStarved, 0);
});

test('the ring reuses slots over a long run with missed ticks, and reset drops everything', () => {
  const ex = new ChunkExecutor({ ...base, capacity: 64 });
  const out = new Float64Array(2);
  let t = 0;
  for (let k = 0; k < 200; k++) {
    ex.ingest(t, t, ramp(t, 30), 30);
    for (let i = 0; i < 20; i++) {
      assert.equal(ex.next(t, out), true);
      assert.ok(Math.abs(out[0]! - t) < 1e-9, `tick ${t} played ${out[0]}`);
      t += i % 7 === 6 ? 2 : 1; // a missed deadline now and then skips a tick
    }
  }
  ex.reset();
  assert.equal(ex.next(t, out), false);
});

test('a chunk from a swapped-in policy starts where the running chunk ends, never blended with it', () => {
  const ex = new ChunkExecutor({ ...base, overlapTicks: 10 });
  const out = new Float64Array(2);
  ex.ingest(0, 0, new Float64Array(30 * 2).fill(1), 30, 1);
  for (let t = 0; t < 10; t++) ex.next(t, out);
  // Policy 2's first chunk arrives at tick 10; policy 1's chunk runs to tick 30.
  assert.equal(ex.ingest(10, 10, new Float64Array(50 * 2).fill(2), 50, 2), true);
  const seen: number[] = [];
  for (let t = 10; t < 40; t++) {
    assert.equal(ex.next(t, out), true);
    seen.push(out[0]!);
  }
  assert.deepEqual(seen, [...new Array<number>(20).fill(1), ...new Array<number>(10).fill(2)], 'every tick is wholly one policy');
});
