// The per-tick exchange of one bus: one Sync Read (Fast Sync Read where every servo's firmware
// has it) of present current, velocity, position, voltage, temperature and hardware error
// through indirect addresses, then one Sync Write of the goal positions. It runs in the
// control thread, synchronously: the request goes out and the thread waits for the replies
// with a deadline computed from the bytes on the wire. Everything is allocated at
// construction; a tick allocates nothing.
import { ReflexError } from '../../core/index.js';
import { monoMs } from '../../rt/index.js';
import { ErrorBudget } from '../error-budget.js';
import { timeoutUs, type BusTiming } from './bus.js';
import { encodePacket, maxPacketBytes } from './encode.js';
import { PacketParser, type ParsedPacket } from './parser.js';
import { BROADCAST_ID, Instruction } from './protocol.js';
import type { TickIo } from './serial.js';
import { FAST_SYNC_READ_MIN_FIRMWARE, INDIRECT, type ServoModel } from './tables.js';
import { CENTER_TICKS, RAD_PER_TICK, RAD_S_PER_UNIT, currentToAmps } from './units.js';

/** The registers read each tick, in order, mapped onto Indirect Data 1.. (see mapTickRead). */
export const TICK_READ = [
  { name: 'presentCurrent', address: 126, size: 2 },
  { name: 'presentVelocity', address: 128, size: 4 },
  { name: 'presentPosition', address: 132, size: 4 },
  { name: 'presentInputVoltage', address: 144, size: 2 },
  { name: 'presentTemperature', address: 146, size: 1 },
  { name: 'hardwareErrorStatus', address: 70, size: 1 },
] as const;
export const TICK_READ_BYTES = TICK_READ.reduce((n, f) => n + f.size, 0);
const GOAL_POSITION = 116;
/** How long to wait for the tail of a reply once the expected byte count has arrived. */
const FOLLOW_UP_US = 1000;

export interface GroupServo {
  id: number;
  model: ServoModel;
  firmware: number;
}

export interface GroupOptions {
  /** Retries of a failed read within the same tick. */
  retries: number;
  /** How long reads may keep failing before the bus faults, ms. */
  errorBudgetMs: number;
  /** Use Fast Sync Read when every servo's firmware has it. */
  allowFast: boolean;
}

/** Per-servo state after the last read, in SI units (motor frame: 0 rad = position 2048). */
export class GroupState {
  readonly position: Float64Array;
  readonly velocity: Float64Array;
  /** Amperes; NaN on models that sense load instead of current. */
  readonly current: Float64Array;
  readonly voltage: Float64Array;
  readonly temperature: Float64Array;
  readonly hardwareError: Uint8Array;
  /** The status packet's alert bit was set: read Hardware Error Status for the cause. */
  readonly alert: Uint8Array;
  /** 1 where the last read got a fresh value. */
  readonly fresh: Uint8Array;
  readonly rawPosition: Int32Array;

  constructor(n: number) {
    this.position = new Float64Array(n);
    this.velocity = new Float64Array(n);
    this.current = new Float64Array(n);
    this.voltage = new Float64Array(n);
    this.temperature = new Float64Array(n);
    this.hardwareError = new Uint8Array(n);
    this.alert = new Uint8Array(n);
    this.fresh = new Uint8Array(n);
    this.rawPosition = new Int32Array(n);
  }
}

export interface GroupStats {
  reads: number;
  failedReads: number;
  retries: number;
  missingReplies: number;
  deviceErrors: number;
}

export class SyncGroup {
  readonly state: GroupState;
  readonly stats: GroupStats = { reads: 0, failedReads: 0, retries: 0, missingReplies: 0, deviceErrors: 0 };
  readonly fast: boolean;
  /** Set when reads have failed for longer than the error budget; cleared only by reset(). */
  fault: string | null = null;
  readonly ids: readonly number[];
  private readonly index = new Int16Array(256).fill(-1);
  private readonly parser = new PacketParser(8192);
  private readonly rx = new Uint8Array(4096);
  private readonly readTx: Uint8Array;
  private readonly readTxLen: number;
  private readonly replyBytes: number;
  private readonly readTimeoutUs: number;
  private readonly writeParams: Uint8Array;
  private readonly writeTx: Uint8Array;
  /** Servos that replied this read (with data or with an error). */
  private replied = 0;
  private received = 0;
  private readonly seen: Uint8Array;
  private readonly budget: ErrorBudget;
  /** Per servo: amperes per current unit (NaN where the model senses none). */
  private readonly ampsPerUnit: Float64Array;
  private dirty = false;

  constructor(
    private readonly io: TickIo,
    private readonly servos: readonly GroupServo[],
    private readonly opts: GroupOptions,
    timing: BusTiming,
    private readonly label = 'bus',
  ) {
    const n = servos.length;
    this.budget = new ErrorBudget(opts.errorBudgetMs);
    this.ampsPerUnit = Float64Array.from(servos, (sv) => currentToAmps(1, sv.model));
    this.state = new GroupState(n);
    this.seen = new Uint8Array(n);
    this.ids = servos.map((s) => s.id);
    servos.forEach((s, i) => (this.index[s.id] = i));
    this.fast = opts.allowFast && servos.every((s) => s.firmware >= FAST_SYNC_READ_MIN_FIRMWARE);

    const readParams = new Uint8Array(4 + n);
    readParams.set([INDIRECT.dataBase & 0xff, INDIRECT.dataBase >> 8, TICK_READ_BYTES, 0], 0);
    readParams.set(this.ids, 4);
    this.readTx = new Uint8Array(maxPacketBytes(readParams.length));
    this.readTxLen = encodePacket(this.readTx, BROADCAST_ID, this.fast ? Instruction.FAST_SYNC_READ : Instruction.SYNC_READ, readParams, readParams.length);
    this.replyBytes = this.fast ? 8 + n * (TICK_READ_BYTES + 4) : n * (11 + TICK_READ_BYTES);
    this.readTimeoutUs = Math.round(timeoutUs(this.readTxLen, this.replyBytes, n, timing));

    this.writeParams = new Uint8Array(4 + n * 5);
    this.writeParams.set([GOAL_POSITION, 0, 4, 0], 0);
    for (let i = 0; i < n; i++) this.writeParams[4 + i * 5] = this.ids[i]!;
    this.writeTx = new Uint8Array(maxPacketBytes(this.writeParams.length));
  }

  get size(): number {
    return this.servos.length;
  }

  /** Bytes that one read puts on the wire, request and replies. */
  get readWireBytes(): number {
    return this.readTxLen + this.replyBytes;
  }

  /** Reads every servo once, retrying within the tick; true when all answered. Throws BUS_FAULT past the error budget. */
  read(): boolean {
    if (this.fault !== null) throw new ReflexError('BUS_FAULT', this.fault);
    this.stats.reads++;
    this.state.fresh.fill(0);
    this.received = 0;
    let ok = false;
    for (let attempt = 0; attempt <= this.opts.retries && !ok; attempt++) {
      if (attempt > 0) this.stats.retries++;
      this.exchange();
      ok = this.received === this.servos.length;
    }
    if (ok) {
      this.budget.record(true, 0);
      return true;
    }
    this.stats.failedReads++;
    this.stats.missingReplies += this.servos.length - this.received;
    const failing = this.budget.record(false, monoMs());
    if (failing >= 0) {
      this.fault = `${this.label}: reads failing for ${Math.round(failing)} ms (budget ${this.opts.errorBudgetMs} ms); missing ${this.missingIds()}`;
      throw new ReflexError('BUS_FAULT', this.fault);
    }
    return false;
  }

  /** One request and its replies, within the read timeout. */
  private exchange(): void {
    if (this.dirty) {
      // Replies that came after the last timeout belong to it, not to this request.
      this.io.discardInput();
      this.parser.discard();
      this.dirty = false;
    }
    this.seen.set(this.state.fresh);
    this.replied = this.received;
    this.io.write(this.readTx, this.readTxLen);
    // Wait for exactly the bytes all replies take. Byte stuffing can make them longer; then
    // the rest comes right behind, so the follow-up reads wait only briefly.
    let n = this.io.read(this.rx, 0, this.replyBytes, this.readTimeoutUs);
    this.take_(n);
    while (this.replied < this.servos.length && n > 0) {
      n = this.io.read(this.rx, 0, 1, FOLLOW_UP_US);
      this.take_(n);
    }
    if (this.replied < this.servos.length) this.dirty = true;
  }

  private take_(n: number): void {
    if (n <= 0) return;
    this.parser.push(this.rx, 0, n);
    while (this.parser.next()) this.accept(this.parser.packet);
  }

  /** Writes goal positions (raw ticks, one per servo in group order) in one Sync Write. */
  writeGoals(goalTicks: Int32Array): void {
    if (this.fault !== null) throw new ReflexError('BUS_FAULT', this.fault);
    const p = this.writeParams;
    for (let i = 0; i < this.servos.length; i++) {
      const o = 4 + i * 5;
      const v = goalTicks[i]!;
      p[o + 1] = v & 0xff;
      p[o + 2] = (v >> 8) & 0xff;
      p[o + 3] = (v >> 16) & 0xff;
      p[o + 4] = (v >> 24) & 0xff;
    }
    const len = encodePacket(this.writeTx, BROADCAST_ID, Instruction.SYNC_WRITE, p, p.length);
    this.io.write(this.writeTx, len);
  }

  /** Clears a latched fault (an explicit reset, after the cause is fixed). */
  reset(): void {
    this.fault = null;
    this.budget.reset();
  }

  missingIds(): string {
    const out: number[] = [];
    for (let i = 0; i < this.servos.length; i++) if (this.state.fresh[i] === 0) out.push(this.ids[i]!);
    return out.join(', ');
  }

  private accept(p: ParsedPacket): void {
    if (p.instruction !== Instruction.STATUS) return;
    if (this.fast && p.id === BROADCAST_ID) {
      this.acceptFast(p);
      return;
    }
    this.take(p.id, p.error, p.data, p.length, 0);
  }

  private acceptFast(p: ParsedPacket): void {
    const L = TICK_READ_BYTES;
    const params = p.data;
    const blocks = (p.length + 3) / (L + 4);
    if (!Number.isInteger(blocks)) return;
    let off = 0;
    for (let k = 0; k < blocks; k++) {
      const error = k === 0 ? p.error : params[off++]!;
      const id = params[off++]!;
      this.take(id, error, params, p.length, off);
      off += L + (k < blocks - 1 ? 2 : 0);
    }
  }

  private take(id: number, error: number, b: Uint8Array, length: number, at: number): void {
    const i = this.index[id]!;
    if (i < 0 || this.seen[i] === 1) return;
    this.seen[i] = 1;
    this.replied++;
    const s = this.state;
    s.alert[i] = (error & 0x80) !== 0 ? 1 : 0;
    if ((error & 0x7f) !== 0 || length - at < TICK_READ_BYTES) {
      this.stats.deviceErrors++;
      return;
    }
    const cur = (b[at]! | (b[at + 1]! << 8)) << 16 >> 16;
    const vel = b[at + 2]! | (b[at + 3]! << 8) | (b[at + 4]! << 16) | (b[at + 5]! << 24);
    const pos = b[at + 6]! | (b[at + 7]! << 8) | (b[at + 8]! << 16) | (b[at + 9]! << 24);
    s.rawPosition[i] = pos;
    // Unit conversions by precomputed factors, not calls: a call left un-inlined returns its
    // double boxed, an allocation per servo per tick (see units.ts for the definitions).
    s.position[i] = (pos - CENTER_TICKS) * RAD_PER_TICK;
    s.velocity[i] = vel * RAD_S_PER_UNIT;
    s.current[i] = cur * this.ampsPerUnit[i]!;
    s.voltage[i] = (b[at + 10]! | (b[at + 11]! << 8)) / 10;
    s.temperature[i] = b[at + 12]!;
    s.hardwareError[i] = b[at + 13]!;
    s.fresh[i] = 1;
    this.received++;
  }
}
