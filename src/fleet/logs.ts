// Warnings and errors shipped to the fleet through the outbox: the first of each kind (module
// and message) in a window goes out at once; repeats within the window are counted and the
// count rides on the next one shipped; a cap per window keeps a log storm from flooding the
// outbox (what the cap held back is counted too).

export interface ShippedLog {
  level: string;
  mod: string | null;
  msg: string;
  fields: Record<string, unknown>;
  /** Occurrences of this kind held back since the last one shipped. */
  repeated: number;
  /** Records of any kind held back by the cap in the last window. */
  capped: number;
}

const LEVELS: Record<number, string> = { 40: 'warn', 50: 'error', 60: 'fatal' };

export class LogShipper {
  private window = 0;
  private shipped = 0;
  private capped = 0;
  private readonly seen = new Map<string, { window: number; repeated: number }>();

  constructor(
    private readonly ship: (log: ShippedLog) => void,
    private readonly windowMs = 60_000,
    private readonly maxPerWindow = 60,
    private readonly now: () => number = Date.now,
  ) {}

  take(record: Record<string, unknown>): void {
    const w = Math.floor(this.now() / this.windowMs);
    if (w !== this.window) {
      this.window = w;
      this.shipped = 0;
    }
    const { level, time: _t, mod, msg, ...fields } = record;
    const key = `${String(mod)}\u0000${String(msg)}`;
    const s = this.seen.get(key);
    if (s && s.window === w) {
      s.repeated++;
      return;
    }
    if (this.shipped >= this.maxPerWindow) {
      this.capped++;
      return;
    }
    this.shipped++;
    this.ship({
      level: LEVELS[Number(level)] ?? String(level),
      mod: typeof mod === 'string' ? mod : null,
      msg: String(msg),
      fields,
      repeated: s?.repeated ?? 0,
      capped: this.capped,
    });
    this.capped = 0;
    this.seen.set(key, { window: w, repeated: 0 });
    if (this.seen.size > 1000) this.seen.clear();
  }
}
