// A writer thread for the channel tests: hammers a slot or a ring with self-checking records.
import { workerData } from 'node:worker_threads';
import { FrameSlot, LatestSlot, SpscRing } from '../../src/rt/index.js';

const d = workerData as { kind: 'slot' | 'ring' | 'frame'; buffer: SharedArrayBuffer; length: number; capacity: number; count: number };
const rec = new Float64Array(d.length);
if (d.kind === 'frame') {
  // As the vision worker does: pre-processing writes each frame into the slot, which takes a
  // few milliseconds per frame, with a short gap between frames (a camera at hundreds of fps;
  // real ones leave 30 ms).
  const slot = new FrameSlot(d.buffer, d.length);
  const gap = new Int32Array(new SharedArrayBuffer(4));
  for (let n = 1; n <= d.count; n++) {
    slot.write(n, (into) => {
      for (let pass = 0; pass < 8; pass++) for (let i = 0; i < into.length; i++) into[i] = n;
    });
    Atomics.wait(gap, 0, 0, 3);
  }
} else if (d.kind === 'slot') {
  const slot = new LatestSlot(d.buffer, d.length);
  for (let n = 1; n <= d.count; n++) {
    // Every value of record n is n: a reader that sees two different values saw a torn record.
    rec.fill(n);
    slot.write(rec);
  }
} else {
  const ring = new SpscRing(d.buffer, d.capacity, d.length);
  let n = 1;
  while (n <= d.count) {
    rec.fill(n);
    if (ring.push(rec)) n++;
  }
}
