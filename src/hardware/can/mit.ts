// MIT mode (the MIT Mini Cheetah protocol), as CubeMars AK and Damiao DM-J motors speak it:
// a command packs position, velocity, kp, kd and feed-forward torque into 8 bytes as unsigned
// fixed-point over per-model ranges; the reply packs position, velocity and torque back, with
// temperature and error where the firmware adds them.

export interface MitRanges {
  p: number; // +-rad
  v: number; // +-rad/s
  t: number; // +-N m
  kpMax: number;
  kdMax: number;
}

/** Per-model ranges (the firmware's defaults; a Damiao's can be reconfigured to match its own). */
export const MIT_MODELS: Readonly<Record<string, MitRanges>> = {
  'ak60-6': { p: 12.5, v: 45, t: 15, kpMax: 500, kdMax: 5 },
  'ak70-10': { p: 12.5, v: 50, t: 25, kpMax: 500, kdMax: 5 },
  'ak80-9': { p: 12.5, v: 50, t: 18, kpMax: 500, kdMax: 5 },
  'ak10-9': { p: 12.5, v: 50, t: 65, kpMax: 500, kdMax: 5 },
  'dm-j4310': { p: 12.5, v: 30, t: 10, kpMax: 500, kdMax: 5 },
  'dm-j4340': { p: 12.5, v: 10, t: 28, kpMax: 500, kdMax: 5 },
};

/** The special frames: every byte 0xFF but the last. */
export const MIT_ENTER = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfc);
export const MIT_EXIT = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfd);
export const MIT_ZERO = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe);

/** x in [min, max] to an unsigned integer of `bits` (clamped: out-of-range commands saturate). */
export function toUint(x: number, min: number, max: number, bits: number): number {
  const top = (1 << bits) - 1;
  const c = x < min ? min : x > max ? max : x;
  return Math.trunc(((c - min) * top) / (max - min));
}

export function fromUint(u: number, min: number, max: number, bits: number): number {
  return (u * (max - min)) / ((1 << bits) - 1) + min;
}

export interface MitCommand {
  p: number;
  v: number;
  kp: number;
  kd: number;
  t: number;
}

/** Packs a command into `out` (8 bytes); values beyond the model's ranges are clamped. */
export function encodeMit(c: MitCommand, r: MitRanges, out: Uint8Array): void {
  const a = PACK;
  a[0] = c.p;
  a[1] = c.v;
  a[2] = c.kp;
  a[3] = c.kd;
  a[4] = c.t;
  packMit(a, r, out);
}

const PACK = new Float64Array(5);

/**
 * encodeMit for the tick: the command as [p, v, kp, kd, t] in a Float64Array, so no double is
 * stored in an object (which can box it on every store).
 */
export function packMit(c: Float64Array, r: MitRanges, out: Uint8Array): void {
  // The quantization is written out rather than calling toUint: in the tick, a call that is not
  // inlined boxes its double arguments, and this runs for every motor every tick.
  const P = r.p;
  const V = r.v;
  const T = r.t;
  let x = c[0]!;
  x = x < -P ? -P : x > P ? P : x;
  const p = Math.trunc(((x + P) * 0xffff) / (2 * P));
  x = c[1]!;
  x = x < -V ? -V : x > V ? V : x;
  const v = Math.trunc(((x + V) * 0xfff) / (2 * V));
  x = c[2]!;
  x = x < 0 ? 0 : x > r.kpMax ? r.kpMax : x;
  const kp = Math.trunc((x * 0xfff) / r.kpMax);
  x = c[3]!;
  x = x < 0 ? 0 : x > r.kdMax ? r.kdMax : x;
  const kd = Math.trunc((x * 0xfff) / r.kdMax);
  x = c[4]!;
  x = x < -T ? -T : x > T ? T : x;
  const t = Math.trunc(((x + T) * 0xfff) / (2 * T));
  out[0] = p >> 8;
  out[1] = p & 0xff;
  out[2] = v >> 4;
  out[3] = ((v & 0xf) << 4) | (kp >> 8);
  out[4] = kp & 0xff;
  out[5] = kd >> 4;
  out[6] = ((kd & 0xf) << 4) | (t >> 8);
  out[7] = t & 0xff;
}

export interface MitReply {
  id: number;
  p: number;
  v: number;
  t: number;
  /** Degrees C where the reply carries it (8-byte replies), else NaN. */
  temperature: number;
  /** Error code where the reply carries it (Damiao: the high nibble of byte 0), else 0. */
  error: number;
}

export type MitDialect = 'cubemars' | 'damiao';

/**
 * Decodes a reply into `out`; false (out untouched) for a frame that is not a reply: wrong
 * length. CubeMars: [id, p16, v12, t12, temperature, error]. Damiao: [err<<4 | id, p16, v12,
 * t12, T_mos, T_rotor].
 */
export function decodeMit(data: Uint8Array, length: number, r: MitRanges, dialect: MitDialect, out: MitReply): boolean {
  const a = UNPACK;
  if (!unpackMit(data, length, r, dialect, a)) return false;
  out.id = a[MitReplyAt.ID]!;
  out.p = a[MitReplyAt.P]!;
  out.v = a[MitReplyAt.V]!;
  out.t = a[MitReplyAt.T]!;
  out.temperature = a[MitReplyAt.TEMPERATURE]!;
  out.error = a[MitReplyAt.ERROR]!;
  return true;
}

const UNPACK = new Float64Array(6);

/** Where unpackMit puts each value. */
export const MitReplyAt = { ID: 0, P: 1, V: 2, T: 3, TEMPERATURE: 4, ERROR: 5 } as const;

/** decodeMit for the tick: into a Float64Array laid out as MitReplyAt. */
export function unpackMit(data: Uint8Array, length: number, r: MitRanges, dialect: MitDialect, out: Float64Array): boolean {
  if (length !== 6 && length !== 8) return false;
  const p = (data[1]! << 8) | data[2]!;
  const v = (data[3]! << 4) | (data[4]! >> 4);
  const t = ((data[4]! & 0xf) << 8) | data[5]!;
  // fromUint written out, for the same reason as in packMit.
  out[MitReplyAt.P] = (p * 2 * r.p) / 0xffff - r.p;
  out[MitReplyAt.V] = (v * 2 * r.v) / 0xfff - r.v;
  out[MitReplyAt.T] = (t * 2 * r.t) / 0xfff - r.t;
  if (dialect === 'damiao') {
    out[MitReplyAt.ID] = data[0]! & 0x0f;
    out[MitReplyAt.ERROR] = data[0]! >> 4;
    out[MitReplyAt.TEMPERATURE] = length === 8 ? data[7]! : NaN;
  } else {
    out[MitReplyAt.ID] = data[0]!;
    out[MitReplyAt.ERROR] = length === 8 ? data[7]! : 0;
    out[MitReplyAt.TEMPERATURE] = length === 8 ? data[6]! : NaN;
  }
  return true;
}

/** The motor's side of encodeMit: what a command asks for, within the model's ranges. */
export function decodeMitCommand(data: Uint8Array, r: MitRanges, out: MitCommand): void {
  out.p = fromUint((data[0]! << 8) | data[1]!, -r.p, r.p, 16);
  out.v = fromUint((data[2]! << 4) | (data[3]! >> 4), -r.v, r.v, 12);
  out.kp = fromUint(((data[3]! & 0xf) << 8) | data[4]!, 0, r.kpMax, 12);
  out.kd = fromUint((data[5]! << 4) | (data[6]! >> 4), 0, r.kdMax, 12);
  out.t = fromUint(((data[6]! & 0xf) << 8) | data[7]!, -r.t, r.t, 12);
}

/** The motor's side of decodeMit: an 8-byte reply in the dialect's layout, into `out`. */
export function encodeMitReply(s: MitReply, r: MitRanges, dialect: MitDialect, out: Uint8Array): void {
  const p = toUint(s.p, -r.p, r.p, 16);
  const v = toUint(s.v, -r.v, r.v, 12);
  const t = toUint(s.t, -r.t, r.t, 12);
  const temp = Number.isFinite(s.temperature) ? Math.max(0, Math.min(255, Math.round(s.temperature))) : 0;
  out[0] = dialect === 'damiao' ? ((s.error & 0xf) << 4) | (s.id & 0xf) : s.id & 0xff;
  out[1] = p >> 8;
  out[2] = p & 0xff;
  out[3] = v >> 4;
  out[4] = ((v & 0xf) << 4) | (t >> 8);
  out[5] = t & 0xff;
  // CubeMars: temperature, error. Damiao: MOS temperature, rotor temperature.
  out[6] = temp;
  out[7] = dialect === 'damiao' ? temp : s.error & 0xff;
}

/** A special frame (enter, exit, set zero): seven 0xFF bytes and the code. */
export function mitSpecial(data: Uint8Array, length: number): number {
  if (length !== 8) return 0;
  for (let i = 0; i < 7; i++) if (data[i] !== 0xff) return 0;
  return data[7]!;
}

/**
 * Damiao's status nibble (DM-J manual, MIT reply byte 0's high four bits): 0 disabled,
 * 1 enabled, 8 to 0xE the faults below; any other value is not a healthy state either (the loop
 * faults on it too). CubeMars: non-zero is a fault.
 */
export const DAMIAO_STATUS: Readonly<Record<number, string>> = {
  0: 'disabled',
  1: 'enabled',
  8: 'over-voltage',
  9: 'under-voltage',
  0xa: 'over-current',
  0xb: 'MOS over-temperature',
  0xc: 'coil over-temperature',
  0xd: 'communication lost',
  0xe: 'overload',
};

export const CUBEMARS_ERRORS: Readonly<Record<number, string>> = {
  1: 'over-temperature',
  2: 'over-current',
  3: 'over-voltage',
  4: 'under-voltage',
  5: 'encoder fault',
  6: 'MOSFET over-temperature',
  7: 'motor locked',
};

/** MIT dialect and ranges from a model name (ak80-9, dm-j4310), or null for another protocol. */
export function mitModel(model: string): { ranges: MitRanges; dialect: MitDialect } | null {
  const ranges = MIT_MODELS[model.toLowerCase()];
  if (!ranges) return null;
  return { ranges, dialect: model.toLowerCase().startsWith('dm') ? 'damiao' : 'cubemars' };
}
