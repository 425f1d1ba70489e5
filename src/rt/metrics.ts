// Histograms in shared memory, one implementation for every thread's timings (tick lateness and
// duration, inference latency, frame age). One writer per histogram, any number of readers; the
// writer does plain Float64 stores (no allocation), so the control tick may record every tick.
//
// Buckets are logarithmic, 8 per octave (about 9 % wide), from 1 to ~2^24 units (µs: 16 s);
// the last bucket is open-ended. A quantile is its bucket's upper edge, clipped to the largest
// value seen, so a reported p99 is never above the reported max.

export const HIST_BUCKETS = 192;

/** Float64 slots of one histogram: [count, sum, max, buckets...]. */
const COUNT = 0;
const SUM = 1;
const MAX = 2;
const FIRST_BUCKET = 3;

export function bucketOf(v: number): number {
  if (!(v > 0)) return 0;
  const b = Math.floor(8 * Math.log2(1 + v));
  return b < HIST_BUCKETS ? b : HIST_BUCKETS - 1;
}

/** Upper edge of bucket `b`. */
export function bucketUpper(b: number): number {
  return 2 ** ((b + 1) / 8) - 1;
}

export interface HistogramSummary {
  count: number;
  mean: number;
  p50: number;
  p99: number;
  max: number;
}

/** A histogram over `Histogram.LENGTH` Float64 slots of a (shared) array, from `offset`. */
export class Histogram {
  static readonly LENGTH = FIRST_BUCKET + HIST_BUCKETS;
  private readonly a: Float64Array;

  constructor(array: Float64Array, offset = 0) {
    if (offset < 0 || offset + Histogram.LENGTH > array.length) throw new RangeError('histogram does not fit in the array');
    this.a = array.subarray(offset, offset + Histogram.LENGTH);
  }

  static create(): Histogram {
    return new Histogram(new Float64Array(new SharedArrayBuffer(Histogram.LENGTH * 8)));
  }

  /** Writer: one sample. Allocation-free. */
  record(v: number): void {
    const a = this.a;
    a[COUNT]! += 1;
    a[SUM]! += v;
    if (v > a[MAX]!) a[MAX] = v;
    a[FIRST_BUCKET + bucketOf(v)]! += 1;
  }

  get count(): number {
    return this.a[COUNT]!;
  }

  get max(): number {
    return this.a[MAX]!;
  }

  /** A copy of the slots, to take differences over a window (see `since`). */
  snapshot(): Float64Array {
    return Float64Array.from(this.a);
  }

  /** The q-quantile (0..1), never above the observed max; 0 when empty. */
  quantile(q: number): number {
    return quantileOf(this.a, q);
  }

  summary(digits = 1): HistogramSummary {
    return summaryOf(this.a, digits);
  }

  /**
   * Counts in coarse buckets, for a person to read: counts[i] for values up to edges[i]
   * (ascending), the last for values above the last edge. A fine bucket that straddles an edge
   * counts below it, so an edge holds to within a fine bucket (9 %).
   */
  coarse(edges: readonly number[]): number[] {
    const out = new Array<number>(edges.length + 1).fill(0);
    let i = 0;
    for (let b = 0; b < HIST_BUCKETS; b++) {
      const lower = b === 0 ? 0 : bucketUpper(b - 1);
      while (i < edges.length && lower >= edges[i]!) i++;
      out[i]! += this.a[FIRST_BUCKET + b]!;
    }
    return out;
  }

  /**
   * Summary of what was recorded after `before` (a snapshot). Its max is the newest bucket's
   * upper edge clipped to the overall max, since the exact max of a window is not kept.
   */
  since(before: Float64Array, digits = 1): HistogramSummary {
    const window = new Histogram(new Float64Array(Histogram.LENGTH));
    window.addSince(this, before);
    return window.summary(digits);
  }

  /**
   * Adds what `from` recorded after `before` (its snapshot) to this one: windows of one kind
   * pooled (a benchmark's alternating phases). The window's max is taken as in `since`.
   */
  addSince(from: Histogram, before: Float64Array): void {
    const a = this.a;
    let top = -1;
    for (let i = FIRST_BUCKET; i < Histogram.LENGTH; i++) {
      const d = from.a[i]! - before[i]!;
      a[i]! += d;
      if (d > 0) top = i - FIRST_BUCKET;
    }
    a[COUNT]! += from.a[COUNT]! - before[COUNT]!;
    a[SUM]! += from.a[SUM]! - before[SUM]!;
    const max = top < 0 ? 0 : Math.min(bucketUpper(top), from.a[MAX]!);
    if (max > a[MAX]!) a[MAX] = max;
  }
}

function quantileOf(a: Float64Array, q: number): number {
  const total = a[COUNT]!;
  if (total <= 0) return 0;
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (let b = 0; b < HIST_BUCKETS; b++) {
    seen += a[FIRST_BUCKET + b]!;
    if (seen >= rank) return Math.min(bucketUpper(b), a[MAX]!);
  }
  return a[MAX]!;
}

function summaryOf(a: Float64Array, digits: number): HistogramSummary {
  const k = 10 ** digits;
  const r = (v: number) => Math.round(v * k) / k;
  const n = a[COUNT]!;
  return { count: n, mean: r(n > 0 ? a[SUM]! / n : 0), p50: r(quantileOf(a, 0.5)), p99: r(quantileOf(a, 0.99)), max: r(a[MAX]!) };
}

// Named counters. A table is defined once, by name, and laid out as Float64 slots in shared
// memory: counters first, then histograms. The index object is computed once at definition, so
// `c.add('ticks')` in the hot path is a property load and a store: no allocation, no string
// formatting, and no slot number written by hand anywhere else.

/** Name -> slot, computed once. */
export type SlotIndex<N extends string> = { readonly [K in N]: number };

function indexOf<N extends string>(names: readonly N[]): SlotIndex<N> {
  const index = {} as Record<N, number>;
  names.forEach((n, i) => {
    if (n in index) throw new Error(`metric ${n} is defined twice`);
    index[n] = i;
  });
  return Object.freeze(index);
}

/** One table's Float64 counters, by name (exact up to 2^53: forever at any tick rate). */
export class Counters<N extends string> {
  constructor(
    private readonly index: SlotIndex<N>,
    /** The counters' slots, for copying them out whole. */
    readonly values: Float64Array,
  ) {}

  get(name: N): number {
    return this.values[this.index[name]]!;
  }

  set(name: N, v: number): void {
    this.values[this.index[name]] = v;
  }

  add(name: N, v = 1): void {
    this.values[this.index[name]]! += v;
  }

  /** Keeps the larger of the current value and `v` (a running maximum). */
  max(name: N, v: number): void {
    const i = this.index[name];
    if (v > this.values[i]!) this.values[i] = v;
  }
}

/** A table's counters and histograms, viewed over one shared buffer. */
export interface Metrics<N extends string, H extends string> {
  readonly buffer: SharedArrayBuffer;
  readonly counters: Counters<N>;
  readonly hist: { readonly [K in H]: Histogram };
}

export interface MetricsDefinition<N extends string, H extends string> {
  readonly counters: SlotIndex<N>;
  readonly histograms: readonly H[];
  /** Float64 slots one table takes. */
  readonly length: number;
  /** A buffer for `tables` tables of this definition (e.g. one per camera). */
  alloc(tables?: number): SharedArrayBuffer;
  /** Table `table` of a buffer from alloc(), in any thread. */
  view(buffer: SharedArrayBuffer, table?: number): Metrics<N, H>;
  /** A fresh buffer with one table, viewed. */
  create(): Metrics<N, H>;
}

/**
 * Defines a table of named counters and histograms, e.g.
 * `defineMetrics(['ticks', 'overruns'] as const, ['lateness'] as const)`.
 */
export function defineMetrics<N extends string, H extends string = never>(counters: readonly N[], histograms: readonly H[] = []): MetricsDefinition<N, H> {
  const index = indexOf(counters);
  indexOf(histograms);
  const length = counters.length + histograms.length * Histogram.LENGTH;
  const def: MetricsDefinition<N, H> = {
    counters: index,
    histograms,
    length,
    alloc: (tables = 1) => new SharedArrayBuffer(Math.max(1, tables) * length * 8),
    view(buffer, table = 0) {
      const all = new Float64Array(buffer);
      const base = table * length;
      if (base < 0 || base + length > all.length) throw new RangeError(`metrics table ${table} is not in the buffer`);
      const hist = {} as Record<H, Histogram>;
      histograms.forEach((h, i) => (hist[h] = new Histogram(all, base + counters.length + i * Histogram.LENGTH)));
      return { buffer, counters: new Counters(index, all.subarray(base, base + counters.length)), hist };
    },
    create: () => def.view(def.alloc()),
  };
  return def;
}

/**
 * Named Int32 words for what must be atomic across threads (commands, modes, locks): the
 * same one-place naming as the counters, over Atomics.
 */
export class Words<N extends string> {
  readonly array: Int32Array;
  readonly index: SlotIndex<N>;

  constructor(names: readonly N[], buffer?: SharedArrayBuffer) {
    this.index = indexOf(names);
    this.array = new Int32Array(buffer ?? new SharedArrayBuffer(Math.max(1, names.length) * 4));
    if (this.array.length < names.length) throw new RangeError('the buffer is smaller than the words');
  }

  get buffer(): SharedArrayBuffer {
    return this.array.buffer as SharedArrayBuffer;
  }

  load(name: N): number {
    return Atomics.load(this.array, this.index[name]);
  }

  store(name: N, v: number): void {
    Atomics.store(this.array, this.index[name], v);
  }

  add(name: N, v = 1): number {
    return Atomics.add(this.array, this.index[name], v);
  }

  compareExchange(name: N, expected: number, replacement: number): number {
    return Atomics.compareExchange(this.array, this.index[name], expected, replacement);
  }

  notify(name: N): void {
    Atomics.notify(this.array, this.index[name]);
  }

  /** Waits (blocking this thread) while the word still holds `value`, at most `ms`. */
  wait(name: N, value: number, ms: number): void {
    Atomics.wait(this.array, this.index[name], value, ms);
  }
}
