// A simulated Dynamixel bus: N servos behind a pseudo-terminal, answering Protocol 2.0 with
// real bytes. reflex's driver (or ROBOTIS's SDK) opens the pty's path as it would a U2D2.
import { ReadStream } from 'node:tty';
import { closeSync, symlinkSync, unlinkSync, mkdirSync, lstatSync } from 'node:fs';
import { dirname } from 'node:path';
import { BAUD_CODES, BROADCAST_ID, FAST_SYNC_READ_MIN_FIRMWARE, Instruction, PacketParser, build, crc16, encodePacket, maxPacketBytes, baudCode, modelByName, type ServoModel } from '../hardware/dynamixel/index.js';
import { monoMs, openPty, ptyBaud } from '../rt/index.js';
import { ERR, SimServo } from './servo.js';

export interface SimBusFaults {
  /** Probability that a servo's reply is dropped. */
  dropRate: number;
  /** Probability that a reply gets one byte flipped. */
  corruptRate: number;
  /** Extra delay before replies, ms (a slow or overloaded bus). */
  lateMs: number;
  /** Drop every reply (a dead bus or an unplugged cable). */
  silent: boolean;
}

export interface SimServoSpec {
  id: number;
  model?: string;
  firmware?: number;
  /** Starting position in ticks. */
  ticks?: number;
}

export interface SimBusOptions {
  servos: readonly SimServoSpec[];
  /** Baud rate the servos start at; the pty ignores it, the servos' Baud Rate register holds it. */
  baud?: number;
  /** Also make a symlink here to the pty (a stable path for configs). */
  link?: string;
  /** Seed of the fault-injection randomness, so failures reproduce. */
  seed?: number;
}

export class SimDynamixelBus {
  readonly servos: SimServo[];
  readonly path: string;
  readonly faults: SimBusFaults = { dropRate: 0, corruptRate: 0, lateMs: 0, silent: false };
  readonly parser = new PacketParser(8192);
  /** Packets answered, for tests. */
  instructions = 0;
  private readonly stream: ReadStream;
  private readonly slaveFd: number;
  private readonly masterFd: number;
  /** Servos listening at the baud rate the host set: the others hear only noise. */
  private active: SimServo[] = [];
  private readonly link: string | null;
  private physics: NodeJS.Timeout;
  private rand: () => number;
  private closed = false;

  constructor(opts: SimBusOptions) {
    const now = monoMs();
    const code = baudCode(opts.baud ?? 1_000_000) ?? 3;
    this.servos = opts.servos.map((s) => {
      const model: ServoModel | undefined = modelByName(s.model ?? 'xm430-w350');
      if (!model) throw new Error(`unknown servo model ${s.model}`);
      return new SimServo(s.id, model, s.firmware ?? 48, code, now, s.ticks ?? 2048);
    });
    const pty = openPty();
    this.path = pty.path;
    this.slaveFd = pty.slave;
    this.masterFd = pty.master;
    this.stream = new ReadStream(pty.master);
    this.stream.on('data', (chunk: Buffer) => this.receive(chunk));
    this.stream.on('error', () => undefined);
    this.link = opts.link ?? null;
    if (this.link !== null) {
      mkdirSync(dirname(this.link), { recursive: true });
      try {
        if (lstatSync(this.link).isSymbolicLink()) unlinkSync(this.link);
      } catch {
        // no old link
      }
      symlinkSync(this.path, this.link);
    }
    let s = (opts.seed ?? 1) >>> 0;
    this.rand = () => {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      return s / 4294967296;
    };
    // Physics runs on its own so that servos move (and watchdogs expire) between packets too.
    this.physics = setInterval(() => this.step(), 5);
  }

  servo(id: number): SimServo {
    const s = this.servos.find((x) => x.id === id);
    if (!s) throw new Error(`no simulated servo ${id}`);
    return s;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.physics);
    this.stream.destroy();
    closeSync(this.slaveFd);
    if (this.link !== null) {
      try {
        unlinkSync(this.link);
      } catch {
        // already gone
      }
    }
  }

  private step(): void {
    const now = monoMs();
    for (const s of this.servos) s.update(now);
  }

  private receive(chunk: Buffer): void {
    const hostBaud = ptyBaud(this.masterFd);
    this.active = hostBaud === null ? this.servos : this.servos.filter((s) => BAUD_CODES[s.baudCode] === hostBaud);
    if (this.active.length === 0) return;
    this.parser.push(chunk);
    const replies: Buffer[] = [];
    while (this.parser.next()) {
      const p = this.parser.packet;
      if (p.instruction === Instruction.STATUS) continue; // another master's reply, not ours
      this.instructions++;
      this.step();
      this.handle(p.id, p.instruction, p.params.slice(), replies);
    }
    if (replies.length === 0 || this.faults.silent) return;
    const out = Buffer.concat(replies);
    const delayMs = this.faults.lateMs + Math.max(...this.active.map((s) => s.returnDelayUs)) / 1000;
    if (delayMs >= 1) setTimeout(() => this.send(out), delayMs);
    else this.send(out);
  }

  private send(out: Buffer): void {
    if (!this.closed) this.stream.write(out);
  }

  private addressed(id: number): SimServo[] {
    return id === BROADCAST_ID ? this.active : this.active.filter((s) => s.id === id);
  }

  private byId(id: number | undefined): SimServo | undefined {
    return this.active.find((s) => s.id === id);
  }

  private reply(s: SimServo, error: number, params: ArrayLike<number>, replies: Buffer[], always = false): void {
    const level = s.statusReturnLevel;
    if (!always && level === 0) return;
    if (this.rand() < this.faults.dropRate) return;
    const pkt = build.status(s.id, error | s.alertBit, params);
    if (this.rand() < this.faults.corruptRate) pkt[Math.floor(this.rand() * pkt.length)]! ^= 0x20;
    replies.push(pkt);
  }

  private handle(id: number, inst: number, p: Uint8Array, replies: Buffer[]): void {
    const now = monoMs();
    const targets = this.addressed(id);
    for (const s of targets) s.touch(now);
    const unicast = id !== BROADCAST_ID;
    const u16 = (i: number) => p[i]! | (p[i + 1]! << 8);
    switch (inst) {
      case Instruction.PING:
        for (const s of targets) this.reply(s, 0, [s.model.number & 0xff, s.model.number >> 8, s.firmware], replies, true);
        return;
      case Instruction.READ: {
        if (!unicast || p.length !== 4) return;
        for (const s of targets) {
          if (s.statusReturnLevel < 1) continue;
          const r = s.read(u16(0), u16(2));
          if (typeof r === 'number') this.reply(s, r, [], replies);
          else this.reply(s, 0, r, replies);
        }
        return;
      }
      case Instruction.WRITE:
      case Instruction.REG_WRITE:
        if (p.length < 3) return;
        for (const s of targets) {
          const data = p.subarray(2);
          const err = inst === Instruction.WRITE ? s.write(u16(0), data) : s.regWrite(u16(0), data);
          if (unicast && s.statusReturnLevel >= 2) this.reply(s, err, [], replies);
        }
        return;
      case Instruction.ACTION:
        for (const s of targets) {
          const err = s.action();
          if (unicast && s.statusReturnLevel >= 2) this.reply(s, err, [], replies);
        }
        return;
      case Instruction.FACTORY_RESET:
        for (const s of targets) {
          if (s.torqueOn) {
            if (unicast) this.reply(s, ERR.ACCESS, [], replies);
            continue;
          }
          s.factoryDefaults(p[0] ?? 0xff);
          if (unicast) this.reply(s, 0, [], replies);
        }
        return;
      case Instruction.REBOOT:
        for (const s of targets) {
          s.reboot(now);
          if (unicast) this.reply(s, 0, [], replies);
        }
        return;
      case Instruction.CLEAR:
        for (const s of targets) if (unicast) this.reply(s, s.mem[122] ? ERR.RESULT_FAIL : 0, [], replies);
        return;
      case Instruction.SYNC_READ:
      case Instruction.FAST_SYNC_READ: {
        if (id !== BROADCAST_ID || p.length < 5) return;
        const address = u16(0);
        const length = u16(2);
        const order = [...p.subarray(4)].map((i) => this.byId(i)).filter((s): s is SimServo => s !== undefined);
        for (const s of order) s.touch(now);
        if (inst === Instruction.SYNC_READ) {
          for (const s of order) {
            const r = s.read(address, length);
            this.reply(s, typeof r === 'number' ? r : 0, typeof r === 'number' ? [] : r, replies);
          }
        } else {
          this.fastSyncReply(order, address, length, replies);
        }
        return;
      }
      case Instruction.SYNC_WRITE: {
        if (p.length < 4) return;
        const address = u16(0);
        const length = u16(2);
        for (let i = 4; i + 1 + length <= p.length; i += 1 + length) {
          const s = this.byId(p[i]);
          if (!s) continue;
          s.touch(now);
          s.write(address, p.subarray(i + 1, i + 1 + length));
        }
        return;
      }
      case Instruction.BULK_READ:
        for (let i = 0; i + 5 <= p.length; i += 5) {
          const s = this.byId(p[i]);
          if (!s) continue;
          s.touch(now);
          const r = s.read(u16(i + 1), u16(i + 3));
          this.reply(s, typeof r === 'number' ? r : 0, typeof r === 'number' ? [] : r, replies);
        }
        return;
      case Instruction.BULK_WRITE:
        for (let i = 0; i + 5 <= p.length; ) {
          const length = u16(i + 3);
          const s = this.byId(p[i]);
          if (s) {
            s.touch(now);
            s.write(u16(i + 1), p.subarray(i + 5, i + 5 + length));
          }
          i += 5 + length;
        }
        return;
      default:
        for (const s of targets) if (unicast) this.reply(s, ERR.INSTRUCTION, [], replies);
    }
  }

  /**
   * Fast Sync Read: every servo appends its block (error, id, data, CRC so far) to one status
   * packet with id 0xFE; the last block's CRC is the packet's CRC.
   */
  private fastSyncReply(order: SimServo[], address: number, length: number, replies: Buffer[]): void {
    if (order.some((s) => s.firmware < FAST_SYNC_READ_MIN_FIRMWARE)) {
      for (const s of order) this.reply(s, ERR.INSTRUCTION, [], replies);
      return;
    }
    const live = order.filter(() => this.rand() >= this.faults.dropRate);
    if (live.length === 0) return;
    // Parameters after the first error byte: [id data crc] [err id data crc] ... with the
    // placeholders for intermediate CRCs filled once the packet is laid out.
    const params: number[] = [];
    const crcSlots: number[] = [];
    live.forEach((s, k) => {
      const r = s.read(address, length);
      const data = typeof r === 'number' ? new Uint8Array(length) : r;
      if (k > 0) params.push((typeof r === 'number' ? r : 0) | s.alertBit);
      params.push(s.id, ...data);
      if (k < live.length - 1) {
        crcSlots.push(params.length);
        params.push(0, 0);
      }
    });
    const first = live[0]!;
    const r0 = first.read(address, length);
    const error0 = (typeof r0 === 'number' ? r0 : 0) | first.alertBit;
    const body = Uint8Array.from([error0, ...params]);
    const out = Buffer.alloc(maxPacketBytes(body.length));
    const n = encodePacket(out, BROADCAST_ID, Instruction.STATUS, body, body.length);
    // Intermediate CRCs cover the packet up to their block. Stuffing would shift the offsets;
    // it is rare here, and without the intermediate values the packet CRC still holds.
    if (n === 10 + body.length) {
      for (const slot of crcSlots) {
        const at = 9 + slot;
        const c = crc16(out, 0, at);
        out[at] = c & 0xff;
        out[at + 1] = c >> 8;
      }
      const c = crc16(out, 0, n - 2);
      out[n - 2] = c & 0xff;
      out[n - 1] = c >> 8;
    }
    let pkt = out.subarray(0, n);
    if (this.rand() < this.faults.corruptRate) {
      pkt = Buffer.from(pkt);
      pkt[Math.floor(this.rand() * n)]! ^= 0x20;
    }
    replies.push(pkt);
  }
}
