// CRC-16 of Dynamixel Protocol 2.0: polynomial 0x8005, MSB first, initial value 0 (the
// "CRC-16/BUYPASS" variant). Computed over the packet from the header to the last parameter,
// after byte stuffing.

const TABLE = new Uint16Array(256);
for (let i = 0; i < 256; i++) {
  let c = i << 8;
  for (let b = 0; b < 8; b++) c = c & 0x8000 ? ((c << 1) ^ 0x8005) & 0xffff : (c << 1) & 0xffff;
  TABLE[i] = c;
}

export function crc16(buf: Uint8Array, start: number, end: number, seed = 0): number {
  let crc = seed;
  for (let i = start; i < end; i++) crc = ((crc << 8) ^ TABLE[((crc >> 8) ^ buf[i]!) & 0xff]!) & 0xffff;
  return crc;
}
