import { Worker } from 'node:worker_threads';
import { EventEmitter } from 'node:events';
import { ReflexError, errorMessage, type Logger, type Part } from '../core/index.js';
import { monoMs } from '../rt/index.js';
import {
  Command, F, I, LOOP_STATE_NAMES, allocShared, quantileUs, viewShared,
  type LoopShared, type LoopStateName,
} from './shared.js';
import type { ControlWorkerData } from './worker.js';

export interface ControlLoopOptions {
  rateHz: number;
  spinUs: number;
  /** No tick for this long means the loop is stuck. */
  stallMs: number;
  /** Bound on the first tick after start. */
  startTimeoutMs?: number;
}

export interface LoopStatus {
  state: LoopStateName;
  healthy: boolean;
  rateHz: number;
  targetHz: number;
  ticks: number;
  missedDeadlines: number;
  overruns: number;
  latenessUs: { p50: number; p99: number; max: number };
  tickDurationUs: { last: number; max: number };
  msSinceLastTick: number | null;
}

/**
 * The main thread's handle on the control worker: starts it, reads its metrics, and asks it to
 * make the motors safe and stop. Emits 'died' (with an Error) if the worker exits on its own.
 */
export class ControlLoop extends EventEmitter implements Part {
  readonly name = 'control-loop';
  private worker: Worker | null = null;
  private readonly buffers = allocShared();
  private readonly shared: LoopShared = viewShared(this.buffers);
  private stopping = false;
  private rateSample = { ticks: 0, atMs: 0, hz: 0 };

  constructor(
    private readonly opts: ControlLoopOptions,
    private readonly log: Logger,
  ) {
    super();
  }

  async start(signal: AbortSignal): Promise<void> {
    const data: ControlWorkerData = { buffers: this.buffers, rateHz: this.opts.rateHz, spinUs: this.opts.spinUs };
    const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: data, name: 'reflex-control' });
    this.worker = worker;
    worker.on('error', (err) => {
      this.log.fatal({ err: errorMessage(err) }, 'control worker failed');
    });
    worker.on('exit', (code) => {
      this.worker = null;
      if (!this.stopping) this.emit('died', new ReflexError('START_FAILED', `control worker exited (code ${code})`));
    });
    await this.firstTick(signal, this.opts.startTimeoutMs ?? 5000);
    this.rateSample = { ticks: this.ticks, atMs: monoMs(), hz: 0 };
  }

  private get ticks(): number {
    return this.shared.floats[F.TICKS]!;
  }

  private async firstTick(signal: AbortSignal, timeoutMs: number): Promise<void> {
    const until = monoMs() + timeoutMs;
    while (this.ticks === 0) {
      if (this.worker === null) throw new Error('control worker exited before its first tick');
      if (signal.aborted) throw new Error('cancelled');
      if (monoMs() > until) throw new ReflexError('START_FAILED', `control loop did not tick within ${timeoutMs} ms`, { timeout: true });
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** True while the loop ticks: what keeps the systemd watchdog fed. */
  healthy(): boolean {
    if (this.worker === null) return false;
    const last = this.shared.floats[F.LAST_TICK_MS]!;
    return last > 0 && monoMs() - last < this.opts.stallMs;
  }

  status(): LoopStatus {
    const f = this.shared.floats;
    const now = monoMs();
    const sample = this.rateSample;
    if (now - sample.atMs >= 500) {
      sample.hz = ((this.ticks - sample.ticks) * 1000) / (now - sample.atMs);
      sample.ticks = this.ticks;
      sample.atMs = now;
    }
    const last = f[F.LAST_TICK_MS]!;
    return {
      state: LOOP_STATE_NAMES[Atomics.load(this.shared.ints, I.STATE)] ?? 'starting',
      healthy: this.healthy(),
      rateHz: round(sample.hz, 2),
      targetHz: this.opts.rateHz,
      ticks: this.ticks,
      missedDeadlines: f[F.MISSED_DEADLINES]!,
      overruns: f[F.OVERRUNS]!,
      latenessUs: {
        p50: round(quantileUs(this.shared.hist, 0.5), 1),
        p99: round(quantileUs(this.shared.hist, 0.99), 1),
        max: round(f[F.LATENESS_MAX_US]!, 1),
      },
      tickDurationUs: { last: round(f[F.LAST_TICK_DURATION_US]!, 1), max: round(f[F.TICK_DURATION_MAX_US]!, 1) },
      msSinceLastTick: last > 0 ? round(now - last, 1) : null,
    };
  }

  /** Fault injection for tests: the loop blocks for `ms` as a hung driver would. */
  stall(ms: number): void {
    this.command(Command.STALL, ms);
  }

  async safe(): Promise<void> {
    if (this.worker === null) return;
    this.command(Command.SAFE, 0);
    await this.until(() => Atomics.load(this.shared.ints, I.COMMAND) === Command.NONE || this.worker === null);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const worker = this.worker;
    if (worker === null) return;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    this.command(Command.STOP, 0);
    await exited;
  }

  private command(cmd: number, arg: number): void {
    Atomics.store(this.shared.ints, I.COMMAND_ARG, arg);
    // Taken by the worker at its next tick, at most one period away.
    Atomics.store(this.shared.ints, I.COMMAND, cmd);
  }

  private async until(done: () => boolean): Promise<void> {
    while (!done()) await new Promise((r) => setTimeout(r, 2));
  }
}

function round(v: number, digits: number): number {
  const k = 10 ** digits;
  return Math.round(v * k) / k;
}
