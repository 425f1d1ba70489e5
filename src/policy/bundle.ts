// The policy bundle: a directory with policy.json and model.onnx. policy.json speaks
// LeRobot's language (observation.state, observation.images.<camera>, action, and the
// mean/std/min/max statistics), so a LeRobot policy needs only this file written from its
// config and stats.json to run here.
import { join } from 'node:path';
import { z } from 'zod';
import { ReflexError, checkRegularFile, errorMessage, readRegularFile } from '../core/index.js';

export const BUNDLE_FORMAT = 'reflex.policy/1';

/** policy.json is a few kilobytes; anything near this is not one. */
export const POLICY_JSON_MAX_BYTES = 1024 * 1024;
/** The default bound on a model file (an ACT or SmolVLA export is well under this). */
export const MODEL_MAX_BYTES = 4 * 1024 ** 3;

export interface BundleLimits {
  /** Largest model file accepted, bytes. */
  maxModelBytes?: number;
}

const normalization = z.enum(['mean_std', 'min_max', 'identity']);

const stats = z
  .object({
    mean: z.array(z.number()).optional(),
    std: z.array(z.number()).optional(),
    min: z.array(z.number()).optional(),
    max: z.array(z.number()).optional(),
  })
  .strict();

const feature = z
  .object({
    shape: z.array(z.number().int().positive()).nonempty(),
    normalization: normalization.default('mean_std'),
    /**
     * The model's width when it is wider than the feature (π0-family models pad state and action
     * to 32): the state is fed zero-padded to it, and only the first values of each action are used.
     */
    padTo: z.number().int().positive().max(4096).optional(),
  })
  .strict();

/** How camera frames become the model's pixels (beyond the normalization statistics). */
const imagePrep = z
  .object({
    /** stretch: resize to the input size; pad: keep the aspect ratio and pad with black (π0, SmolVLA). */
    resize: z.enum(['stretch', 'pad']).default('stretch'),
    /** The range a pixel of 0..255 is mapped to before normalization: [0, 1], or [-1, 1] for SigLIP-style encoders. */
    pixels: z.tuple([z.number(), z.number()]).default([0, 1]),
  })
  .strict()
  .refine((p) => p.pixels[1] > p.pixels[0], { message: 'pixels must be [low, high] with high > low' });

/** A task instruction, tokenized on the robot: int64 token ids [1, maxLength] (and a 1/0 mask). */
const taskInput = z
  .object({
    input: z.string().min(1),
    mask: z.string().min(1).optional(),
    /** A Hugging Face tokenizer.json in the bundle. */
    tokenizer: z.string().min(1).default('tokenizer.json'),
    maxLength: z.number().int().positive().max(4096),
    padId: z.number().int().min(0).default(0),
  })
  .strict();

/** The initial noise of a flow-matching or diffusion policy, Gaussian from a seeded generator. */
const noiseInput = z.object({ input: z.string().min(1), shape: z.array(z.number().int().positive()).nonempty() }).strict();

/**
 * Real-time chunking (training-time RTC): the committed prefix [1, horizon, action width],
 * normalized, zero past its length, and the delay in steps (int64 [1]).
 */
const rtcInputs = z.object({ prefix: z.string().min(1), delay: z.string().min(1) }).strict();

/** Bound on a tokenizer.json (a large vocabulary is a few MB). */
export const TOKENIZER_MAX_BYTES = 32 * 1024 * 1024;

export const policySchema = z
  .object({
    format: z.literal(BUNDLE_FORMAT),
    name: z.string().min(1),
    version: z.string().min(1),
    model: z.string().min(1).default('model.onnx'),
    /** The control rate it was trained at (LeRobot's fps). */
    fps: z.number().positive(),
    /** Joint names, in the order of observation.state and of each action. */
    joints: z.array(z.string().min(1)).nonempty(),
    /** Camera names: each has an input observation.images.<name>. */
    cameras: z.array(z.string().min(1)).default([]),
    /** Inputs and the output, by LeRobot feature name. */
    features: z.record(z.string(), feature),
    /** Normalization statistics by feature (LeRobot's stats.json). Image stats are per channel. */
    stats: z.record(z.string(), stats).default({}),
    images: imagePrep.default({}),
    task: taskInput.optional(),
    noise: noiseInput.optional(),
    rtc: rtcInputs.optional(),
    /** Where the bundle came from (e.g. a LeRobot checkpoint: its policy type and path), for people. */
    source: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional(),
    runtime: z
      .object({
        /** An inference slower than this is an error: its chunk is dropped. */
        budgetMs: z.number().positive().default(500),
        /** Threads for ONNX Runtime's intra-op pool on the CPU provider. */
        intraOpThreads: z.number().int().min(1).max(64).default(1),
      })
      .strict()
      .default({}),
  })
  .strict();

export type PolicySpec = z.output<typeof policySchema>;

export interface Feature {
  name: string;
  shape: number[];
  normalization: 'mean_std' | 'min_max' | 'identity';
  /** Per-element (or per-channel for images) scale and offset: normalized = (x - offset) / scale. */
  offset: Float32Array;
  scale: Float32Array;
  /** The model's width of the last dimension (padTo, else the feature's own). */
  width: number;
}

export interface PolicyBundle {
  dir: string;
  spec: PolicySpec;
  modelPath: string;
  state: Feature;
  images: Feature[];
  action: Feature;
  horizon: number;
  dof: number;
  /** The tokenizer.json of a bundle with a task input, else null. */
  tokenizerPath: string | null;
}

function fail(dir: string, why: string): never {
  throw new ReflexError('BAD_REQUEST', `policy bundle ${dir}: ${why}`);
}

/** The affine map of a normalization: LeRobot's MEAN_STD, MIN_MAX (to [-1, 1]) and IDENTITY. */
function affine(dir: string, name: string, f: z.output<typeof feature>, s: z.output<typeof stats> | undefined, n: number): Feature {
  const offset = new Float32Array(n);
  const scale = new Float32Array(n).fill(1);
  const want = (k: 'mean' | 'std' | 'min' | 'max') => {
    const v = s?.[k];
    if (!v) fail(dir, `stats.${name}.${k} is missing (normalization ${f.normalization})`);
    if (v.length !== n) fail(dir, `stats.${name}.${k} has ${v.length} values, the feature wants ${n}`);
    return v;
  };
  if (f.normalization === 'mean_std') {
    const mean = want('mean');
    const std = want('std');
    for (let i = 0; i < n; i++) {
      offset[i] = mean[i]!;
      scale[i] = std[i]! + 1e-8;
    }
  } else if (f.normalization === 'min_max') {
    const min = want('min');
    const max = want('max');
    for (let i = 0; i < n; i++) {
      offset[i] = (max[i]! + min[i]!) / 2;
      scale[i] = (max[i]! - min[i]! + 1e-8) / 2;
    }
  }
  const own = f.shape[f.shape.length - 1]!;
  if (f.padTo !== undefined && f.padTo < own) fail(dir, `${name}.padTo is ${f.padTo}, narrower than the feature's ${own}`);
  return { name, shape: [...f.shape], normalization: f.normalization, offset, scale, width: f.padTo ?? own };
}

/** Reads and checks a bundle directory. Throws BAD_REQUEST naming what is wrong. */
export function loadBundle(dir: string, limits: BundleLimits = {}): PolicyBundle {
  let raw: unknown;
  try {
    raw = JSON.parse(readRegularFile(join(dir, 'policy.json'), POLICY_JSON_MAX_BYTES).toString('utf8'));
  } catch (err) {
    fail(dir, `policy.json: ${errorMessage(err)}`);
  }
  const parsed = policySchema.safeParse(raw);
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    fail(dir, `policy.json ${i.path.join('.') || '(top level)'}: ${i.message}`);
  }
  const spec = parsed.data;
  const modelPath = join(dir, spec.model);
  try {
    // ONNX Runtime opens the model by path (so a model with external data finds it beside
    // it); what it would open is checked here first.
    checkRegularFile(modelPath, limits.maxModelBytes ?? MODEL_MAX_BYTES);
  } catch (err) {
    fail(dir, `${spec.model}: ${errorMessage(err)}`);
  }
  const dof = spec.joints.length;
  const st = spec.features['observation.state'];
  if (!st) fail(dir, 'features has no observation.state');
  if (st.shape.length !== 1 || st.shape[0] !== dof) fail(dir, `observation.state has shape [${st.shape.join(', ')}], ${dof} joints want [${dof}]`);
  const act = spec.features.action;
  if (!act) fail(dir, 'features has no action');
  if (act.shape.length !== 2 || act.shape[1] !== dof) fail(dir, `action has shape [${act.shape.join(', ')}], want [horizon, ${dof}]`);
  const images = spec.cameras.map((cam) => {
    const name = `observation.images.${cam}`;
    const f = spec.features[name];
    if (!f) fail(dir, `camera ${cam} has no feature ${name}`);
    if (f.shape.length !== 3 || f.shape[0] !== 3) fail(dir, `${name} has shape [${f.shape.join(', ')}], want [3, height, width]`);
    return affine(dir, name, f, spec.stats[name], 3);
  });
  let tokenizerPath: string | null = null;
  if (spec.task) {
    tokenizerPath = join(dir, spec.task.tokenizer);
    try {
      checkRegularFile(tokenizerPath, TOKENIZER_MAX_BYTES);
    } catch (err) {
      fail(dir, `${spec.task.tokenizer}: ${errorMessage(err)}`);
    }
  }
  const known = new Set(['observation.state', 'action', ...spec.cameras.map((c) => `observation.images.${c}`)]);
  for (const name of Object.keys(spec.features)) if (!known.has(name)) fail(dir, `feature ${name} is neither the state, an action, nor a listed camera`);
  return {
    dir,
    spec,
    modelPath,
    state: affine(dir, 'observation.state', st, spec.stats['observation.state'], dof),
    images,
    action: affine(dir, 'action', act, spec.stats.action, dof),
    horizon: act.shape[0],
    dof,
    tokenizerPath,
  };
}

export interface RobotShape {
  rateHz: number;
  joints: readonly string[];
  cameras: readonly string[];
}

/** Every way a bundle does not fit the robot, in words; empty when it fits. */
export function mismatches(b: PolicyBundle, robot: RobotShape): string[] {
  const out: string[] = [];
  const j = b.spec.joints;
  if (j.length !== robot.joints.length || j.some((n, i) => robot.joints[i] !== n)) {
    out.push(`joints: the policy wants [${j.join(', ')}], the robot has [${robot.joints.join(', ')}]`);
  }
  const missing = b.spec.cameras.filter((c) => !robot.cameras.includes(c));
  if (missing.length > 0) out.push(`cameras: the policy wants ${missing.join(', ')}, the robot has [${robot.cameras.join(', ')}]`);
  if (Math.abs(b.spec.fps - robot.rateHz) > 1e-9) out.push(`rate: the policy was trained at ${b.spec.fps} Hz, the loop runs at ${robot.rateHz} Hz`);
  return out;
}

/** How each camera's frames must be pre-processed for this policy: size and channel normalization. */
export function imageSpecs(b: PolicyBundle): Map<string, { height: number; width: number; mean: [number, number, number]; std: [number, number, number]; pad: boolean }> {
  const out = new Map<string, { height: number; width: number; mean: [number, number, number]; std: [number, number, number]; pad: boolean }>();
  for (const f of b.images) {
    const cam = f.name.slice('observation.images.'.length);
    // The pixel range folds into the normalization: x = lo + (hi - lo) * p/255, then (x - mean) / std.
    const [lo, hi] = b.spec.images.pixels;
    const k = hi - lo;
    const ch = (i: number): [number, number] => [(f.offset[i]! - lo) / k, f.scale[i]! / k];
    const [m0, s0] = ch(0);
    const [m1, s1] = ch(1);
    const [m2, s2] = ch(2);
    out.set(cam, { height: f.shape[1]!, width: f.shape[2]!, mean: [m0, m1, m2], std: [s0, s1, s2], pad: b.spec.images.resize === 'pad' });
  }
  return out;
}
