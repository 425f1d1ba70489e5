// CAN motors behind the MotorBus interface, driven per tick like the Dynamixel bus: read() is
// one exchange per motor (request, reply) with a reply timeout and retries for the motors that
// did not answer, the same error budget; write() is one frame per motor. Bus load is
// accounted from the frames that cross the wire.
import { ReflexError, errorMessage } from '../../core/index.js';
import { monoMs, tickClock, type TickClock } from '../../rt/index.js';
import { ErrorBudget } from '../error-budget.js';
import type { MotorBus } from '../motor-bus.js';
import { frameBits } from './frame.js';
import { protocolFor, type CanMotorSpec, type CanMotorState, type CanProtocol, type Send } from './protocols.js';
import type { CanTransport } from './transport.js';

export interface CanBusConfig {
  name: string;
  /** SocketCAN interface, or the virtual bus's socket path. */
  interface: string;
  transport: 'socketcan' | 'virtual';
  bitrate: number;
  motors: readonly CanMotorSpec[];
  retries: number;
  errorBudgetMs: number;
  /** How long one exchange waits for its replies. */
  replyTimeoutUs: number;
  /** At or above this, a motor is over temperature: a hardware error for the loop. */
  maxTemperatureC: number;
  /** On e-stop, fault and shutdown: go limp (exit motor mode, idle), or hold position. */
  onStop: 'disable' | 'hold';
  /** Past this percent of the bitrate, the loop warns. */
  loadWarnPct: number;
}

/** hardwareError bits of a CAN motor. */
export const CanMotorFault = {
  /** The motor reports an error of its own. */
  MOTOR: 0x01,
  OVER_TEMPERATURE: 0x02,
  /** The motor left closed-loop control (its own timeout, a reset) while it should hold. */
  DISARMED: 0x04,
} as const;

const ENABLE_WAIT_US = 200_000;

export class CanMotorBus implements MotorBus {
  readonly ids: readonly number[];
  readonly position: Float64Array;
  readonly velocity: Float64Array;
  readonly current: Float64Array;
  readonly temperature: Float64Array;
  readonly voltage: Float64Array;
  readonly fresh: Uint8Array;
  readonly hardwareError: Uint8Array;
  readonly errors = { failedReads: 0, retries: 0 };
  readonly disableOnStop: boolean;
  /** Frames per second and percent of the bitrate over the last second (both directions). */
  readonly load: { framesPerS: number; pct: number; warnPct: number; controller: string };
  /** Frames and their worst-case bits on the wire since open, both directions. */
  readonly traffic = { frames: 0, bits: 0 };
  readonly warnings: string[] = [];
  /**
   * Never set: a CAN interface that goes down is bus-off, and its sends keep trying, so it
   * recovers by itself when it comes back (see SocketCan); nothing needs reopening.
   */
  readonly lost: string | null = null;
  private readonly state: CanMotorState;
  private readonly protocol: CanProtocol;
  private readonly budget: ErrorBudget;
  private readonly clock: TickClock = tickClock();
  /** [now, deadline, load window start]: times kept in a typed array so that none is boxed in the tick. */
  private readonly t = new Float64Array([0, 0, -1]);
  private received = 0;
  private counting = false;
  private ticks = 0;
  private fault: string | null = null;
  private disabled = false;
  private windowBits = 0;
  private windowFrames = 0;

  private readonly send: Send = (id, data, length, flags) => {
    if (this.transport.send(id, data, length, flags)) this.account(length);
  };

  private readonly take = (id: number, data: Uint8Array, length: number, flags: number): void => {
    this.account(length);
    const i = this.protocol.accept(id, data, length, flags, this.state);
    if (i >= 0 && this.counting && this.fresh[i] === 0) {
      this.fresh[i] = 1;
      this.received++;
    }
  };

  private constructor(
    readonly name: string,
    private readonly transport: CanTransport,
    private readonly cfg: CanBusConfig,
  ) {
    const n = cfg.motors.length;
    this.ids = cfg.motors.map((m) => m.id);
    this.position = new Float64Array(n);
    this.velocity = new Float64Array(n);
    this.current = new Float64Array(n);
    this.temperature = new Float64Array(n).fill(NaN);
    this.voltage = new Float64Array(n).fill(NaN);
    this.fresh = new Uint8Array(n);
    this.hardwareError = new Uint8Array(n);
    this.state = {
      position: this.position,
      velocity: this.velocity,
      current: this.current,
      temperature: this.temperature,
      voltage: this.voltage,
      motorError: new Uint32Array(n),
      disarmed: new Uint8Array(n),
    };
    this.protocol = protocolFor(cfg.motors);
    this.disableOnStop = cfg.onStop === 'disable';
    this.load = { framesPerS: 0, pct: 0, warnPct: cfg.loadWarnPct, controller: 'error-active' };
    this.budget = new ErrorBudget(cfg.errorBudgetMs);
  }

  /**
   * Checks every motor answers, then puts each under control where it stands. The transport is
   * the bus's from here on (closed with it).
   */
  static open(cfg: CanBusConfig, transport: CanTransport): CanMotorBus {
    const bus = new CanMotorBus(cfg.name, transport, cfg);
    try {
      transport.setFilters(bus.protocol.filters);
      bus.startUp();
      return bus;
    } catch (err) {
      // Motors already enabled must not be left holding for a loop that will not run.
      bus.disable();
      transport.close();
      throw err instanceof ReflexError ? err : new ReflexError('START_FAILED', `CAN bus ${cfg.name}: ${errorMessage(err)}`, { cause: err });
    }
  }

  private startUp(): void {
    const n = this.ids.length;
    // Where each motor is, before anything holds it there.
    if (!this.exchangeUntil(ENABLE_WAIT_US)) {
      throw new ReflexError('START_FAILED', `CAN bus ${this.name} (${this.cfg.interface}): no reply from motor ${this.missing()}`);
    }
    for (let i = 0; i < n; i++) this.protocol.enable(i, this.position[i]!, this.send);
    for (let i = 0; i < n; i++) this.protocol.command(i, this.position, this.position, this.send);
    if (!this.exchangeUntil(ENABLE_WAIT_US)) {
      throw new ReflexError('START_FAILED', `CAN bus ${this.name}: motor ${this.missing()} stopped answering after enable`);
    }
    this.updateFaults();
    for (let i = 0; i < n; i++) {
      if (this.state.motorError[i] !== 0) this.warnings.push(`CAN bus ${this.name}: motor ${this.ids[i]} reports ${this.protocol.describe(i, this.state)}`);
    }
  }

  /** Polls every motor until all answered or `us` passed (start-up only). */
  private exchangeUntil(us: number): boolean {
    const until = monoMs() + us / 1000;
    this.fresh.fill(0);
    this.received = 0;
    while (monoMs() < until) {
      this.exchange();
      if (this.received === this.ids.length) return true;
    }
    return false;
  }

  read(): boolean {
    if (this.fault !== null) throw new ReflexError('BUS_FAULT', this.fault);
    if (this.transport.state === 'bus-off') this.transport.restart();
    // Frames since the last tick (the replies to its commands, heartbeats) update the state,
    // but only this tick's replies count as fresh.
    this.counting = false;
    this.transport.receive(this.take);
    this.fresh.fill(0);
    this.received = 0;
    const n = this.ids.length;
    for (let attempt = 0; attempt <= this.cfg.retries && this.received < n; attempt++) {
      if (attempt > 0) this.errors.retries++;
      this.exchange();
    }
    this.protocol.extra(this.ticks++, this.send);
    this.load.controller = this.transport.state;
    this.updateFaults();
    this.clock.into(this.t, 0);
    this.rollLoad();
    const ok = this.received === n;
    if (!ok) this.errors.failedReads++;
    const failing = this.budget.record(ok, this.t[0]!);
    if (failing >= 0) {
      this.fault = `CAN bus ${this.name}: reads failing for ${Math.round(failing)} ms (budget ${this.cfg.errorBudgetMs} ms); no reply from motor ${this.missing()}${this.transport.state === 'error-active' ? '' : ` (controller ${this.transport.state})`}`;
      throw new ReflexError('BUS_FAULT', this.fault);
    }
    return ok;
  }

  /** Requests from every motor that has not answered this tick, then takes replies until all came or the timeout. */
  private exchange(): void {
    const n = this.ids.length;
    for (let i = 0; i < n; i++) if (this.fresh[i] === 0) this.protocol.request(i, this.send);
    this.counting = true;
    const t = this.t;
    this.clock.into(t, 0);
    t[1] = t[0]! + this.cfg.replyTimeoutUs / 1000;
    for (;;) {
      this.transport.receive(this.take);
      if (this.received === n) break;
      this.clock.into(t, 0);
      const leftUs = ((t[1] - t[0]!) * 1000) | 0;
      if (leftUs <= 0 || !this.transport.wait(leftUs)) {
        this.transport.receive(this.take);
        break;
      }
    }
    this.counting = false;
  }

  write(positions: Float64Array): void {
    if (this.fault !== null) throw new ReflexError('BUS_FAULT', this.fault);
    if (this.disabled) return;
    for (let i = 0; i < this.ids.length; i++) {
      this.protocol.command(i, positions, this.position, this.send);
    }
  }

  /** Exit motor mode / idle: the motors go limp. Best effort, never throws. */
  disable(): void {
    this.disabled = true;
    try {
      for (let i = 0; i < this.ids.length; i++) this.protocol.disable(i, this.send);
    } catch {
      // the transport may be what failed
    }
  }

  /** Clears a latched fault; motors that were disabled are enabled again holding where they are. */
  reset(): void {
    this.fault = null;
    this.budget.reset();
    if (this.transport.state === 'bus-off') this.transport.restart();
    if (this.disabled) {
      this.disabled = false;
      for (let i = 0; i < this.ids.length; i++) {
        this.protocol.enable(i, this.position[i]!, this.send);
        this.protocol.command(i, this.position, this.position, this.send);
      }
    }
  }

  errorText(i: number): string {
    const parts: string[] = [];
    const h = this.hardwareError[i]!;
    if (h & (CanMotorFault.MOTOR | CanMotorFault.DISARMED)) parts.push(this.protocol.describe(i, this.state));
    if (h & CanMotorFault.OVER_TEMPERATURE) parts.push(`over temperature (${this.temperature[i]} C, limit ${this.cfg.maxTemperatureC} C)`);
    return parts.join('; ') || 'no error';
  }

  reopen(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.transport.close();
    return Promise.resolve();
  }

  private updateFaults(): void {
    const s = this.state;
    for (let i = 0; i < this.ids.length; i++) {
      let h = 0;
      if (s.motorError[i] !== 0) h |= CanMotorFault.MOTOR;
      if (this.temperature[i]! >= this.cfg.maxTemperatureC) h |= CanMotorFault.OVER_TEMPERATURE;
      if (s.disarmed[i] !== 0 && !this.disabled) h |= CanMotorFault.DISARMED;
      this.hardwareError[i] = h;
    }
  }

  private account(length: number): void {
    const bits = frameBits(length);
    this.windowBits += bits;
    this.windowFrames++;
    this.traffic.bits += bits;
    this.traffic.frames++;
  }

  /** Closes the load window once a second (t[0] is now). */
  private rollLoad(): void {
    const t = this.t;
    if (t[2]! < 0) t[2] = t[0]!;
    const span = t[0]! - t[2]!;
    if (span >= 1000) {
      this.load.framesPerS = (this.windowFrames * 1000) / span;
      this.load.pct = (this.windowBits * 100_000) / (span * this.cfg.bitrate);
      t[2] = t[0]!;
      this.windowBits = 0;
      this.windowFrames = 0;
    }
  }

  private missing(): string {
    return this.ids.filter((_, i) => this.fresh[i] === 0).join(', ');
  }
}
