// Policies made by code, reproducibly and offline: a small linear policy (tests, and the shape
// a LeRobot export takes) and an ACT-like benchmark model of realistic size.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BUNDLE_FORMAT, type PolicySpec } from '../../src/policy/index.js';
import { buildModel, weights, DataType, type NodeInit, type TensorInit } from './onnx-builder.js';

type PolicyJson = Omit<PolicySpec, 'format' | 'model' | 'runtime' | 'stats' | 'cameras' | 'images'> & Partial<Pick<PolicySpec, 'model' | 'runtime' | 'stats' | 'cameras' | 'images'>>;

export function writeBundle(dir: string, spec: PolicyJson, model: Uint8Array): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'policy.json'), `${JSON.stringify({ ...spec, format: BUNDLE_FORMAT }, null, 2)}\n`);
  writeFileSync(join(dir, spec.model ?? 'model.onnx'), model);
}

const i64 = (name: string, data: readonly number[]): TensorInit => ({ name, dims: [data.length], data, dataType: DataType.INT64 });

export interface OffsetPolicyOptions {
  joints: readonly string[];
  horizon: number;
  /** Normalized action i = normalized state + (i + 1) * step. */
  step: number;
  inputName?: string;
  /** Put a NaN into the output (a broken model). */
  nan?: boolean;
}

/** A model whose action is the state plus a ramp, in normalized units: easy to check exactly. */
export function offsetModel(o: OffsetPolicyOptions): Buffer {
  const d = o.joints.length;
  const ramp = new Float32Array(o.horizon * d);
  for (let i = 0; i < o.horizon; i++) for (let j = 0; j < d; j++) ramp[i * d + j] = (i + 1) * o.step;
  if (o.nan) ramp[d + 1] = NaN;
  const input = o.inputName ?? 'observation.state';
  return buildModel({
    name: 'offset',
    inputs: [{ name: input, shape: ['batch', d] }],
    outputs: [{ name: 'action', shape: ['batch', o.horizon, d] }],
    initializers: [i64('axes', [1]), { name: 'ramp', dims: [1, o.horizon, d], data: ramp }],
    nodes: [
      { op: 'Unsqueeze', inputs: [input, 'axes'], outputs: ['s3'] },
      { op: 'Add', inputs: ['s3', 'ramp'], outputs: ['action'] },
    ],
  });
}

/**
 * A "go home" policy: from any state, a chunk that moves every joint linearly to `home`
 * (joint space) over the horizon. A real policy in every respect but skill: the default of the
 * development setup until the simulated task's trained policy replaces it.
 */
export function writeHomeBundle(dir: string, joints: readonly string[], home: readonly number[], horizon = 50): void {
  const d = joints.length;
  const keep = new Float32Array(horizon * d);
  const toward = new Float32Array(horizon * d);
  for (let i = 0; i < horizon; i++) {
    const r = (i + 1) / horizon;
    for (let j = 0; j < d; j++) {
      keep[i * d + j] = 1 - r;
      toward[i * d + j] = r * home[j]!;
    }
  }
  const model = buildModel({
    name: 'home',
    inputs: [{ name: 'observation.state', shape: ['batch', d] }],
    outputs: [{ name: 'action', shape: ['batch', horizon, d] }],
    initializers: [i64('axes', [1]), { name: 'keep', dims: [1, horizon, d], data: keep }, { name: 'toward', dims: [1, horizon, d], data: toward }],
    nodes: [
      { op: 'Unsqueeze', inputs: ['observation.state', 'axes'], outputs: ['s3'] },
      { op: 'Mul', inputs: ['s3', 'keep'], outputs: ['kept'] },
      { op: 'Add', inputs: ['kept', 'toward'], outputs: ['action'] },
    ],
  });
  const ident = { mean: new Array<number>(d).fill(0), std: new Array<number>(d).fill(1) };
  writeBundle(
    dir,
    {
      name: 'home',
      version: '1',
      fps: 50,
      joints: joints as [string, ...string[]],
      features: { 'observation.state': { shape: [d], normalization: 'identity' }, action: { shape: [horizon, d], normalization: 'identity' } },
      stats: { 'observation.state': ident, action: ident },
    },
    model,
  );
}

/**
 * offsetModel with a camera input as well: the image's mean (times `imageWeight`) is added to
 * every action, so a test can see that pixels reach the policy.
 */
export function imageOffsetModel(o: OffsetPolicyOptions & { camera: string; size: number; imageWeight: number }): Buffer {
  const d = o.joints.length;
  const ramp = new Float32Array(o.horizon * d);
  for (let i = 0; i < o.horizon; i++) for (let j = 0; j < d; j++) ramp[i * d + j] = (i + 1) * o.step;
  const img = `observation.images.${o.camera}`;
  return buildModel({
    name: 'image-offset',
    inputs: [{ name: 'observation.state', shape: [1, d] }, { name: img, shape: [1, 3, o.size, o.size] }],
    outputs: [{ name: 'action', shape: [1, o.horizon, d] }],
    initializers: [i64('axes', [1]), i64('flat', [1, 1, 1]), { name: 'ramp', dims: [1, o.horizon, d], data: ramp }, { name: 'w', dims: [1], data: [o.imageWeight] }],
    nodes: [
      { op: 'Unsqueeze', inputs: ['observation.state', 'axes'], outputs: ['s3'] },
      { op: 'Add', inputs: ['s3', 'ramp'], outputs: ['planned'] },
      { op: 'ReduceMean', inputs: [img], outputs: ['m4'], attrs: { axes: [1, 2, 3], keepdims: 1 } },
      { op: 'Reshape', inputs: ['m4', 'flat'], outputs: ['m3'] },
      { op: 'Mul', inputs: ['m3', 'w'], outputs: ['seen'] },
      { op: 'Add', inputs: ['planned', 'seen'], outputs: ['action'] },
    ],
  });
}

export interface ReachOptions {
  /** Camera name and the size its frames are pre-processed to (the top-down view of the rig). */
  camera: string;
  height: number;
  width: number;
  /** Image pixels per metre on the table, and where the base is in the image. */
  pxPerM: number;
  /** Link lengths, metres (upper arm, forearm). */
  upperM: number;
  foreM: number;
  horizon: number;
}

/**
 * The simulated arm's reaching policy, written by hand as an ONNX graph (no training): find
 * the red target in the camera image (a redness map, a softmax over pixels, the expected pixel
 * position), turn it into a point on the table, solve the arm's inverse kinematics (base yaw
 * from the bearing; shoulder = -elbow/2 for the reach), and plan a chunk that moves from the
 * measured joint state to that solution. Camera and joint state in, closed loop.
 */
export function reachModel(o: ReachOptions): Buffer {
  const n = o.height * o.width;
  const grid = new Float32Array(n * 2);
  for (let v = 0; v < o.height; v++) {
    for (let u = 0; u < o.width; u++) {
      grid[(v * o.width + u) * 2] = u;
      grid[(v * o.width + u) * 2 + 1] = v;
    }
  }
  // Reach the solution within a third of a second, then hold it for the rest of the chunk.
  const rampTicks = Math.min(o.horizon, 15);
  const keep = new Float32Array(o.horizon * 3);
  for (let i = 0; i < o.horizon; i++) for (let j = 0; j < 3; j++) keep[i * 3 + j] = 1 - Math.min(1, (i + 1) / rampTicks);
  const reach = o.upperM + o.foreM;
  const img = `observation.images.${o.camera}`;
  const f = (name: string, dims: number[], data: number[] | Float32Array): TensorInit => ({ name, dims, data });
  return buildModel({
    name: 'reach',
    inputs: [{ name: 'observation.state', shape: [1, 3] }, { name: img, shape: [1, 3, o.height, o.width] }],
    outputs: [{ name: 'action', shape: [1, o.horizon, 3] }],
    initializers: [
      f('redness.w', [1, 3, 1, 1], [1, -0.5, -0.5]),
      f('beta', [1], [60]),
      i64('flat', [1, n]),
      f('grid', [n, 2], grid),
      f('center', [1, 2], [o.width / 2, o.height / 2]),
      f('toMetres', [1, 2], [1 / o.pxPerM, -1 / o.pxPerM]),
      i64('i0', [0]),
      i64('i1', [1]),
      f('reach', [1], [reach]),
      f('cmin', [1], [Math.cos(1.1)]),
      f('cmax', [1], [1]),
      f('two', [1], [2]),
      f('minusHalf', [1], [-0.5]),
      i64('axes1', [1]),
      f('keep', [1, o.horizon, 3], keep),
      f('one', [1], [1]),
    ],
    nodes: [
      { op: 'Conv', inputs: [img, 'redness.w'], outputs: ['red'] },
      { op: 'Mul', inputs: ['red', 'beta'], outputs: ['logits4'] },
      { op: 'Reshape', inputs: ['logits4', 'flat'], outputs: ['logits'] },
      { op: 'Softmax', inputs: ['logits'], outputs: ['p'], attrs: { axis: 1 } },
      { op: 'MatMul', inputs: ['p', 'grid'], outputs: ['uv'] },
      { op: 'Sub', inputs: ['uv', 'center'], outputs: ['duv'] },
      { op: 'Mul', inputs: ['duv', 'toMetres'], outputs: ['xy'] },
      { op: 'Gather', inputs: ['xy', 'i0'], outputs: ['x'], attrs: { axis: 1 } },
      { op: 'Gather', inputs: ['xy', 'i1'], outputs: ['y'], attrs: { axis: 1 } },
      // Targets are in front of the base (x > 0), so the bearing is atan(y / x).
      { op: 'Div', inputs: ['y', 'x'], outputs: ['slope'] },
      { op: 'Atan', inputs: ['slope'], outputs: ['base'] },
      { op: 'Mul', inputs: ['x', 'x'], outputs: ['x2'] },
      { op: 'Mul', inputs: ['y', 'y'], outputs: ['y2'] },
      { op: 'Add', inputs: ['x2', 'y2'], outputs: ['r2'] },
      { op: 'Sqrt', inputs: ['r2'], outputs: ['r'] },
      { op: 'Div', inputs: ['r', 'reach'], outputs: ['c0'] },
      { op: 'Clip', inputs: ['c0', 'cmin', 'cmax'], outputs: ['c'] },
      { op: 'Acos', inputs: ['c'], outputs: ['half'] },
      { op: 'Mul', inputs: ['half', 'two'], outputs: ['elbow'] },
      { op: 'Mul', inputs: ['elbow', 'minusHalf'], outputs: ['shoulder'] },
      { op: 'Concat', inputs: ['base', 'shoulder', 'elbow'], outputs: ['goal'], attrs: { axis: 1 } },
      { op: 'Unsqueeze', inputs: ['goal', 'axes1'], outputs: ['goal3'] },
      { op: 'Unsqueeze', inputs: ['observation.state', 'axes1'], outputs: ['s3'] },
      { op: 'Mul', inputs: ['s3', 'keep'], outputs: ['kept'] },
      { op: 'Sub', inputs: ['one', 'keep'], outputs: ['toward'] },
      { op: 'Mul', inputs: ['goal3', 'toward'], outputs: ['moved'] },
      { op: 'Add', inputs: ['kept', 'moved'], outputs: ['action'] },
    ],
  });
}

/** Writes the reaching policy for the simulated rig (config/dev.yaml's arm and camera). */
export function writeReachBundle(dir: string, o: ReachOptions): void {
  writeBundle(
    dir,
    {
      name: 'reach',
      version: '1',
      fps: 50,
      joints: ['base', 'shoulder', 'elbow'],
      cameras: [o.camera],
      features: {
        'observation.state': { shape: [3], normalization: 'identity' },
        [`observation.images.${o.camera}`]: { shape: [3, o.height, o.width], normalization: 'identity' },
        action: { shape: [o.horizon, 3], normalization: 'identity' },
      },
      runtime: { budgetMs: 200, intraOpThreads: 1 },
    },
    reachModel(o),
  );
}

export interface ActOptions {
  cameras: readonly string[];
  size: number;
  dof: number;
  horizon: number;
  width: number;
  layers: number;
  heads: number;
}

export const ACT_BENCH: ActOptions = { cameras: ['top', 'wrist'], size: 224, dof: 14, horizon: 50, width: 256, layers: 4, heads: 8 };

/**
 * An ACT-like model: a convolutional backbone (shared by the cameras, four stride-2 layers),
 * the state as one more token, and a transformer decoder whose `horizon` queries attend to
 * themselves and to the image and state tokens. Deterministic weights: for timing, not skill.
 */
export function actModel(o: ActOptions): Buffer {
  const nodes: NodeInit[] = [];
  const inits: TensorInit[] = [];
  let seed = 1;
  const W = (name: string, dims: number[], fanIn: number) => {
    inits.push({ name, dims, data: weights(seed++, dims.reduce((a, b) => a * b, 1), 1 / Math.sqrt(fanIn)) });
    return name;
  };
  const C = (name: string, dims: number[], value: number) => {
    inits.push({ name, dims, data: new Float32Array(dims.reduce((a, b) => a * b, 1)).fill(value) });
    return name;
  };
  const n = (op: string, inputs: string[], out: string, attrs?: NodeInit['attrs']) => {
    nodes.push({ op, inputs, outputs: [out], ...(attrs ? { attrs } : {}) });
    return out;
  };
  const D = o.width;
  const hd = D / o.heads;
  const chans = [3, 32, 64, 128, D];
  for (let l = 0; l < 4; l++) {
    W(`conv${l}.w`, [chans[l + 1]!, chans[l]!, 3, 3], chans[l]! * 9);
    C(`conv${l}.b`, [chans[l + 1]!], 0);
  }
  const grid = o.size / 16;
  inits.push(i64('tokens.shape', [1, D, grid * grid]));
  const memories: string[] = [];
  for (const cam of o.cameras) {
    let x = `observation.images.${cam}`;
    for (let l = 0; l < 4; l++) {
      x = n('Conv', [x, `conv${l}.w`, `conv${l}.b`], `${cam}.conv${l}`, { strides: [2, 2], pads: [1, 1, 1, 1], kernel_shape: [3, 3] });
      x = n('Relu', [x], `${cam}.relu${l}`);
    }
    x = n('Reshape', [x, 'tokens.shape'], `${cam}.flat`);
    memories.push(n('Transpose', [x], `${cam}.tokens`, { perm: [0, 2, 1] }));
  }
  inits.push(i64('axes1', [1]));
  const st = n('MatMul', ['observation.state', W('state.w', [o.dof, D], o.dof)], 'state.emb');
  memories.push(n('Unsqueeze', [st, 'axes1'], 'state.token'));
  const mem = n('Concat', memories, 'memory', { axis: 1 });

  inits.push(i64('heads.shape', [1, -1, o.heads, hd]), i64('merge.shape', [1, -1, D]));
  const scale = C('attn.scale', [1], 1 / Math.sqrt(hd));
  const attention = (p: string, q: string, kv: string) => {
    const Q = n('Transpose', [n('Reshape', [n('MatMul', [q, W(`${p}.wq`, [D, D], D)], `${p}.q`), 'heads.shape'], `${p}.qh`)], `${p}.qt`, { perm: [0, 2, 1, 3] });
    const K = n('Transpose', [n('Reshape', [n('MatMul', [kv, W(`${p}.wk`, [D, D], D)], `${p}.k`), 'heads.shape'], `${p}.kh`)], `${p}.kt`, { perm: [0, 2, 3, 1] });
    const V = n('Transpose', [n('Reshape', [n('MatMul', [kv, W(`${p}.wv`, [D, D], D)], `${p}.v`), 'heads.shape'], `${p}.vh`)], `${p}.vt`, { perm: [0, 2, 1, 3] });
    const att = n('Softmax', [n('Mul', [n('MatMul', [Q, K], `${p}.qk`), scale], `${p}.scaled`)], `${p}.att`, { axis: -1 });
    const ctx = n('Reshape', [n('Transpose', [n('MatMul', [att, V], `${p}.ctx`)], `${p}.ctxt`, { perm: [0, 2, 1, 3] }), 'merge.shape'], `${p}.merged`);
    return n('MatMul', [ctx, W(`${p}.wo`, [D, D], D)], `${p}.out`);
  };
  const norm = (p: string, x: string) => n('LayerNormalization', [x, C(`${p}.g`, [D], 1), C(`${p}.b`, [D], 0)], `${p}.y`, { axis: -1 });

  let x = W('queries', [1, o.horizon, D], 1);
  for (let l = 0; l < o.layers; l++) {
    x = norm(`l${l}.n1`, n('Add', [x, attention(`l${l}.self`, x, x)], `l${l}.r1`));
    x = norm(`l${l}.n2`, n('Add', [x, attention(`l${l}.cross`, x, mem)], `l${l}.r2`));
    const h = n('Relu', [n('MatMul', [x, W(`l${l}.ff1`, [D, 4 * D], D)], `l${l}.h`)], `l${l}.hr`);
    x = norm(`l${l}.n3`, n('Add', [x, n('MatMul', [h, W(`l${l}.ff2`, [4 * D, D], 4 * D)], `l${l}.f`)], `l${l}.r3`));
  }
  n('MatMul', [x, W('head', [D, o.dof], D)], 'action');

  return buildModel({
    name: 'act-bench',
    inputs: [{ name: 'observation.state', shape: [1, o.dof] }, ...o.cameras.map((c) => ({ name: `observation.images.${c}`, shape: [1, 3, o.size, o.size] }))],
    outputs: [{ name: 'action', shape: [1, o.horizon, o.dof] }],
    nodes,
    initializers: inits,
  });
}

/** Writes the ACT-like benchmark bundle into `dir`. */
export function writeActBundle(dir: string, o: ActOptions = ACT_BENCH): void {
  const joints = Array.from({ length: o.dof }, (_, i) => `joint_${i}`);
  const ident = (n: number) => ({ mean: new Array<number>(n).fill(0), std: new Array<number>(n).fill(1) });
  writeBundle(
    dir,
    {
      name: 'act-bench',
      version: '1',
      fps: 50,
      joints: joints as [string, ...string[]],
      cameras: [...o.cameras],
      features: {
        'observation.state': { shape: [o.dof], normalization: 'mean_std' },
        action: { shape: [o.horizon, o.dof], normalization: 'mean_std' },
        ...Object.fromEntries(o.cameras.map((c) => [`observation.images.${c}`, { shape: [3, o.size, o.size], normalization: 'mean_std' as const }])),
      },
      stats: {
        'observation.state': ident(o.dof),
        action: ident(o.dof),
        ...Object.fromEntries(o.cameras.map((c) => [`observation.images.${c}`, { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] }])),
      },
      runtime: { budgetMs: 2000, intraOpThreads: 1 },
    },
    actModel(o),
  );
}
