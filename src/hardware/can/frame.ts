// Linux's struct can_frame, the unit SocketCAN reads and writes and the virtual bus's socket
// carries: can_id (u32, host order, flags in the top bits), len, three reserved bytes, data[8].

export const FRAME_BYTES = 16;

/**
 * A frame's flags travel apart from its id (the top three bits of can_id, shifted down): an id
 * with them set is beyond V8's small integers and would be boxed, an allocation, wherever it
 * crosses a call in the tick.
 */
export const CanFlag = { ERROR: 1, RTR: 2, EXTENDED: 4 } as const;

export const CAN_EFF_FLAG = 0x80000000;
export const CAN_RTR_FLAG = 0x40000000;
export const CAN_ERR_FLAG = 0x20000000;
export const CAN_SFF_MASK = 0x7ff;
export const CAN_EFF_MASK = 0x1fffffff;

/** Error classes in an error frame's id (linux/can/error.h). */
export const CanErr = {
  TX_TIMEOUT: 0x001,
  CRTL: 0x004,
  BUSOFF: 0x040,
  BUSERROR: 0x080,
  RESTARTED: 0x100,
} as const;

/** data[1] of a CRTL error frame. */
export const CanErrCrtl = {
  RX_WARNING: 0x04,
  TX_WARNING: 0x08,
  RX_PASSIVE: 0x10,
  TX_PASSIVE: 0x20,
  ACTIVE: 0x40,
} as const;

// Little-endian hosts only (x86-64, aarch64: every Jetson), as the kernel writes can_id in host order.
export function writeFrame(buf: Uint8Array, at: number, id: number, flags: number, data: Uint8Array, length: number): void {
  buf[at] = id & 0xff;
  buf[at + 1] = (id >>> 8) & 0xff;
  buf[at + 2] = (id >>> 16) & 0xff;
  buf[at + 3] = ((id >>> 24) & 0x1f) | ((flags & 7) << 5);
  buf[at + 4] = length;
  buf[at + 5] = 0;
  buf[at + 6] = 0;
  buf[at + 7] = 0;
  for (let i = 0; i < 8; i++) buf[at + 8 + i] = i < length ? data[i]! : 0;
}

/** The id without its flags (11 or 29 bits). */
export function frameId(buf: Uint8Array, at: number): number {
  return buf[at]! | (buf[at + 1]! << 8) | (buf[at + 2]! << 16) | ((buf[at + 3]! & 0x1f) << 24);
}

/** CanFlag bits of a frame. */
export function frameFlags(buf: Uint8Array, at: number): number {
  return buf[at + 3]! >> 5;
}

/**
 * Bits one classic data frame occupies on the wire at worst: the 47 fixed bits (11-bit id) or 67
 * (29-bit id), 8 per data byte, and the most stuff bits the stuffed span can need.
 */
export function frameBits(length: number, extended = false): number {
  const stuffed = (extended ? 54 : 34) + 8 * length;
  return (extended ? 67 : 47) + 8 * length + Math.floor((stuffed - 1) / 4);
}
