// The memory the control worker and the main thread share. The worker writes its metrics here
// as plain numbers every tick (no messages, no strings); the main thread reads them when it
// builds status, logs and the systemd watchdog decision. Commands go the other way through
// one Int32 word, which the worker polls once per tick.

/** Int32 slots. */
export const I = {
  /** Command from main to worker (see Command); the worker clears it when done. */
  COMMAND: 0,
  COMMAND_ARG: 1,
  /** LoopState, written by the worker. */
  STATE: 2,
  /** Word the worker sleeps on with Atomics.wait (a timed sleep; nobody notifies it). */
  WAKE: 3,
  LENGTH: 4,
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
  LENGTH: 8,
} as const;

/** Lateness histogram: 4 buckets per octave of microseconds, the last bucket open-ended. */
export const HIST_BUCKETS = 96;

export const Command = {
  NONE: 0,
  /** Put the motors in their safe state and keep ticking (hold). */
  SAFE: 1,
  STOP: 2,
  /** Fault injection: block the loop for COMMAND_ARG ms, as a hung driver would. */
  STALL: 3,
} as const;

export const LoopState = {
  STARTING: 0,
  RUNNING: 1,
  SAFE: 2,
  STOPPED: 3,
} as const;

export type LoopStateName = 'starting' | 'running' | 'safe' | 'stopped';
export const LOOP_STATE_NAMES: readonly LoopStateName[] = ['starting', 'running', 'safe', 'stopped'];

export interface LoopShared {
  ints: Int32Array;
  floats: Float64Array;
  hist: Uint32Array;
}

export function allocShared(): SharedArrayBuffer[] {
  return [
    new SharedArrayBuffer(I.LENGTH * 4),
    new SharedArrayBuffer(F.LENGTH * 8),
    new SharedArrayBuffer(HIST_BUCKETS * 4),
  ];
}

export function viewShared(bufs: readonly SharedArrayBuffer[]): LoopShared {
  const [ints, floats, hist] = bufs;
  if (!ints || !floats || !hist) throw new TypeError('control loop shared memory: three buffers expected');
  return { ints: new Int32Array(ints), floats: new Float64Array(floats), hist: new Uint32Array(hist) };
}

export function bucketOf(us: number): number {
  if (!(us > 0)) return 0;
  const b = Math.floor(4 * Math.log2(1 + us));
  return b < HIST_BUCKETS ? b : HIST_BUCKETS - 1;
}

/** Upper edge of a bucket in microseconds. */
export function bucketUpperUs(b: number): number {
  return 2 ** ((b + 1) / 4) - 1;
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
