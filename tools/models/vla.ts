// A VLA-shaped test policy: the inputs a π0 / SmolVLA export takes (state, an image, task
// tokens, initial noise, and training-time RTC's committed prefix and delay), with an output
// that is an exact, checkable function of each: tests see what the model was fed.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildModel, DataType, type NodeInit, type TensorInit } from './onnx-builder.js';
import { writeBundle } from './models.js';

export interface VlaOptions {
  joints: readonly string[];
  horizon: number;
  /** Token ids per task (the model's text width). */
  maxLength: number;
  /** The plan before tokens and noise: home (normalized units) for every joint, every step. */
  home: number;
  /** Each action gets tokenWeight * (sum of the task's token ids). */
  tokenWeight: number;
  /** Each action gets noiseWeight * its own noise value. */
  noiseWeight: number;
  /** An image input of this size (3 x size x size) whose mean times imageWeight is added; 0: none. */
  imageSize?: number;
  imageWeight?: number;
}

export const VLA_INPUTS = { tokens: 'observation.language.tokens', mask: 'observation.language.attention_mask', noise: 'noise', prefix: 'action_prefix', delay: 'inference_delay' } as const;

/**
 * action[i] = prefix[i] for i < delay (training-time RTC: the model continues the committed
 * actions), else home + tokenWeight * sum(tokens) + noiseWeight * noise[i] (+ image mean).
 */
export function vlaModel(o: VlaOptions): Buffer {
  const d = o.joints.length;
  const H = o.horizon;
  const i64 = (name: string, data: readonly number[]): TensorInit => ({ name, dims: [data.length], data, dataType: DataType.INT64 });
  const steps = new Float32Array(H);
  for (let i = 0; i < H; i++) steps[i] = i;
  const nodes: NodeInit[] = [
    { op: 'Cast', inputs: [VLA_INPUTS.tokens], outputs: ['tf'], attrs: { to: DataType.FLOAT } },
    { op: 'ReduceSum', inputs: ['tf', 'ax1'], outputs: ['tsum'], attrs: { keepdims: 1 } },
    { op: 'Unsqueeze', inputs: ['tsum', 'ax2'], outputs: ['tsum3'] },
    { op: 'Mul', inputs: ['tsum3', 'wTok'], outputs: ['tok'] },
    { op: 'Mul', inputs: [VLA_INPUTS.noise, 'wNoise'], outputs: ['nz'] },
    { op: 'Add', inputs: ['home', 'tok'], outputs: ['p1'] },
    { op: 'Add', inputs: ['p1', 'nz'], outputs: ['plan0'] },
    // The state is read (multiplied by zero) so the model takes it, as every policy does.
    { op: 'Unsqueeze', inputs: ['observation.state', 'ax1'], outputs: ['s3'] },
    { op: 'Mul', inputs: ['s3', 'zero'], outputs: ['s0'] },
    { op: 'Add', inputs: ['plan0', 's0'], outputs: ['plan1'] },
    { op: 'Cast', inputs: [VLA_INPUTS.delay], outputs: ['df'], attrs: { to: DataType.FLOAT } },
    { op: 'Less', inputs: ['steps', 'df'], outputs: ['inPrefix'] },
    { op: 'Cast', inputs: ['inPrefix'], outputs: ['m'], attrs: { to: DataType.FLOAT } },
    { op: 'Sub', inputs: ['one', 'm'], outputs: ['notM'] },
    { op: 'Mul', inputs: ['m', VLA_INPUTS.prefix], outputs: ['kept'] },
  ];
  const inputs = [
    { name: 'observation.state', shape: [1, d] },
    { name: VLA_INPUTS.tokens, shape: [1, o.maxLength], elemType: DataType.INT64 },
    { name: VLA_INPUTS.mask, shape: [1, o.maxLength], elemType: DataType.INT64 },
    { name: VLA_INPUTS.noise, shape: [1, H, d] },
    { name: VLA_INPUTS.prefix, shape: [1, H, d] },
    { name: VLA_INPUTS.delay, shape: [1], elemType: DataType.INT64 },
  ];
  let plan = 'plan1';
  if (o.imageSize) {
    const img = 'observation.images.top';
    inputs.push({ name: img, shape: [1, 3, o.imageSize, o.imageSize] });
    nodes.push(
      { op: 'ReduceMean', inputs: [img], outputs: ['im4'], attrs: { axes: [1, 2, 3], keepdims: 1 } },
      { op: 'Reshape', inputs: ['im4', 'flat'], outputs: ['im3'] },
      { op: 'Mul', inputs: ['im3', 'wImg'], outputs: ['seen'] },
      { op: 'Add', inputs: ['plan1', 'seen'], outputs: ['plan2'] },
    );
    plan = 'plan2';
  }
  // The mask input is read too (times zero): a model that takes it must be fed it.
  nodes.push(
    { op: 'Cast', inputs: [VLA_INPUTS.mask], outputs: ['mf'], attrs: { to: DataType.FLOAT } },
    { op: 'ReduceSum', inputs: ['mf', 'ax1'], outputs: ['msum'], attrs: { keepdims: 1 } },
    { op: 'Unsqueeze', inputs: ['msum', 'ax2'], outputs: ['msum3'] },
    { op: 'Mul', inputs: ['msum3', 'zero'], outputs: ['m0'] },
    { op: 'Add', inputs: [plan, 'm0'], outputs: ['planM'] },
    { op: 'Mul', inputs: ['notM', 'planM'], outputs: ['fresh'] },
    { op: 'Add', inputs: ['kept', 'fresh'], outputs: ['action'] },
  );
  return buildModel({
    name: 'vla',
    inputs,
    outputs: [{ name: 'action', shape: [1, H, d] }],
    initializers: [
      i64('ax1', [1]),
      i64('ax2', [2]),
      i64('flat', [1, 1, 1]),
      { name: 'home', dims: [1], data: [o.home] },
      { name: 'wTok', dims: [1], data: [o.tokenWeight] },
      { name: 'wNoise', dims: [1], data: [o.noiseWeight] },
      { name: 'wImg', dims: [1], data: [o.imageWeight ?? 0] },
      { name: 'zero', dims: [1], data: [0] },
      { name: 'one', dims: [1], data: [1] },
      { name: 'steps', dims: [1, H, 1], data: steps },
    ],
    nodes,
  });
}

/** A WordPiece tokenizer.json over a small vocabulary (lower-cased, split on whitespace). */
export function tokenizerJson(vocab: readonly string[]): object {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [{ id: 0, content: '[UNK]', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
    normalizer: { type: 'Lowercase' },
    pre_tokenizer: { type: 'Whitespace' },
    post_processor: null,
    decoder: null,
    model: { type: 'WordPiece', vocab: Object.fromEntries(['[UNK]', ...vocab].map((w, i) => [w, i])), unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100 },
  };
}

/** Words of the test vocabulary; a word's id is its index + 1 ([UNK] is 0). */
export const VLA_VOCAB = ['pick', 'up', 'the', 'red', 'cube', 'blue', 'place', 'in', 'bin'] as const;

/** Writes a VLA bundle (identity normalization, so normalized = joint space) with its tokenizer. */
export function writeVlaBundle(dir: string, o: VlaOptions & { name?: string }): void {
  const d = o.joints.length;
  writeBundle(
    dir,
    {
      name: o.name ?? 'vla',
      version: '1',
      fps: 50,
      joints: o.joints as [string, ...string[]],
      cameras: o.imageSize ? ['top'] : [],
      features: {
        'observation.state': { shape: [d], normalization: 'identity' },
        action: { shape: [o.horizon, d], normalization: 'identity' },
        ...(o.imageSize ? { 'observation.images.top': { shape: [3, o.imageSize, o.imageSize], normalization: 'identity' } } : {}),
      },
      images: { resize: 'pad', pixels: [-1, 1] },
      task: { input: VLA_INPUTS.tokens, mask: VLA_INPUTS.mask, tokenizer: 'tokenizer.json', maxLength: o.maxLength, padId: 0 },
      noise: { input: VLA_INPUTS.noise, shape: [o.horizon, d] },
      rtc: { prefix: VLA_INPUTS.prefix, delay: VLA_INPUTS.delay },
    },
    vlaModel(o),
  );
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson(VLA_VOCAB)));
}
