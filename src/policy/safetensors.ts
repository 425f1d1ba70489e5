// A bounded reader of safetensors files (Hugging Face's tensor format, the one LeRobot writes
// its normalizer statistics in): 8 bytes of little-endian header length, a JSON header naming
// each tensor's dtype, shape and byte range, then the raw little-endian data. The file comes
// from outside (a checkpoint someone copied onto the robot), so every number in the header is
// checked against the file before anything is read by it.
import { ReflexError, errorMessage, readRegularFile } from '../core/index.js';

/** Bytes per element of each dtype this reader decodes. */
const DTYPE_BYTES = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 } as const;

export type Dtype = keyof typeof DTYPE_BYTES;

export interface SafeTensor {
  dtype: Dtype;
  shape: number[];
  /** The values, row-major, as numbers (I64 beyond 2^53 loses precision, as statistics never are). */
  data: Float64Array;
}

export interface SafetensorsLimits {
  /** Largest file accepted (normalizer statistics are kilobytes). */
  maxBytes?: number;
  /** Largest JSON header accepted (the reference implementation's own bound is 100 MB). */
  maxHeaderBytes?: number;
  /** Most tensors accepted. */
  maxTensors?: number;
}

export const SAFETENSORS_MAX_BYTES = 64 * 1024 * 1024;
const HEADER_MAX_BYTES = 1024 * 1024;
const MAX_TENSORS = 10_000;
const MAX_RANK = 8;

function bad(what: string, why: string): never {
  throw new ReflexError('BAD_REQUEST', `${what}: not a valid safetensors file: ${why}`);
}

function isDtype(s: unknown): s is Dtype {
  return typeof s === 'string' && Object.hasOwn(DTYPE_BYTES, s);
}

/** Reads `path` (a regular file of bounded size) and decodes every tensor in it. */
export function readSafetensors(path: string, limits: SafetensorsLimits = {}): Map<string, SafeTensor> {
  let buf: Buffer;
  try {
    buf = readRegularFile(path, limits.maxBytes ?? SAFETENSORS_MAX_BYTES);
  } catch (err) {
    throw new ReflexError('BAD_REQUEST', `${path}: ${errorMessage(err)}`);
  }
  return parseSafetensors(buf, path, limits);
}

/** Decodes a safetensors image; `what` names it in errors. */
export function parseSafetensors(buf: Buffer, what: string, limits: SafetensorsLimits = {}): Map<string, SafeTensor> {
  if (buf.length < 8) bad(what, `${buf.length} bytes, shorter than the 8-byte header length`);
  const n = buf.readBigUInt64LE(0);
  const maxHeader = BigInt(Math.min(limits.maxHeaderBytes ?? HEADER_MAX_BYTES, buf.length - 8));
  if (n < 2n || n > maxHeader) bad(what, `header length ${n} (the file has ${buf.length - 8} bytes after it, at most ${maxHeader} taken as a header)`);
  const headerEnd = 8 + Number(n);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(8, headerEnd)));
  } catch (err) {
    bad(what, `header is not UTF-8 JSON (${errorMessage(err)})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) bad(what, 'header is not a JSON object');
  const dataLen = buf.length - headerEnd;
  const entries = Object.entries(header).filter(([k]) => k !== '__metadata__');
  if (entries.length > (limits.maxTensors ?? MAX_TENSORS)) bad(what, `${entries.length} tensors, more than ${limits.maxTensors ?? MAX_TENSORS}`);
  const ranges: { name: string; begin: number; end: number }[] = [];
  const out = new Map<string, SafeTensor>();
  for (const [name, v] of entries) {
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof v !== 'object' || v === null) bad(what, `tensor ${name} is not an object`);
    if (!isDtype(e.dtype)) bad(what, `tensor ${name} has dtype ${JSON.stringify(e.dtype)} (this reader takes ${Object.keys(DTYPE_BYTES).join(', ')})`);
    const shape = e.shape;
    if (!Array.isArray(shape) || shape.length > MAX_RANK || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      bad(what, `tensor ${name} has shape ${JSON.stringify(shape)} (want up to ${MAX_RANK} non-negative integers)`);
    }
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && (o as number) >= 0)) {
      bad(what, `tensor ${name} has data_offsets ${JSON.stringify(offs)}`);
    }
    const [begin, end] = offs as [number, number];
    if (begin > end || end > dataLen) bad(what, `tensor ${name} spans bytes [${begin}, ${end}) of a ${dataLen}-byte data section`);
    const size = DTYPE_BYTES[e.dtype];
    // The element count is bounded by the bytes it claims, so it cannot overflow.
    let count = 1;
    for (const d of shape as number[]) count *= d;
    if (count * size !== end - begin) bad(what, `tensor ${name}: ${e.dtype} [${(shape as number[]).join(', ')}] needs ${count * size} bytes, its offsets give ${end - begin}`);
    ranges.push({ name, begin, end });
    out.set(name, { dtype: e.dtype, shape: [...(shape as number[])], data: decode(buf, headerEnd + begin, count, e.dtype) });
  }
  // The data section is the tensors back to back: an overlap would make two names share bytes,
  // a hole would hide bytes nobody declared.
  ranges.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (const r of ranges) {
    if (r.begin < at) bad(what, `tensor ${r.name} overlaps the tensor before it (bytes ${r.begin}..${at})`);
    if (r.begin > at) bad(what, `bytes ${at}..${r.begin} of the data section belong to no tensor`);
    at = r.end;
  }
  if (at !== dataLen) bad(what, `bytes ${at}..${dataLen} of the data section belong to no tensor`);
  return out;
}

function decode(buf: Buffer, at: number, count: number, dtype: Dtype): Float64Array {
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    switch (dtype) {
      case 'F64':
        out[i] = buf.readDoubleLE(at + i * 8);
        break;
      case 'F32':
        out[i] = buf.readFloatLE(at + i * 4);
        break;
      case 'F16':
        out[i] = half(buf.readUInt16LE(at + i * 2));
        break;
      case 'BF16':
        out[i] = bfloat(buf.readUInt16LE(at + i * 2));
        break;
      case 'I64':
        out[i] = Number(buf.readBigInt64LE(at + i * 8));
        break;
      case 'I32':
        out[i] = buf.readInt32LE(at + i * 4);
        break;
      case 'I16':
        out[i] = buf.readInt16LE(at + i * 2);
        break;
      case 'I8':
        out[i] = buf.readInt8(at + i);
        break;
      case 'U8':
      case 'BOOL':
        out[i] = buf[at + i]!;
        break;
    }
  }
  return out;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function bfloat(bits: number): number {
  u32[0] = bits << 16;
  return f32[0]!;
}

function half(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}
