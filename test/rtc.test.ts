// Real-time chunking in the executor: the committed prefix and the delay a request carries,
// counted in actions actually consumed (not guessed from latency, not inflated by a slow
// warm-up), and a new chunk spliced in after the prefix it was conditioned on, never blended.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChunkExecutor, type ExecutorOptions } from '../src/control/index.js';

const D = 2;
const H = 20;

function exec(over: Partial<ExecutorOptions> = {}): ChunkExecutor {
  return new ChunkExecutor({ dof: D, blend: 'rtc', overlapTicks: 5, ensembleDecay: 0.01, refillTicks: 10, requestTimeoutTicks: 5, ...over });
}

/** A chunk whose action i, joint j is base + i + j / 10. */
function chunk(base: number, n = H): Float64Array {
  const a = new Float64Array(n * D);
  for (let i = 0; i < n; i++) for (let j = 0; j < D; j++) a[i * D + j] = base + i + j / 10;
  return a;
}

function played(e: ChunkExecutor, from: number, to: number): number[] {
  const out = new Float64Array(D);
  const got: number[] = [];
  for (let t = from; t < to; t++) got.push(e.next(t, out) ? out[0]! : NaN);
  return got;
}

test('the delay is the actions consumed between a request and its answer: the most of the recent ones, the warm-up left out', () => {
  const e = exec();
  assert.equal(e.delayTicks, 0, 'nothing known yet');
  // The first chunk after a start: a slow warm-up (40 ticks late) says nothing of the next ones.
  assert.ok(e.ingest(40, 0, chunk(0, 100), 100));
  assert.equal(e.delayTicks, 0);
  assert.ok(e.ingest(53, 50, chunk(0, 100), 100));
  assert.equal(e.delayTicks, 3);
  assert.ok(e.ingest(65, 60, chunk(0, 100), 100));
  assert.ok(e.ingest(72, 70, chunk(0, 100), 100));
  assert.equal(e.delayTicks, 5, 'the most of 3, 5 and 2');
  // Eight later answers at 2 push the 5 out of the window.
  for (let k = 0; k < 8; k++) assert.ok(e.ingest(82 + 10 * k, 80 + 10 * k, chunk(0, 100), 100));
  assert.equal(e.delayTicks, 2);
  // A swap to another policy is a new warm-up; so is a reset.
  assert.ok(e.ingest(190, 160, chunk(0, 100), 100, 1));
  assert.equal(e.delayTicks, 2, 'a swapped-in policy\'s first (slow) chunk is not counted');
  e.reset();
  assert.equal(e.delayTicks, 0);
});

test('the committed prefix is the running chunk\'s actions for the ticks the inference will take', () => {
  const e = exec();
  e.ingest(0, 0, chunk(0), H);
  e.ingest(3, 0, chunk(0), H); // the second chunk: a delay of 3 is now known
  assert.equal(e.delayTicks, 3);
  const out = new Float64Array(H * D);
  assert.equal(e.prefix(5, out), 3);
  assert.deepEqual(Array.from(out.subarray(0, 3 * D)), [5, 5.1, 6, 6.1, 7, 7.1]);
  // Near the end of the running chunk, only what is left.
  assert.equal(e.prefix(18, out), 2);
  assert.equal(e.prefix(25, out), 0);
});

test('a chunk is spliced in after its prefix: the running chunk plays up to there, the new one from there, nothing blended', () => {
  const e = exec();
  e.ingest(0, 0, chunk(0), H);
  e.ingest(2, 0, chunk(0), H); // delay 2 known
  // Requested at tick 10 with a prefix of 2 (ticks 10, 11); it arrives at tick 11, early.
  assert.ok(e.ingest(11, 10, chunk(100), H, 0, 2));
  const got = played(e, 11, 32);
  // 11 is the running chunk's (in the prefix), from 12 on the new chunk's own plan, to its end.
  assert.deepEqual(got, [11, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119, NaN, NaN]);
});

test('a chunk later than its prefix starts at the tick it arrives: its actions for past ticks are dropped', () => {
  const e = exec();
  e.ingest(0, 0, chunk(0), H);
  e.ingest(2, 0, chunk(0), H);
  assert.ok(e.ingest(16, 10, chunk(100), H, 0, 2));
  assert.deepEqual(played(e, 16, 19), [106, 107, 108]);
  assert.equal(e.remaining(16), 14, 'the new chunk ends where it ends: the old tail is gone');
});

test('crossfade, for comparison, blends the new chunk into the running one', () => {
  const e = exec({ blend: 'crossfade' });
  e.ingest(0, 0, chunk(0), H);
  assert.ok(e.ingest(11, 10, chunk(100), H, 0, 2));
  const [first] = played(e, 11, 12);
  assert.ok(first! > 11 && first! < 101, `a blend, not a splice: ${first}`);
});

test('a chunk observed before the last splice is refused: its prefix is of a plan that no longer runs', () => {
  const e = exec();
  e.ingest(0, 0, chunk(0), H);
  e.ingest(2, 0, chunk(0), H);
  assert.ok(e.ingest(12, 10, chunk(100), H, 0, 2), 'spliced from tick 12');
  const before = e.stats.rejectedChunks;
  assert.equal(e.ingest(13, 11, chunk(200), H, 0, 2), false);
  assert.equal(e.stats.rejectedChunks, before + 1);
  assert.deepEqual(played(e, 13, 14), [103], 'the spliced chunk keeps playing');
});

test('rtc asks again only once the answer cannot come any more (twice the delay), not at the plain timeout', () => {
  const e = exec({ requestTimeoutTicks: 3, refillTicks: 19 });
  e.ingest(0, 0, chunk(0), H);
  e.ingest(4, 0, chunk(0), H); // a delay of 4
  assert.ok(e.wantsRefill(5));
  for (let t = 6; t < 5 + 9; t++) assert.equal(e.wantsRefill(t), false, `tick ${t}: the answer may still come`);
  assert.ok(e.wantsRefill(14), 'after 2 x 4 + 1 ticks without an answer');
  const plain = exec({ blend: 'crossfade', requestTimeoutTicks: 3, refillTicks: 19 });
  plain.ingest(0, 0, chunk(0), H);
  plain.ingest(4, 0, chunk(0), H);
  assert.ok(plain.wantsRefill(5));
  assert.ok(plain.wantsRefill(8), 'crossfade keeps its plain timeout');
});
