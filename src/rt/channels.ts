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
 * A latest-value slot for camera frames: a seqlock over float32 pixels (a pre-processed
 * [3, H, W] tensor) plus the frame's capture time on the shared monotonic clock.
 */
export class FrameSlot {
  readonly length: number;
  private readonly seq: Int32Array;
  private readonly meta: Float64Array;
  private readonly data: Float32Array;

  static bytes(length: number): number {
    return 16 + 16 + length * 4;
  }

  constructor(
    readonly buffer: SharedArrayBuffer,
    length: number,
  ) {
    this.length = length;
    this.seq = new Int32Array(buffer, 0, 2);
    this.meta = new Float64Array(buffer, 16, 2);
    this.data = new Float32Array(buffer, 32, length);
  }

  static create(length: number): FrameSlot {
    return new FrameSlot(new SharedArrayBuffer(FrameSlot.bytes(length)), length);
  }

  get version(): number {
    return Atomics.load(this.seq, 0) & ~1;
  }

  /** Capture time of the newest frame (monoMs), 0 when none; a hint, read() gives the exact one. */
  get captureMs(): number {
    return this.meta[0]!;
  }

  /** read() found no frame: none was ever written. */
  static readonly NONE = -1;
  /** read() could not get a consistent copy within its bound: the writer kept rewriting it. */
  static readonly BUSY = -2;

  /** Publishes a frame: `fill` writes the pixels into the slot's own array (single writer). */
  write(captureMs: number, fill: (into: Float32Array) => void): void {
    const s = Atomics.load(this.seq, 0);
    Atomics.store(this.seq, 0, s + 1);
    fill(this.data);
    this.meta[0] = captureMs;
    this.meta[1] = (this.meta[1] ?? 0) + 1;
    Atomics.store(this.seq, 0, s + 2);
    // A reader that found the write in progress waits on the sequence word instead of spinning.
    Atomics.notify(this.seq, 0);
  }

  /**
   * Copies the newest frame into `out`; returns its capture time, FrameSlot.NONE when no frame
   * was ever written, or FrameSlot.BUSY when no consistent copy could be had within
   * `timeoutMs`. Filling a frame takes milliseconds (pre-processing writes into the slot), so
   * a read that meets a write waits for it to end rather than give up after a few spins.
   */
  read(out: Float32Array, timeoutMs = 100): number {
    let deadline = 0;
    for (;;) {
      const s1 = Atomics.load(this.seq, 0);
      if (s1 === 0) return FrameSlot.NONE;
      if ((s1 & 1) === 0) {
        out.set(this.data);
        const captured = this.meta[0]!;
        if (Atomics.load(this.seq, 0) === s1) return captured;
      }
      const now = performance.now();
      if (deadline === 0) deadline = now + timeoutMs;
      else if (now >= deadline) return FrameSlot.BUSY;
      // Wait for the write in progress (odd) or the next one (it just changed) to end.
      const cur = Atomics.load(this.seq, 0);
      if (cur & 1) Atomics.wait(this.seq, 0, cur, Math.min(5, deadline - now));
    }
  }
}
