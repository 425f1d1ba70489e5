// A small writer of ONNX models (protobuf, by hand): enough to make reflex's default and
// benchmark policies, and broken ones for tests, reproducibly and with no network and no
// Python. Field numbers are onnx.proto's.

type Bytes = number[];

function varint(out: Bytes, v: number | bigint): void {
  let x = BigInt.asUintN(64, BigInt(v));
  while (x >= 0x80n) {
    out.push(Number(x & 0x7fn) | 0x80);
    x >>= 7n;
  }
  out.push(Number(x));
}

function key(out: Bytes, field: number, wire: number): void {
  varint(out, (field << 3) | wire);
}

function int(out: Bytes, field: number, v: number): void {
  key(out, field, 0);
  varint(out, v);
}

function bytes(out: Bytes, field: number, b: ArrayLike<number>): void {
  key(out, field, 2);
  varint(out, b.length);
  for (let i = 0; i < b.length; i++) out.push(b[i]!);
}

function str(out: Bytes, field: number, s: string): void {
  bytes(out, field, Buffer.from(s, 'utf8'));
}

function float(out: Bytes, field: number, v: number): void {
  key(out, field, 5);
  const b = Buffer.alloc(4);
  b.writeFloatLE(v);
  out.push(...b);
}

export const DataType = { FLOAT: 1, INT64: 7 } as const;

export interface TensorInit {
  name: string;
  dims: readonly number[];
  /** float32 values, or int64 when dataType is INT64. */
  data: Float32Array | readonly number[];
  dataType?: number;
}

function tensor(t: TensorInit): Bytes {
  const out: Bytes = [];
  for (const d of t.dims) int(out, 1, d);
  const type = t.dataType ?? DataType.FLOAT;
  int(out, 2, type);
  str(out, 8, t.name);
  let raw: Buffer;
  if (type === DataType.INT64) {
    raw = Buffer.alloc(t.data.length * 8);
    for (let i = 0; i < t.data.length; i++) raw.writeBigInt64LE(BigInt(t.data[i]!), i * 8);
  } else {
    const f = t.data instanceof Float32Array ? t.data : Float32Array.from(t.data);
    raw = Buffer.from(f.buffer, f.byteOffset, f.byteLength);
  }
  bytes(out, 9, raw);
  return out;
}

export type Attr = number | string | readonly number[] | { floats: readonly number[] } | { tensor: TensorInit } | { float: number };

function isNumbers(v: Attr): v is readonly number[] {
  return Array.isArray(v);
}

function attribute(name: string, v: Attr): Bytes {
  const out: Bytes = [];
  str(out, 1, name);
  if (typeof v === 'number') {
    int(out, 3, v);
    int(out, 20, 2); // INT
  } else if (typeof v === 'string') {
    str(out, 4, v);
    int(out, 20, 3); // STRING
  } else if (isNumbers(v)) {
    for (const x of v) int(out, 8, x);
    int(out, 20, 7); // INTS
  } else if ('floats' in v) {
    for (const x of v.floats) float(out, 7, x);
    int(out, 20, 6); // FLOATS
  } else if ('float' in v) {
    float(out, 2, v.float);
    int(out, 20, 1); // FLOAT
  } else {
    bytes(out, 5, tensor(v.tensor));
    int(out, 20, 4); // TENSOR
  }
  return out;
}

export interface NodeInit {
  op: string;
  inputs: readonly string[];
  outputs: readonly string[];
  attrs?: Readonly<Record<string, Attr>>;
  name?: string;
}

function node(n: NodeInit, index: number): Bytes {
  const out: Bytes = [];
  for (const i of n.inputs) str(out, 1, i);
  for (const o of n.outputs) str(out, 2, o);
  str(out, 3, n.name ?? `${n.op}_${index}`);
  str(out, 4, n.op);
  for (const [k, v] of Object.entries(n.attrs ?? {})) bytes(out, 5, attribute(k, v));
  return out;
}

export interface ValueInit {
  name: string;
  /** A number is a fixed dimension, a string a symbolic one (e.g. 'batch'). */
  shape: readonly (number | string)[];
  elemType?: number;
}

function valueInfo(v: ValueInit): Bytes {
  const shape: Bytes = [];
  for (const d of v.shape) {
    const dim: Bytes = [];
    if (typeof d === 'number') int(dim, 1, d);
    else str(dim, 2, d);
    bytes(shape, 1, dim);
  }
  const tensorType: Bytes = [];
  int(tensorType, 1, v.elemType ?? DataType.FLOAT);
  bytes(tensorType, 2, shape);
  const type: Bytes = [];
  bytes(type, 1, tensorType);
  const out: Bytes = [];
  str(out, 1, v.name);
  bytes(out, 2, type);
  return out;
}

export interface GraphInit {
  name: string;
  inputs: readonly ValueInit[];
  outputs: readonly ValueInit[];
  nodes: readonly NodeInit[];
  initializers?: readonly TensorInit[];
  opset?: number;
}

/** Serializes a model (IR version 8, default opset 17). */
export function buildModel(g: GraphInit): Buffer {
  const graph: Bytes = [];
  g.nodes.forEach((n, i) => bytes(graph, 1, node(n, i)));
  str(graph, 2, g.name);
  for (const t of g.initializers ?? []) bytes(graph, 5, tensor(t));
  for (const v of g.inputs) bytes(graph, 11, valueInfo(v));
  for (const v of g.outputs) bytes(graph, 12, valueInfo(v));
  const opset: Bytes = [];
  str(opset, 1, '');
  int(opset, 2, g.opset ?? 17);
  const model: Bytes = [];
  int(model, 1, 8);
  str(model, 2, 'reflex');
  bytes(model, 7, graph);
  bytes(model, 8, opset);
  return Buffer.from(model);
}

/** Deterministic pseudo-random weights (mulberry32), scaled like a fan-in initialisation. */
export function weights(seed: number, count: number, scale: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1) * scale;
  }
  return out;
}
