import { Worker } from 'node:worker_threads';
import { EventEmitter } from 'node:events';
import { ReflexError, errorMessage, type Logger, type Part } from '../core/index.js';
import { monoMs, type HistogramSummary, type RealtimeReport } from '../rt/index.js';
import type { ControlConfig } from './config.js';
import {
  Command, F, I, LOOP_STATE_NAMES, MODE_NAMES, allocShared, viewShared,
  type LoopBuffers, type LoopShared, type LoopStateName, type ModeName,
} from './shared.js';
import type { ControlWorkerData, WorkerMessage } from './worker.js';
import { REOPEN_BACKOFF_MS, type BusStateName } from './reopen.js';

/** Per bus: ok, lost (its port went away, or could not be reopened: why), or being reopened. */
export interface BusStatus {
  name: string;
  state: BusStateName;
  reason: string | null;
}

export interface ControlLoopOptions {
  /** No tick for this long means the loop is stuck. */
  stallMs: number;
  /** Bound on opening the buses and the first tick. */
  startTimeoutMs?: number;
}

export interface LoopStatus {
  state: LoopStateName;
  mode: ModeName;
  healthy: boolean;
  rateHz: number;
  targetHz: number;
  ticks: number;
  missedDeadlines: number;
  overruns: number;
  /** How late each tick woke after its deadline, µs. */
  latenessUs: { p50: number; p99: number; max: number };
  /** How long each tick took from waking to done (read, act, write), µs. */
  tickDurationUs: { last: number; mean: number; p50: number; p99: number; max: number };
  msSinceLastTick: number | null;
  starvedTicks: number;
  safety: { limitClamps: number; deltaClamps: number; nonFinite: number; softStarts: number; estops: number; faults: number };
  /** loadPct: the busiest CAN bus's share of its bitrate over the last second (0 without CAN). */
  bus: { failedReads: number; retries: number; loadPct: number };
  chunks: { received: number; rejected: number; staleActions: number; refillRequests: number };
  gcEvents: number;
  /** The last fault's reason while the loop is in fault. */
  fault: string | null;
  realtime: RealtimeReport | null;
  warnings: string[];
  buses: BusStatus[];
}

/**
 * The main thread's handle on the control worker: starts it, reads its metrics, and sends it
 * commands (e-stop, reset, policy start and stop, safe, stop). Emits 'fault' (reason) when the
 * loop faults, and 'died' (Error) if the worker exits on its own.
 */
export class ControlLoop extends EventEmitter implements Part {
  readonly name = 'control-loop';
  readonly buffers: LoopBuffers;
  readonly shared: LoopShared;
  private worker: Worker | null = null;
  private stopping = false;
  private rateSample = { ticks: 0, deadlineMs: 0, atMs: 0, hz: 0 };
  private commands: Promise<void> = Promise.resolve();
  private lastFault: string | null = null;
  private realtime: RealtimeReport | null = null;
  private warnings: string[] = [];
  private readonly buses: BusStatus[];
  /** Reset commands waiting for the worker's answer, in order (it answers each once). */
  private resets: { resolve: (r: { ok: boolean; reason: string | null }) => void; reject: (e: Error) => void }[] = [];

  constructor(
    private readonly cfg: ControlConfig,
    private readonly opts: ControlLoopOptions,
    private readonly log: Logger,
  ) {
    super();
    this.buffers = allocShared(cfg.joints.length);
    this.shared = viewShared(this.buffers);
    this.buses = cfg.buses.map((b) => ({ name: b.name, state: 'ok', reason: null }));
  }

  async start(signal: AbortSignal): Promise<void> {
    const data: ControlWorkerData = { buffers: this.buffers, config: this.cfg };
    // A small, fixed young generation: the loop allocates next to nothing, so scavenges are rare
    // and short; a large old generation is never needed in this thread.
    const worker = new Worker(new URL('./worker.js', import.meta.url), {
      workerData: data,
      name: 'reflex-control',
      resourceLimits: { maxYoungGenerationSizeMb: 16, maxOldGenerationSizeMb: 256 },
    });
    this.worker = worker;
    const ready = new Promise<void>((resolve, reject) => {
      worker.on('message', (m: WorkerMessage) => {
        switch (m.type) {
          case 'ready':
            this.realtime = m.realtime;
            this.warnings = m.warnings;
            for (const w of m.warnings) this.log.warn(w);
            if (m.realtime.notes.length > 0) this.log.warn({ notes: m.realtime.notes }, 'control thread runs without full real-time set-up');
            resolve();
            break;
          case 'error':
            reject(new ReflexError('START_FAILED', m.message));
            break;
          case 'warning':
            this.log.warn(m.message);
            this.warnings = [...this.warnings.slice(-19), m.message];
            break;
          case 'fault':
            this.lastFault = m.reason;
            this.log.error({ reason: m.reason }, 'control loop fault: holding; reset to clear');
            this.emit('fault', m.reason);
            break;
          case 'bus': {
            const b = this.buses.find((x) => x.name === m.name);
            if (b) Object.assign(b, { state: m.state, reason: m.reason });
            if (m.state === 'ok') this.log.info({ bus: m.name }, 'bus reopened');
            else this.log.warn({ bus: m.name, reason: m.reason }, m.state === 'lost' ? 'bus lost' : 'reopening bus');
            break;
          }
          case 'reset':
            this.resets.shift()?.resolve(m);
            break;
        }
      });
      worker.once('exit', (code) => reject(new ReflexError('START_FAILED', `control worker exited (code ${code}) before it was ready`)));
    });
    worker.on('error', (err) => this.log.fatal({ err: errorMessage(err) }, 'control worker failed'));
    worker.on('exit', (code) => {
      this.worker = null;
      for (const r of this.resets.splice(0)) r.reject(new ReflexError('COMMAND_FAILED', `control worker exited (code ${code}) before the reset was done`));
      if (!this.stopping) this.emit('died', new ReflexError('START_FAILED', `control worker exited (code ${code})`));
    });
    const timeoutMs = this.opts.startTimeoutMs ?? 15_000;
    await withTimeout(ready, timeoutMs, `control loop not ready within ${timeoutMs} ms`, signal);
    await this.firstTick(signal, 2000);
    this.rateSample = { ticks: this.ticks, deadlineMs: this.shared.floats[F.LAST_DEADLINE_MS]!, atMs: monoMs(), hz: 0 };
  }

  private get ticks(): number {
    return this.shared.floats[F.TICKS]!;
  }

  private async firstTick(signal: AbortSignal, timeoutMs: number): Promise<void> {
    const until = monoMs() + timeoutMs;
    while (this.ticks === 0) {
      if (this.worker === null) throw new ReflexError('START_FAILED', 'control worker exited before its first tick');
      if (signal.aborted) throw new ReflexError('START_FAILED', 'cancelled');
      if (monoMs() > until) throw new ReflexError('START_FAILED', `control loop did not tick within ${timeoutMs} ms`, { timeout: true });
      await sleep(5);
    }
  }

  /** True while the loop ticks: what keeps the systemd watchdog fed. */
  healthy(): boolean {
    if (this.worker === null) return false;
    const last = this.shared.floats[F.LAST_TICK_MS]!;
    return last > 0 && monoMs() - last < this.opts.stallMs;
  }

  get mode(): ModeName {
    return MODE_NAMES[Atomics.load(this.shared.ints, I.MODE)] ?? 'hold';
  }

  status(): LoopStatus {
    const f = this.shared.floats;
    const now = monoMs();
    const sample = this.rateSample;
    if (now - sample.atMs >= 500) {
      // Ticks per scheduled time: deadlines are exactly one period apart and a missed one is
      // skipped, so a loop that keeps its deadlines reads its target rate exactly, and each
      // missed period lowers it. Wall-clock sampling would jitter with when status is asked.
      const deadline = f[F.LAST_DEADLINE_MS]!;
      const ticks = this.ticks;
      const spanMs = deadline - sample.deadlineMs;
      sample.hz = sample.deadlineMs > 0 && spanMs > 0 ? ((ticks - sample.ticks) * 1000) / spanMs : sample.hz;
      if (!this.healthy()) sample.hz = 0;
      sample.ticks = ticks;
      sample.deadlineMs = deadline;
      sample.atMs = now;
    }
    const last = f[F.LAST_TICK_MS]!;
    const mode = this.mode;
    return {
      state: LOOP_STATE_NAMES[Atomics.load(this.shared.ints, I.STATE)] ?? 'starting',
      mode,
      healthy: this.healthy(),
      rateHz: round(sample.hz, 2),
      targetHz: this.cfg.rateHz,
      ticks: this.ticks,
      missedDeadlines: f[F.MISSED_DEADLINES]!,
      overruns: f[F.OVERRUNS]!,
      latenessUs: pick(this.shared.lateness.summary()),
      tickDurationUs: { last: round(f[F.LAST_TICK_DURATION_US]!, 1), ...this.shared.duration.summary() },
      msSinceLastTick: last > 0 ? round(now - last, 1) : null,
      starvedTicks: f[F.STARVED_TICKS]!,
      safety: {
        limitClamps: f[F.LIMIT_CLAMPS]!,
        deltaClamps: f[F.DELTA_CLAMPS]!,
        nonFinite: f[F.NON_FINITE]!,
        softStarts: f[F.SOFT_STARTS]!,
        estops: f[F.ESTOPS]!,
        faults: f[F.FAULTS]!,
      },
      bus: { failedReads: f[F.BUS_FAILED_READS]!, retries: f[F.BUS_RETRIES]!, loadPct: round(f[F.BUS_LOAD_PCT]!, 1) },
      chunks: { received: f[F.CHUNKS]!, rejected: f[F.CHUNKS_REJECTED]!, staleActions: f[F.STALE_ACTIONS]!, refillRequests: f[F.REFILL_REQUESTS]! },
      gcEvents: f[F.GC_EVENTS]!,
      fault: mode === 'fault' ? this.lastFault : null,
      realtime: this.realtime,
      warnings: this.warnings,
      buses: this.buses.map((b) => ({ ...b })),
    };
  }

  /** Per joint: temperature, voltage and hardware error bits from the last tick (telemetry). */
  motors(): { joint: string; temperatureC: number; voltageV: number; hardwareError: number }[] {
    const rec = new Float64Array(this.shared.motors.length);
    this.shared.motors.read(rec);
    return this.cfg.joints.map((j, i) => ({ joint: j.name, temperatureC: rec[3 * i]!, voltageV: rec[3 * i + 1]!, hardwareError: rec[3 * i + 2]! }));
  }

  /** E-stop: hold (or torque off) at the measured pose, latched until reset(). */
  estop(): Promise<void> {
    return this.command(Command.ESTOP, 0);
  }
  /**
   * Clears e-stop or a fault. A bus whose port went away is reopened first (with backoff);
   * when it cannot be, the reset fails with why, and the loop stays in fault.
   */
  async reset(): Promise<void> {
    const answer = new Promise<{ ok: boolean; reason: string | null }>((resolve, reject) => this.resets.push({ resolve, reject }));
    const waiter = this.resets[this.resets.length - 1]!;
    answer.catch(() => undefined); // awaited below; a worker gone before then must not be an unhandled rejection
    try {
      await this.command(Command.RESET, 0);
    } catch (err) {
      this.resets = this.resets.filter((r) => r !== waiter);
      throw err;
    }
    // Every try, its pauses, and a margin: the worker always answers, this only bounds a hang.
    const boundMs = REOPEN_BACKOFF_MS.reduce((a, b) => a + b, 0) + REOPEN_BACKOFF_MS.length * 5000;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ReflexError('TIMEOUT', `reset not done within ${boundMs} ms`, { timeout: true })), boundMs);
    });
    try {
      const r = await Promise.race([answer, late]);
      if (!r.ok) throw new ReflexError('BUS_FAULT', r.reason ?? 'reset failed');
    } finally {
      clearTimeout(timer);
    }
  }
  startPolicy(): Promise<void> {
    return this.command(Command.POLICY_START, 0);
  }
  stopPolicy(): Promise<void> {
    return this.command(Command.POLICY_STOP, 0);
  }
  /** Fault injection for tests: the loop blocks for `ms` as a hung driver would. */
  stall(ms: number): Promise<void> {
    return this.command(Command.STALL, ms, false);
  }

  async safe(): Promise<void> {
    if (this.worker === null) return;
    await this.command(Command.SAFE, 0);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const worker = this.worker;
    if (worker === null) return;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    await this.commands.catch(() => undefined);
    Atomics.store(this.shared.ints, I.COMMAND, Command.STOP);
    await exited;
  }

  /**
   * One command at a time, taken by the worker at its next tick (at most one period away).
   * Resolves once taken; `acked: false` returns as soon as it is posted (a stall blocks the ack).
   */
  private command(cmd: number, arg: number, acked = true): Promise<void> {
    const ints = this.shared.ints;
    const run = async () => {
      const limit = monoMs() + Math.max(1000, this.opts.stallMs * 4);
      while (Atomics.load(ints, I.COMMAND) !== Command.NONE) {
        if (this.worker === null || monoMs() > limit) throw new ReflexError('TIMEOUT', 'control loop is not taking commands', { timeout: true });
        await sleep(1);
      }
      Atomics.store(ints, I.COMMAND_ARG, arg);
      Atomics.store(ints, I.COMMAND, cmd);
      if (!acked) return;
      while (Atomics.load(ints, I.COMMAND) === cmd) {
        if (this.worker === null || monoMs() > limit) throw new ReflexError('TIMEOUT', 'control loop did not take the command', { timeout: true });
        await sleep(1);
      }
    };
    const p = this.commands.then(run, run);
    this.commands = p.catch(() => undefined);
    return p;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function withTimeout<T>(p: Promise<T>, ms: number, message: string, signal: AbortSignal): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ReflexError('START_FAILED', message, { timeout: true })), ms);
    signal.addEventListener('abort', () => reject(new ReflexError('START_FAILED', 'cancelled')), { once: true });
  });
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The loop in one line, as status, the live view, STATUS= and the minute log headline it:
 * rate, wake-up lateness and tick duration (p50/p99/max), missed deadlines and overruns.
 */
export function loopHeadline(s: LoopStatus): string {
  const t = (h: { p50: number; p99: number; max: number }) => `${fmtUs(h.p50)}/${fmtUs(h.p99)}/${fmtUs(h.max)}`;
  return `${s.rateHz.toFixed(1)}/${s.targetHz} Hz, wake ${t(s.latenessUs)} us, tick ${t(s.tickDurationUs)} us (p50/p99/max), missed ${s.missedDeadlines}, overruns ${s.overruns}`;
}

function fmtUs(v: number): string {
  return v >= 100 ? v.toFixed(0) : v.toFixed(1);
}

function pick(s: HistogramSummary): { p50: number; p99: number; max: number } {
  return { p50: s.p50, p99: s.p99, max: s.max };
}

function round(v: number, digits: number): number {
  const k = 10 ** digits;
  return Math.round(v * k) / k;
}
