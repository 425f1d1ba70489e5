// The memory the control worker shares with the rest of the process. The worker writes its
// metrics here as plain numbers every tick (no messages, no strings); the main thread reads
// them for status, logs, telemetry and the systemd watchdog. Commands go the other way
// through one Int32 word, which the worker takes once per tick.
import { Histogram, LatestSlot, bucketOf, bucketUpper } from '../rt/index.js';

/** Int32 slots. */
export const I = {
  /** Command from main to worker (see Command); the worker clears it when done. */
  COMMAND: 0,
  COMMAND_ARG: 1,
  /** LoopState, written by the worker. */
  STATE: 2,
  /** Word the worker sleeps on with Atomics.wait when the native sleep is unavailable. */
  WAKE: 3,
  /** Mode (hold, running, estop, fault), written by the worker. */
  MODE: 4,
  /** Increments on every fault, so the main thread notices one it has not reported. */
  FAULT_SEQ: 5,
  LENGTH: 8,
} as const;

/** Float64 slots: counters are exact up to 2^53, i.e. forever at 50 Hz. */
export const F = {
  TICKS: 0,
  /** monoMs() of the last tick's wake-up. */
  LAST_TICK_MS: 1,
  STARTED_MS: 2,
  MISSED_DEADLINES: 3,
  OVERRUNS: 4,
  LAST_TICK_DURATION_US: 5,
  STARVED_TICKS: 6,
  LIMIT_CLAMPS: 7,
  DELTA_CLAMPS: 8,
  NON_FINITE: 9,
  SOFT_STARTS: 10,
  BUS_FAILED_READS: 11,
  BUS_RETRIES: 12,
  CHUNKS: 13,
  CHUNKS_REJECTED: 14,
  STALE_ACTIONS: 15,
  REFILL_REQUESTS: 16,
  ESTOPS: 17,
  FAULTS: 18,
  GC_EVENTS: 19,
  BUS_LOAD_PCT: 20,
  /** The deadline of the last tick (monoMs): the rate is ticks per scheduled time, so a loop
   * that keeps its deadlines reads exactly its target rate. */
  LAST_DEADLINE_MS: 21,
  LENGTH: 22,
} as const;

/** Histograms of the tick, in microseconds (see rt/metrics.ts), one after the other. */
export const H = { LATENESS: 0, DURATION: 1, COUNT: 2 } as const;

export const Command = {
  NONE: 0,
  /** Put the motors in their safe state and keep ticking (the first step of shutdown). */
  SAFE: 1,
  STOP: 2,
  /** Fault injection: block the loop for COMMAND_ARG ms, as a hung driver would. */
  STALL: 3,
  ESTOP: 4,
  /** Clears e-stop and a latched fault; the loop goes back to hold. */
  RESET: 5,
  POLICY_START: 6,
  POLICY_STOP: 7,
} as const;

export const LoopState = { STARTING: 0, RUNNING: 1, SAFE: 2, STOPPED: 3 } as const;
export type LoopStateName = 'starting' | 'running' | 'safe' | 'stopped';
export const LOOP_STATE_NAMES: readonly LoopStateName[] = ['starting', 'running', 'safe', 'stopped'];

export const Mode = { HOLD: 0, POLICY: 1, ESTOP: 2, FAULT: 3 } as const;
export type ModeName = 'hold' | 'policy' | 'estop' | 'fault';
export const MODE_NAMES: readonly ModeName[] = ['hold', 'policy', 'estop', 'fault'];

/** Longest chunk the chunk slot carries. */
export const MAX_HORIZON = 128;

/**
 * Observation record: [tick, timeMs, mode, q(J), dq(J), effort(J)], joint space.
 * Chunk record: [obsTick, horizon, generation, actions(MAX_HORIZON * J)], written by the
 * inference side; generation changes when the policy is swapped.
 * Request word: [seq, tick]: the loop bumps seq (and notifies) when it wants a chunk.
 */
export interface LoopShared {
  ints: Int32Array;
  floats: Float64Array;
  /** Wake-up lateness and tick duration, µs. */
  lateness: Histogram;
  duration: Histogram;
  observation: LatestSlot;
  chunk: LatestSlot;
  request: Int32Array;
  /** Per joint [temperature C, voltage V, hardware error bits], for telemetry. */
  motors: LatestSlot;
}

export interface LoopBuffers {
  ints: SharedArrayBuffer;
  floats: SharedArrayBuffer;
  timing: SharedArrayBuffer;
  observation: SharedArrayBuffer;
  chunk: SharedArrayBuffer;
  request: SharedArrayBuffer;
  motors: SharedArrayBuffer;
  joints: number;
}

export function observationLength(joints: number): number {
  return 3 + 3 * joints;
}

export function chunkLength(joints: number): number {
  return CHUNK_HEADER + MAX_HORIZON * joints;
}

/** Values before the actions in a chunk record. */
export const CHUNK_HEADER = 3;

export function allocShared(joints: number): LoopBuffers {
  return {
    ints: new SharedArrayBuffer(I.LENGTH * 4),
    floats: new SharedArrayBuffer(F.LENGTH * 8),
    timing: new SharedArrayBuffer(H.COUNT * Histogram.LENGTH * 8),
    observation: new SharedArrayBuffer(LatestSlot.bytes(observationLength(joints))),
    chunk: new SharedArrayBuffer(LatestSlot.bytes(chunkLength(joints))),
    request: new SharedArrayBuffer(8),
    motors: new SharedArrayBuffer(LatestSlot.bytes(Math.max(1, 3 * joints))),
    joints,
  };
}

export function viewShared(b: LoopBuffers): LoopShared {
  return {
    ints: new Int32Array(b.ints),
    floats: new Float64Array(b.floats),
    lateness: new Histogram(new Float64Array(b.timing), H.LATENESS * Histogram.LENGTH),
    duration: new Histogram(new Float64Array(b.timing), H.DURATION * Histogram.LENGTH),
    observation: new LatestSlot(b.observation, observationLength(b.joints)),
    chunk: new LatestSlot(b.chunk, chunkLength(b.joints)),
    request: new Int32Array(b.request),
    motors: new LatestSlot(b.motors, Math.max(1, 3 * b.joints)),
  };
}

/** Kept for the inference worker's own counters until they move to rt/metrics.ts. */
export { bucketOf };

/** The q-quantile (0..1) of a bucket array, as a bucket's upper edge, or 0 when empty. */
export function quantileUs(hist: Uint32Array, q: number): number {
  let total = 0;
  for (let i = 0; i < hist.length; i++) total += hist[i]!;
  if (total === 0) return 0;
  const rank = Math.ceil(q * total);
  let seen = 0;
  for (let i = 0; i < hist.length; i++) {
    seen += hist[i]!;
    if (seen >= rank) return bucketUpper(i);
  }
  return bucketUpper(hist.length - 1);
}
