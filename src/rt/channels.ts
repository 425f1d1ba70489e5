// Shared-memory channels between threads. Both are lock-free, bounded, and allocate nothing
// after construction: the control thread may use them every tick.

/**
 * Latest-value slot (seqlock): one writer publishes a record of Float64 values, any number of
 * readers take the newest one. A reader never blocks the writer; it retries when it catches a
 * write in progress, so it never returns a torn record.
 */
export class LatestSlot {
  readonly length: number;
  private readonly seq: Int32Array;
  private readonly data: Float64Array;

  /** Bytes of shared memory a slot of `length` values needs. */
  static bytes(length: number): number {
    return 8 + length * 8;
  }

  constructor(
    readonly buffer: SharedArrayBuffer,
    length?: number,
  ) {
    this.length = length ?? (buffer.byteLength - 8) / 8;
    this.seq = new Int32Array(buffer, 0, 2);
    this.data = new Float64Array(buffer, 8, this.length);
  }

  static create(length: number): LatestSlot {
    return new LatestSlot(new SharedArrayBuffer(LatestSlot.bytes(length)), length);
  }

  /** Publishes the first `length` values of `values` (single writer). */
  write(values: Float64Array | readonly number[]): void {
    const s = Atomics.load(this.seq, 0);
    Atomics.store(this.seq, 0, s + 1); // odd: a write is in progress
    const d = this.data;
    for (let i = 0; i < this.length; i++) d[i] = values[i]!;
    Atomics.store(this.seq, 0, s + 2);
  }

  /** Version of the newest record (even; 0 = never written). */
  get version(): number {
    return Atomics.load(this.seq, 0) & ~1;
  }

  /**
   * Copies the newest record into `out` and returns its version, or -1 when it could not get
   * a consistent copy within `tries` (a writer far faster than any real one).
   */
  read(out: Float64Array, tries = 1000): number {
    const d = this.data;
    for (let t = 0; t < tries; t++) {
      const s1 = Atomics.load(this.seq, 0);
      if (s1 & 1) continue;
      for (let i = 0; i < this.length; i++) out[i] = d[i]!;
      if (Atomics.load(this.seq, 0) === s1) return s1;
    }
    return -1;
  }
}

/**
 * Single-producer single-consumer ring of fixed-size Float64 records. The producer never
 * waits: when the ring is full the record is dropped and counted, which is what a control
 * loop wants from its telemetry and recording streams.
 */
export class SpscRing {
  readonly capacity: number;
  readonly recordLength: number;
  /** [head (next write), tail (next read), dropped] */
  private readonly idx: Int32Array;
  private readonly data: Float64Array;

  static bytes(capacity: number, recordLength: number): number {
    return 16 + capacity * recordLength * 8;
  }

  constructor(
    readonly buffer: SharedArrayBuffer,
    capacity: number,
    recordLength: number,
  ) {
    if (!Number.isInteger(capacity) || capacity < 2) throw new RangeError('capacity must be an integer >= 2');
    this.capacity = capacity;
    this.recordLength = recordLength;
    this.idx = new Int32Array(buffer, 0, 4);
    this.data = new Float64Array(buffer, 16, capacity * recordLength);
  }

  static create(capacity: number, recordLength: number): SpscRing {
    return new SpscRing(new SharedArrayBuffer(SpscRing.bytes(capacity, recordLength)), capacity, recordLength);
  }

  /** Records dropped because the ring was full. */
  get dropped(): number {
    return Atomics.load(this.idx, 2);
  }

  get size(): number {
    const h = Atomics.load(this.idx, 0);
    const t = Atomics.load(this.idx, 1);
    return (h - t + this.capacity) % this.capacity;
  }

  /** Producer: appends a record; false (and counted) when full. */
  push(record: Float64Array | readonly number[]): boolean {
    const h = Atomics.load(this.idx, 0);
    const next = (h + 1) % this.capacity;
    if (next === Atomics.load(this.idx, 1)) {
      Atomics.add(this.idx, 2, 1);
      return false;
    }
    const base = h * this.recordLength;
    for (let i = 0; i < this.recordLength; i++) this.data[base + i] = record[i]!;
    Atomics.store(this.idx, 0, next);
    return true;
  }

  /** Consumer: copies the oldest record into `out`; false when empty. */
  pop(out: Float64Array): boolean {
    const t = Atomics.load(this.idx, 1);
    if (t === Atomics.load(this.idx, 0)) return false;
    const base = t * this.recordLength;
    for (let i = 0; i < this.recordLength; i++) out[i] = this.data[base + i]!;
    Atomics.store(this.idx, 1, (t + 1) % this.capacity);
    return true;
  }
}

/**
 * A latest-value slot for camera frames (a pre-processed [3, H, W] float32 tensor plus its
 * capture time on the shared monotonic clock), double-buffered: the writer fills the buffer
 * readers are not directed to, then publishes it. Filling a frame takes milliseconds and a
 * busy machine can preempt the writer mid-frame for much longer, so a single seqlocked buffer
 * left readers waiting on (or giving up on) a write in progress; here a reader copies the last
 * complete frame and only retries when the writer completed a whole further frame meanwhile.
 */
export class FrameSlot {
  readonly length: number;
  /** [latest buffer index + 1 (0: none yet), seq of buffer 0, seq of buffer 1] */
  private readonly words: Int32Array;
  /** Per buffer: [captureMs, frame count] */
  private readonly meta: Float64Array;
  private readonly data: [Float32Array, Float32Array];

  static bytes(length: number): number {
    return 16 + 32 + 2 * length * 4;
  }

  constructor(
    readonly buffer: SharedArrayBuffer,
    length: number,
  ) {
    this.length = length;
    this.words = new Int32Array(buffer, 0, 4);
    this.meta = new Float64Array(buffer, 16, 4);
    this.data = [new Float32Array(buffer, 48, length), new Float32Array(buffer, 48 + length * 4, length)];
  }

  static create(length: number): FrameSlot {
    return new FrameSlot(new SharedArrayBuffer(FrameSlot.bytes(length)), length);
  }

  /** read() found no frame: none was ever written. */
  static readonly NONE = -1;
  /** read() could not get a consistent copy within its bound: the writer lapped it every time. */
  static readonly BUSY = -2;

  /** Frames published so far (0 = none). */
  get version(): number {
    const latest = Atomics.load(this.words, 0);
    return latest === 0 ? 0 : this.meta[2 * (latest - 1) + 1]!;
  }

  /** Capture time of the newest frame (monoMs), 0 when none; a hint, read() gives the exact one. */
  get captureMs(): number {
    const latest = Atomics.load(this.words, 0);
    return latest === 0 ? 0 : this.meta[2 * (latest - 1)]!;
  }

  /** Publishes a frame: `fill` writes the pixels into the slot's spare buffer (single writer). */
  write(captureMs: number, fill: (into: Float32Array) => void): void {
    const latest = Atomics.load(this.words, 0);
    const count = latest === 0 ? 0 : this.meta[2 * (latest - 1) + 1]!;
    const b = latest === 1 ? 1 : 0; // the buffer readers are not directed to
    const seq = 1 + b;
    Atomics.add(this.words, seq, 1); // odd: being written
    fill(this.data[b]);
    this.meta[2 * b] = captureMs;
    this.meta[2 * b + 1] = count + 1;
    Atomics.add(this.words, seq, 1);
    Atomics.store(this.words, 0, b + 1);
  }

  /**
   * Copies the newest complete frame into `out`; returns its capture time, FrameSlot.NONE when
   * no frame was ever written, or FrameSlot.BUSY when every copy within `timeoutMs` was
   * overtaken by the writer (a writer finishing frames faster than one copy takes).
   */
  read(out: Float32Array, timeoutMs = 100): number {
    let deadline = 0;
    for (;;) {
      const latest = Atomics.load(this.words, 0);
      if (latest === 0) return FrameSlot.NONE;
      const b = latest - 1;
      const s1 = Atomics.load(this.words, 1 + b);
      if ((s1 & 1) === 0) {
        out.set(this.data[b]!);
        const captured = this.meta[2 * b]!;
        if (Atomics.load(this.words, 1 + b) === s1) return captured;
      }
      const now = performance.now();
      if (deadline === 0) deadline = now + timeoutMs;
      else if (now >= deadline) return FrameSlot.BUSY;
    }
  }
}

/**
 * A doorbell: one Int32 sequence word that a thread bumps (and notifies) to say "something is
 * wanted", and another waits on. The control loop rings it when it wants a chunk; what is
 * wanted travels in the records (the observation carries its tick), not in the bell.
 */
export class Doorbell {
  private readonly word: Int32Array;

  static bytes(): number {
    return 4;
  }

  constructor(readonly buffer: SharedArrayBuffer) {
    this.word = new Int32Array(buffer, 0, 1);
  }

  static create(): Doorbell {
    return new Doorbell(new SharedArrayBuffer(Doorbell.bytes()));
  }

  /** Rings: allocation-free, never blocks. */
  ring(): void {
    Atomics.add(this.word, 0, 1);
    Atomics.notify(this.word, 0);
  }

  /** How many times it has rung (wraps; compare for equality only). */
  get seq(): number {
    return Atomics.load(this.word, 0);
  }

  /** Resolves with the new seq once it differs from `seen`, or with `seen` after `timeoutMs`. */
  async wait(seen: number, timeoutMs: number): Promise<number> {
    const w = Atomics.waitAsync(this.word, 0, seen, timeoutMs);
    if (w.async) await w.value;
    return this.seq;
  }

  /** Wakes whoever waits without ringing (a waiter that is being stopped). */
  wake(): void {
    Atomics.notify(this.word, 0);
  }
}

const SPIN_TRIES = 100_000;

/**
 * Broadcast ring: one producer, any number of consumers, each with its own cursor. The
 * producer never waits: it overwrites the oldest record. Each slot carries its record's
 * sequence number and a seqlock word, so a consumer that fell behind (its next record was
 * overwritten) sees it, counts what it lost and resumes at the oldest record still there, and
 * a consumer never returns a torn record. Consumers write nothing shared, so attaching one
 * (status, telemetry, a recorder, a live view) never touches the producer.
 *
 * Layout: Int32 [newest slot, spare] then, per slot, Int32 [lock, spare] and Float64
 * [seq, record...].
 */
export class BroadcastRing {
  readonly capacity: number;
  readonly recordLength: number;
  private readonly head: Int32Array;
  private readonly locks: Int32Array;
  private readonly data: Float64Array;
  private readonly stride: number;
  /** Producer side: the next record's sequence number (starts at 1; 0 = never written). */
  private nextSeq = 1;

  static bytes(capacity: number, recordLength: number): number {
    return 8 + capacity * 8 + capacity * (1 + recordLength) * 8;
  }

  constructor(
    readonly buffer: SharedArrayBuffer,
    capacity: number,
    recordLength: number,
  ) {
    if (!Number.isInteger(capacity) || capacity < 2) throw new RangeError('capacity must be an integer >= 2');
    if (buffer.byteLength < BroadcastRing.bytes(capacity, recordLength)) throw new RangeError('the buffer is smaller than the ring');
    this.capacity = capacity;
    this.recordLength = recordLength;
    this.stride = 1 + recordLength;
    this.head = new Int32Array(buffer, 0, 2);
    this.locks = new Int32Array(buffer, 8, capacity * 2);
    this.data = new Float64Array(buffer, 8 + capacity * 8, capacity * this.stride);
    // A producer re-created over a ring already written (a restarted thread) continues its sequence.
    const newest = this.newestSeq();
    if (newest > 0) this.nextSeq = newest + 1;
  }

  static create(capacity: number, recordLength: number): BroadcastRing {
    return new BroadcastRing(new SharedArrayBuffer(BroadcastRing.bytes(capacity, recordLength)), capacity, recordLength);
  }

  /** Producer: publishes `record` (its first recordLength values), overwriting the oldest. */
  push(record: Float64Array): void {
    const seq = this.nextSeq;
    const slot = seq % this.capacity;
    const lock = slot * 2;
    const base = slot * this.stride;
    const l = Atomics.load(this.locks, lock);
    Atomics.store(this.locks, lock, l + 1); // odd: being written
    const d = this.data;
    d[base] = seq;
    for (let i = 0; i < this.recordLength; i++) d[base + 1 + i] = record[i]!;
    Atomics.store(this.locks, lock, l + 2);
    Atomics.store(this.head, 0, slot);
    this.nextSeq = seq + 1;
  }

  /** Sequence number of the newest record (0 when none). */
  newestSeq(): number {
    for (let t = 0; t < SPIN_TRIES; t++) {
      const s = this.seqAt(Atomics.load(this.head, 0));
      if (s >= 0) return s;
    }
    // A producer that died in the middle of a write leaves its slot locked: the previous one stands.
    const slot = (Atomics.load(this.head, 0) + this.capacity - 1) % this.capacity;
    return Math.max(0, this.data[slot * this.stride]!);
  }

  /** A consumer that starts after the newest record: it sees every record from now on. */
  reader(): RingReader {
    return new RingReader(this);
  }

  /**
   * Copies the record with sequence number `seq` into `out`. Returns `seq` when copied, 0 when
   * it is not written yet, or the sequence number now in its slot (> seq) when it was
   * overwritten.
   */
  readAt(seq: number, out: Float64Array): number {
    const slot = seq % this.capacity;
    const lock = slot * 2;
    const base = slot * this.stride;
    const d = this.data;
    // A write is a few hundred bytes and ends within microseconds; the bound is for a producer
    // that died in the middle of one (its slot stays locked: read as not written).
    for (let t = 0; t < SPIN_TRIES; t++) {
      const l1 = Atomics.load(this.locks, lock);
      if (l1 & 1) continue;
      const s = d[base]!;
      if (s !== seq) {
        if (Atomics.load(this.locks, lock) !== l1) continue;
        return s > seq ? s : 0;
      }
      for (let i = 0; i < this.recordLength; i++) out[i] = d[base + 1 + i]!;
      if (Atomics.load(this.locks, lock) === l1) return seq;
    }
    return 0;
  }

  /** The sequence number in `slot`, or -1 when it was being written. */
  private seqAt(slot: number): number {
    const lock = slot * 2;
    const l1 = Atomics.load(this.locks, lock);
    if (l1 & 1) return -1;
    const s = this.data[slot * this.stride]!;
    return Atomics.load(this.locks, lock) === l1 ? s : -1;
  }
}

/** One consumer's cursor on a BroadcastRing. Allocation-free after construction. */
export class RingReader {
  /** Sequence number of the next record this reader takes. */
  private cursor: number;
  /** Times this reader fell behind and skipped ahead. */
  overruns = 0;
  /** Records this reader never saw because the producer overwrote them first. */
  lost = 0;
  /** Records this reader took. */
  taken = 0;

  constructor(private readonly ring: BroadcastRing) {
    this.cursor = ring.newestSeq() + 1;
  }

  /** Copies the next record into `out`; false when there is none yet. */
  next(out: Float64Array): boolean {
    for (;;) {
      const got = this.ring.readAt(this.cursor, out);
      if (got === this.cursor) {
        this.cursor++;
        this.taken++;
        return true;
      }
      if (got === 0) return false;
      // Overwritten: resume at the oldest record still there, plus a margin the producer
      // cannot overwrite before this reader gets to it (a tick is 20 ms; a copy is µs).
      const resume = this.ring.newestSeq() - this.ring.capacity + 2;
      this.overruns++;
      this.lost += resume - this.cursor;
      this.cursor = resume;
    }
  }

  /** Skips to the newest record and copies it into `out`; false when none was ever written. */
  latest(out: Float64Array): boolean {
    const newest = this.ring.newestSeq();
    if (newest === 0) return false;
    this.cursor = newest;
    return this.next(out);
  }

  /** Records written and not yet taken by this reader (may exceed the capacity: then some are lost). */
  get behind(): number {
    return this.ring.newestSeq() + 1 - this.cursor;
  }
}
