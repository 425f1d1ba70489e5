// One monotonic clock for every thread, in milliseconds as a double.
//
// process.hrtime.bigint() reads CLOCK_MONOTONIC, which every thread shares, but allocates a
// BigInt per call, which the 50 Hz path must not do. performance.now() does not allocate but
// counts from the start of its own thread. So each thread measures, once, the offset between
// the two, and from then on reads performance.now() + offset: CLOCK_MONOTONIC in ms, with the
// same origin in every thread, without allocating.
import { performance } from 'node:perf_hooks';

const offsetMs = Number(process.hrtime.bigint()) / 1e6 - performance.now();

/** CLOCK_MONOTONIC in milliseconds (sub-microsecond resolution), comparable across threads. */
export function monoMs(): number {
  return performance.now() + offsetMs;
}
