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

/** A Dynamixel bus behind the MotorBus interface: set-up through the async driver, ticks through the sync group. */
export class DynamixelMotorBus implements MotorBus {
  readonly ids: readonly number[];
  readonly disableOnStop = false;
  readonly load = null;
  private readonly goal: Int32Array;
  private readonly torqueOff: Buffer;

  private constructor(
    readonly name: string,
    private readonly bus: DynamixelBus,
    private readonly io: TickIo,
    private readonly group: SyncGroup,
    readonly warnings: readonly string[],
  ) {
    this.ids = group.ids;
    this.goal = new Int32Array(this.ids.length);
    this.torqueOff = build.syncWrite(64, 1, this.ids.map((id) => ({ id, data: [0] })));
  }

  /** Opens the port, checks every servo, maps the tick's registers, and enables torque in place. */
  static async open(cfg: DynamixelBusConfig): Promise<DynamixelMotorBus> {
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
      return new DynamixelMotorBus(cfg.name, bus, io, group, warnings);
    } catch (err) {
      await bus.close();
      throw new ReflexError('START_FAILED', `bus ${cfg.name} (${cfg.port}): ${errorMessage(err)}`, { cause: err });
    }
  }

  get position(): Float64Array {
    return this.group.state.position;
  }
  get velocity(): Float64Array {
    return this.group.state.velocity;
  }
  get current(): Float64Array {
    return this.group.state.current;
  }
  get temperature(): Float64Array {
    return this.group.state.temperature;
  }
  get voltage(): Float64Array {
    return this.group.state.voltage;
  }
  get fresh(): Uint8Array {
    return this.group.state.fresh;
  }
  get hardwareError(): Uint8Array {
    return this.group.state.hardwareError;
  }
  get errors(): { failedReads: number; retries: number } {
    return this.group.stats;
  }

  read(): boolean {
    return this.group.read();
  }

  write(positions: Float64Array): void {
    for (let i = 0; i < this.goal.length; i++) this.goal[i] = radToTicks(positions[i]!);
    this.group.writeGoals(this.goal);
  }

  disable(): void {
    try {
      this.io.write(this.torqueOff, this.torqueOff.length);
    } catch {
      // best effort: the port may be the thing that failed
    }
  }

  reset(): void {
    this.group.reset();
  }

  errorText(motor: number): string {
    return decodeHardwareErrors(this.hardwareError[motor]!).join(', ') || 'no error';
  }

  async close(): Promise<void> {
    await this.bus.close();
  }
}
