// Reopening buses whose port went away (a USB cable pulled and plugged back in), when a reset
// asks for it. A lost bus used to stay lost: reset answered "hold" and the loop faulted again
// at once. Opening a port is asynchronous and the tick never waits on I/O, so the reopen runs on
// the control worker's event loop between ticks (the worker sleeps on that loop, not natively,
// while one is in flight) and the loop keeps ticking the other buses, holding, meanwhile.
import { errorMessage } from '../core/index.js';
import type { MotorBus } from '../hardware/index.js';

/** Pause before each try: the first at once, then doubling (a USB adapter takes a moment to come back). */
export const REOPEN_BACKOFF_MS: readonly number[] = [0, 200, 400, 800, 1600];

export type BusStateName = 'ok' | 'lost' | 'reopening';

export interface ReopenResult {
  ok: boolean;
  /** Why not, naming the bus. */
  reason: string | null;
}

export class BusReopener {
  private running = false;
  private result: ReopenResult | null = null;
  private asked = 0;
  private stopped = false;

  constructor(
    private readonly buses: readonly MotorBus[],
    /** A bus changed state: rare, for status and the log. */
    private readonly report: (bus: string, state: BusStateName, reason: string | null) => void,
    private readonly backoffMs: readonly number[] = REOPEN_BACKOFF_MS,
  ) {}

  /** True from a request until its outcome is taken: the worker then sleeps on its event loop. */
  get busy(): boolean {
    return this.running || this.result !== null;
  }

  anyLost(): boolean {
    for (const b of this.buses) if (b.lost !== null) return true;
    return false;
  }

  /** A reset asks: reopens every lost bus (one run, however many resets ask while it runs). */
  request(): void {
    this.asked++;
    if (this.running || this.result !== null) return;
    this.running = true;
    void this.reopenAll().then((r) => {
      this.running = false;
      this.result = r;
    });
  }

  /** The outcome and how many resets asked for it, once (allocation-free null until then). */
  take(): { result: ReopenResult; resets: number } | null {
    const result = this.result;
    if (result === null) return null;
    const resets = this.asked;
    this.result = null;
    this.asked = 0;
    return { result, resets };
  }

  /** Shutdown: no further tries. */
  stop(): void {
    this.stopped = true;
  }

  private async reopenAll(): Promise<ReopenResult> {
    for (const bus of this.buses) {
      if (bus.lost === null) continue;
      this.report(bus.name, 'reopening', bus.lost);
      let why = bus.lost;
      let tries = 0;
      for (const pause of this.backoffMs) {
        if (this.stopped) return { ok: false, reason: 'stopping' };
        if (pause > 0) await new Promise((r) => setTimeout(r, pause));
        tries++;
        try {
          await bus.reopen();
          break;
        } catch (err) {
          why = errorMessage(err);
        }
      }
      if (bus.lost !== null) {
        const reason = `bus ${bus.name} could not be reopened (${tries} tries): ${why}`;
        this.report(bus.name, 'lost', reason);
        return { ok: false, reason };
      }
      this.report(bus.name, 'ok', null);
    }
    return { ok: true, reason: null };
  }
}
