// A producer thread for the broadcast ring test: pushes `count` self-checking records (every
// value of record n is n) as fast as it can.
import { workerData } from 'node:worker_threads';
import { BroadcastRing } from '../../src/rt/index.js';

const d = workerData as { buffer: SharedArrayBuffer; capacity: number; length: number; count: number };
const ring = new BroadcastRing(d.buffer, d.capacity, d.length);
const rec = new Float64Array(d.length);
for (let n = 1; n <= d.count; n++) {
  rec.fill(n);
  ring.push(rec);
}
