// A LeRobot checkpoint -> a reflex bundle. A training run's `pretrained_model/` says what the
// policy reads and writes (config.json: input_features, output_features, normalization_mapping,
// chunk_size, resize settings) and holds the normalizer's statistics (policy_preprocessor.json
// names a .safetensors state file); the dataset's meta/info.json gives fps and joint names.
// From those and an ONNX export of the network this writes policy.json and copies the model,
// checks the model's inputs and outputs against it, and says what it could not map.
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import { ReflexError, checkRegularFile, errorMessage, readRegularFile } from '../core/index.js';
import { BUNDLE_FORMAT, MODEL_MAX_BYTES, TOKENIZER_MAX_BYTES, loadBundle, mismatches, type PolicySpec, type RobotShape } from './bundle.js';
import { ioMismatches, loadOrt, type Ort } from './session.js';
import { readSafetensors, type SafeTensor } from './safetensors.js';

const JSON_MAX_BYTES = 4 * 1024 * 1024;

export interface ImportOptions {
  /** The checkpoint directory (LeRobot's `pretrained_model/`). */
  checkpoint: string;
  /** The ONNX export of the policy's chunk prediction. */
  onnx: string;
  /** The bundle directory to write (must not exist, or be empty). */
  out: string;
  /** The dataset's meta/info.json (fps, joint names). */
  datasetInfo?: string | undefined;
  /** A Hugging Face tokenizer.json, for a model that takes task tokens (copied into the bundle). */
  tokenizer?: string | undefined;
  /** The robot the bundle must fit (from a reflex config): refused with what differs. */
  robot?: RobotShape | undefined;
  name?: string | undefined;
  version?: string | undefined;
  /** onnxruntime to open the model with (default: the npm package). */
  ort?: Ort | undefined;
}

export interface ImportResult {
  dir: string;
  spec: PolicySpec;
  /** What the checkpoint holds that the bundle does not carry, in words. */
  unmapped: string[];
  /** What was assumed for lack of information, in words. */
  assumed: string[];
}

const lrFeature = z.object({ type: z.string(), shape: z.array(z.number().int().nonnegative()) }).passthrough();

/** config.json: only what is read here; the rest of a policy's config passes through. */
const lrConfig = z
  .object({
    type: z.string(),
    input_features: z.record(z.string(), lrFeature),
    output_features: z.record(z.string(), lrFeature),
    normalization_mapping: z.record(z.string(), z.string()).default({}),
    chunk_size: z.number().int().positive().optional(),
    horizon: z.number().int().positive().optional(),
    n_action_steps: z.number().int().positive().optional(),
    resize_imgs_with_padding: z.tuple([z.number().int().positive(), z.number().int().positive()]).nullable().optional(),
    image_resolution: z.tuple([z.number().int().positive(), z.number().int().positive()]).nullable().optional(),
    resize_shape: z.tuple([z.number().int().positive(), z.number().int().positive()]).nullable().optional(),
    max_state_dim: z.number().int().positive().optional(),
    max_action_dim: z.number().int().positive().optional(),
  })
  .passthrough();

const lrPipeline = z
  .object({
    name: z.string().optional(),
    steps: z.array(
      z
        .object({
          registry_name: z.string().optional(),
          class: z.string().optional(),
          config: z.record(z.string(), z.unknown()).default({}),
          state_file: z.string().optional(),
        })
        .passthrough(),
    ),
  })
  .passthrough();

const lrInfo = z
  .object({
    fps: z.number().positive().optional(),
    features: z.record(z.string(), z.object({ names: z.unknown().optional(), shape: z.array(z.number()).optional() }).passthrough()).default({}),
  })
  .passthrough();

type Normalization = 'mean_std' | 'min_max' | 'identity';

/** LeRobot's NormalizationMode -> reflex's, and which statistics stand for min and max. */
const MODES: Record<string, { mode: Normalization; lo?: string; hi?: string }> = {
  MEAN_STD: { mode: 'mean_std' },
  MIN_MAX: { mode: 'min_max', lo: 'min', hi: 'max' },
  IDENTITY: { mode: 'identity' },
  // Quantile normalization is MIN_MAX's formula over the 1st/99th (10th/90th) percentiles.
  QUANTILES: { mode: 'min_max', lo: 'q01', hi: 'q99' },
  QUANTILE10: { mode: 'min_max', lo: 'q10', hi: 'q90' },
};

/** Policy types that pad images to a square and feed SigLIP-style pixels in [-1, 1]. */
const VLA_TYPES = new Set(['pi0', 'pi05', 'pi0fast', 'pi0_fast', 'smolvla']);

/** Steps of the processor pipelines that the runtime does itself, or that change nothing on the robot. */
const HANDLED_STEPS = new Set([
  'normalizer_processor',
  'unnormalizer_processor',
  'to_batch_processor',
  'device_processor',
  'rename_observations_processor',
]);

function refuse(why: string): never {
  throw new ReflexError('BAD_REQUEST', why);
}

function readJson<T>(path: string, schema: z.ZodType<T, z.ZodTypeDef, unknown>): T {
  let raw: unknown;
  try {
    raw = JSON.parse(readRegularFile(path, JSON_MAX_BYTES).toString('utf8'));
  } catch (err) {
    refuse(`${path}: ${errorMessage(err)}`);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    refuse(`${path}: ${i.path.join('.') || '(top level)'}: ${i.message}`);
  }
  return parsed.data;
}

/** A state file named by a pipeline: a plain file name beside the pipeline, nothing else. */
function stateFile(checkpoint: string, pipeline: string, name: string): string {
  if (name !== basename(name) || name === '.' || name === '..' || name.includes('\\')) refuse(`${pipeline}: state_file ${JSON.stringify(name)} is not a file name in the checkpoint`);
  return join(checkpoint, name);
}

/** Joint names of a feature in info.json: a list, or LeRobot's older {motors: [...]} / {axes: [...]}. */
function namesOf(names: unknown): string[] | null {
  const list: unknown = Array.isArray(names) ? names : typeof names === 'object' && names !== null ? Object.values(names)[0] : null;
  if (!Array.isArray(list) || list.length === 0 || !list.every((n) => typeof n === 'string' && n.length > 0)) return null;
  return list as string[];
}

function numbers(t: SafeTensor): number[] {
  return Array.from(t.data);
}

interface Loaded {
  config: z.output<typeof lrConfig>;
  pre: z.output<typeof lrPipeline> | null;
  post: z.output<typeof lrPipeline> | null;
  stats: Map<string, SafeTensor>;
  postStats: Map<string, SafeTensor>;
}

function loadCheckpoint(dir: string, unmapped: string[]): Loaded {
  const config = readJson(join(dir, 'config.json'), lrConfig);
  const pipeline = (file: string) => (existsSync(join(dir, file)) ? readJson(join(dir, file), lrPipeline) : null);
  const pre = pipeline('policy_preprocessor.json');
  const post = pipeline('policy_postprocessor.json');
  const statsOf = (p: z.output<typeof lrPipeline> | null, file: string, step: string): Map<string, SafeTensor> => {
    const s = p?.steps.find((x) => x.registry_name === step);
    if (!s?.state_file) return new Map();
    return readSafetensors(stateFile(dir, file, s.state_file));
  };
  const stats = statsOf(pre, 'policy_preprocessor.json', 'normalizer_processor');
  const postStats = statsOf(post, 'policy_postprocessor.json', 'unnormalizer_processor');
  for (const [file, p] of [['policy_preprocessor.json', pre], ['policy_postprocessor.json', post]] as const) {
    for (const s of p?.steps ?? []) {
      const name = s.registry_name ?? s.class ?? '(unnamed)';
      if (name === 'rename_observations_processor') {
        const map = (s.config.rename_map ?? {}) as Record<string, unknown>;
        if (Object.keys(map).length > 0) unmapped.push(`${file}: rename_observations_processor renames ${JSON.stringify(map)}; reflex feeds the checkpoint's own feature names`);
      } else if (name === 'tokenizer_processor') {
        // Mapped from the model's token inputs (and --tokenizer) below.
      } else if (!HANDLED_STEPS.has(name)) {
        unmapped.push(`${file}: step ${name} is not done on the robot`);
      }
    }
  }
  return { config, pre, post, stats, postStats };
}

/** The statistics a feature's normalization needs, from the normalizer's state (flattened per channel for images). */
function featureStats(l: Loaded, name: string, mode: string, n: number): PolicySpec['stats'][string] {
  const m = MODES[mode];
  if (!m) refuse(`config.json normalization_mapping: ${mode} (for ${name}) is not one reflex knows (${Object.keys(MODES).join(', ')})`);
  const want = m.mode === 'mean_std' ? ['mean', 'std'] : m.mode === 'min_max' ? [m.lo!, m.hi!] : [];
  const out: Record<string, number[]> = {};
  for (const k of want) {
    const t = l.stats.get(`${name}.${k}`);
    if (!t) refuse(`the normalizer statistics have no ${name}.${k} (${mode} normalization of ${name} needs it)`);
    if (t.data.length !== n) refuse(`the normalizer statistics ${name}.${k} have ${t.data.length} values, ${name} has ${n}`);
    const key = k === m.lo ? 'min' : k === m.hi ? 'max' : k;
    out[key] = numbers(t);
  }
  return out;
}

function modeOf(config: Loaded['config'], type: string): string {
  return config.normalization_mapping[type] ?? 'IDENTITY';
}

/** Reads the checkpoint and the model and writes the bundle; throws BAD_REQUEST saying what is wrong. */
export async function importCheckpoint(o: ImportOptions): Promise<ImportResult> {
  const unmapped: string[] = [];
  const assumed: string[] = [];
  const ckpt = resolve(o.checkpoint);
  const l = loadCheckpoint(ckpt, unmapped);
  const c = l.config;
  const info = o.datasetInfo ? readJson(o.datasetInfo, lrInfo) : null;

  // Features: one state, cameras, one action; anything else the robot cannot give.
  const stateIn = c.input_features['observation.state'];
  if (!stateIn || stateIn.type !== 'STATE') refuse(`config.json: input_features has no observation.state of type STATE (it has ${Object.keys(c.input_features).join(', ')})`);
  const actionOut = c.output_features.action;
  if (!actionOut || actionOut.type !== 'ACTION') refuse(`config.json: output_features has no action of type ACTION (it has ${Object.keys(c.output_features).join(', ')})`);
  const dof = stateIn.shape[stateIn.shape.length - 1] ?? 0;
  if (stateIn.shape.length !== 1 || dof < 1) refuse(`config.json: observation.state has shape [${stateIn.shape.join(', ')}], want [joints]`);
  const actDim = actionOut.shape[actionOut.shape.length - 1] ?? 0;
  if (actDim !== dof) refuse(`config.json: action has ${actDim} values per step, observation.state ${dof}: reflex commands the joints it reads`);
  const cameras: string[] = [];
  for (const [name, f] of Object.entries(c.input_features)) {
    if (name === 'observation.state') continue;
    if (f.type === 'VISUAL' && name.startsWith('observation.images.')) cameras.push(name.slice('observation.images.'.length));
    else unmapped.push(`input ${name} (${f.type}, [${f.shape.join(', ')}]): the robot has no such observation`);
  }
  for (const name of Object.keys(c.output_features)) if (name !== 'action') unmapped.push(`output ${name}: only action is used`);
  if (unmapped.some((u) => u.startsWith('input '))) {
    refuse(`the policy reads inputs the robot cannot give: ${unmapped.filter((u) => u.startsWith('input ')).join('; ')}`);
  }

  // The model: its inputs and outputs decide the chunk length, padding and image sizes.
  checkModel(o.onnx);
  const ort = o.ort ?? loadOrt(null);
  const session = await ort.InferenceSession.create(resolve(o.onnx), { executionProviders: ['cpu'], graphOptimizationLevel: 'disabled', logSeverityLevel: 3 }).catch((err: unknown) =>
    refuse(`${o.onnx}: ONNX Runtime cannot open it: ${errorMessage(err).split('\n')[0]}`),
  );
  try {
    const dims = (name: string, output = false) => {
      const m = (output ? session.outputMetadata : session.inputMetadata).find((x) => x.name === name);
      return m && m.isTensor ? m.shape : null;
    };
    const num = (d: number | string | undefined) => (typeof d === 'number' && d > 0 ? d : null);
    const actionDims = dims('action', true);
    const horizon = num(actionDims?.[1]) ?? c.chunk_size ?? c.horizon ?? c.n_action_steps;
    if (horizon === undefined) refuse('the chunk length is unknown: the model\'s action output has no fixed length and config.json has no chunk_size');
    if (c.chunk_size !== undefined && num(actionDims?.[1]) !== null && num(actionDims?.[1]) !== c.chunk_size) {
      assumed.push(`chunk length ${horizon} from the model's action output (config.json says chunk_size ${c.chunk_size})`);
    }
    const stateWidth = num(dims('observation.state')?.[1]) ?? c.max_state_dim ?? dof;
    const actionWidth = num(actionDims?.[2]) ?? c.max_action_dim ?? dof;

    // Images: the size the model takes; how frames get there (stretch or pad) and the pixel range.
    const padded = VLA_TYPES.has(c.type);
    const resize = c.resize_imgs_with_padding ?? c.image_resolution ?? c.resize_shape ?? null;
    const features: PolicySpec['features'] = {};
    const stats: PolicySpec['stats'] = {};
    const stateMode = modeOf(c, 'STATE');
    features['observation.state'] = { shape: [dof], normalization: MODES[stateMode]?.mode ?? 'identity', ...(stateWidth > dof ? { padTo: stateWidth } : {}) };
    stats['observation.state'] = featureStats(l, 'observation.state', stateMode, dof);
    const actMode = modeOf(c, 'ACTION');
    features.action = { shape: [horizon, dof], normalization: MODES[actMode]?.mode ?? 'identity', ...(actionWidth > dof ? { padTo: actionWidth } : {}) };
    stats.action = featureStats(l, 'action', actMode, dof);
    checkPostStats(l, stats.action, unmapped);
    const visMode = modeOf(c, 'VISUAL');
    for (const cam of cameras) {
      const name = `observation.images.${cam}`;
      const f = c.input_features[name]!;
      if (f.shape.length !== 3 || f.shape[0] !== 3) refuse(`config.json: ${name} has shape [${f.shape.join(', ')}], want [3, height, width]`);
      const m = dims(name);
      const hw: [number, number] = m && num(m[2]) && num(m[3]) ? [m[2] as number, m[3] as number] : resize ? [resize[0], resize[1]] : [f.shape[1]!, f.shape[2]!];
      if (resize && (hw[0] !== resize[0] || hw[1] !== resize[1])) assumed.push(`${name}: ${hw[0]}x${hw[1]} as the model takes it (config.json resizes to ${resize[0]}x${resize[1]})`);
      features[name] = { shape: [3, hw[0], hw[1]], normalization: MODES[visMode]?.mode ?? 'identity' };
      stats[name] = featureStats(l, name, visMode, 3);
    }

    // Names and rate: the dataset's, else what the robot config says, said as assumed.
    let joints = namesOf(info?.features['observation.state']?.names);
    const actionNames = namesOf(info?.features.action?.names);
    if (joints && joints.length !== dof) refuse(`${o.datasetInfo}: observation.state names ${joints.length} joints, the policy has ${dof}`);
    if (joints && actionNames && actionNames.join('\u0000') !== joints.join('\u0000')) {
      refuse(`${o.datasetInfo}: action names [${actionNames.join(', ')}] differ from observation.state names [${joints.join(', ')}]: reflex commands the joints it reads, in the same order`);
    }
    if (!joints) {
      if (o.robot && o.robot.joints.length === dof) {
        joints = [...o.robot.joints];
        assumed.push(`joint names from the robot config (${joints.join(', ')}): no --dataset-info names`);
      } else {
        joints = Array.from({ length: dof }, (_, i) => `joint_${i}`);
        assumed.push(`joint names ${joints.join(', ')}: give --dataset-info (the dataset's meta/info.json) for the real ones`);
      }
    }
    let fps = info?.fps;
    if (fps === undefined) {
      fps = o.robot?.rateHz ?? 50;
      assumed.push(`${fps} Hz: give --dataset-info (the dataset's meta/info.json) for the rate it was recorded at`);
    }

    const vlaIn = vlaInputs(o, session, horizon, actionWidth, assumed);
    const run = runOf(ckpt);
    const spec: PolicySpec = {
      format: BUNDLE_FORMAT,
      name: o.name ?? `${c.type}-${run.name}`,
      version: o.version ?? run.step,
      model: 'model.onnx',
      fps,
      joints: joints as [string, ...string[]],
      cameras,
      features,
      stats,
      images: { resize: padded ? 'pad' : 'stretch', pixels: padded ? [-1, 1] : [0, 1] },
      source: {
        framework: 'lerobot',
        type: c.type,
        checkpoint: ckpt,
        ...(c.n_action_steps !== undefined ? { nActionSteps: c.n_action_steps } : {}),
      },
      runtime: { budgetMs: 500, intraOpThreads: 1 },
      ...vlaIn,
    };
    return writeAndCheck(o, spec, session, unmapped, assumed, vlaIn.task ? o.tokenizer : undefined);
  } finally {
    await session.release();
  }
}

/** LeRobot's names for the task tokens; reflex's export names for the noise and RTC inputs. */
const TOKENS = 'observation.language.tokens';
const TOKEN_MASK = 'observation.language.attention_mask';

/**
 * The VLA inputs the model takes, declared for the worker to feed: task tokens (with the
 * tokenizer given), the sampler's starting noise, and training-time RTC's prefix and delay.
 */
function vlaInputs(o: ImportOptions, session: import('onnxruntime-node').InferenceSession, horizon: number, width: number, assumed: string[]): Pick<PolicySpec, 'task' | 'noise' | 'rtc'> {
  const inputs = new Map(session.inputMetadata.map((m) => [m.name, m.isTensor ? m.shape : []]));
  const fixed = (name: string): number[] | null => {
    const dims = inputs.get(name)?.slice(1) ?? [];
    return dims.length > 0 && dims.every((d) => typeof d === 'number' && d > 0) ? (dims as number[]) : null;
  };
  const out: Pick<PolicySpec, 'task' | 'noise' | 'rtc'> = {};
  if (inputs.has(TOKENS)) {
    if (o.tokenizer === undefined) refuse(`the model takes task tokens (${TOKENS}): give --tokenizer (the policy's tokenizer.json)`);
    checkTokenizer(o.tokenizer);
    const maxLength = fixed(TOKENS)?.[0];
    if (maxLength === undefined) refuse(`the model's ${TOKENS} input has no fixed length`);
    out.task = { input: TOKENS, ...(inputs.has(TOKEN_MASK) ? { mask: TOKEN_MASK } : {}), tokenizer: 'tokenizer.json', maxLength, padId: 0 };
  }
  if (inputs.has('noise')) {
    const shape = fixed('noise') ?? [horizon, width];
    out.noise = { input: 'noise', shape: shape as [number, ...number[]] };
    assumed.push(`the model's noise input [${shape.join(', ')}] is fed Gaussian noise from a seeded generator (policy.seed)`);
  }
  if (inputs.has('action_prefix') && inputs.has('inference_delay')) out.rtc = { prefix: 'action_prefix', delay: 'inference_delay' };
  return out;
}

function checkTokenizer(path: string): void {
  try {
    checkRegularFile(path, TOKENIZER_MAX_BYTES);
  } catch (err) {
    refuse(`${path}: ${errorMessage(err)}`);
  }
}

/** LeRobot saves outputs/train/<run>/checkpoints/<step>/pretrained_model: the run names the policy, the step versions it. */
function runOf(ckpt: string): { name: string; step: string } {
  const step = dirname(ckpt);
  if (basename(ckpt) === 'pretrained_model' && basename(dirname(step)) === 'checkpoints') {
    return { name: basename(dirname(dirname(step))), step: basename(step) };
  }
  return { name: basename(ckpt), step: '1' };
}

function checkModel(path: string): void {
  try {
    checkRegularFile(path, MODEL_MAX_BYTES);
  } catch (err) {
    refuse(`${path}: ${errorMessage(err)}`);
  }
}

/** The postprocessor's unnormalizer must turn the model's output back with the same numbers. */
function checkPostStats(l: Loaded, action: PolicySpec['stats'][string], unmapped: string[]): void {
  for (const [k, v] of Object.entries(action)) {
    const t = l.postStats.get(`action.${k}`) ?? l.postStats.get(`action.${k === 'min' ? 'q01' : k === 'max' ? 'q99' : k}`);
    if (!t) continue;
    const differs = t.data.length !== (v?.length ?? 0) || t.data.some((x, i) => Math.abs(x - v![i]!) > 1e-6 * Math.max(1, Math.abs(x)));
    if (differs) unmapped.push(`policy_postprocessor.json: its action.${k} differs from the preprocessor's; the preprocessor's is used`);
  }
  if (l.post === null) unmapped.push('no policy_postprocessor.json: actions are unnormalized with the preprocessor\'s action statistics');
}

function writeAndCheck(o: ImportOptions, spec: PolicySpec, session: import('onnxruntime-node').InferenceSession, unmapped: string[], assumed: string[], tokenizer?: string): ImportResult {
  const out = resolve(o.out);
  if (existsSync(out) && readdirSync(out).length > 0) refuse(`${out} exists and is not empty: a bundle is written to a new directory`);
  // Written beside its final place and renamed: a failed import leaves no half bundle.
  const tmp = join(dirname(out), `.${basename(out)}.import-${randomBytes(4).toString('hex')}`);
  mkdirSync(tmp, { recursive: true });
  try {
    writeFileSync(join(tmp, 'policy.json'), `${JSON.stringify(spec, null, 2)}\n`);
    copyFileSync(o.onnx, join(tmp, spec.model));
    if (tokenizer !== undefined && spec.task) copyFileSync(tokenizer, join(tmp, spec.task.tokenizer));
    const bundle = loadBundle(tmp);
    const io = ioMismatches(session, bundle);
    if (io.length > 0) refuse(`the ONNX model does not match the checkpoint: ${io.join('; ')}`);
    if (o.robot) {
      const misfit = mismatches(bundle, o.robot);
      if (misfit.length > 0) refuse(`the checkpoint does not fit this robot: ${misfit.join('; ')}`);
    }
    if (existsSync(out)) rmSync(out, { recursive: true });
    renameSync(tmp, out);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  return { dir: out, spec, unmapped, assumed };
}
