import { ReflexError, errorMessage } from '../../core/index.js';
import type { MotorBus } from '../motor-bus.js';
import { DynamixelBus } from './bus.js';
import { build } from './encode.js';
import { decodeHardwareErrors } from './protocol.js';
import { SyncGroup } from './group.js';
import { openSerial, tickIo, tuneLatency, type SerialLink, type TickIo } from './serial.js';
import { mapTickRead, prepare, setBusWatchdog, torqueOnInPlace, type ExpectedServo } from './setup.js';
import { radToTicks } from './units.js';

export interface DynamixelBusConfig {
  name: string;
  port: string;
  baud: number;
  zeroReturnDelay: boolean;
  servos: readonly ExpectedServo[];
  retries: number;
  errorBudgetMs: number;
  /** The servos stop by themselves when reflex has been silent this long; 0 disables. */
  watchdogMs: number;
}

/** What an open port gives the tick: the set-up driver, its synchronous I/O and the sync group. */
interface Opened {
  bus: DynamixelBus;
  io: TickIo;
  group: SyncGroup;
  warnings: string[];
}

/** Opens the port, checks every servo, maps the tick's registers, and enables torque in place. */
async function bringUp(cfg: DynamixelBusConfig): Promise<Opened> {
  const link: SerialLink = await openSerial(cfg.port, cfg.baud);
  const bus = new DynamixelBus(link, { baud: cfg.baud });
  try {
    const warnings: string[] = [];
    const latency = await tuneLatency(link);
    bus.timing = { ...bus.timing, usbLatencyMs: latency.ftdiLatencyTimerMs ?? 1 };
    if (latency.warning) warnings.push(latency.warning);
    const prepared = await prepare(bus, cfg.servos, { zeroReturnDelay: cfg.zeroReturnDelay });
    warnings.push(...prepared.warnings);
    const ids = prepared.servos.map((s) => s.id);
    await mapTickRead(bus, ids);
    await torqueOnInPlace(bus, ids);
    if (cfg.watchdogMs > 0) await setBusWatchdog(bus, ids, cfg.watchdogMs);
    const io = tickIo(link);
    const group = new SyncGroup(io, prepared.servos, { retries: cfg.retries, errorBudgetMs: cfg.errorBudgetMs, allowFast: true }, bus.timing, cfg.name);
    return { bus, io, group, warnings };
  } catch (err) {
    await bus.close();
    throw err;
  }
}

/** A Dynamixel bus behind the MotorBus interface: set-up through the async driver, ticks through the sync group. */
export class DynamixelMotorBus implements MotorBus {
  readonly name: string;
  readonly ids: readonly number[];
  readonly disableOnStop = false;
  readonly load = null;
  readonly warnings: readonly string[];
  lost: string | null = null;
  private readonly goal: Int32Array;
  private readonly torqueOff: Buffer;
  private reopening: Promise<void> | null = null;
  private closed = false;

  private constructor(
    private readonly cfg: DynamixelBusConfig,
    private up: Opened,
  ) {
    this.name = cfg.name;
    this.ids = up.group.ids;
    this.warnings = up.warnings;
    this.goal = new Int32Array(this.ids.length);
    this.torqueOff = build.syncWrite(64, 1, this.ids.map((id) => ({ id, data: [0] })));
  }

  static async open(cfg: DynamixelBusConfig): Promise<DynamixelMotorBus> {
    try {
      return new DynamixelMotorBus(cfg, await bringUp(cfg));
    } catch (err) {
      throw new ReflexError('START_FAILED', `bus ${cfg.name} (${cfg.port}): ${errorMessage(err)}`, { cause: err });
    }
  }

  get position(): Float64Array {
    return this.up.group.state.position;
  }
  get velocity(): Float64Array {
    return this.up.group.state.velocity;
  }
  get current(): Float64Array {
    return this.up.group.state.current;
  }
  get temperature(): Float64Array {
    return this.up.group.state.temperature;
  }
  get voltage(): Float64Array {
    return this.up.group.state.voltage;
  }
  get fresh(): Uint8Array {
    return this.up.group.state.fresh;
  }
  get hardwareError(): Uint8Array {
    return this.up.group.state.hardwareError;
  }
  get errors(): { failedReads: number; retries: number } {
    return this.up.group.stats;
  }

  read(): boolean {
    if (this.lost !== null) throw new ReflexError('BUS_FAULT', this.lost, { disconnected: true });
    try {
      return this.up.group.read();
    } catch (err) {
      throw this.failed(err);
    }
  }

  write(positions: Float64Array): void {
    if (this.lost !== null) throw new ReflexError('BUS_FAULT', this.lost, { disconnected: true });
    for (let i = 0; i < this.goal.length; i++) this.goal[i] = radToTicks(positions[i]!);
    try {
      this.up.group.writeGoals(this.goal);
    } catch (err) {
      throw this.failed(err);
    }
  }

  /** A port error (the fd answers with an errno, not a timeout) means the port is gone: the bus is lost. */
  private failed(err: unknown): unknown {
    if (!(err instanceof ReflexError) || !err.disconnected) return err;
    this.lost = `bus ${this.name} (${this.cfg.port}) lost: ${err.message}; a reset reopens it`;
    return new ReflexError('BUS_FAULT', this.lost, { disconnected: true, cause: err });
  }

  disable(): void {
    if (this.lost !== null) return; // nothing to say it to
    try {
      this.up.io.write(this.torqueOff, this.torqueOff.length);
    } catch {
      // best effort: the port may be the thing that failed
    }
  }

  reset(): void {
    this.up.group.reset();
    if (this.lost !== null) return; // reopen() brings it up, torque and all
    // A servo that disable() left limp, or that shut down on a hardware error and was rebooted,
    // has its torque off, and a jog or a policy would command it in vain. Torque on where it
    // stands, its goal set there first: it must not spring back to a goal from before someone
    // moved the limp joint by hand. A rare command, not the tick: it may build its packet.
    try {
      const q = this.up.group.state.position;
      for (let i = 0; i < this.goal.length; i++) this.goal[i] = radToTicks(q[i]!);
      this.up.group.writeGoals(this.goal);
      const on = build.syncWrite(64, 1, this.ids.map((id) => ({ id, data: [1] })));
      this.up.io.write(on, on.length);
    } catch {
      // best effort: a port that failed is found by the next read
    }
  }

  reopen(): Promise<void> {
    if (this.lost === null || this.closed) return Promise.resolve();
    this.reopening ??= this.bringBack().finally(() => (this.reopening = null));
    return this.reopening;
  }

  private async bringBack(): Promise<void> {
    // The old port first: it releases the fd (and the port's lock) the new one needs.
    await this.up.bus.close().catch(() => undefined);
    const up = await bringUp(this.cfg).catch((err: unknown) => {
      throw new ReflexError('BUS_ERROR', `bus ${this.name} (${this.cfg.port}): ${errorMessage(err)}`, { cause: err });
    });
    try {
      if (this.closed) throw new ReflexError('BUS_ERROR', `bus ${this.name} closed while it was reopened`);
      // A first read, so that the loop holds where the servos are now, not where they were.
      let ok = false;
      for (let i = 0; i < 3 && !ok; i++) ok = up.group.read();
      if (!ok) throw new ReflexError('BUS_ERROR', `bus ${this.name} (${this.cfg.port}): servo ${up.group.missingIds()} did not answer after reopening`);
    } catch (err) {
      await up.bus.close();
      throw err;
    }
    this.up = up;
    this.lost = null;
  }

  errorText(motor: number): string {
    return decodeHardwareErrors(this.hardwareError[motor]!).join(', ') || 'no error';
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.reopening?.catch(() => undefined);
    await this.up.bus.close();
  }
}
