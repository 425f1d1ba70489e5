import { crc16 } from './crc.js';
import { BROADCAST_ID, MAX_ID } from './protocol.js';

/** Counts of what the parser threw away: bytes from the wire are never trusted. */
export interface ParserStats {
  packets: number;
  /** Bytes skipped while looking for a header (noise, partial packets, resync). */
  droppedBytes: number;
  badCrc: number;
  /** Headers with an impossible id or length. */
  badHeader: number;
  /** Bytes discarded by discard() (e.g. a reply that timed out half-way). */
  discardedBytes: number;
  /** Bytes that did not fit into the buffer (a flood): dropped, counted. */
  overflowBytes: number;
}

/**
 * The packet the parser found last. Its fields are overwritten by the next call to next().
 * Its parameters (unstuffed) are the first `length` bytes of `data`, the parser's own buffer:
 * read them there on the tick path; `params` copies them out for everything else.
 */
export class ParsedPacket {
  id = 0;
  instruction = 0;
  /** Status packets: the error byte. Instruction packets: -1. */
  error = -1;
  length = 0;
  constructor(readonly data: Uint8Array) {}

  /** A copy of the parameters (allocates). */
  get params(): Uint8Array {
    return this.data.slice(0, this.length);
  }
}

const STATUS = 0x55;

/**
 * Streaming parser of Protocol 2.0 packets (instruction or status). It never throws on bytes
 * from the wire: garbage, truncation and corrupted packets are skipped and counted, and a
 * packet is accepted only with a matching CRC. After construction it allocates nothing.
 */
export class PacketParser {
  readonly stats: ParserStats = { packets: 0, droppedBytes: 0, badCrc: 0, badHeader: 0, discardedBytes: 0, overflowBytes: 0 };
  readonly packet: ParsedPacket;
  private readonly buf: Uint8Array;
  private readonly paramBuf: Uint8Array;
  private start = 0;
  private end = 0;

  /** `maxLength` bounds the Length field: a larger one is treated as corruption, not awaited. */
  constructor(
    capacity = 4096,
    private readonly maxLength = 1024,
  ) {
    this.buf = new Uint8Array(capacity);
    this.paramBuf = new Uint8Array(maxLength);
    this.packet = new ParsedPacket(this.paramBuf);
  }

  /** Bytes received but not yet parsed. */
  get buffered(): number {
    return this.end - this.start;
  }

  push(chunk: Uint8Array, offset = 0, length = chunk.length - offset): void {
    if (this.end + length > this.buf.length) this.compact();
    const room = this.buf.length - this.end;
    if (length > room) {
      this.stats.overflowBytes += length - room;
      length = room;
    }
    // A byte loop rather than set(subarray()): the subarray would be an allocation per read.
    const b = this.buf;
    const at = this.end;
    for (let i = 0; i < length; i++) b[at + i] = chunk[offset + i]!;
    this.end += length;
  }

  /** Throws away everything buffered (counted), e.g. after a transaction timed out. */
  discard(): void {
    this.stats.discardedBytes += this.end - this.start;
    this.start = this.end = 0;
  }

  /** Finds the next valid packet; true when `packet` now holds it. */
  next(): boolean {
    const b = this.buf;
    for (;;) {
      const s = this.findHeader();
      if (s < 0) return false;
      if (this.end - s < 7) return false;
      const id = b[s + 4]!;
      const length = b[s + 5]! | (b[s + 6]! << 8);
      if ((id > MAX_ID && id !== BROADCAST_ID) || length < 3 || length > this.maxLength) {
        this.skip(1);
        this.stats.badHeader++;
        continue;
      }
      const total = 7 + length;
      if (this.end - s < total) return false;
      const crc = b[s + total - 2]! | (b[s + total - 1]! << 8);
      if (crc16(b, s, s + total - 2) !== crc) {
        this.stats.badCrc++;
        this.skip(1);
        continue;
      }
      const instruction = b[s + 7]!;
      const isStatus = instruction === STATUS;
      if (isStatus && length < 4) {
        this.stats.badHeader++;
        this.skip(1);
        continue;
      }
      const paramStart = s + (isStatus ? 9 : 8);
      const n = this.unstuff(s + 7, paramStart, s + total - 2);
      const p = this.packet;
      p.id = id;
      p.instruction = instruction;
      p.error = isStatus ? b[s + 8]! : -1;
      p.length = n;
      this.start = s + total;
      this.stats.packets++;
      return true;
    }
  }

  /** Index of the next header FF FF FD 00 at or after start; drops what precedes it. */
  private findHeader(): number {
    const b = this.buf;
    let i = this.start;
    while (i + 3 < this.end) {
      if (b[i] === 0xff && b[i + 1] === 0xff && b[i + 2] === 0xfd && b[i + 3] === 0x00) break;
      i++;
    }
    if (i + 3 >= this.end) {
      // Keep a possible partial header (up to three bytes) for the next push.
      const keep = Math.min(3, this.end - this.start);
      let from = this.end - keep;
      while (from < this.end && b[from] !== 0xff) from++;
      this.stats.droppedBytes += from - this.start;
      this.start = from;
      if (this.start === this.end) this.start = this.end = 0;
      return -1;
    }
    this.stats.droppedBytes += i - this.start;
    this.start = i;
    return i;
  }

  private skip(n: number): void {
    this.start += n;
    this.stats.droppedBytes += n;
  }

  /**
   * Copies the parameters [paramStart, end) into paramBuf without the stuffing: in the range
   * that was stuffed (from the instruction on), an FD that follows FF FF FD was added by the
   * sender and is dropped.
   */
  private unstuff(stuffedFrom: number, paramStart: number, end: number): number {
    const b = this.buf;
    const out = this.paramBuf;
    let n = 0;
    for (let i = stuffedFrom; i < end; i++) {
      const v = b[i]!;
      if (v === 0xfd && i - 3 >= stuffedFrom && b[i - 1] === 0xfd && b[i - 2] === 0xff && b[i - 3] === 0xff) continue;
      if (i >= paramStart) out[n++] = v;
    }
    return n;
  }

  private compact(): void {
    if (this.start === 0) return;
    this.buf.copyWithin(0, this.start, this.end);
    this.end -= this.start;
    this.start = 0;
  }
}
