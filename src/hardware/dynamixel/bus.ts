// A Dynamixel bus: one serial port, one transaction at a time, each bounded by a timeout
// computed from the bytes on the wire. Replies are matched by a small waiter (an
// Expectation), not by ad-hoc listeners.
import { ReflexError, errorMessage } from '../../core/index.js';
import { build } from './encode.js';
import { PacketParser, type ParsedPacket } from './parser.js';
import { BROADCAST_ID, Instruction, decodeStatusError } from './protocol.js';
import { tickIo, type SerialLink, type TickIo } from './serial.js';
import { monoMs } from '../../rt/index.js';
import { modelByNumber, type Field } from './tables.js';
import { signed } from './units.js';

/** What a transaction waits for. `accept` takes each packet that arrives; `done` ends the wait. */
export interface Expectation {
  accept(p: ParsedPacket): void;
  done(): boolean;
}

export interface BusTiming {
  baud: number;
  /** Allowance for the USB adapter's latency per transaction, ms (1 with low latency, 16 without). */
  usbLatencyMs: number;
  /** Allowance for scheduling on both ends, ms. */
  marginMs: number;
  /** Return Delay Time of the servos, microseconds (0 once set up). */
  returnDelayUs: number;
}

/** Extra patience for set-up transactions (ping, read, write), which are not in the tick. */
const SETUP_GRACE_MS = 20;

export const DEFAULT_TIMING: BusTiming = { baud: 1_000_000, usbLatencyMs: 1, marginMs: 3, returnDelayUs: 0 };

/** Microseconds that `bytes` take on the wire: 10 bits per byte (start, 8 data, stop). */
export function wireUs(bytes: number, baud: number): number {
  return (bytes * 10 * 1e6) / baud;
}

/** Timeout of a transaction of `txBytes` out and `rxBytes` back from `replies` devices, in microseconds. */
export function timeoutUs(txBytes: number, rxBytes: number, replies: number, t: BusTiming): number {
  return wireUs(txBytes + rxBytes, t.baud) + replies * t.returnDelayUs + (t.usbLatencyMs + t.marginMs) * 1000;
}

export interface PingResult {
  id: number;
  modelNumber: number;
  modelName: string | null;
  firmware: number;
}

export interface BusStats {
  transactions: number;
  timeouts: number;
  strayPackets: number;
  deviceErrors: number;
}

/**
 * Collects status packets. A reply of the wrong size is not ours (a late reply to an earlier,
 * timed-out request, say) and is ignored; error replies carry no parameters and are kept.
 */
class Collector implements Expectation {
  readonly packets: { id: number; error: number; params: Uint8Array }[] = [];
  constructor(
    private readonly want: number,
    private readonly fromId: number | null,
    private readonly paramLength: number,
  ) {}
  accept(p: ParsedPacket): void {
    if (p.instruction !== Instruction.STATUS) return;
    if (this.fromId !== null && p.id !== this.fromId) return;
    if (p.length !== this.paramLength && !(p.length === 0 && (p.error & 0x7f) !== 0)) return;
    this.packets.push({ id: p.id, error: p.error, params: p.params.slice() });
  }
  done(): boolean {
    return this.packets.length >= this.want;
  }
}

export class DynamixelBus {
  readonly parser = new PacketParser(8192);
  readonly stats: BusStats = { transactions: 0, timeouts: 0, strayPackets: 0, deviceErrors: 0 };
  timing: BusTiming;
  private readonly io: TickIo;
  private readonly rx = new Uint8Array(4096);
  private dirty = false;
  private closed = false;

  constructor(
    readonly link: SerialLink,
    timing: Partial<BusTiming> = {},
  ) {
    this.timing = { ...DEFAULT_TIMING, ...timing };
    // Transactions wait synchronously (native poll with a deadline): the same code then works in
    // the control worker (no event loop during ticks), in a CLI, and on the main thread, and
    // does not depend on the serial binding's poller, which only serves the main thread's loop.
    this.io = tickIo(link);
  }

  timeoutMs(txBytes: number, rxBytes: number, replies: number): number {
    return timeoutUs(txBytes, rxBytes, replies, this.timing) / 1000;
  }

  /**
   * Sends `length` bytes of `tx` and waits until `expect` is done (true) or the timeout
   * (false). Blocks the calling thread for at most `timeoutMs`.
   */
  exchange(tx: Uint8Array, length: number, expect: Expectation | null, timeoutMs: number): Promise<boolean> {
    try {
      return Promise.resolve(this.exchangeSync(tx, length, expect, timeoutMs));
    } catch (err) {
      return Promise.reject(err instanceof ReflexError ? err : new ReflexError('BUS_ERROR', `${this.link.path}: ${errorMessage(err)}`, { cause: err }));
    }
  }

  private exchangeSync(tx: Uint8Array, length: number, expect: Expectation | null, timeoutMs: number): boolean {
    if (this.closed) throw new ReflexError('BUS_ERROR', `${this.link.path} is closed`, { disconnected: true });
    if (this.dirty) {
      // Whatever came after the last timeout belongs to it, not to this transaction.
      this.dirty = false;
      this.io.discardInput();
      this.parser.discard();
    }
    this.stats.transactions++;
    if (!this.io.write(tx, length)) throw new ReflexError('BUS_ERROR', `${this.link.path}: output stuck`);
    if (expect === null) return true;
    const deadline = monoMs() + timeoutMs;
    while (!expect.done()) {
      const leftUs = Math.round((deadline - monoMs()) * 1000);
      if (leftUs <= 0) break;
      const n = this.io.read(this.rx, 0, 1, leftUs);
      if (n === 0) break;
      this.parser.push(this.rx, 0, n);
      while (this.parser.next()) expect.accept(this.parser.packet);
    }
    if (expect.done()) return true;
    this.stats.timeouts++;
    this.dirty = true;
    return false;
  }

  /**
   * One instruction to one servo, its status packet back (allocating: not for the tick). Set-up
   * is not in a hurry, so it waits longer than a tick would: a loaded machine is not a dead servo.
   */
  private async unicast(id: number, pkt: Buffer, replyParams: number, retries = 1): Promise<{ error: number; params: Uint8Array }> {
    const timeout = this.timeoutMs(pkt.length, 11 + replyParams, 1) + SETUP_GRACE_MS;
    for (let attempt = 0; attempt <= retries; attempt++) {
      const c = new Collector(1, id, replyParams);
      if (await this.exchange(pkt, pkt.length, c, timeout)) {
        const r = c.packets[0]!;
        const e = decodeStatusError(r.error);
        if (e.code !== 0) {
          this.stats.deviceErrors++;
          const err = new ReflexError('DEVICE_ERROR', `servo ${id}: ${e.name}`);
          throw Object.assign(err, { statusError: e });
        }
        return r;
      }
    }
    throw new ReflexError('BUS_ERROR', `servo ${id} did not answer on ${this.link.path}`, { timeout: true });
  }

  async ping(id: number, retries = 0): Promise<PingResult | null> {
    try {
      const r = await this.unicast(id, build.ping(id), 3, retries);
      return pingResult(id, r.params);
    } catch (err) {
      if (err instanceof ReflexError && err.timeout) return null;
      throw err;
    }
  }

  /** Every servo that answers a broadcast ping within `windowMs`. */
  async broadcastPing(windowMs = 100): Promise<PingResult[]> {
    const pkt = build.ping(BROADCAST_ID);
    const c = new Collector(253, null, 3);
    await this.exchange(pkt, pkt.length, c, windowMs);
    const seen = new Map<number, PingResult>();
    for (const p of c.packets) seen.set(p.id, pingResult(p.id, p.params));
    return [...seen.values()].sort((a, b) => a.id - b.id);
  }

  async read(id: number, address: number, length: number): Promise<Uint8Array> {
    const r = await this.unicast(id, build.read(id, address, length), length);
    if (r.params.length !== length) throw new ReflexError('BUS_ERROR', `servo ${id}: read ${r.params.length} bytes, wanted ${length}`);
    return r.params;
  }

  async write(id: number, address: number, data: ArrayLike<number>): Promise<void> {
    await this.unicast(id, build.write(id, address, data), 0);
  }

  async readField(id: number, f: Field): Promise<number> {
    const b = await this.read(id, f.address, f.size);
    let raw = 0;
    for (let i = f.size - 1; i >= 0; i--) raw = raw * 256 + b[i]!;
    return f.signed ? signed(raw, f.size) : raw;
  }

  async writeField(id: number, f: Field, value: number): Promise<void> {
    if (f.access === 'R') throw new ReflexError('BAD_REQUEST', `field at ${f.address} is read-only`);
    if (!Number.isInteger(value) || value < f.min || value > f.max) {
      throw new ReflexError('BAD_REQUEST', `value ${value} out of range ${f.min}..${f.max} for address ${f.address}`);
    }
    const bytes: number[] = [];
    let v = value < 0 ? value + 2 ** (8 * f.size) : value;
    for (let i = 0; i < f.size; i++) {
      bytes.push(v & 0xff);
      v = Math.floor(v / 256);
    }
    await this.write(id, f.address, bytes);
  }

  async reboot(id: number): Promise<void> {
    await this.unicast(id, build.reboot(id), 0);
  }

  async factoryReset(id: number, mode: number): Promise<void> {
    await this.unicast(id, build.factoryReset(id, mode), 0);
  }

  /** Sync Read for tools (allocating): each servo's bytes, by id; missing servos are absent. */
  async syncRead(address: number, length: number, ids: readonly number[]): Promise<Map<number, Uint8Array>> {
    const pkt = build.syncRead(address, length, ids);
    const c = new Collector(ids.length, null, length);
    await this.exchange(pkt, pkt.length, c, this.timeoutMs(pkt.length, ids.length * (11 + length), ids.length) + SETUP_GRACE_MS);
    const out = new Map<number, Uint8Array>();
    for (const p of c.packets) if (decodeStatusError(p.error).code === 0 && p.params.length === length) out.set(p.id, p.params);
    return out;
  }

  /** Sync Write: one packet, no replies. */
  async syncWrite(address: number, length: number, items: readonly { id: number; data: ArrayLike<number> }[]): Promise<void> {
    const pkt = build.syncWrite(address, length, items);
    await this.exchange(pkt, pkt.length, null, 0);
  }

  /** Changes the port's baud rate (for scanning); the servos' own rate is a register. */
  async setBaud(baud: number): Promise<void> {
    await this.link.setBaud(baud);
    this.timing = { ...this.timing, baud };
    this.parser.discard();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.link.close();
  }
}

function pingResult(id: number, p: Uint8Array): PingResult {
  const modelNumber = p[0]! | (p[1]! << 8);
  return { id, modelNumber, modelName: modelByNumber(modelNumber)?.name ?? null, firmware: p[2]! };
}
