// Simulated CAN motors on the virtual bus, answering in their vendors' protocols: MIT-mode
// (CubeMars AK, Damiao DM-J) and ODrive CANSimple. First-order dynamics toward the commanded
// position while under control; the motor-side timeouts (Damiao's CAN timeout, ODrive's axis
// watchdog); and fault injection: silence, error codes, over-temperature.
import {
  AxisState, CanFlag, MIT_ENTER, OdriveAxisError, OdriveCmd, OdriveCmdExtra, VirtualCanHub,
  decodeMitCommand, encodeMitReply, mitModel, mitSpecial,
  type MitCommand, type MitDialect, type MitRanges, type MitReply,
} from '../hardware/can/index.js';
import { monoMs } from '../rt/index.js';

export interface SimCanFaults {
  /** The motor answers nothing. */
  silent: boolean;
  /** Its own error report: CubeMars error byte, Damiao status nibble (8..14), ODrive axis error. */
  error: number;
  /** Reported temperature, when injected. */
  temperatureC: number | null;
}

export interface SimCanMotorSpec {
  id: number;
  model: string;
  /** Starting position, rad. */
  position?: number;
  /** Time constant of the position response, ms. */
  tauMs?: number;
  /** Motor-side timeout: no command for this long and it stops holding (0: none). */
  timeoutMs?: number;
}

export interface SimCanMotor {
  readonly id: number;
  readonly model: string;
  readonly position: number;
  readonly enabled: boolean;
  readonly faults: SimCanFaults;
  /** Frames the motor has been sent, by kind. */
  readonly counts: Record<string, number>;
  advance(now: number): void;
  close(): void;
}

type Bus = ReturnType<VirtualCanHub['listen']>;

const noFaults = (): SimCanFaults => ({ silent: false, error: 0, temperatureC: null });

/** Until when a motor commanded last at `lastMs` holds: now, or when its own timeout ran out. */
function controlledUntil(spec: SimCanMotorSpec, lastMs: number, now: number): number {
  const timeout = spec.timeoutMs ?? 0;
  return timeout > 0 && now - lastMs > timeout ? lastMs + timeout : now;
}

/** The first-order response: where `pos` gets to in `dt` seconds heading for `target`. */
function approach(pos: number, target: number, dt: number, spec: SimCanMotorSpec): number {
  return pos + (target - pos) * (1 - Math.exp(-dt / ((spec.tauMs ?? 60) / 1000)));
}

export class SimMitMotor implements SimCanMotor {
  position: number;
  velocity = 0;
  torque = 0;
  enabled = false;
  readonly faults = noFaults();
  readonly counts: Record<string, number> = { enter: 0, exit: 0, zero: 0, command: 0 };
  readonly dialect: MitDialect;
  private readonly ranges: MitRanges;
  private readonly cmd: MitCommand = { p: 0, v: 0, kp: 0, kd: 0, t: 0 };
  private readonly reply: MitReply = { id: 0, p: 0, v: 0, t: 0, temperature: 30, error: 0 };
  private readonly out = new Uint8Array(8);
  private readonly bus: Bus;
  private lastMs = monoMs();
  private lastCmdMs = monoMs();

  constructor(
    hub: VirtualCanHub,
    private readonly spec: SimCanMotorSpec,
    /** Where replies go (the host's master id). */
    private readonly masterId = 0,
  ) {
    const m = mitModel(spec.model);
    if (m === null) throw new Error(`not an MIT-mode model: ${spec.model}`);
    this.ranges = m.ranges;
    this.dialect = m.dialect;
    this.position = spec.position ?? 0;
    this.bus = hub.listen((id, data, len, flags) => this.onFrame(id, data, len, flags));
  }

  get id(): number {
    return this.spec.id;
  }
  get model(): string {
    return this.spec.model;
  }

  advance(now: number): void {
    const until = this.enabled ? controlledUntil(this.spec, this.lastCmdMs, now) : now;
    const expired = until < now;
    const dt = (until - this.lastMs) / 1000;
    if (dt > 0 && this.enabled && this.cmd.kp > 0) {
      const next = approach(this.position, this.cmd.p, dt, this.spec);
      this.velocity = (next - this.position) / dt;
      this.position = next;
      const t = this.cmd.kp * (this.cmd.p - this.position) - this.cmd.kd * this.velocity + this.cmd.t;
      this.torque = Math.max(-this.ranges.t, Math.min(this.ranges.t, t));
    } else if (!this.enabled || this.cmd.kp === 0) {
      this.velocity = 0;
      this.torque = 0;
    }
    if (expired) this.enabled = false; // Damiao's CAN timeout: it stops holding by itself
    this.lastMs = Math.max(this.lastMs, now);
  }

  /** A fault of the motor's own makes it leave motor mode, as the firmware does. */
  inject(f: Partial<SimCanFaults>): void {
    Object.assign(this.faults, f);
    if (this.faults.error !== 0) this.enabled = false;
  }

  clear(): void {
    Object.assign(this.faults, noFaults());
  }

  close(): void {
    this.bus.close();
  }

  private onFrame(id: number, data: Uint8Array, len: number, flags: number): void {
    if (flags !== 0 || id !== this.spec.id || len !== 8) return;
    const now = monoMs();
    this.advance(now);
    const special = mitSpecial(data, len);
    if (special === MIT_ENTER[7]) {
      this.counts.enter!++;
      if (this.faults.error === 0) this.enabled = true;
      this.cmd.kp = 0;
      this.cmd.kd = 0;
      this.cmd.t = 0;
      this.lastCmdMs = now;
    } else if (special === 0xfd) {
      this.counts.exit!++;
      this.enabled = false;
    } else if (special === 0xfe) {
      this.counts.zero!++;
      this.position = 0;
    } else {
      this.counts.command!++;
      decodeMitCommand(data, this.ranges, this.cmd);
      this.lastCmdMs = now;
    }
    this.respond();
  }

  private respond(): void {
    if (this.faults.silent) return;
    const r = this.reply;
    r.id = this.spec.id;
    r.p = this.position;
    r.v = this.velocity;
    r.t = this.torque;
    r.temperature = this.faults.temperatureC ?? 30 + Math.abs(this.torque);
    r.error = this.faults.error !== 0 ? this.faults.error : this.dialect === 'damiao' && this.enabled ? 1 : 0;
    encodeMitReply(r, this.ranges, this.dialect, this.out);
    this.bus.send(this.masterId, this.out, 8);
  }
}

const TWO_PI = 2 * Math.PI;

export class SimOdriveMotor implements SimCanMotor {
  /** Turns, as the drive counts. */
  pos: number;
  vel = 0;
  axisState: number = AxisState.IDLE;
  axisError = 0;
  inputPos: number;
  readonly limits = { vel: Infinity, current: Infinity };
  readonly faults = noFaults();
  readonly counts: Record<string, number> = { inputPos: 0, axisState: 0, estimates: 0, clear: 0 };
  private readonly bus: Bus;
  private readonly buf = new ArrayBuffer(8);
  private readonly bytes = new Uint8Array(this.buf);
  private readonly view = new DataView(this.buf);
  private lastMs = monoMs();
  private lastFeedMs = monoMs();
  private heartbeat: NodeJS.Timeout | null = null;

  constructor(
    hub: VirtualCanHub,
    private readonly spec: SimCanMotorSpec,
  ) {
    this.pos = (spec.position ?? 0) / TWO_PI;
    this.inputPos = this.pos;
    this.bus = hub.listen((id, data, len, flags) => this.onFrame(id, data, len, flags));
  }

  get id(): number {
    return this.spec.id;
  }
  get model(): string {
    return this.spec.model;
  }
  get position(): number {
    return this.pos * TWO_PI;
  }
  get enabled(): boolean {
    return this.axisState === AxisState.CLOSED_LOOP_CONTROL;
  }

  /** Heartbeats every `ms`, as the drive sends them (axis.config.can.heartbeat_rate_ms). */
  startHeartbeat(ms = 100): void {
    this.heartbeat = setInterval(() => this.sendHeartbeat(), ms);
    this.heartbeat.unref();
  }

  advance(now: number): void {
    const until = this.enabled ? controlledUntil(this.spec, this.lastFeedMs, now) : now;
    const expired = until < now;
    const dt = (until - this.lastMs) / 1000;
    if (dt > 0 && this.enabled) {
      const next = approach(this.pos, this.inputPos, dt, this.spec);
      this.vel = (next - this.pos) / dt;
      this.pos = next;
    } else if (!this.enabled) this.vel = 0;
    if (expired) {
      // The axis watchdog: no feed for its timeout and the axis disarms.
      this.axisState = AxisState.IDLE;
      this.axisError |= OdriveAxisError.WATCHDOG_TIMER_EXPIRED;
    }
    this.lastMs = Math.max(this.lastMs, now);
  }

  inject(f: Partial<SimCanFaults>): void {
    Object.assign(this.faults, f);
    if (this.faults.error !== 0) {
      this.axisError |= this.faults.error;
      this.axisState = AxisState.IDLE;
    }
  }

  clear(): void {
    Object.assign(this.faults, noFaults());
  }

  close(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.bus.close();
  }

  sendHeartbeat(): void {
    this.advance(monoMs());
    if (this.faults.silent) return;
    this.bytes.fill(0);
    this.view.setUint32(0, this.axisError, true);
    this.bytes[4] = this.axisState;
    this.bus.send((this.spec.id << 5) | OdriveCmd.HEARTBEAT, this.bytes, 8);
  }

  private onFrame(id: number, data: Uint8Array, len: number, flags: number): void {
    if ((flags & CanFlag.EXTENDED) !== 0) return;
    if (((id >> 5) & 0x3f) !== this.spec.id) return;
    const now = monoMs();
    this.advance(now);
    const rtr = (flags & CanFlag.RTR) !== 0;
    for (let i = 0; i < 8; i++) this.bytes[i] = i < len ? data[i]! : 0;
    switch (id & 0x1f) {
      case OdriveCmd.SET_AXIS_STATE: {
        this.counts.axisState!++;
        const want = this.view.getUint32(0, true);
        if (want === AxisState.CLOSED_LOOP_CONTROL && this.axisError === 0) {
          this.axisState = want;
          this.lastFeedMs = now;
        } else if (want === AxisState.IDLE) this.axisState = want;
        break;
      }
      case OdriveCmd.SET_INPUT_POS:
        this.counts.inputPos!++;
        this.inputPos = this.view.getFloat32(0, true);
        this.lastFeedMs = now;
        break;
      case OdriveCmd.CLEAR_ERRORS:
        this.counts.clear!++;
        this.axisError = this.faults.error;
        break;
      case OdriveCmdExtra.SET_LIMITS:
        this.limits.vel = this.view.getFloat32(0, true);
        this.limits.current = this.view.getFloat32(4, true);
        break;
      case OdriveCmd.GET_ENCODER_ESTIMATES:
        if (!rtr) break;
        this.counts.estimates!++;
        this.view.setFloat32(0, this.pos, true);
        this.view.setFloat32(4, this.vel, true);
        this.answer(OdriveCmd.GET_ENCODER_ESTIMATES);
        break;
      case OdriveCmdExtra.GET_TEMPERATURE:
        if (!rtr) break;
        this.view.setFloat32(0, this.faults.temperatureC ?? 35, true);
        this.view.setFloat32(4, this.faults.temperatureC ?? 32, true);
        this.answer(OdriveCmdExtra.GET_TEMPERATURE);
        break;
    }
  }

  private answer(cmd: number): void {
    if (this.faults.silent) return;
    this.bus.send((this.spec.id << 5) | cmd, this.bytes, 8);
  }
}

/** The motor a model name calls for. */
export function simCanMotor(hub: VirtualCanHub, spec: SimCanMotorSpec): SimMitMotor | SimOdriveMotor {
  if (spec.model.toLowerCase().startsWith('odrive')) {
    const m = new SimOdriveMotor(hub, spec);
    m.startHeartbeat();
    return m;
  }
  return new SimMitMotor(hub, spec);
}
