// One simulated X-series servo: its control table memory with the real access rules, and
// first-order motion towards its goal. Used behind a pseudo-terminal by SimDynamixelBus.
import { type ControlTable, type Field, type ServoModel, INDIRECT, OperatingMode } from '../hardware/dynamixel/index.js';


/** Error numbers of the status packet (e-manual). */
export const ERR = { RESULT_FAIL: 1, INSTRUCTION: 2, CRC: 3, DATA_RANGE: 4, DATA_LENGTH: 5, DATA_LIMIT: 6, ACCESS: 7 } as const;

const MEMORY_BYTES = 700;
/** Second block of indirect addresses (29..56) on the X series. */
const INDIRECT2 = { addressBase: 578, dataBase: 634, count: 28 } as const;

export interface ServoFaults {
  /** Hardware Error Status bits to raise (e.g. 0x04 overheating); the alert bit follows. */
  hardwareError: number;
}

export class SimServo {
  readonly mem = new Uint8Array(MEMORY_BYTES);
  /** Position in ticks as a real number; the register holds it rounded. */
  private pos: number;
  private vel = 0;
  private lastUpdateMs: number;
  private lastCommMs: number;
  private registered: { address: number; data: Uint8Array } | null = null;
  /** Time constant of the position loop, seconds. */
  tau = 0.05;

  constructor(
    id: number,
    readonly model: ServoModel,
    readonly firmware: number,
    baudCode: number,
    nowMs: number,
    startTicks = 2048,
  ) {
    this.pos = startTicks;
    this.lastUpdateMs = nowMs;
    this.lastCommMs = nowMs;
    this.factoryDefaults(0xff, id, baudCode);
  }

  private get t(): ControlTable {
    return this.model.table;
  }

  get id(): number {
    return this.mem[7]!;
  }
  get baudCode(): number {
    return this.mem[8]!;
  }
  get returnDelayUs(): number {
    return this.mem[9]! * 2;
  }
  get statusReturnLevel(): number {
    return this.mem[68]!;
  }
  get torqueOn(): boolean {
    return this.mem[64] === 1;
  }
  get hardwareError(): number {
    return this.mem[70]!;
  }
  /** The error byte this servo puts in its status packets: the alert bit while a hardware error stands. */
  get alertBit(): number {
    return this.hardwareError !== 0 ? 0x80 : 0;
  }
  get positionTicks(): number {
    return this.pos;
  }

  factoryDefaults(mode: number, id = this.id, baudCode = this.baudCode): void {
    const keepId = mode === 0x01 || mode === 0x02;
    const keepBaud = mode === 0x02;
    const oldId = this.id;
    const oldBaud = this.baudCode;
    this.mem.fill(0);
    const t = this.t;
    this.set(t.modelNumber, this.model.number);
    this.set(t.firmwareVersion, this.firmware);
    this.set(t.id, keepId ? oldId : id);
    this.set(t.baudRate, keepBaud ? oldBaud : baudCode);
    this.set(t.returnDelayTime, 250);
    this.set(t.operatingMode, OperatingMode.POSITION);
    this.set(t.protocolType, 2);
    this.set(t.movingThreshold, 10);
    this.set(t.temperatureLimit, 80);
    this.set(t.maxVoltageLimit, 140);
    this.set(t.minVoltageLimit, 60);
    this.set(t.pwmLimit, 885);
    if (t.currentLimit) this.set(t.currentLimit, this.model.currentLimitMax);
    this.set(t.velocityLimit, 330);
    this.set(t.maxPositionLimit, 4095);
    this.set(t.minPositionLimit, 0);
    this.set(t.shutdown, 0x34);
    this.set(t.statusReturnLevel, 2);
    this.set(t.positionPGain, 800);
    this.set(t.presentInputVoltage, 120);
    this.set(t.presentTemperature, 34);
    this.set(t.goalPosition, Math.round(this.pos));
    for (let i = 0; i < INDIRECT.count; i++) this.set16(INDIRECT.addressBase + 2 * i, 224 + i);
    for (let i = 0; i < INDIRECT2.count; i++) this.set16(INDIRECT2.addressBase + 2 * i, 634 + i);
    this.refreshPresent();
  }

  private set(f: Field, v: number): void {
    writeLE(this.mem, f.address, f.size, v);
  }
  private set16(address: number, v: number): void {
    writeLE(this.mem, address, 2, v);
  }
  private get(f: Field): number {
    const raw = readLE(this.mem, f.address, f.size);
    return f.signed ? signedOf(raw, f.size) : raw;
  }

  /** Advances the motion to `nowMs` and runs the bus watchdog. */
  update(nowMs: number): void {
    const dt = Math.max(0, (nowMs - this.lastUpdateMs) / 1000);
    this.lastUpdateMs = nowMs;
    const wd = this.mem[98]!;
    if (wd > 0 && wd !== 0xff && nowMs - this.lastCommMs > wd * 20) {
      // Bus watchdog expired: stop where it is, and refuse goals until it is cleared.
      this.mem[98] = 0xff;
      this.set(this.t.goalPosition, Math.round(this.pos));
    }
    if (this.torqueOn && this.hardwareError === 0) {
      const goal = this.get(this.t.goalPosition);
      const maxVel = (this.get(this.t.velocityLimit) * 0.229 * 4096) / 60;
      const err = goal - this.pos;
      let v = err / this.tau;
      if (v > maxVel) v = maxVel;
      if (v < -maxVel) v = -maxVel;
      const step = v * dt;
      this.pos = Math.abs(step) >= Math.abs(err) ? goal : this.pos + step;
      this.vel = v;
    } else {
      this.vel = 0;
    }
    this.refreshPresent();
  }

  private refreshPresent(): void {
    const t = this.t;
    this.set(t.presentPosition, Math.round(this.pos));
    this.set(t.presentVelocity, Math.round((this.vel * 60) / (4096 * 0.229)));
    const goal = this.get(t.goalPosition);
    const current = this.torqueOn ? Math.max(-1000, Math.min(1000, Math.round((goal - this.pos) * 0.5))) : 0;
    this.set(t.presentCurrent, current);
    this.mem[122] = Math.abs(this.vel) > 1 ? 1 : 0;
  }

  /** Moves the output shaft from outside (a hand, a collision). */
  setPosition(ticks: number): void {
    this.pos = ticks;
    this.refreshPresent();
  }

  /** Any packet addressed to this servo feeds its bus watchdog. */
  touch(nowMs: number): void {
    this.lastCommMs = nowMs;
  }

  injectHardwareError(bits: number): void {
    this.mem[70] = bits;
    if (bits !== 0) this.mem[64] = 0; // the servo's shutdown turns torque off
  }

  /** Reads `length` bytes from `address`, following indirect data to the addresses it maps. */
  read(address: number, length: number): Uint8Array | number {
    if (address + length > MEMORY_BYTES || length === 0) return ERR.ACCESS;
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) out[i] = this.mem[this.resolve(address + i)]!;
    return out;
  }

  private resolve(address: number): number {
    for (const block of [INDIRECT, INDIRECT2]) {
      const k = address - block.dataBase;
      if (k >= 0 && k < block.count) return readLE(this.mem, block.addressBase + 2 * k, 2);
    }
    return address;
  }

  /** Writes with the real rules; returns an error number, 0 when written. */
  write(address: number, data: Uint8Array): number {
    if (address + data.length > MEMORY_BYTES) return ERR.ACCESS;
    const t = this.t;
    // Check every field the write touches before changing anything.
    for (let a = address; a < address + data.length; a++) {
      const target = this.resolve(a);
      const field = fieldAt(t, target);
      if (!field && !isIndirect(target)) return ERR.ACCESS;
      if (field) {
        if (field.access === 'R') return ERR.ACCESS;
        if (field.eeprom && this.torqueOn) return ERR.ACCESS;
        if (this.mem[98] === 0xff && field === t.goalPosition) return ERR.DATA_RANGE;
      }
    }
    for (const f of Object.values(t)) {
      if (f.access === 'R') continue;
      if (f.address >= address && f.address + f.size <= address + data.length) {
        const raw = readLE(data, f.address - address, f.size);
        const v = f.signed ? signedOf(raw, f.size) : raw;
        if (f === t.busWatchdog && v === 0) continue;
        if (v < f.min || v > f.max) return ERR.DATA_RANGE;
      } else if (f.address < address + data.length && f.address + f.size > address && !isIndirect(f.address)) {
        return ERR.DATA_LENGTH; // a multi-byte field written in part
      }
    }
    const wasTorque = this.torqueOn;
    for (let i = 0; i < data.length; i++) this.mem[this.resolve(address + i)] = data[i]!;
    if (!wasTorque && this.torqueOn && this.hardwareError !== 0) this.mem[64] = 0;
    return 0;
  }

  regWrite(address: number, data: Uint8Array): number {
    this.registered = { address, data: data.slice() };
    this.mem[69] = 1;
    return 0;
  }

  action(): number {
    if (this.registered === null) return ERR.INSTRUCTION;
    const r = this.write(this.registered.address, this.registered.data);
    this.registered = null;
    this.mem[69] = 0;
    return r;
  }

  reboot(nowMs: number): void {
    this.mem[70] = 0;
    this.mem[64] = 0;
    this.mem[98] = 0;
    this.lastCommMs = nowMs;
  }
}

function isIndirect(address: number): boolean {
  return (address >= 168 && address < 252) || (address >= 578 && address < 662);
}

function fieldAt(t: ControlTable, address: number): Field | undefined {
  for (const f of Object.values(t)) if (address >= f.address && address < f.address + f.size) return f;
  return undefined;
}

export function readLE(buf: Uint8Array, at: number, size: number): number {
  let v = 0;
  for (let i = size - 1; i >= 0; i--) v = v * 256 + buf[at + i]!;
  return v;
}

export function writeLE(buf: Uint8Array, at: number, size: number, value: number): void {
  let v = value < 0 ? value + 2 ** (8 * size) : value;
  for (let i = 0; i < size; i++) {
    buf[at + i] = v & 0xff;
    v = Math.floor(v / 256);
  }
}

function signedOf(raw: number, size: number): number {
  const half = 2 ** (8 * size - 1);
  return raw >= half ? raw - 2 * half : raw;
}
