// A writer thread for the channel tests: hammers a slot or a ring with self-checking records.
import { workerData } from 'node:worker_threads';
import { LatestSlot, SpscRing } from '../../src/rt/index.js';

const d = workerData as { kind: 'slot' | 'ring'; buffer: SharedArrayBuffer; length: number; capacity: number; count: number };
const rec = new Float64Array(d.length);
if (d.kind === 'slot') {
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
