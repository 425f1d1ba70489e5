// The inputs of vision-language-action policies beyond state and images, fed by the inference
// worker: the task instruction's tokens (tokenized here, once per change, from the bundle's
// tokenizer.json), the initial noise of the flow-matching / diffusion steps (Gaussian, from a
// seeded generator, so a run can be replayed), and real-time chunking's committed prefix and
// delay (from the loop's observation, counted in actions).
import { dirname, join } from 'node:path';
import { existsSync } from 'node:fs';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { ReflexError, errorMessage, readRegularFile } from '../core/index.js';
import { TOKENIZER_MAX_BYTES, type PolicyBundle } from './bundle.js';
import type { Ort } from './session.js';

type Tensor = import('onnxruntime-node').Tensor;

/** What is used of a Hugging Face tokenizer (tokenizers.js). */
interface Tokenizer {
  encode(text: string): { ids: number[] };
}
// Typed here: the linter's program does not resolve the package's own declarations.
const Tokenizers = HfTokenizer as unknown as new (tokenizerJson: object, tokenizerConfig: object) => Tokenizer;

/** Longest task instruction taken (characters); a longer one is refused, not truncated silently. */
export const TASK_MAX_CHARS = 2000;

/** Seeded Gaussian numbers: mulberry32 and Box-Muller, no allocation per draw. */
export class SeededNormal {
  private s = 0;
  private spare = NaN;

  constructor(seed: number) {
    this.reseed(seed);
  }

  reseed(seed: number): void {
    this.s = seed >>> 0;
    this.spare = NaN;
  }

  private uniform(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  next(): number {
    if (!Number.isNaN(this.spare)) {
      const v = this.spare;
      this.spare = NaN;
      return v;
    }
    const u = 1 - this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    const a = 2 * Math.PI * this.uniform();
    this.spare = r * Math.sin(a);
    return r * Math.cos(a);
  }
}

function loadTokenizer(path: string): Tokenizer {
  try {
    const json = JSON.parse(readRegularFile(path, TOKENIZER_MAX_BYTES).toString('utf8')) as object;
    // tokenizer_config.json, when the bundle has it beside, carries special-token settings.
    const cfgPath = join(dirname(path), 'tokenizer_config.json');
    const cfg = existsSync(cfgPath) ? (JSON.parse(readRegularFile(cfgPath, TOKENIZER_MAX_BYTES).toString('utf8')) as object) : {};
    return new Tokenizers(json, cfg);
  } catch (err) {
    throw new ReflexError('BAD_REQUEST', `tokenizer ${path}: ${errorMessage(err)}`);
  }
}

export class VlaInputs {
  /** The task the tokens are of, and the seed the noise generator was last set to. */
  task = '';
  seed = 0;
  /** Tokens of the current task (before padding), for status and tests. */
  tokenCount = 0;
  private readonly tokenizer: Tokenizer | null;
  private readonly ids: BigInt64Array | null = null;
  private readonly mask: BigInt64Array | null = null;
  private readonly noise: Float32Array | null = null;
  private readonly prefix: Float32Array | null = null;
  private readonly delay: BigInt64Array | null = null;
  private readonly normal = new SeededNormal(0);

  constructor(
    ort: Ort,
    private readonly bundle: PolicyBundle,
    feeds: Record<string, Tensor>,
    task: string,
    seed: number,
  ) {
    const s = bundle.spec;
    this.tokenizer = bundle.tokenizerPath ? loadTokenizer(bundle.tokenizerPath) : null;
    if (s.task) {
      this.ids = new BigInt64Array(s.task.maxLength);
      feeds[s.task.input] = new ort.Tensor('int64', this.ids, [1, s.task.maxLength]);
      if (s.task.mask) {
        this.mask = new BigInt64Array(s.task.maxLength);
        feeds[s.task.mask] = new ort.Tensor('int64', this.mask, [1, s.task.maxLength]);
      }
    }
    if (s.noise) {
      this.noise = new Float32Array(s.noise.shape.reduce((a, b) => a * b, 1));
      feeds[s.noise.input] = new ort.Tensor('float32', this.noise, [1, ...s.noise.shape]);
    }
    if (s.rtc) {
      this.prefix = new Float32Array(bundle.horizon * bundle.action.width);
      this.delay = new BigInt64Array(1);
      feeds[s.rtc.prefix] = new ort.Tensor('float32', this.prefix, [1, bundle.horizon, bundle.action.width]);
      feeds[s.rtc.delay] = new ort.Tensor('int64', this.delay, [1]);
    }
    this.setTask(task);
    this.setSeed(seed);
  }

  /** Tokenizes `text` into the task input (once per change; the same text is not tokenized again). */
  setTask(text: string): void {
    if (text.length > TASK_MAX_CHARS) throw new ReflexError('BAD_REQUEST', `a task of ${text.length} characters; at most ${TASK_MAX_CHARS}`);
    if (!this.ids || !this.tokenizer || (text === this.task && this.tokenCount > 0)) {
      this.task = text;
      return;
    }
    const t = this.bundle.spec.task!;
    const enc = this.tokenizer.encode(text);
    const n = Math.min(enc.ids.length, t.maxLength);
    this.ids.fill(BigInt(t.padId));
    this.mask?.fill(0n);
    for (let i = 0; i < n; i++) {
      this.ids[i] = BigInt(enc.ids[i] ?? 0);
      if (this.mask) this.mask[i] = 1n;
    }
    this.task = text;
    this.tokenCount = n;
  }

  /** Restarts the noise generator: the same seed gives the same noise, run after run. */
  setSeed(seed: number): void {
    this.seed = seed >>> 0;
    this.normal.reseed(this.seed);
  }

  /** Fills the per-run inputs: fresh noise, the committed prefix (normalized) and the delay. */
  fill(prefix: Float64Array | null, prefixLen: number, delay: number): void {
    if (this.noise) for (let i = 0; i < this.noise.length; i++) this.noise[i] = this.normal.next();
    if (this.prefix && this.delay) {
      const b = this.bundle;
      const a = b.action;
      const w = a.width;
      this.prefix.fill(0);
      const n = prefix ? Math.min(prefixLen, b.horizon) : 0;
      for (let i = 0; i < n; i++) for (let j = 0; j < b.dof; j++) this.prefix[i * w + j] = (prefix![i * b.dof + j]! - a.offset[j]!) / a.scale[j]!;
      this.delay[0] = BigInt(Math.max(0, Math.min(delay, b.horizon)));
    }
  }
}
