// One loaded policy: its session, its preallocated tensors, and the normalization around it.
// run() takes the joint state (and the cameras' pre-processed images) and gives back a chunk
// in joint space, or throws, naming what was wrong with the model's answer.
import { ReflexError } from '../core/index.js'; // not core's index: see worker.ts
import type { PolicyBundle } from './bundle.js';
import type { Ort, OpenedSession, Session } from './session.js';
import { VlaInputs } from './vla.js';

type Tensor = import('onnxruntime-node').Tensor;

export class PolicyRunner {
  readonly session: Session;
  readonly provider: string;
  /** Providers that failed to open the model before `provider` did, and why. */
  readonly fallbacks: { provider: string; error: string }[];
  /** Pre-processed images by camera name ([3, H, W], already normalized), filled by the vision side. */
  readonly images = new Map<string, Float32Array>();
  private readonly stateData: Float32Array;
  private readonly feeds: Record<string, Tensor> = {};
  /** ONNX Runtime's own time of the last run, ms. */
  lastOrtMs = 0;
  /** Task tokens, noise, RTC prefix and delay: the inputs beyond state and images the bundle declares. */
  readonly vla: VlaInputs;

  constructor(
    ort: Ort,
    readonly bundle: PolicyBundle,
    opened: OpenedSession,
    vla: { task: string; seed: number } = { task: '', seed: 0 },
  ) {
    this.session = opened.session;
    this.provider = opened.provider;
    this.fallbacks = opened.fallbacks;
    // A model wider than the robot (padTo) sees zeros past the robot's joints.
    this.stateData = new Float32Array(bundle.state.width);
    this.feeds[bundle.state.name] = new ort.Tensor('float32', this.stateData, [1, bundle.state.width]);
    for (const f of bundle.images) {
      const data = new Float32Array(f.shape[0]! * f.shape[1]! * f.shape[2]!);
      this.images.set(f.name.slice('observation.images.'.length), data);
      this.feeds[f.name] = new ort.Tensor('float32', data, [1, ...f.shape]);
    }
    this.vla = new VlaInputs(ort, bundle, this.feeds, vla.task, vla.seed);
  }

  /**
   * Runs the policy on `state` (joint space) and writes horizon x dof actions into `out`. For a
   * bundle with RTC inputs, `prefix` holds the committed actions (joint space, prefixLen of
   * them) and `delay` the steps the loop expects the answer after.
   */
  async run(state: Float64Array, out: Float64Array, prefix: Float64Array | null = null, prefixLen = 0, delay = 0): Promise<void> {
    const b = this.bundle;
    const s = b.state;
    for (let i = 0; i < b.dof; i++) this.stateData[i] = (state[i]! - s.offset[i]!) / s.scale[i]!;
    this.vla.fill(prefix, prefixLen, delay);
    const t0 = performance.now();
    const result = await this.session.run(this.feeds);
    this.lastOrtMs = performance.now() - t0;
    const action = result.action;
    if (!action) throw new ReflexError('COMMAND_FAILED', `${b.spec.name}: the model returned no action`);
    const data = action.data as Float32Array;
    const a = b.action;
    const n = b.horizon * b.dof;
    if (data.length < b.horizon * a.width) throw new ReflexError('COMMAND_FAILED', `${b.spec.name}: the model returned ${data.length} action values, ${b.horizon * a.width} expected`);
    for (let i = 0; i < n; i++) {
      const j = i % b.dof;
      const k = Math.floor(i / b.dof);
      // A padded action (padTo) carries the robot's joints first; the rest is padding.
      const v = data[k * a.width + j]!;
      if (!Number.isFinite(v)) throw new ReflexError('COMMAND_FAILED', `${b.spec.name}: the model returned ${v} at action ${k}, joint ${b.spec.joints[j]}`);
      out[i] = v * a.scale[j]! + a.offset[j]!;
    }
    for (const t of Object.values(result)) t.dispose();
  }

  /** Runs a few times on a neutral state, so that the first real request is not the slow one. */
  async warmUp(times: number): Promise<number> {
    const state = Float64Array.from(this.bundle.state.offset);
    const out = new Float64Array(this.bundle.horizon * this.bundle.dof);
    const t0 = performance.now();
    for (let i = 0; i < times; i++) await this.run(state, out);
    return (performance.now() - t0) / times;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
