// The action-chunk executor: turns the policy's chunks (H actions computed from the
// observation of one tick) into one action per tick, without ever waiting for the policy.
// Actions live in a ring indexed by absolute tick, so aligning a late chunk is arithmetic.

/**
 * crossfade and ensemble blend a new chunk into the running one; rtc (real-time chunking) does
 * not blend: the policy was conditioned on the running chunk's committed prefix, so its chunk
 * is spliced in after that prefix.
 */
export type BlendMode = 'crossfade' | 'ensemble' | 'rtc';

/** Measured delays the estimate is taken over (the most of them). */
const DELAY_WINDOW = 8;

export interface ExecutorOptions {
  dof: number;
  blend: BlendMode;
  /** Crossfade: ticks over which a new chunk fades in over the running one. */
  overlapTicks: number;
  /** Ensemble (ACT): weight of the k-th prediction for a tick is exp(-decay * k), oldest first. */
  ensembleDecay: number;
  /** Ask for a new chunk when this many actions or fewer are left. */
  refillTicks: number;
  /** A request not answered within this many ticks may be asked again. */
  requestTimeoutTicks: number;
  /** Ticks the ring holds; at least the longest chunk plus the refill margin. */
  capacity?: number;
}

export interface ExecutorStats {
  chunks: number;
  rejectedChunks: number;
  /** Actions dropped because they were for ticks already past when their chunk arrived. */
  staleActions: number;
  starvedTicks: number;
  refillRequests: number;
}

export class ChunkExecutor {
  readonly stats: ExecutorStats = { chunks: 0, rejectedChunks: 0, staleActions: 0, starvedTicks: 0, refillRequests: 0 };
  /** Consecutive ticks without an action (reset by the next action). */
  consecutiveStarved = 0;
  private readonly cap: number;
  private readonly dof: number;
  private readonly value: Float64Array;
  private readonly weight: Float64Array;
  private readonly count: Uint16Array;
  /** First tick with no action queued. */
  private end = -1;
  /** Ticks below this have been consumed (and their slots cleared). */
  private cleared = -1;
  private requestedAt = -1;
  /** The policy (generation) whose chunks are queued. */
  private generation = -1;
  /** Recent delays (ticks from a chunk's observation to its arrival), a ring. */
  private readonly delays = new Int32Array(DELAY_WINDOW);
  private delayCount = 0;
  /** Chunks taken since a reset or a swap: the first is a warm-up and says nothing of the delay. */
  private sinceStart = 0;
  /** rtc: the tick the last chunk was spliced in from. */
  private splicedFrom = -1;
  /**
   * The observation tick of the chunk whose actions next() gives (-1: none), and of the newest
   * chunk with the tick its actions begin at: a chunk plays from there on (a swapped-in one only
   * once the running chunk has ended).
   */
  playingObsTick = -1;
  private newestObsTick = -1;
  private newestFrom = -1;

  constructor(private readonly opts: ExecutorOptions) {
    this.cap = opts.capacity ?? 512;
    this.dof = opts.dof;
    this.value = new Float64Array(this.cap * this.dof);
    this.weight = new Float64Array(this.cap);
    this.count = new Uint16Array(this.cap);
  }

  /** The policy generation whose chunks are queued (-1: none). */
  get queuedGeneration(): number {
    return this.generation;
  }

  /**
   * The delay, in ticks, a chunk requested now is expected to arrive after: the most of the
   * recent delays counted in actions actually consumed (tick of arrival minus tick of the
   * observation), never a latency guess. The first chunk after a start or a swap is left out,
   * so a slow warm-up inference does not inflate it. 0 until a delay is known.
   */
  get delayTicks(): number {
    let d = 0;
    const n = Math.min(this.delayCount, DELAY_WINDOW);
    for (let i = 0; i < n; i++) if (this.delays[i]! > d) d = this.delays[i]!;
    return d;
  }

  /**
   * The committed prefix for an observation of tick `now`: the queued actions for ticks now ..
   * now + delayTicks - 1 (they execute while the policy computes), into `out` (action i, joint
   * j at out[i * dof + j]). Returns how many: fewer when the running chunk ends sooner.
   */
  prefix(now: number, out: Float64Array): number {
    const d = Math.min(this.delayTicks, this.remaining(now), Math.floor(out.length / this.dof));
    const ensemble = this.opts.blend === 'ensemble';
    for (let i = 0; i < d; i++) {
      const slot = (now + i) % this.cap;
      const w = this.weight[slot]!;
      if (w <= 0) return i;
      const v = slot * this.dof;
      for (let j = 0; j < this.dof; j++) out[i * this.dof + j] = ensemble ? this.value[v + j]! / w : this.value[v + j]!;
    }
    return d;
  }

  /** Actions queued from tick `now` on. */
  remaining(now: number): number {
    return this.end > now ? this.end - now : 0;
  }

  /** True when the policy should be asked for a chunk now (and marks it asked). */
  wantsRefill(now: number): boolean {
    if (this.remaining(now) > this.opts.refillTicks) return false;
    // rtc: a request is not asked again while its answer can still come (the delay, twice over):
    // a second one would carry a prefix that the first answer is about to replace.
    const timeout = this.opts.blend === 'rtc' ? Math.max(this.opts.requestTimeoutTicks, 2 * this.delayTicks + 1) : this.opts.requestTimeoutTicks;
    if (this.requestedAt >= 0 && now - this.requestedAt < timeout) return false;
    this.requestedAt = now;
    this.stats.refillRequests++;
    return true;
  }

  /**
   * Takes a chunk of `horizon` actions computed from the observation of tick `obsTick`: action i
   * is for tick obsTick + i. Actions for ticks before `now` are dropped (latency alignment).
   * Refused (false) when it holds a NaN or Inf, does not fit, or is entirely in the past.
   * `delay`: the prefix length the policy was conditioned on (rtc), its first actions reproduce
   * the running chunk's there, so the running chunk is kept up to obsTick + delay.
   */
  ingest(now: number, obsTick: number, actions: Float64Array, horizon: number, generation = 0, delay = 0): boolean {
    const d = this.dof;
    if (horizon <= 0 || horizon > this.cap - 1 || actions.length < horizon * d || obsTick > now) {
      this.stats.rejectedChunks++;
      return false;
    }
    for (let i = 0; i < horizon * d; i++) {
      if (!Number.isFinite(actions[i]!)) {
        this.stats.rejectedChunks++;
        return false;
      }
    }
    let from = now > obsTick ? now : obsTick;
    const to = obsTick + horizon;
    // A chunk from another policy (a hot swap) is never blended into the running one: it
    // starts where the running chunk ends, so no tick mixes two policies.
    const swap = generation !== this.generation && this.generation >= 0;
    if (swap && this.end > from) from = this.end;
    const rtc = this.opts.blend === 'rtc' && !swap;
    // Observed before the last splice: its prefix is of a plan that no longer runs.
    if (rtc && obsTick < this.splicedFrom) {
      this.stats.rejectedChunks++;
      return false;
    }
    // The splice point: after the committed prefix, where the running chunk still has it.
    if (rtc && delay > 0) {
      const afterPrefix = Math.min(obsTick + delay, this.end);
      if (afterPrefix > from) from = afterPrefix;
    }
    if (from >= to) {
      this.stats.rejectedChunks++;
      this.stats.staleActions += horizon;
      return false;
    }
    this.clearBefore(now);
    this.stats.staleActions += Math.max(0, (now > obsTick ? now : obsTick) - obsTick);
    if (swap || this.generation < 0) {
      this.sinceStart = 0;
      this.splicedFrom = -1;
    }
    if (this.sinceStart > 0) {
      this.delays[this.delayCount % DELAY_WINDOW] = now - obsTick;
      this.delayCount++;
    }
    this.sinceStart++;
    this.generation = generation;
    const crossfade = this.opts.blend === 'crossfade' && !swap;
    const overlap = this.opts.overlapTicks;
    for (let t = from; t < to; t++) {
      const slot = t % this.cap;
      const a = (t - obsTick) * d;
      const v = slot * d;
      if (crossfade) {
        const old = this.weight[slot]! > 0;
        const k = t - from;
        const w = old && k < overlap ? (k + 1) / (overlap + 1) : 1;
        for (let j = 0; j < d; j++) this.value[v + j] = old ? (1 - w) * this.value[v + j]! + w * actions[a + j]! : actions[a + j]!;
        this.weight[slot] = 1;
      } else if (swap || rtc) {
        for (let j = 0; j < d; j++) this.value[v + j] = actions[a + j]!;
        this.weight[slot] = 1;
        this.count[slot] = 1;
      } else {
        const w = Math.exp(-this.opts.ensembleDecay * this.count[slot]!);
        for (let j = 0; j < d; j++) this.value[v + j] = (this.weight[slot]! > 0 ? this.value[v + j]! : 0) + w * actions[a + j]!;
        this.weight[slot] = this.weight[slot]! + w;
        this.count[slot] = this.count[slot]! + 1;
      }
    }
    if (rtc) {
      this.splicedFrom = from;
      // The new chunk replaces the running one's tail: nothing of the old plan plays after it.
      for (let t = to; t < this.end; t++) {
        this.weight[t % this.cap] = 0;
        this.count[t % this.cap] = 0;
      }
      this.end = to;
    } else if (to > this.end) this.end = to;
    this.requestedAt = -1;
    this.newestObsTick = obsTick;
    this.newestFrom = from;
    this.stats.chunks++;
    return true;
  }

  /** The action for tick `now` into `out`; false (and counted) when there is none: starved. */
  next(now: number, out: Float64Array): boolean {
    this.clearBefore(now);
    const slot = now % this.cap;
    const w = this.weight[slot]!;
    if (now >= this.end || w <= 0) {
      this.stats.starvedTicks++;
      this.consecutiveStarved++;
      return false;
    }
    const v = slot * this.dof;
    const ensemble = this.opts.blend === 'ensemble';
    for (let j = 0; j < this.dof; j++) out[j] = ensemble ? this.value[v + j]! / w : this.value[v + j]!;
    this.consecutiveStarved = 0;
    if (this.newestFrom >= 0 && now >= this.newestFrom) {
      this.playingObsTick = this.newestObsTick;
      this.newestFrom = -1;
    }
    return true;
  }

  /** Drops every queued action (policy stopped, swapped, or a fault). */
  reset(): void {
    this.generation = -1;
    this.weight.fill(0);
    this.count.fill(0);
    this.end = -1;
    this.cleared = -1;
    this.requestedAt = -1;
    this.consecutiveStarved = 0;
    this.delayCount = 0;
    this.sinceStart = 0;
    this.splicedFrom = -1;
    this.playingObsTick = -1;
    this.newestObsTick = -1;
    this.newestFrom = -1;
  }

  /** Frees the slots of ticks before `now`, so the ring can hold later ticks there. */
  private clearBefore(now: number): void {
    if (this.cleared < 0) this.cleared = now;
    const from = Math.max(this.cleared, now - this.cap);
    for (let t = from; t < now; t++) {
      const slot = t % this.cap;
      this.weight[slot] = 0;
      this.count[slot] = 0;
    }
    if (now > this.cleared) this.cleared = now;
  }
}
