// The safety filter, applied to every command on every tick, in joint space. It never lets a
// command through unexamined and never intervenes silently: every change is counted.

export interface JointLimits {
  min: number;
  max: number;
  /** rad/s: the per-tick delta clamp is maxVelocity * period. */
  maxVelocity: number;
}

export interface SafetyStats {
  /** Commands outside the position limits, clamped. */
  limitClamps: number;
  /** Commands that moved faster than allowed, clamped. */
  deltaClamps: number;
  /** NaN or Inf commands, replaced by the previous command. */
  nonFinite: number;
  softStarts: number;
}

/** The same counts, per joint (index = joint), so a technician can tell which joint. */
export interface SafetyByJoint {
  limitClamps: Float64Array;
  deltaClamps: Float64Array;
  nonFinite: Float64Array;
}

export class SafetyFilter {
  readonly stats: SafetyStats = { limitClamps: 0, deltaClamps: 0, nonFinite: 0, softStarts: 0 };
  readonly byJoint: SafetyByJoint;
  private readonly from: Float64Array;
  private rampTick = 0;
  private rampTicks = 0;

  constructor(
    private readonly limits: readonly JointLimits[],
    private readonly periodS: number,
    private readonly softStartTicks: number,
  ) {
    this.from = new Float64Array(limits.length);
    this.byJoint = { limitClamps: new Float64Array(limits.length), deltaClamps: new Float64Array(limits.length), nonFinite: new Float64Array(limits.length) };
  }

  /** Starts a soft start: commands ramp from `pose` (the measured pose) to the policy's. */
  softStart(pose: Float64Array): void {
    this.from.set(pose);
    this.rampTick = 0;
    this.rampTicks = this.softStartTicks;
    this.stats.softStarts++;
  }

  get rampingIn(): boolean {
    return this.rampTick < this.rampTicks;
  }

  /**
   * Writes the safe command for `desired` into `out`, given the previous command `prev`
   * (which must itself be safe: the measured pose on the first tick).
   */
  apply(desired: Float64Array, prev: Float64Array, out: Float64Array): void {
    const n = this.limits.length;
    const ramp = this.rampTick < this.rampTicks;
    const alpha = ramp ? (this.rampTick + 1) / this.rampTicks : 1;
    if (ramp) this.rampTick++;
    const by = this.byJoint;
    for (let i = 0; i < n; i++) {
      const lim = this.limits[i]!;
      let q = desired[i]!;
      if (!Number.isFinite(q)) {
        this.stats.nonFinite++;
        by.nonFinite[i]! += 1;
        q = prev[i]!;
      }
      if (ramp) q = this.from[i]! + alpha * (q - this.from[i]!);
      if (q < lim.min) {
        q = lim.min;
        this.stats.limitClamps++;
        by.limitClamps[i]! += 1;
      } else if (q > lim.max) {
        q = lim.max;
        this.stats.limitClamps++;
        by.limitClamps[i]! += 1;
      }
      const step = lim.maxVelocity * this.periodS;
      const p = prev[i]!;
      if (q - p > step) {
        q = p + step;
        this.stats.deltaClamps++;
        by.deltaClamps[i]! += 1;
      } else if (p - q > step) {
        q = p - step;
        this.stats.deltaClamps++;
        by.deltaClamps[i]! += 1;
      }
      out[i] = q;
    }
  }
}
