import { crc16 } from './crc.js';
import { BROADCAST_ID, Instruction } from './protocol.js';

/** Most bytes a packet can take once stuffed: every third byte may gain a 0xFD. */
export function maxPacketBytes(paramBytes: number): number {
  return 10 + paramBytes + Math.ceil((paramBytes + 1) / 3) + 1;
}

/**
 * Writes one packet into `out` at 0 and returns its length: header, id, length, instruction,
 * the first `paramLen` bytes of `params`, CRC. Byte stuffing ("FF FF FD" gains an "FD") is
 * applied to instruction and parameters. Allocates nothing, so the tick can use it.
 */
export function encodePacket(out: Uint8Array, id: number, instruction: number, params: Uint8Array, paramLen: number): number {
  out[0] = 0xff;
  out[1] = 0xff;
  out[2] = 0xfd;
  out[3] = 0x00;
  out[4] = id;
  let n = 7;
  out[n++] = instruction;
  // The two bytes before the current one, within the stuffed range (instruction onwards).
  let prev1 = instruction;
  let prev2 = -1;
  for (let i = 0; i < paramLen; i++) {
    const b = params[i]!;
    out[n++] = b;
    if (b === 0xfd && prev1 === 0xff && prev2 === 0xff) out[n++] = 0xfd;
    prev2 = prev1;
    prev1 = b;
  }
  const length = n - 7 + 2;
  out[5] = length & 0xff;
  out[6] = length >> 8;
  const crc = crc16(out, 0, n);
  out[n++] = crc & 0xff;
  out[n++] = crc >> 8;
  return n;
}

/** Builds a packet in a new Buffer: for the occasional instruction, not for the tick. */
export function packet(id: number, instruction: number, params: ArrayLike<number> = []): Buffer {
  const p = Uint8Array.from(params);
  const out = Buffer.alloc(maxPacketBytes(p.length));
  return out.subarray(0, encodePacket(out, id, instruction, p, p.length));
}

function u16(v: number): [number, number] {
  return [v & 0xff, (v >> 8) & 0xff];
}

export const build = {
  ping: (id: number) => packet(id, Instruction.PING),
  read: (id: number, address: number, length: number) => packet(id, Instruction.READ, [...u16(address), ...u16(length)]),
  write: (id: number, address: number, data: ArrayLike<number>) => packet(id, Instruction.WRITE, [...u16(address), ...Array.from(data)]),
  regWrite: (id: number, address: number, data: ArrayLike<number>) =>
    packet(id, Instruction.REG_WRITE, [...u16(address), ...Array.from(data)]),
  action: (id: number) => packet(id, Instruction.ACTION),
  factoryReset: (id: number, mode: number) => packet(id, Instruction.FACTORY_RESET, [mode]),
  reboot: (id: number) => packet(id, Instruction.REBOOT),
  /** Clear (0x01): resets the multi-turn count of Present Position; the servo must be still. */
  clearMultiTurn: (id: number) => packet(id, Instruction.CLEAR, [0x01, 0x44, 0x58, 0x4c, 0x22]),
  syncRead: (address: number, length: number, ids: readonly number[]) =>
    packet(BROADCAST_ID, Instruction.SYNC_READ, [...u16(address), ...u16(length), ...ids]),
  fastSyncRead: (address: number, length: number, ids: readonly number[]) =>
    packet(BROADCAST_ID, Instruction.FAST_SYNC_READ, [...u16(address), ...u16(length), ...ids]),
  syncWrite: (address: number, length: number, items: readonly { id: number; data: ArrayLike<number> }[]) =>
    packet(BROADCAST_ID, Instruction.SYNC_WRITE, [...u16(address), ...u16(length), ...items.flatMap((it) => [it.id, ...Array.from(it.data)])]),
  bulkRead: (items: readonly { id: number; address: number; length: number }[]) =>
    packet(BROADCAST_ID, Instruction.BULK_READ, items.flatMap((it) => [it.id, ...u16(it.address), ...u16(it.length)])),
  bulkWrite: (items: readonly { id: number; address: number; data: ArrayLike<number> }[]) =>
    packet(BROADCAST_ID, Instruction.BULK_WRITE, items.flatMap((it) => [it.id, ...u16(it.address), ...u16(it.data.length), ...Array.from(it.data)])),
  /** A status packet, as a servo (or the simulator) sends it. */
  status: (id: number, error: number, params: ArrayLike<number> = []) => packet(id, Instruction.STATUS, [error, ...Array.from(params)]),
};
