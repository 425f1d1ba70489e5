// Every record that crosses a thread, defined once: its fields, their offsets (computed here
// from the joint count, nowhere else) and a typed view over its Float64 values. Both sides of
// a channel, the tests and the benchmarks use these views, so no one indexes a record by hand.
//
// A view owns (or wraps) one Float64Array; its vector fields are subarrays made once, when the
// view is made, and its scalar fields are accessors over fixed slots: reading or writing a
// record allocates nothing, so the control tick may do it every tick. A record is
// published by copying its `data` into a channel (LatestSlot, BroadcastRing) and read by
// copying out into the reader's own view.
import { BroadcastRing, Doorbell, LatestSlot, RingReader } from './channels.js';

/** Longest chunk the chunk record carries. */
export const MAX_HORIZON = 128;

/** Field offsets of a record for some joint count, and its length in values. */
export type RecordLayout<S extends string, V extends string> = { readonly [K in S | V]: number } & { readonly length: number };

/** A view over one record: its scalar fields as numbers, its vectors as Float64Arrays over `data`. */
export type RecordOf<S extends string, V extends string> = { readonly data: Float64Array; readonly joints: number } & { [K in S]: number } & { readonly [K in V]: Float64Array };

export interface RecordDefinition<S extends string, V extends string> {
  readonly name: string;
  /** Where each field starts for `joints` joints: the one place offsets are computed. */
  layout(joints: number): RecordLayout<S, V>;
  /** Values in one record. */
  size(joints: number): number;
  /** A view over `data` (or over a fresh array): reading and writing it allocates nothing. */
  view(joints: number, data?: Float64Array): RecordOf<S, V>;
}

/**
 * Defines a record: scalar fields first, one value each, then vectors of `perJoint` values
 * per joint. Scalars are accessors on the view's prototype; vectors are subarrays made once,
 * when the view is made.
 */
export function defineRecord<S extends string, V extends string>(name: string, scalars: readonly S[], vectors: { readonly [K in V]: number }): RecordDefinition<S, V> {
  const vectorList = Object.entries(vectors) as [V, number][];
  const layout = (joints: number): RecordLayout<S, V> => {
    const l = {} as Record<S | V | 'length', number>;
    let at = 0;
    for (const f of scalars) l[f] = at++;
    for (const [f, perJoint] of vectorList) {
      l[f] = at;
      at += perJoint * joints;
    }
    l.length = at;
    return l;
  };
  class View {
    constructor(
      readonly joints: number,
      readonly data: Float64Array,
    ) {
      const l = layout(joints);
      const self = this as unknown as Record<V, Float64Array>;
      for (const [f, perJoint] of vectorList) self[f] = data.subarray(l[f], l[f] + perJoint * joints);
    }
  }
  scalars.forEach((f, i) =>
    Object.defineProperty(View.prototype, f, {
      get(this: View): number {
        return this.data[i]!;
      },
      set(this: View, v: number) {
        this.data[i] = v;
      },
    }),
  );
  return {
    name,
    layout,
    size: (joints) => layout(joints).length,
    view(joints, data) {
      const length = layout(joints).length;
      if (data !== undefined && data.length < length) throw new RangeError(`a ${name} record of ${joints} joints needs ${length} values, got ${data.length}`);
      return new View(joints, data ?? new Float64Array(length)) as unknown as RecordOf<S, V>;
    },
  };
}

/**
 * What the control loop saw at one tick, in joint space: the policy's input. Tick index, its
 * wake-up time (monoMs), the loop's mode then; joint positions (rad), velocities (rad/s),
 * efforts (motor current, A). For real-time chunking: the committed prefix (prefixLen actions of
 * the running chunk, joint space, for ticks tick.., laid out as Chunk's actions) and the delay in
 * ticks the loop expects the answer after.
 */
export const Observation = defineRecord('observation', ['tick', 'timeMs', 'mode', 'prefixLen', 'delay'] as const, { q: 1, dq: 1, effort: 1, prefix: MAX_HORIZON });
export type ObservationRecord = ReturnType<typeof Observation.view>;

/**
 * A chunk of actions from the policy: action i is for tick obsTick + i, joint j at
 * actions[i * joints + j]; horizon actions of MAX_HORIZON are used. The generation changes
 * when the policy is swapped, so the loop switches at a chunk boundary. delay: the prefix length
 * the policy was conditioned on (real-time chunking), else 0.
 */
export const Chunk = defineRecord('chunk', ['obsTick', 'horizon', 'generation', 'delay'] as const, { actions: MAX_HORIZON });
export type ChunkRecord = ReturnType<typeof Chunk.view>;

/** Per joint, the health of its motor from the last read: temperature (C), voltage (V), hardware error bits. */
export const MotorHealth = defineRecord('motor health', [] as const, { temperature: 1, voltage: 1, hardwareError: 1 });
export type MotorHealthRecord = ReturnType<typeof MotorHealth.view>;

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
 * - tick: the tick index (deadline count: a missed deadline skips indices); timeMs: its
 *   wake-up time (monoMs); mode: the loop's mode after it;
 * - interventions: Intervention bits; generation: the policy generation whose chunk gave the
 *   action (-1: none); faults, busErrors: counts since the loop started (failed reads and
 *   retried transactions);
 * - q, dq, effort: measured; action: the policy's (NaN when there was none: hold, starved,
 *   priming); command: what was sent to the motors, after the safety filter.
 */
export const Tick = defineRecord('tick', ['tick', 'timeMs', 'mode', 'interventions', 'generation', 'faults', 'busErrors'] as const, {
  q: 1,
  dq: 1,
  effort: 1,
  action: 1,
  command: 1,
});
export type TickRecord = ReturnType<typeof Tick.view>;

/** A broadcast ring of tick records: the control thread writes one per tick. */
export class TickRing {
  readonly ring: BroadcastRing;

  static bytes(joints: number, capacity: number): number {
    return BroadcastRing.bytes(capacity, Tick.size(joints));
  }

  constructor(
    readonly joints: number,
    capacity: number,
    buffer: SharedArrayBuffer = new SharedArrayBuffer(TickRing.bytes(joints, capacity)),
  ) {
    this.ring = new BroadcastRing(buffer, capacity, Tick.size(joints));
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
    this.record = Tick.view(ring.joints);
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
    observation: new SharedArrayBuffer(LatestSlot.bytes(Observation.size(joints))),
    chunk: new SharedArrayBuffer(LatestSlot.bytes(Chunk.size(joints))),
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
    this.observation = new LatestSlot(b.observation, Observation.size(b.joints));
    this.chunk = new LatestSlot(b.chunk, Chunk.size(b.joints));
    this.request = new Doorbell(b.request);
  }

  /** A record to read or write observations of this link into. */
  observationRecord(): ObservationRecord {
    return Observation.view(this.joints);
  }

  chunkRecord(): ChunkRecord {
    return Chunk.view(this.joints);
  }
}
