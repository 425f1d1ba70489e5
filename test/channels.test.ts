import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { FrameSlot, LatestSlot, SpscRing } from '../src/rt/index.js';

function writer(data: Record<string, unknown>): Promise<void> {
  const w = new Worker(new URL('./helpers/channel-worker.js', import.meta.url), { workerData: data });
  return new Promise((resolve, reject) => {
    w.once('error', reject);
    w.once('exit', () => resolve());
  });
}

test('a latest-value slot never hands out a torn record while a real thread writes it', async () => {
  const length = 64;
  const slot = LatestSlot.create(length);
  const done = writer({ kind: 'slot', buffer: slot.buffer, length, count: 300_000 });
  const out = new Float64Array(length);
  let reads = 0;
  let last = 0;
  let finished = false;
  void done.then(() => (finished = true));
  while (!finished) {
    if (slot.read(out) < 0) continue;
    const v = out[0]!;
    for (let i = 1; i < length; i++) assert.equal(out[i], v, `torn record: ${v} and ${out[i]}`);
    assert.ok(v >= last, 'records never go back in time');
    last = v;
    reads++;
    if (reads % 1000 === 0) await new Promise((r) => setImmediate(r));
  }
  await done;
  slot.read(out);
  assert.equal(out[0], 300_000);
  assert.ok(reads > 100, `reads ${reads}`);
});

test('a slot that was never written reads as version 0', () => {
  const slot = LatestSlot.create(3);
  const out = new Float64Array(3).fill(7);
  assert.equal(slot.read(out), 0);
  assert.deepEqual([...out], [0, 0, 0]);
  slot.write([1, 2, 3]);
  assert.equal(slot.version, 2);
});

test('a ring passes every record in order from a real producer thread, none torn, none lost', async () => {
  const length = 16;
  const ring = SpscRing.create(64, length);
  const count = 100_000;
  const done = writer({ kind: 'ring', buffer: ring.buffer, length, capacity: 64, count });
  const out = new Float64Array(length);
  let expect = 1;
  while (expect <= count) {
    if (!ring.pop(out)) {
      await new Promise((r) => setImmediate(r));
      continue;
    }
    for (let i = 0; i < length; i++) assert.equal(out[i], expect);
    expect++;
  }
  await done;
  assert.equal(ring.pop(out), false);
});

test('a full ring drops and counts instead of blocking the producer', () => {
  const ring = SpscRing.create(4, 1);
  assert.equal(ring.push([1]), true);
  assert.equal(ring.push([2]), true);
  assert.equal(ring.push([3]), true);
  assert.equal(ring.push([4]), false);
  assert.equal(ring.dropped, 1);
  assert.equal(ring.size, 3);
  const out = new Float64Array(1);
  ring.pop(out);
  assert.equal(out[0], 1);
  assert.equal(ring.push([5]), true);
});

test('a frame read that meets a frame being written waits for it instead of reporting no frame', async () => {
  // 3x224x224 floats, as an ACT camera input: each write takes milliseconds.
  const length = 3 * 224 * 224;
  const slot = FrameSlot.create(length);
  const out = new Float32Array(length);
  assert.equal(slot.read(out), FrameSlot.NONE, 'never written: no frame');
  const count = 200;
  const done = writer({ kind: 'frame', buffer: slot.buffer, length, capacity: 0, count });
  let finished = false;
  void done.then(() => (finished = true));
  while (slot.version === 0) await new Promise((r) => setImmediate(r));
  let reads = 0;
  let notFrames = 0;
  while (!finished) {
    const captured = slot.read(out);
    if (captured < 0) notFrames++;
    else {
      assert.equal(out[0], captured, 'the pixels belong to the frame whose time came with them');
      assert.equal(out[length - 1], captured, 'no torn frame');
      reads++;
    }
    await new Promise((r) => setImmediate(r));
  }
  await done;
  assert.equal(notFrames, 0, `${notFrames} of ${reads + notFrames} reads found no frame while frames were streaming`);
  assert.ok(reads > 10, `reads ${reads}`);
});

test('a frame read while the writer is stopped mid-frame gets the last complete frame at once', () => {
  const slot = FrameSlot.create(4);
  const out = new Float32Array(4);
  slot.write(10, (px) => px.fill(1));
  let during = 0;
  let t0 = 0;
  slot.write(20, (px) => {
    px.fill(2, 0, 2);
    // The writer is preempted here (a busy machine): a reader must not wait for it.
    t0 = performance.now();
    during = slot.read(out, 1000);
    t0 = performance.now() - t0;
    px.fill(2, 2);
  });
  assert.equal(during, 10, 'the previous frame');
  assert.deepEqual([...out], [1, 1, 1, 1], 'complete, not half of the new one');
  assert.ok(t0 < 50, `answered in ${t0} ms, not after the timeout`);
  assert.equal(slot.read(out), 20);
  assert.deepEqual([...out], [2, 2, 2, 2]);
  assert.equal(slot.version, 2);
});
