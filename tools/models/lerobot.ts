// LeRobot checkpoints written by code, in LeRobot 0.4's own file layout, so the importer is
// tested against what a training run leaves on disk without Python: pretrained_model/ with
// config.json, policy_preprocessor.json (+ its normalizer's .safetensors), policy_postprocessor.json
// (+ its unnormalizer's), and the dataset's meta/info.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TensorOut {
  dtype: 'F32' | 'F64' | 'I64';
  shape: readonly number[];
  data: readonly number[];
}

const BYTES = { F32: 4, F64: 8, I64: 8 } as const;

/**
 * A safetensors image as the reference implementation writes it: tensors sorted by name (one
 * dtype here), back to back, a compact JSON header padded with spaces to 8 bytes.
 */
export function safetensorsBytes(tensors: Readonly<Record<string, TensorOut>>, metadata?: Readonly<Record<string, string>>): Buffer {
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let at = 0;
  const parts: Buffer[] = [];
  for (const name of names) {
    const t = tensors[name]!;
    const b = Buffer.alloc(t.data.length * BYTES[t.dtype]);
    t.data.forEach((v, i) => {
      if (t.dtype === 'F32') b.writeFloatLE(v, i * 4);
      else if (t.dtype === 'F64') b.writeDoubleLE(v, i * 8);
      else b.writeBigInt64LE(BigInt(v), i * 8);
    });
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [at, at + b.length] };
    at += b.length;
    parts.push(b);
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([len, Buffer.from(json, 'utf8'), ...parts]);
}

/** Per-feature dataset statistics, as LeRobot computes them (images per channel). */
export interface FeatureStats {
  mean: readonly number[];
  std: readonly number[];
  min: readonly number[];
  max: readonly number[];
}

export interface CheckpointOptions {
  type: string;
  joints: readonly string[];
  /** Camera name -> [height, width] as recorded. */
  cameras?: Readonly<Record<string, [number, number]>>;
  chunkSize: number;
  nActionSteps?: number;
  fps: number;
  normalization?: { VISUAL?: string; STATE?: string; ACTION?: string };
  stats: Readonly<Record<string, FeatureStats>>;
  /** Extra config.json keys (a policy's own settings: resize_imgs_with_padding, max_state_dim...). */
  extra?: Readonly<Record<string, unknown>>;
  /** Extra input features (e.g. observation.environment_state). */
  extraInputs?: Readonly<Record<string, { type: string; shape: number[] }>>;
}

const PRE_STATE = 'policy_preprocessor_step_3_normalizer_processor.safetensors';
const POST_STATE = 'policy_postprocessor_step_0_unnormalizer_processor.safetensors';

function flatStats(stats: Readonly<Record<string, FeatureStats>>, cameras: readonly string[]): Record<string, TensorOut> {
  const out: Record<string, TensorOut> = {};
  for (const [feature, s] of Object.entries(stats)) {
    const image = cameras.some((c) => feature === `observation.images.${c}`);
    for (const k of ['mean', 'std', 'min', 'max'] as const) {
      out[`${feature}.${k}`] = { dtype: 'F32', shape: image ? [3, 1, 1] : [s[k].length], data: s[k] };
    }
    out[`${feature}.count`] = { dtype: 'F32', shape: [1], data: [1000] };
  }
  return out;
}

/** Writes `dir` as LeRobot's pretrained_model/ and `infoPath` as the dataset's meta/info.json. */
export function writeLeRobotCheckpoint(dir: string, infoPath: string, o: CheckpointOptions): void {
  mkdirSync(dir, { recursive: true });
  const d = o.joints.length;
  const cams = Object.keys(o.cameras ?? {});
  const inputs: Record<string, { type: string; shape: number[] }> = {};
  for (const [cam, [h, w]] of Object.entries(o.cameras ?? {})) inputs[`observation.images.${cam}`] = { type: 'VISUAL', shape: [3, h, w] };
  inputs['observation.state'] = { type: 'STATE', shape: [d] };
  Object.assign(inputs, o.extraInputs ?? {});
  const normMap = { VISUAL: 'MEAN_STD', STATE: 'MEAN_STD', ACTION: 'MEAN_STD', ...o.normalization };
  const outputs = { action: { type: 'ACTION', shape: [d] } };
  const config = {
    type: o.type,
    n_obs_steps: 1,
    normalization_mapping: normMap,
    input_features: inputs,
    output_features: outputs,
    device: 'cpu',
    use_amp: false,
    push_to_hub: false,
    repo_id: null,
    chunk_size: o.chunkSize,
    n_action_steps: o.nActionSteps ?? o.chunkSize,
    ...o.extra,
  };
  const json = (v: unknown) => `${JSON.stringify(v, null, 4)}`;
  writeFileSync(join(dir, 'config.json'), json(config));
  const features = { ...inputs, ...outputs };
  writeFileSync(
    join(dir, 'policy_preprocessor.json'),
    json({
      name: 'policy_preprocessor',
      steps: [
        { registry_name: 'rename_observations_processor', config: { rename_map: {} } },
        { registry_name: 'to_batch_processor', config: {} },
        { registry_name: 'device_processor', config: { device: 'cpu', float_dtype: null } },
        { registry_name: 'normalizer_processor', config: { eps: 1e-8, features, norm_map: normMap }, state_file: PRE_STATE },
      ],
    }),
  );
  writeFileSync(
    join(dir, 'policy_postprocessor.json'),
    json({
      name: 'policy_postprocessor',
      steps: [
        { registry_name: 'unnormalizer_processor', config: { eps: 1e-8, features: outputs, norm_map: normMap }, state_file: POST_STATE },
        { registry_name: 'device_processor', config: { device: 'cpu', float_dtype: null } },
      ],
    }),
  );
  const all = flatStats(o.stats, cams);
  writeFileSync(join(dir, PRE_STATE), safetensorsBytes(all));
  const actionOnly = Object.fromEntries(Object.entries(all).filter(([k]) => k.startsWith('action.')));
  writeFileSync(join(dir, POST_STATE), safetensorsBytes(actionOnly));
  // The weights themselves are not read by the importer (the ONNX export carries them).
  writeFileSync(join(dir, 'model.safetensors'), safetensorsBytes({ 'model.bias': { dtype: 'F32', shape: [1], data: [0] } }));
  const info = {
    codebase_version: 'v3.0',
    robot_type: 'so100_follower',
    total_episodes: 10,
    fps: o.fps,
    features: {
      'observation.state': { dtype: 'float32', shape: [d], names: [...o.joints] },
      action: { dtype: 'float32', shape: [d], names: [...o.joints] },
      ...Object.fromEntries(
        Object.entries(o.cameras ?? {}).map(([c, [h, w]]) => [`observation.images.${c}`, { dtype: 'video', shape: [h, w, 3], names: ['height', 'width', 'channels'] }]),
      ),
    },
  };
  writeFileSync(infoPath, json(info));
}

export const LEROBOT_FILES = { preprocessorState: PRE_STATE, postprocessorState: POST_STATE } as const;
