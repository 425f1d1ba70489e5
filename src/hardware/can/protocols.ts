// What a tick says to CAN motors, per protocol: the frames that enable, poll, command and
// disable a motor, and what the replies mean. State goes straight into the bus's arrays;
// nothing here allocates after construction.
import { CanFlag } from './frame.js';
import {
  CUBEMARS_ERRORS, DAMIAO_STATUS, MIT_ENTER, MIT_EXIT, MitReplyAt, mitModel, packMit, unpackMit,
  type MitDialect, type MitRanges,
} from './mit.js';
import {
  AxisState, ControlMode, InputMode, OdriveCmd, OdriveCmdExtra, arbitrationId, setAxisState,
  setControllerMode, setInputPos, setLimits,
} from './odrive.js';
import type { CanFilter } from './transport.js';

export interface CanMotorSpec {
  id: number;
  model: string;
  /** MIT position gain (N m/rad) and damping (N m s/rad); ODrive uses its own tuning. */
  kp: number;
  kd: number;
  /** N m for MIT motors (a command never asks for more), A for ODrive (its current limit). */
  effortLimit: number;
  /** rad/s: ODrive's velocity limit. */
  maxVelocity: number;
  /**
   * ODrive: motor turns per output turn (a gearbox after the drive's encoder); positions and
   * velocities here are the output's. MIT motors report their output shaft already.
   */
  gearRatio: number;
}

/** Per-motor state the bus exposes (the MotorBus arrays). */
export interface CanMotorState {
  position: Float64Array;
  velocity: Float64Array;
  current: Float64Array;
  temperature: Float64Array;
  voltage: Float64Array;
  /** The motor's own error report (protocol-specific code), 0 when none. */
  motorError: Uint32Array;
  /** 1 while the motor reports it is not under control though it should be. */
  disarmed: Uint8Array;
}

export type Send = (id: number, data: Uint8Array, length: number, flags: number) => void;

export interface CanProtocol {
  readonly filters: readonly CanFilter[];
  /** Puts motor i under control holding `position` (motor frame, rad). */
  enable(i: number, position: number, send: Send): void;
  /** The per-tick exchange's request; the reply updates the state. */
  request(i: number, send: Send): void;
  /**
   * Commands motor i to target[i], bounded by its effort limit from measured[i]. Arrays, not
   * numbers, so that no double is boxed crossing the call in the tick.
   */
  command(i: number, target: Float64Array, measured: Float64Array, send: Send): void;
  disable(i: number, send: Send): void;
  /** Once per tick after the exchange: housekeeping frames (ODrive's temperature poll). */
  extra(tick: number, send: Send): void;
  /** A received frame: the index of the motor whose exchange it answers, else -1. */
  accept(id: number, data: Uint8Array, length: number, flags: number, s: CanMotorState): number;
  /** Words for motor i's error report. */
  describe(i: number, s: CanMotorState): string;
}

const TWO_PI = 2 * Math.PI;

export class MitProtocol implements CanProtocol {
  readonly filters: readonly CanFilter[] = []; // replies come on the master id, set per motor: take all
  private readonly ranges: MitRanges[];
  private readonly dialect: MitDialect;
  private readonly byId = new Int16Array(256).fill(-1);
  /** The frame each motor's poll repeats: its last command, or limp (zero gains) before one. */
  private readonly last: Uint8Array;
  private readonly lastFrames: Uint8Array[];
  private readonly enabled: Uint8Array;
  /** [p, v, kp, kd, t] and the reply (MitReplyAt): typed arrays, so no double is boxed per tick. */
  private readonly cmd = new Float64Array(5);
  private readonly reply = new Float64Array(6);
  private readonly frame = new Uint8Array(8);

  constructor(private readonly motors: readonly CanMotorSpec[]) {
    const models = motors.map((m) => mitModel(m.model));
    const first = models[0];
    if (!first || models.some((x) => x === null || x.dialect !== first.dialect)) {
      throw new Error(`MIT bus: every motor must be one MIT dialect (${motors.map((m) => m.model).join(', ')})`);
    }
    this.dialect = first.dialect;
    const wide = motors.find((m) => m.id > (this.dialect === 'damiao' ? 0x0f : 0xff));
    // A Damiao reply names its motor in four bits.
    if (wide) throw new Error(`MIT bus: motor id ${wide.id} does not fit the ${this.dialect} reply (at most ${this.dialect === 'damiao' ? 15 : 255})`);
    this.ranges = models.map((x) => x!.ranges);
    motors.forEach((m, i) => (this.byId[m.id & 0xff] = i));
    this.last = new Uint8Array(motors.length * 8);
    this.lastFrames = motors.map((_, i) => this.last.subarray(i * 8, i * 8 + 8));
    this.enabled = new Uint8Array(motors.length);
  }

  enable(i: number, _position: number, send: Send): void {
    this.enabled[i] = 1;
    this.limp(i);
    send(this.motors[i]!.id, MIT_ENTER, 8, 0);
  }

  request(i: number, send: Send): void {
    if (this.enabled[i] === 0) send(this.motors[i]!.id, MIT_EXIT, 8, 0);
    else send(this.motors[i]!.id, this.lastFrames[i]!, 8, 0);
  }

  /** Position control through the motor's PD: the target is kept within effortLimit/kp of where the motor is. */
  command(i: number, target: Float64Array, measured: Float64Array, send: Send): void {
    if (this.enabled[i] === 0) return;
    const m = this.motors[i]!;
    const c = this.cmd;
    let p = target[i]!;
    if (m.kp > 0) {
      const reach = m.effortLimit / m.kp;
      const at = measured[i]!;
      p = p > at + reach ? at + reach : p < at - reach ? at - reach : p;
    }
    c[0] = p;
    c[1] = 0;
    c[2] = m.kp;
    c[3] = m.kd;
    c[4] = 0;
    packMit(c, this.ranges[i]!, this.frame);
    this.last.set(this.frame, i * 8);
    send(m.id, this.frame, 8, 0);
  }

  disable(i: number, send: Send): void {
    this.enabled[i] = 0;
    this.limp(i);
    send(this.motors[i]!.id, MIT_EXIT, 8, 0);
  }

  extra(): void {}

  accept(_id: number, data: Uint8Array, length: number, flags: number, s: CanMotorState): number {
    if (flags !== 0 || (length !== 8 && length !== 6)) return -1;
    const key = this.dialect === 'damiao' ? data[0]! & 0x0f : data[0]!;
    const i = this.byId[key]!;
    if (i < 0) return -1;
    const r = this.reply;
    if (!unpackMit(data, length, this.ranges[i]!, this.dialect, r)) return -1;
    s.position[i] = r[MitReplyAt.P]!;
    s.velocity[i] = r[MitReplyAt.V]!;
    s.current[i] = r[MitReplyAt.T]!;
    if (length === 8) s.temperature[i] = r[MitReplyAt.TEMPERATURE]!;
    const error = r[MitReplyAt.ERROR]!;
    if (this.dialect === 'damiao') {
      // Its status nibble: 0 disabled and 1 enabled are states; everything else is a fault of
      // its own (8 to 0xE documented, the others not): none of them is healthy.
      s.motorError[i] = error > 1 ? error : 0;
      s.disarmed[i] = this.enabled[i] === 1 && error === 0 ? 1 : 0;
    } else {
      s.motorError[i] = error;
    }
    return i;
  }

  describe(i: number, s: CanMotorState): string {
    const e = s.motorError[i]!;
    if (e === 0) return s.disarmed[i] ? 'motor left motor mode' : 'no error';
    const names = this.dialect === 'damiao' ? DAMIAO_STATUS : CUBEMARS_ERRORS;
    return `${names[e] ?? (this.dialect === 'damiao' ? 'fault status not in the DM-J table' : 'error')} (code 0x${e.toString(16)})`;
  }

  private limp(i: number): void {
    this.cmd.fill(0);
    packMit(this.cmd, this.ranges[i]!, this.frame);
    this.last.set(this.frame, i * 8);
  }
}

export class OdriveProtocol implements CanProtocol {
  readonly filters: readonly CanFilter[];
  private readonly byNode = new Int16Array(64).fill(-1);
  private readonly enabled: Uint8Array;
  /** Reads since enable: the heartbeat may lag the state change by one period. */
  private readonly sinceEnable: Uint32Array;
  private readonly frame = new Uint8Array(8);
  // Payloads are read through typed views on one scratch buffer, in this function, rather than
  // through odrive.ts's f32At: a float returned from a call that is not inlined is boxed, and
  // whether it is inlined varied from run to run (0 or about 200 B a tick, measured). Views are
  // host order: little-endian, as on every host reflex runs on (see frame.ts).
  private readonly scratch = new ArrayBuffer(8);
  private readonly bytes = new Uint8Array(this.scratch);
  private readonly f32 = new Float32Array(this.scratch);
  private readonly u32 = new Uint32Array(this.scratch);
  private readonly none = new Uint8Array(0);
  // Arbitration ids built once (the RTR flag goes apart, as CanFlag.RTR).
  private readonly requestIds: Uint32Array;
  private readonly temperatureIds: Uint32Array;
  private readonly commandIds: Uint32Array;
  /** Motor turns per output radian (the gear ratio folded in). */
  private readonly turnsPerRad: Float64Array;

  constructor(private readonly motors: readonly CanMotorSpec[]) {
    this.requestIds = Uint32Array.from(motors, (m) => arbitrationId(m.id, OdriveCmd.GET_ENCODER_ESTIMATES));
    this.temperatureIds = Uint32Array.from(motors, (m) => arbitrationId(m.id, OdriveCmdExtra.GET_TEMPERATURE));
    this.commandIds = Uint32Array.from(motors, (m) => arbitrationId(m.id, OdriveCmd.SET_INPUT_POS));
    this.turnsPerRad = Float64Array.from(motors, (m) => m.gearRatio / TWO_PI);
    motors.forEach((m, i) => {
      if (m.id > 0x3f) throw new Error(`ODrive node id ${m.id} is beyond 63`);
      this.byNode[m.id] = i;
    });
    this.filters = motors.map((m) => ({ id: m.id << 5, mask: 0x7e0 }));
    this.enabled = new Uint8Array(motors.length);
    this.sinceEnable = new Uint32Array(motors.length);
  }

  enable(i: number, position: number, send: Send): void {
    const m = this.motors[i]!;
    const f = this.frame;
    send(arbitrationId(m.id, OdriveCmd.CLEAR_ERRORS), this.none, 0, 0);
    send(arbitrationId(m.id, OdriveCmdExtra.SET_LIMITS), f, setLimits((m.maxVelocity * m.gearRatio) / TWO_PI, m.effortLimit, f), 0);
    send(arbitrationId(m.id, OdriveCmd.SET_CONTROLLER_MODE), f, setControllerMode(ControlMode.POSITION_CONTROL, InputMode.PASSTHROUGH, f), 0);
    send(arbitrationId(m.id, OdriveCmd.SET_INPUT_POS), f, setInputPos(position * this.turnsPerRad[i]!, 0, 0, f), 0);
    send(arbitrationId(m.id, OdriveCmd.SET_AXIS_STATE), f, setAxisState(AxisState.CLOSED_LOOP_CONTROL, f), 0);
    this.enabled[i] = 1;
    this.sinceEnable[i] = 0;
  }

  request(i: number, send: Send): void {
    this.sinceEnable[i]!++;
    send(this.requestIds[i]!, this.none, 0, CanFlag.RTR);
  }

  /** The drive enforces its own current limit (set at enable). */
  command(i: number, target: Float64Array, _measured: Float64Array, send: Send): void {
    if (this.enabled[i] === 0) return;
    send(this.commandIds[i]!, this.frame, setInputPos(target[i]! * this.turnsPerRad[i]!, 0, 0, this.frame), 0);
  }

  disable(i: number, send: Send): void {
    this.enabled[i] = 0;
    send(arbitrationId(this.motors[i]!.id, OdriveCmd.SET_AXIS_STATE), this.frame, setAxisState(AxisState.IDLE, this.frame), 0);
  }

  /** One motor's temperature per tick, round robin. */
  extra(tick: number, send: Send): void {
    send(this.temperatureIds[tick % this.motors.length]!, this.none, 0, CanFlag.RTR);
  }

  accept(id: number, data: Uint8Array, length: number, flags: number, s: CanMotorState): number {
    if (flags !== 0 || id > 0x7ff) return -1;
    const i = this.byNode[(id >> 5) & 0x3f]!;
    if (i < 0) return -1;
    const b = this.bytes;
    for (let k = 0; k < 8; k++) b[k] = k < length ? data[k]! : 0;
    switch (id & 0x1f) {
      case OdriveCmd.GET_ENCODER_ESTIMATES:
        if (length !== 8) return -1;
        s.position[i] = this.f32[0]! / this.turnsPerRad[i]!;
        s.velocity[i] = this.f32[1]! / this.turnsPerRad[i]!;
        return i;
      case OdriveCmd.HEARTBEAT:
        if (length < 7) return -1;
        s.motorError[i] = this.u32[0]!;
        // Closed loop is asked for at enable; the heartbeat after that must show it.
        s.disarmed[i] = this.enabled[i] === 1 && this.sinceEnable[i]! > 25 && b[4] !== AxisState.CLOSED_LOOP_CONTROL ? 1 : 0;
        return -1;
      case OdriveCmdExtra.GET_TEMPERATURE: {
        if (length !== 8) return -1;
        const fet = this.f32[0]!;
        const motor = this.f32[1]!;
        s.temperature[i] = Number.isFinite(motor) && motor > fet ? motor : fet;
        return -1;
      }
      default:
        return -1;
    }
  }

  describe(i: number, s: CanMotorState): string {
    const e = s.motorError[i]!;
    if (e === 0) return s.disarmed[i] ? 'axis left closed-loop control' : 'no error';
    const names: string[] = [];
    if (e & 0x40) names.push('MOTOR_FAILED');
    if (e & 0x800) names.push('WATCHDOG_TIMER_EXPIRED');
    return `axis error 0x${e.toString(16)}${names.length ? ` (${names.join(', ')})` : ''}`;
  }
}

export function protocolFor(motors: readonly CanMotorSpec[]): CanProtocol {
  if (motors.every((m) => m.model.toLowerCase().startsWith('odrive'))) return new OdriveProtocol(motors);
  return new MitProtocol(motors);
}
