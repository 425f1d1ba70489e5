// Dynamixel Protocol 2.0 constants and the status packet's error field.

export const HEADER = [0xff, 0xff, 0xfd, 0x00] as const;
export const BROADCAST_ID = 0xfe;
export const MAX_ID = 252;

export const Instruction = {
  PING: 0x01,
  READ: 0x02,
  WRITE: 0x03,
  REG_WRITE: 0x04,
  ACTION: 0x05,
  FACTORY_RESET: 0x06,
  REBOOT: 0x08,
  CLEAR: 0x10,
  STATUS: 0x55,
  SYNC_READ: 0x82,
  SYNC_WRITE: 0x83,
  FAST_SYNC_READ: 0x8a,
  BULK_READ: 0x92,
  BULK_WRITE: 0x93,
} as const;
export type InstructionCode = (typeof Instruction)[keyof typeof Instruction];

/** Bit 7 of the status packet's error byte: the device has a hardware error (read address 70). */
export const ALERT_BIT = 0x80;

export const STATUS_ERRORS: Readonly<Record<number, string>> = {
  0x01: 'result fail',
  0x02: 'instruction error',
  0x03: 'crc error',
  0x04: 'data range error',
  0x05: 'data length error',
  0x06: 'data limit error',
  0x07: 'access error',
};

export interface StatusError {
  /** The error number (bits 0..6), 0 when none. */
  code: number;
  /** Its name, e.g. 'access error'; null when code is 0. */
  name: string | null;
  /** The hardware alert bit: Hardware Error Status says what. */
  alert: boolean;
}

export function decodeStatusError(byte: number): StatusError {
  const code = byte & 0x7f;
  return { code, name: code === 0 ? null : (STATUS_ERRORS[code] ?? `error ${code}`), alert: (byte & ALERT_BIT) !== 0 };
}

/** Bits of Hardware Error Status (address 70). */
export const HARDWARE_ERRORS: readonly (readonly [number, string])[] = [
  [0x01, 'input voltage'],
  [0x04, 'overheating'],
  [0x08, 'motor encoder'],
  [0x10, 'electrical shock'],
  [0x20, 'overload'],
];

export function decodeHardwareErrors(status: number): string[] {
  return HARDWARE_ERRORS.filter(([bit]) => (status & bit) !== 0).map(([, name]) => name);
}

/** Factory Reset's parameter. */
export const FactoryResetMode = { ALL: 0xff, EXCEPT_ID: 0x01, EXCEPT_ID_AND_BAUD: 0x02 } as const;
