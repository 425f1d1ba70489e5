// The memory the control worker shares with the rest of the process. The worker writes its
// metrics here as plain numbers every tick (no messages, no strings), and one tick record per
// tick into the tick ring; the main thread reads them for status, logs, telemetry and the
// systemd watchdog. Commands go the other way through one Int32 word, which the worker takes
// once per tick. The records themselves are defined in rt/records.ts.
import {
  LatestSlot, MotorHealth, PolicyLink, TickRing, Words, allocPolicyLink, defineMetrics,
  type Counters, type Histogram, type PolicyLinkBuffers,
} from '../rt/index.js';

/** Int32 words, atomic: a command (and its argument) from main to worker; state and mode back. */
export const LOOP_WORDS = [
  /** Command from main to worker (see Command); the worker clears it when done. */
  'command',
  'commandArg',
  /** LoopState, written by the worker. */
  'state',
  /** Mode (hold, policy, estop, fault), written by the worker. */
  'mode',
  /** Increments on every fault, so the main thread notices one it has not reported. */
  'faultSeq',
] as const;
export type LoopWord = (typeof LOOP_WORDS)[number];

/**
 * The loop's counters (exact up to 2^53, i.e. forever at 50 Hz) and its histograms, in µs:
 * wake-up lateness and tick duration.
 */
export const LOOP_METRICS = defineMetrics(
  [
    'ticks',
    /** monoMs() of the last tick's wake-up. */
    'lastTickMs',
    'startedMs',
    'missedDeadlines',
    'overruns',
    'lastTickDurationUs',
    'starvedTicks',
    'limitClamps',
    'deltaClamps',
    'nonFinite',
    'softStarts',
    'busFailedReads',
    'busRetries',
    'chunks',
    'chunksRejected',
    'staleActions',
    'refillRequests',
    'estops',
    'faults',
    'gcEvents',
    'busLoadPct',
    /** The deadline of the last tick (monoMs): the rate is ticks per scheduled time, so a loop
     * that keeps its deadlines reads exactly its target rate. */
    'lastDeadlineMs',
    /** Ticks in policy mode: the time the clamps' rates are reckoned over. */
    'policyTicks',
    /** Ticks from the observation of the chunk being executed to the tick it drives; -1: none. */
    'chunkAgeTicks',
  ] as const,
  ['lateness', 'duration'] as const,
);
export type LoopCounter = keyof typeof LOOP_METRICS.counters;

/**
 * Per joint, one table each (same buffer): what the safety filter changed in its command, and
 * the ticks its motor gave no fresh value (the bus read failed for it, or its bus was away).
 */
export const JOINT_METRICS = defineMetrics(['limitClamps', 'deltaClamps', 'nonFinite', 'failedReads'] as const);
export type JointCounter = keyof typeof JOINT_METRICS.counters;

/**
 * Per bus, one table each: ticks its read failed, and its retries. Retries are the bus's own
 * count: one retry asks again every motor that has not answered, and the drivers do not say
 * which motor made it ask, so retries are not split by joint.
 */
export const BUS_METRICS = defineMetrics(['failedReads', 'retries'] as const);
export type BusCounter = keyof typeof BUS_METRICS.counters;

export const Command = {
  NONE: 0,
  /** Put the motors in their safe state and keep ticking (the first step of shutdown). */
  SAFE: 1,
  STOP: 2,
  /** Fault injection: block the loop for commandArg ms, as a hung driver would. */
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

/** Ticks the tick ring holds by default: 10 s at 50 Hz, so a consumer polled each second keeps up. */
export const TICK_RING_CAPACITY = 512;

/**
 * A technician's jog, main to worker (a latest-value slot): move joint `joint` (its index; -1:
 * none) toward `target` rad at `speed` rad/s while holding, until `deadlineMs` (monoMs). The
 * client must keep confirming (each confirmation moves the deadline): when it stops, so does
 * the joint.
 */
export const JOG = { joint: 0, target: 1, speed: 2, deadlineMs: 3, LENGTH: 4 } as const;

export interface LoopShared {
  words: Words<LoopWord>;
  counters: Counters<LoopCounter>;
  /** Wake-up lateness and tick duration, µs. */
  lateness: Histogram;
  duration: Histogram;
  /** The observation, the chunk and the chunk request, shared with the inference side. */
  link: PolicyLink;
  observation: LatestSlot;
  chunk: LatestSlot;
  /** One record per tick, for every consumer. */
  ticks: TickRing;
  /** MotorHealth records, for telemetry. */
  motors: LatestSlot;
  /** The jog in progress (JOG layout), main to worker. */
  jog: LatestSlot;
  /** JOINT_METRICS, one table per joint, in config order. */
  perJoint: Counters<JointCounter>[];
  /** BUS_METRICS, one table per bus, in config order. */
  perBus: Counters<BusCounter>[];
}

export interface LoopBuffers extends PolicyLinkBuffers {
  words: SharedArrayBuffer;
  metrics: SharedArrayBuffer;
  ticks: SharedArrayBuffer;
  tickCapacity: number;
  motors: SharedArrayBuffer;
  jog: SharedArrayBuffer;
  jointMetrics: SharedArrayBuffer;
  busMetrics: SharedArrayBuffer;
  buses: number;
}

export function allocShared(joints: number, tickCapacity = TICK_RING_CAPACITY, buses = 1): LoopBuffers {
  return {
    ...allocPolicyLink(joints),
    words: new SharedArrayBuffer(LOOP_WORDS.length * 4),
    metrics: LOOP_METRICS.alloc(),
    ticks: new SharedArrayBuffer(TickRing.bytes(joints, tickCapacity)),
    tickCapacity,
    motors: new SharedArrayBuffer(LatestSlot.bytes(MotorHealth.size(joints))),
    jog: new SharedArrayBuffer(LatestSlot.bytes(JOG.LENGTH)),
    jointMetrics: JOINT_METRICS.alloc(joints),
    busMetrics: BUS_METRICS.alloc(buses),
    buses,
  };
}

export function viewShared(b: LoopBuffers): LoopShared {
  const metrics = LOOP_METRICS.view(b.metrics);
  const link = new PolicyLink(b);
  return {
    words: new Words(LOOP_WORDS, b.words),
    counters: metrics.counters,
    lateness: metrics.hist.lateness,
    duration: metrics.hist.duration,
    link,
    observation: link.observation,
    chunk: link.chunk,
    ticks: new TickRing(b.joints, b.tickCapacity, b.ticks),
    motors: new LatestSlot(b.motors, MotorHealth.size(b.joints)),
    jog: new LatestSlot(b.jog, JOG.LENGTH),
    perJoint: Array.from({ length: b.joints }, (_, j) => JOINT_METRICS.view(b.jointMetrics, j).counters),
    perBus: Array.from({ length: b.buses }, (_, i) => BUS_METRICS.view(b.busMetrics, i).counters),
  };
}
