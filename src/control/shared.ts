// The memory the control worker shares with the rest of the process. The worker writes its
// metrics here as plain numbers every tick (no messages, no strings); the main thread reads
// them for status, logs, telemetry and the systemd watchdog. Commands go the other way
// through one Int32 word, which the worker takes once per tick.
import { LatestSlot } from '../rt/index.js';

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
  LATENESS_MAX_US: 5,
  TICK_DURATION_MAX_US: 6,
  LAST_TICK_DURATION_US: 7,
  TICK_DURATION_SUM_US: 8,
  STARVED_TICKS: 9,
  LIMIT_CLAMPS: 10,
  DELTA_CLAMPS: 11,
  NON_FINITE: 12,
  SOFT_STARTS: 13,
  BUS_FAILED_READS: 14,
  BUS_RETRIES: 15,
  CHUNKS: 16,
  CHUNKS_REJECTED: 17,
  STALE_ACTIONS: 18,
  REFILL_REQUESTS: 19,
  ESTOPS: 20,
  FAULTS: 21,
  GC_EVENTS: 22,
  BUS_LOAD_PCT: 23,
  LENGTH: 24,
} as const;

/** Lateness histogram: 8 buckets per octave of microseconds (9 % wide), the last open-ended. */
export const HIST_BUCKETS = 192;

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
  hist: Uint32Array;
  observation: LatestSlot;
  chunk: LatestSlot;
  request: Int32Array;
  /** Per joint [temperature C, voltage V, hardware error bits], for telemetry. */
  motors: LatestSlot;
}

export interface LoopBuffers {
  ints: SharedArrayBuffer;
  floats: SharedArrayBuffer;
  hist: SharedArrayBuffer;
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
    hist: new SharedArrayBuffer(HIST_BUCKETS * 4),
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
    hist: new Uint32Array(b.hist),
    observation: new LatestSlot(b.observation, observationLength(b.joints)),
    chunk: new LatestSlot(b.chunk, chunkLength(b.joints)),
    request: new Int32Array(b.request),
    motors: new LatestSlot(b.motors, Math.max(1, 3 * b.joints)),
  };
}

export function bucketOf(us: number): number {
  if (!(us > 0)) return 0;
  const b = Math.floor(8 * Math.log2(1 + us));
  return b < HIST_BUCKETS ? b : HIST_BUCKETS - 1;
}

/** Upper edge of a bucket in microseconds. */
export function bucketUpperUs(b: number): number {
  return 2 ** ((b + 1) / 8) - 1;
}

/** The q-quantile (0..1) of a histogram, as a bucket's upper edge, or 0 when empty. */
export function quantileUs(hist: Uint32Array, q: number): number {
  let total = 0;
  for (let i = 0; i < hist.length; i++) total += hist[i]!;
  if (total === 0) return 0;
  const rank = Math.ceil(q * total);
  let seen = 0;
  for (let i = 0; i < hist.length; i++) {
    seen += hist[i]!;
    if (seen >= rank) return bucketUpperUs(i);
  }
  return bucketUpperUs(hist.length - 1);
}
