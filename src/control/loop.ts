import { EventEmitter } from 'node:events';
import { ReflexError, type Logger, type Part } from '../core/index.js';
import { MotorHealth, WorkerHost, interventionNames, keepThreadsOffCpu, monoMs, type HistogramSummary, type InterventionName, type RealtimeReport, type TickReader, type TickRing } from '../rt/index.js';
import type { ControlConfig } from './config.js';
import {
  Command, JOG, LOOP_STATE_NAMES, MODE_NAMES, allocShared, viewShared,
  type LoopBuffers, type LoopShared, type LoopStateName, type ModeName,
} from './shared.js';
import type { ControlEvent, ControlProtocol, ControlWorkerData } from './worker.js';
import { REOPEN_BACKOFF_MS, type BusStateName } from './reopen.js';
import type { DaemonHandlers } from '../api/index.js';

/** Per bus: ok, lost (its port went away, or could not be reopened: why), or being reopened. */
export interface BusStatus {
  name: string;
  state: BusStateName;
  reason: string | null;
}

/** What a jog (or its confirmation) answers: where the joint is and where it is going. */
export interface JogResult {
  joint: string;
  target: number;
  /** rad/s, after the cap at the joint's velocity limit. */
  speed: number;
  /** Measured, rad, at the last tick. */
  position: number;
  /** The pose held for it at the last tick: it walks to the target. */
  command: number;
  /** The held pose has reached the target. */
  reached: boolean;
}

export interface ControlLoopOptions {
  /** No tick for this long means the loop is stuck. */
  stallMs: number;
  /** Bound on opening the buses and the first tick. */
  startTimeoutMs?: number;
  /** Bound on each step of stopping the worker: asked, terminated, abandoned (default 5000). */
  stopTimeoutMs?: number;
  /** Ticks the tick ring holds (default TICK_RING_CAPACITY, 10 s at 50 Hz). */
  tickRingCapacity?: number;
}

/** The newest tick record, per joint: what the loop measured and what it sent. */
export interface LastTick {
  tick: number;
  mode: ModeName;
  /** Safety rules that changed the command at this tick. */
  interventions: InterventionName[];
  /** The policy generation whose action it took (-1: none). */
  generation: number;
  joints: { name: string; position: number; velocity: number; effort: number; action: number | null; command: number }[];
}

/** One joint's safety interventions and failed reads since the daemon started. */
export interface JointInterventions {
  joint: string;
  /** Commands outside the joint's position limits, clamped. */
  limitClamps: number;
  /** Commands faster than its velocity limit, clamped. */
  deltaClamps: number;
  /** NaN or Inf commands, replaced by the previous command. */
  nonFinite: number;
  /** Ticks its motor gave no fresh value (it did not answer, or its bus was not read). */
  failedReads: number;
}

/** One bus's failed reads (ticks) and retries since the daemon started. */
export interface BusErrors {
  name: string;
  failedReads: number;
  retries: number;
}

/** Upper edges (µs) of the wake-lateness buckets status shows; one more bucket holds the rest. */
export const LATENESS_EDGES_US = [10, 50, 100, 500, 1000, 5000, 20_000] as const;

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
  /** Wake-up lateness since start in coarse buckets: counts[i] up to edgesUs[i], the last above them all. */
  latenessBuckets: { edgesUs: number[]; counts: number[] };
  /** Time the loop has run a policy (the clamps' rates are per minute of it). */
  policyTimeS: number;
  /** byJoint: the same interventions per joint (in config order), with each joint's failed reads. */
  safety: { limitClamps: number; deltaClamps: number; nonFinite: number; softStarts: number; estops: number; faults: number; byJoint: JointInterventions[] };
  /**
   * loadPct: the busiest CAN bus's share of its bitrate over the last second (0 without CAN).
   * failedReads: ticks some motor did not answer. byBus: the same per bus, with its retries:
   * retries are split by bus only (retriesBy 'bus'), since one retry asks again every motor that
   * has not answered and the drivers do not say which one made it ask.
   */
  bus: { failedReads: number; retries: number; loadPct: number; byBus: BusErrors[]; retriesBy: 'bus' };
  /** ageMs: from the observation the executing chunk was computed from to the last tick (null: no chunk playing). */
  chunks: { received: number; rejected: number; staleActions: number; refillRequests: number; ageMs: number | null };
  gcEvents: number;
  /** The last fault's reason while the loop is in fault. */
  fault: string | null;
  realtime: RealtimeReport | null;
  warnings: string[];
  buses: BusStatus[];
  /** The newest tick record (from the tick ring), null before the first tick. */
  lastTick: LastTick | null;
}

/**
 * The main thread's handle on the control worker: starts it, reads its metrics, and sends it
 * commands (e-stop, reset, policy start and stop, safe, stop). Emits 'fault' (reason) when the
 * loop faults and for each further fault while it holds, and 'died' (Error) if the worker exits on its own.
 */
export class ControlLoop extends EventEmitter implements Part {
  readonly name = 'control-loop';
  readonly buffers: LoopBuffers;
  readonly shared: LoopShared;
  private host: WorkerHost<ControlProtocol> | null = null;
  /** This loop's own consumer of the tick ring, for status. */
  private readonly statusTicks: TickReader;
  private rateSample = { ticks: 0, deadlineMs: 0, atMs: 0, hz: 0 };
  private commands: Promise<void> = Promise.resolve();
  private readonly jogOut = new Float64Array(JOG.LENGTH);
  private lastFault: string | null = null;
  private realtime: RealtimeReport | null = null;
  private warnings: string[] = [];
  private readonly buses: BusStatus[];

  constructor(
    private readonly cfg: ControlConfig,
    private readonly opts: ControlLoopOptions,
    private readonly log: Logger,
  ) {
    super();
    this.buffers = allocShared(cfg.joints.length, opts.tickRingCapacity, cfg.buses.length);
    this.shared = viewShared(this.buffers);
    this.statusTicks = this.shared.ticks.reader();
    this.buses = cfg.buses.map((b) => ({ name: b.name, state: 'ok', reason: null }));
  }

  /**
   * One record per tick: attach a consumer with `loop.ticks.reader()` (it sees every tick from
   * then on; one that falls behind counts its overruns, and the loop never waits for it). The
   * ring's buffer may be handed to another thread: `new TickRing(joints, capacity, buffer)`.
   */
  get ticks(): TickRing {
    return this.shared.ticks;
  }

  async start(signal: AbortSignal): Promise<void> {
    const data: ControlWorkerData = { buffers: this.buffers, config: this.cfg };
    // Before the worker starts: it inherits the others' CPUs, then pins itself to its own.
    const cpu = this.cfg.realtime.cpu;
    const keptOff = cpu === null ? null : keepThreadsOffCpu(cpu);
    const timeoutMs = this.opts.startTimeoutMs ?? 15_000;
    // A small, fixed young generation: the loop allocates next to nothing, so scavenges are rare
    // and short; a large old generation is never needed in this thread.
    const host = new WorkerHost<ControlProtocol>({
      name: 'reflex-control',
      url: new URL('./worker.js', import.meta.url),
      workerData: data,
      resourceLimits: { maxYoungGenerationSizeMb: 16, maxOldGenerationSizeMb: 256 },
      readyTimeoutMs: timeoutMs,
      signal,
      stopMs: this.opts.stopTimeoutMs ?? 5000,
      // The worker reads no messages while it ticks: it takes the stop from shared memory.
      askStop: () => this.shared.words.store('command', Command.STOP),
    });
    this.host = host;
    host.onEvent((m) => this.onEvent(m));
    host.onExit(() => (this.host = null));
    host.onDied((err) => {
      this.log.fatal({ err: err.message }, 'control worker failed');
      this.emit('died', new ReflexError('START_FAILED', err.message));
    });
    let ready: ControlProtocol['ready'];
    try {
      ready = await host.ready;
    } catch (err) {
      const e = err as Error & { timeout?: boolean };
      throw new ReflexError('START_FAILED', e.message, { timeout: e.timeout === true });
    }
    this.realtime = keptOff === null ? ready.realtime : { ...ready.realtime, notes: [...ready.realtime.notes, keptOff] };
    this.warnings = ready.warnings;
    for (const w of ready.warnings) this.log.warn(w);
    if (this.realtime.notes.length > 0) this.log.warn({ notes: this.realtime.notes }, 'control thread runs without full real-time set-up');
    await this.firstTick(signal, 2000);
    this.rateSample = { ticks: this.tickCount, deadlineMs: this.shared.counters.get('lastDeadlineMs'), atMs: monoMs(), hz: 0 };
  }

  private onEvent(m: ControlEvent): void {
    switch (m.type) {
      case 'warning':
        this.log.warn(m.message);
        this.warnings = [...this.warnings.slice(-19), m.message];
        break;
      case 'fault':
        // The first fault is what status names as the cause; a further one is logged and
        // emitted (fault history, fleet) but does not replace it.
        if (m.further === true) this.log.error({ reason: m.reason }, 'a further fault while the loop holds in fault');
        else {
          this.lastFault = m.reason;
          this.log.error({ reason: m.reason }, 'control loop fault: holding; reset to clear');
        }
        this.emit('fault', m.reason);
        break;
      case 'bus': {
        const b = this.buses.find((x) => x.name === m.name);
        if (b) Object.assign(b, { state: m.state, reason: m.reason });
        if (m.state === 'ok') this.log.info({ bus: m.name }, 'bus reopened');
        else this.log.warn({ bus: m.name, reason: m.reason }, m.state === 'lost' ? 'bus lost' : 'reopening bus');
        break;
      }
    }
  }

  private get tickCount(): number {
    return this.shared.counters.get('ticks');
  }

  private async firstTick(signal: AbortSignal, timeoutMs: number): Promise<void> {
    const until = monoMs() + timeoutMs;
    while (this.tickCount === 0) {
      if (this.host === null) throw new ReflexError('START_FAILED', 'control worker exited before its first tick');
      if (signal.aborted) throw new ReflexError('START_FAILED', 'cancelled');
      if (monoMs() > until) throw new ReflexError('START_FAILED', `control loop did not tick within ${timeoutMs} ms`, { timeout: true });
      await sleep(5);
    }
  }

  /** True while the loop ticks: what keeps the systemd watchdog fed. */
  healthy(): boolean {
    if (this.host === null) return false;
    const last = this.shared.counters.get('lastTickMs');
    return last > 0 && monoMs() - last < this.opts.stallMs;
  }

  get mode(): ModeName {
    return MODE_NAMES[this.shared.words.load('mode')] ?? 'hold';
  }

  status(): LoopStatus {
    const c = this.shared.counters;
    const now = monoMs();
    const sample = this.rateSample;
    if (now - sample.atMs >= 500) {
      // Ticks per scheduled time: deadlines are exactly one period apart and a missed one is
      // skipped, so a loop that keeps its deadlines reads its target rate exactly, and each
      // missed period lowers it. Wall-clock sampling would jitter with when status is asked.
      const deadline = c.get('lastDeadlineMs');
      const ticks = this.tickCount;
      const spanMs = deadline - sample.deadlineMs;
      sample.hz = sample.deadlineMs > 0 && spanMs > 0 ? ((ticks - sample.ticks) * 1000) / spanMs : sample.hz;
      if (!this.healthy()) sample.hz = 0;
      sample.ticks = ticks;
      sample.deadlineMs = deadline;
      sample.atMs = now;
    }
    const last = c.get('lastTickMs');
    const mode = this.mode;
    const chunkAge = c.get('chunkAgeTicks');
    return {
      state: LOOP_STATE_NAMES[this.shared.words.load('state')] ?? 'starting',
      mode,
      healthy: this.healthy(),
      rateHz: round(sample.hz, 2),
      targetHz: this.cfg.rateHz,
      ticks: this.tickCount,
      missedDeadlines: c.get('missedDeadlines'),
      overruns: c.get('overruns'),
      latenessUs: pick(this.shared.lateness.summary()),
      latenessBuckets: { edgesUs: [...LATENESS_EDGES_US], counts: this.shared.lateness.coarse(LATENESS_EDGES_US) },
      policyTimeS: round(c.get('policyTicks') / this.cfg.rateHz, 2),
      tickDurationUs: { last: round(c.get('lastTickDurationUs'), 1), ...this.shared.duration.summary() },
      msSinceLastTick: last > 0 ? round(now - last, 1) : null,
      starvedTicks: c.get('starvedTicks'),
      safety: {
        limitClamps: c.get('limitClamps'),
        deltaClamps: c.get('deltaClamps'),
        nonFinite: c.get('nonFinite'),
        softStarts: c.get('softStarts'),
        estops: c.get('estops'),
        faults: c.get('faults'),
        byJoint: this.cfg.joints.map((j, i) => {
          const x = this.shared.perJoint[i]!;
          return { joint: j.name, limitClamps: x.get('limitClamps'), deltaClamps: x.get('deltaClamps'), nonFinite: x.get('nonFinite'), failedReads: x.get('failedReads') };
        }),
      },
      bus: {
        failedReads: c.get('busFailedReads'),
        retries: c.get('busRetries'),
        loadPct: round(c.get('busLoadPct'), 1),
        byBus: this.cfg.buses.map((b, i) => ({ name: b.name, failedReads: this.shared.perBus[i]!.get('failedReads'), retries: this.shared.perBus[i]!.get('retries') })),
        retriesBy: 'bus',
      },
      chunks: {
        received: c.get('chunks'),
        rejected: c.get('chunksRejected'),
        staleActions: c.get('staleActions'),
        refillRequests: c.get('refillRequests'),
        ageMs: mode === 'policy' && chunkAge >= 0 ? round((chunkAge * 1000) / this.cfg.rateHz, 1) : null,
      },
      gcEvents: c.get('gcEvents'),
      fault: mode === 'fault' ? this.lastFault : null,
      realtime: this.realtime,
      warnings: this.warnings,
      buses: this.buses.map((b) => ({ ...b })),
      lastTick: this.lastTick(),
    };
  }

  /** The newest tick record, as status shows it. */
  private lastTick(): LastTick | null {
    const r = this.statusTicks;
    if (!r.latest()) return null;
    const t = r.record;
    const v = (x: number) => round(x, 4);
    return {
      tick: t.tick,
      mode: MODE_NAMES[t.mode] ?? 'hold',
      interventions: interventionNames(t.interventions),
      generation: t.generation,
      joints: this.cfg.joints.map((j, i) => ({
        name: j.name,
        position: v(t.q[i]!),
        velocity: v(t.dq[i]!),
        effort: v(t.effort[i]!),
        action: Number.isNaN(t.action[i]!) ? null : v(t.action[i]!),
        command: v(t.command[i]!),
      })),
    };
  }

  /** Per joint: temperature, voltage and hardware error bits from the last tick (telemetry). */
  motors(): { joint: string; temperatureC: number; voltageV: number; hardwareError: number }[] {
    const rec = MotorHealth.view(this.cfg.joints.length);
    this.shared.motors.read(rec.data);
    return this.cfg.joints.map((j, i) => ({ joint: j.name, temperatureC: rec.temperature[i]!, voltageV: rec.voltage[i]!, hardwareError: rec.hardwareError[i]! }));
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
    const host = this.host;
    if (host === null) throw new ReflexError('COMMAND_FAILED', 'the control worker is not running');
    // Every try, its pauses, and a margin: the worker always answers, this only bounds a hang.
    const boundMs = REOPEN_BACKOFF_MS.reduce((a, b) => a + b, 0) + REOPEN_BACKOFF_MS.length * 5000;
    // The command carries the request's id in shared memory; the worker answers it by id.
    const { id, reply } = host.expect(boundMs, `reset not done within ${boundMs} ms`);
    reply.catch(() => undefined); // awaited below; a command that fails first must not leave it unhandled
    await this.command(Command.RESET, id);
    let r: { ok: boolean; reason: string | null };
    try {
      r = await reply;
    } catch (err) {
      const e = err as Error & { timeout?: boolean };
      throw e.timeout === true ? new ReflexError('TIMEOUT', e.message, { timeout: true }) : new ReflexError('COMMAND_FAILED', `${e.message} before the reset was done`);
    }
    if (!r.ok) throw new ReflexError('BUS_FAULT', r.reason ?? 'reset failed');
  }
  startPolicy(): Promise<void> {
    return this.command(Command.POLICY_START, 0);
  }
  stopPolicy(): Promise<void> {
    return this.command(Command.POLICY_STOP, 0);
  }
  /**
   * Jogs joint `name` toward `to` (or by `by` from where it is held) at `speed` rad/s (capped
   * at its velocity limit) for `ttlMs`: only while holding, only within its limits. Each call
   * confirms the jog for another `ttlMs`; without one the joint stops where it got to.
   */
  jog(a: { joint: string; to?: number | undefined; by?: number | undefined; speed?: number | undefined; ttlMs?: number | undefined }): JogResult {
    if (this.mode !== 'hold') {
      throw new ReflexError('REFUSED', `jog only while holding; the loop is in ${this.mode}${this.mode === 'policy' ? ' (`reflex policy stop` first)' : ' (`reflex reset` first)'}`);
    }
    const j = this.cfg.joints.findIndex((x) => x.name === a.joint);
    const spec = this.cfg.joints[j];
    if (spec === undefined) throw new ReflexError('BAD_REQUEST', `no joint ${a.joint} (joints: ${this.cfg.joints.map((x) => x.name).join(', ')})`);
    if ((a.to === undefined) === (a.by === undefined)) throw new ReflexError('BAD_REQUEST', 'jog wants one of to (rad) or by (rad)');
    const last = this.status().lastTick?.joints[j];
    if (last === undefined) throw new ReflexError('REFUSED', 'the loop has not ticked yet');
    const target = a.to ?? last.command + a.by!;
    if (target < spec.min || target > spec.max) throw new ReflexError('REFUSED', `joint ${spec.name}: ${target.toFixed(3)} rad is outside its limits ${spec.min}..${spec.max}`);
    const speed = Math.min(a.speed ?? 0.2, spec.maxVelocity);
    const ttlMs = a.ttlMs ?? 300;
    this.jogOut[JOG.joint] = j;
    this.jogOut[JOG.target] = target;
    this.jogOut[JOG.speed] = speed;
    this.jogOut[JOG.deadlineMs] = monoMs() + ttlMs;
    this.shared.jog.write(this.jogOut);
    return { joint: spec.name, target, speed, position: last.position, command: last.command, reached: Math.abs(last.command - target) < 1e-9 };
  }

  /** Ends a jog now: the joint holds where it got to. */
  jogStop(): void {
    this.jogOut[JOG.joint] = -1;
    this.jogOut[JOG.deadlineMs] = 0;
    this.shared.jog.write(this.jogOut);
  }

  /** Fault injection for tests: the loop blocks for `ms` as a hung driver would. */
  stall(ms: number): Promise<void> {
    return this.command(Command.STALL, ms, false);
  }

  async safe(): Promise<void> {
    if (this.host === null) return;
    await this.command(Command.SAFE, 0);
  }

  /** Stops the worker (its buses closed, motors safe) within its bound; never waits longer. */
  async stop(): Promise<void> {
    const host = this.host;
    if (host === null) return;
    await this.commands.catch(() => undefined);
    const outcome = await host.stop();
    if (outcome !== 'stopped') this.log.error({ outcome }, 'the control worker did not stop when asked');
  }

  /**
   * One command at a time, taken by the worker at its next tick (at most one period away).
   * Resolves once taken; `acked: false` returns as soon as it is posted (a stall blocks the ack).
   */
  private command(cmd: number, arg: number, acked = true): Promise<void> {
    const w = this.shared.words;
    const run = async () => {
      const limit = monoMs() + Math.max(1000, this.opts.stallMs * 4);
      while (w.load('command') !== Command.NONE) {
        if (this.host === null || monoMs() > limit) throw new ReflexError('TIMEOUT', 'control loop is not taking commands', { timeout: true });
        await sleep(1);
      }
      w.store('commandArg', arg);
      w.store('command', cmd);
      if (!acked) return;
      while (w.load('command') === cmd) {
        if (this.host === null || monoMs() > limit) throw new ReflexError('TIMEOUT', 'control loop did not take the command', { timeout: true });
        await sleep(1);
      }
    };
    const p = this.commands.then(run, run);
    this.commands = p.catch(() => undefined);
    return p;
  }

  // --- The loop as a part of the daemon: what it reports and the commands it answers. ---

  faults(): string[] {
    const s = this.status();
    const out: string[] = [];
    if (!s.healthy && s.state !== 'stopped') out.push('control loop stalled');
    if (s.fault !== null) out.push(s.fault);
    if (s.mode === 'estop') out.push('e-stop engaged (reset to clear)');
    return out;
  }

  headline(): string {
    const s = this.status();
    const health = !s.healthy ? 'STALLED' : s.mode === 'fault' ? 'FAULT' : s.mode === 'estop' ? 'ESTOP' : s.mode;
    return `${health} ${loopHeadline(s)}`;
  }

  /**
   * Per joint, its motor's health and its counts since start (failed reads, clamps): what points
   * the fleet at one cable or one motor across robots without a technician on site.
   */
  telemetry(): { loop: object; motors: (ReturnType<ControlLoop['motors']>[number] & Omit<JointInterventions, 'joint'>)[] } {
    const l = this.status();
    const t = l.tickDurationUs;
    const counts = l.safety.byJoint;
    return {
      loop: { mode: l.mode, hz: l.rateHz, latenessUs: l.latenessUs, tickUs: { p50: t.p50, p99: t.p99, max: t.max }, missed: l.missedDeadlines, overruns: l.overruns, starved: l.starvedTicks, faults: l.safety.faults, busFailedReads: l.bus.failedReads, canLoadPct: l.bus.loadPct },
      motors: this.motors().map((m, i) => {
        const { joint: _, ...c } = counts[i]!;
        return { ...m, ...c };
      }),
    };
  }

  api(): DaemonHandlers {
    // Each answers with the mode the loop is in once the worker has taken the command.
    const modeAfter = async (p: Promise<void>) => {
      await p;
      return { mode: this.mode };
    };
    return {
      estop: () => modeAfter(this.estop()),
      reset: () => modeAfter(this.reset()),
      'policy.start': () => modeAfter(this.startPolicy()),
      'policy.stop': () => modeAfter(this.stopPolicy()),
      jog: (args) => this.jog(args),
      'jog.stop': () => {
        this.jogStop();
        return { mode: this.mode };
      },
      'debug.stall': async ({ ms }) => {
        await this.stall(ms);
        return null;
      },
    };
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
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
