// Every record that crosses a thread, defined once: its fields, their offsets (computed here
// from the joint count, nowhere else) and a typed view over its Float64 values. Both sides of
// a channel, the tests and the benchmarks use these views, so no one indexes a record by hand.
//
// A view owns (or wraps) one Float64Array; its vector fields are subarrays made once, at
// construction, and its scalar fields are getters and setters over fixed slots: reading or
// writing a record allocates nothing, so the control tick may do it every tick. A record is
// published by copying its `data` into a channel (LatestSlot, BroadcastRing) and read by
// copying out into the reader's own view.
import { BroadcastRing, Doorbell, LatestSlot, RingReader } from './channels.js';

/** Longest chunk the chunk record carries. */
export const MAX_HORIZON = 128;

// Scalar fields first, then the vectors; the offsets below are the only ones in the tree.
const OBS = { tick: 0, timeMs: 1, mode: 2, HEAD: 3 } as const;
const CHUNK = { obsTick: 0, horizon: 1, generation: 2, HEAD: 3 } as const;
const TICK = { tick: 0, timeMs: 1, mode: 2, interventions: 3, generation: 4, faults: 5, busErrors: 6, HEAD: 7 } as const;

/** Field offsets of a record type for `joints` joints: the one place they are computed. */
export interface ObservationLayout {
  tick: number;
  timeMs: number;
  mode: number;
  q: number;
  dq: number;
  effort: number;
  length: number;
}

export function observationLayout(joints: number): ObservationLayout {
  const v = OBS.HEAD;
  return { tick: OBS.tick, timeMs: OBS.timeMs, mode: OBS.mode, q: v, dq: v + joints, effort: v + 2 * joints, length: v + 3 * joints };
}

export interface ChunkLayout {
  obsTick: number;
  horizon: number;
  generation: number;
  /** MAX_HORIZON actions of `joints` values, action-major. */
  actions: number;
  length: number;
}

export function chunkLayout(joints: number): ChunkLayout {
  const v = CHUNK.HEAD;
  return { obsTick: CHUNK.obsTick, horizon: CHUNK.horizon, generation: CHUNK.generation, actions: v, length: v + MAX_HORIZON * joints };
}

export interface TickLayout {
  tick: number;
  timeMs: number;
  mode: number;
  interventions: number;
  generation: number;
  faults: number;
  busErrors: number;
  q: number;
  dq: number;
  effort: number;
  action: number;
  command: number;
  length: number;
}

export function tickLayout(joints: number): TickLayout {
  const v = TICK.HEAD;
  return {
    tick: TICK.tick, timeMs: TICK.timeMs, mode: TICK.mode, interventions: TICK.interventions, generation: TICK.generation, faults: TICK.faults, busErrors: TICK.busErrors,
    q: v, dq: v + joints, effort: v + 2 * joints, action: v + 3 * joints, command: v + 4 * joints, length: v + 5 * joints,
  };
}

/** A typed view over one record's Float64 values. */
abstract class RecordView {
  readonly data: Float64Array;

  protected constructor(
    readonly joints: number,
    length: number,
    data?: Float64Array,
  ) {
    if (data !== undefined && data.length < length) throw new RangeError(`a record of ${joints} joints needs ${length} values, got ${data.length}`);
    this.data = data ?? new Float64Array(length);
  }

  protected vector(offset: number, size: number): Float64Array {
    return this.data.subarray(offset, offset + size);
  }
}

/** What the control loop saw at one tick, in joint space: the policy's input. */
export class ObservationRecord extends RecordView {
  static size(joints: number): number {
    return observationLayout(joints).length;
  }
  /** Joint positions (rad), velocities (rad/s), efforts (motor current, A). */
  readonly q: Float64Array;
  readonly dq: Float64Array;
  readonly effort: Float64Array;

  constructor(joints: number, data?: Float64Array) {
    const l = observationLayout(joints);
    super(joints, l.length, data);
    this.q = this.vector(l.q, joints);
    this.dq = this.vector(l.dq, joints);
    this.effort = this.vector(l.effort, joints);
  }

  get tick(): number {
    return this.data[OBS.tick]!;
  }
  set tick(v: number) {
    this.data[OBS.tick] = v;
  }
  get timeMs(): number {
    return this.data[OBS.timeMs]!;
  }
  set timeMs(v: number) {
    this.data[OBS.timeMs] = v;
  }
  get mode(): number {
    return this.data[OBS.mode]!;
  }
  set mode(v: number) {
    this.data[OBS.mode] = v;
  }
}

/**
 * A chunk of actions from the policy: action i is for tick obsTick + i. The generation
 * changes when the policy is swapped, so the loop switches at a chunk boundary.
 */
export class ChunkRecord extends RecordView {
  static size(joints: number): number {
    return chunkLayout(joints).length;
  }
  /** MAX_HORIZON actions, action-major: action i, joint j at i * joints + j. */
  readonly actions: Float64Array;

  constructor(joints: number, data?: Float64Array) {
    const l = chunkLayout(joints);
    super(joints, l.length, data);
    this.actions = this.vector(l.actions, MAX_HORIZON * joints);
  }

  get obsTick(): number {
    return this.data[CHUNK.obsTick]!;
  }
  set obsTick(v: number) {
    this.data[CHUNK.obsTick] = v;
  }
  get horizon(): number {
    return this.data[CHUNK.horizon]!;
  }
  set horizon(v: number) {
    this.data[CHUNK.horizon] = v;
  }
  get generation(): number {
    return this.data[CHUNK.generation]!;
  }
  set generation(v: number) {
    this.data[CHUNK.generation] = v;
  }
}

/** Which safety rules changed the command at a tick (bit flags of TickRecord.interventions). */
export const Intervention = {
  /** A joint's command was clamped to its position limits. */
  LIMIT: 1,
  /** A joint's command moved faster than its velocity limit allows, and was clamped. */
  DELTA: 2,
  /** A NaN or Inf command was replaced by the previous one. */
  NON_FINITE: 4,
  /** The soft start was ramping the command in. */
  SOFT_START: 8,
  /** The policy had no action for this tick: the last safe command was held. */
  STARVED: 16,
} as const;
export const INTERVENTION_NAMES = ['limit', 'delta', 'nonFinite', 'softStart', 'starved'] as const;
export type InterventionName = (typeof INTERVENTION_NAMES)[number];

/** The names of the bits set in `flags`. */
export function interventionNames(flags: number): InterventionName[] {
  return INTERVENTION_NAMES.filter((_, i) => (flags & (1 << i)) !== 0);
}

/**
 * What one tick produced: written once by the control thread, read by every consumer
 * (status, telemetry, the recorder, a live view).
 */
export class TickRecord extends RecordView {
  static size(joints: number): number {
    return tickLayout(joints).length;
  }
  readonly q: Float64Array;
  readonly dq: Float64Array;
  readonly effort: Float64Array;
  /** The policy's action for this tick (NaN when there was none: hold, starved, priming). */
  readonly action: Float64Array;
  /** The command sent to the motors, after the safety filter. */
  readonly command: Float64Array;

  constructor(joints: number, data?: Float64Array) {
    const l = tickLayout(joints);
    super(joints, l.length, data);
    this.q = this.vector(l.q, joints);
    this.dq = this.vector(l.dq, joints);
    this.effort = this.vector(l.effort, joints);
    this.action = this.vector(l.action, joints);
    this.command = this.vector(l.command, joints);
  }

  /** Tick index (deadline count: a missed deadline skips indices). */
  get tick(): number {
    return this.data[TICK.tick]!;
  }
  set tick(v: number) {
    this.data[TICK.tick] = v;
  }
  /** Wake-up time, monoMs. */
  get timeMs(): number {
    return this.data[TICK.timeMs]!;
  }
  set timeMs(v: number) {
    this.data[TICK.timeMs] = v;
  }
  /** The loop's mode (hold, policy, estop, fault) after this tick. */
  get mode(): number {
    return this.data[TICK.mode]!;
  }
  set mode(v: number) {
    this.data[TICK.mode] = v;
  }
  /** Intervention bits. */
  get interventions(): number {
    return this.data[TICK.interventions]!;
  }
  set interventions(v: number) {
    this.data[TICK.interventions] = v;
  }
  /** The policy generation whose chunk gave the action (-1: none). */
  get generation(): number {
    return this.data[TICK.generation]!;
  }
  set generation(v: number) {
    this.data[TICK.generation] = v;
  }
  /** Faults since the loop started. */
  get faults(): number {
    return this.data[TICK.faults]!;
  }
  set faults(v: number) {
    this.data[TICK.faults] = v;
  }
  /** Failed bus reads and retried transactions since the loop started. */
  get busErrors(): number {
    return this.data[TICK.busErrors]!;
  }
  set busErrors(v: number) {
    this.data[TICK.busErrors] = v;
  }
}

/** A broadcast ring of tick records: the control thread writes one per tick. */
export class TickRing {
  readonly ring: BroadcastRing;

  static bytes(joints: number, capacity: number): number {
    return BroadcastRing.bytes(capacity, TickRecord.size(joints));
  }

  constructor(
    readonly joints: number,
    capacity: number,
    buffer: SharedArrayBuffer = new SharedArrayBuffer(TickRing.bytes(joints, capacity)),
  ) {
    this.ring = new BroadcastRing(buffer, capacity, TickRecord.size(joints));
  }

  get buffer(): SharedArrayBuffer {
    return this.ring.buffer;
  }

  get capacity(): number {
    return this.ring.capacity;
  }

  /** Producer: publishes one tick (allocation-free). */
  push(record: TickRecord): void {
    this.ring.push(record.data);
  }

  /** Ticks written so far. */
  get written(): number {
    return this.ring.newestSeq();
  }

  /** A consumer that sees every tick from now on, in its own record. */
  reader(): TickReader {
    return new TickReader(this);
  }
}

/**
 * One consumer of the tick ring: `next()` fills `record` with the next tick. A consumer that
 * falls more than the ring's capacity behind counts `overruns` (and `lost` ticks) and resumes
 * at the oldest tick still there; the producer never waits for it.
 */
export class TickReader {
  readonly record: TickRecord;
  private readonly cursor: RingReader;

  constructor(ring: TickRing) {
    this.record = new TickRecord(ring.joints);
    this.cursor = ring.ring.reader();
  }

  next(): boolean {
    return this.cursor.next(this.record.data);
  }

  /** Skips to the newest tick; false when none was written yet. */
  latest(): boolean {
    return this.cursor.latest(this.record.data);
  }

  get overruns(): number {
    return this.cursor.overruns;
  }

  get lost(): number {
    return this.cursor.lost;
  }

  get taken(): number {
    return this.cursor.taken;
  }
}

/**
 * The shared memory between the control loop and the inference side: the newest
 * observation, the newest chunk, and the bell the loop rings when it wants a chunk. Plain
 * buffers, to hand to a worker; PolicyLink views them.
 */
export interface PolicyLinkBuffers {
  joints: number;
  observation: SharedArrayBuffer;
  chunk: SharedArrayBuffer;
  request: SharedArrayBuffer;
}

export function allocPolicyLink(joints: number): PolicyLinkBuffers {
  return {
    joints,
    observation: new SharedArrayBuffer(LatestSlot.bytes(ObservationRecord.size(joints))),
    chunk: new SharedArrayBuffer(LatestSlot.bytes(ChunkRecord.size(joints))),
    request: new SharedArrayBuffer(Doorbell.bytes()),
  };
}

/** Both sides' views of a PolicyLinkBuffers. */
export class PolicyLink {
  readonly joints: number;
  readonly observation: LatestSlot;
  readonly chunk: LatestSlot;
  readonly request: Doorbell;

  constructor(b: PolicyLinkBuffers) {
    this.joints = b.joints;
    this.observation = new LatestSlot(b.observation, ObservationRecord.size(b.joints));
    this.chunk = new LatestSlot(b.chunk, ChunkRecord.size(b.joints));
    this.request = new Doorbell(b.request);
  }

  /** A record to read or write observations of this link into. */
  observationRecord(): ObservationRecord {
    return new ObservationRecord(this.joints);
  }

  chunkRecord(): ChunkRecord {
    return new ChunkRecord(this.joints);
  }
}
