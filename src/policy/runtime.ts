import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import { ReflexError, errorMessage, type Logger, type Part } from '../core/index.js';
import type { LoopBuffers } from '../control/index.js';
import type { RobotShape } from './bundle.js';
import type { SessionOptions } from './session.js';
import { HIST, S } from './stats.js';
import { quantileUs } from '../control/shared.js';
import type { InferenceMessage, InferenceRequest, InferenceWorkerData, PolicyInfo } from './worker.js';

export interface PolicyRuntimeOptions {
  /** Bundle to load at start; null starts with none (the loop holds). */
  bundle: string | null;
  onnxruntimePath: string | null;
  providers: SessionOptions['providers'];
  stateDir: string;
  robot: RobotShape;
  warmUpRuns?: number;
  frames?: InferenceWorkerData['frames'];
}

export interface PolicyStatus {
  state: 'none' | 'loading' | 'ready' | 'failed';
  active: PolicyInfo | null;
  previous: PolicyInfo | null;
  error: string | null;
  inference: { count: number; errors: number; overBudget: number; lastMs: number; meanMs: number; meanOrtMs: number; maxMs: number; p50Ms: number; p99Ms: number };
  /** Age of the camera frames the policy used, ms. */
  frameAgeMs: { p50: number; p99: number };
}

/**
 * The main thread's handle on the inference worker: loads the configured policy at start,
 * swaps policies on request (the new one loads and warms up while the old one serves), and
 * reports what runs where. Emits 'ready' (PolicyInfo) each time a policy becomes active.
 */
export class PolicyRuntime implements Part {
  readonly name = 'policy';
  private worker: Worker | null = null;
  /** The inference worker's counters (see stats.ts). */
  readonly stats = new Float64Array(new SharedArrayBuffer(HIST.END * 8));
  private seq = 0;
  private readonly pending = new Map<number, { resolve: (i: PolicyInfo) => void; reject: (e: Error) => void }>();
  private state: PolicyStatus['state'] = 'none';
  private active: PolicyInfo | null = null;
  private previous: PolicyInfo | null = null;
  private error: string | null = null;
  private readyListeners: ((info: PolicyInfo) => void)[] = [];

  constructor(
    private readonly opts: PolicyRuntimeOptions,
    private readonly loop: LoopBuffers,
    private readonly log: Logger,
  ) {}

  onReady(fn: (info: PolicyInfo) => void): void {
    this.readyListeners.push(fn);
  }

  async start(): Promise<void> {
    const data: InferenceWorkerData = {
      loop: this.loop,
      stats: this.stats.buffer,
      onnxruntimePath: this.opts.onnxruntimePath,
      session: {
        providers: this.opts.providers,
        intraOpThreads: 1,
        deviceId: 0,
        tensorrt: {
          fp16: true,
          engineCacheDir: join(this.opts.stateDir, 'trt', 'engines'),
          timingCacheDir: join(this.opts.stateDir, 'trt', 'timing'),
          workspaceMb: 1024,
        },
      },
      robot: this.opts.robot,
      warmUpRuns: this.opts.warmUpRuns ?? 3,
      frames: this.opts.frames ?? [],
    };
    const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: data, name: 'reflex-inference' });
    this.worker = worker;
    worker.on('message', (m: InferenceMessage) => this.onMessage(m));
    worker.on('error', (err) => this.log.error({ err: errorMessage(err) }, 'inference worker failed'));
    worker.on('exit', (code) => {
      this.worker = null;
      for (const p of this.pending.values()) p.reject(new ReflexError('COMMAND_FAILED', `inference worker exited (${code})`));
      this.pending.clear();
    });
    if (this.opts.bundle !== null) {
      // A policy that fails to load is reported and the robot holds; the daemon still starts,
      // so a technician or the fleet can put a working policy on it.
      this.activate(this.opts.bundle).catch((err: unknown) => this.log.error({ err: errorMessage(err) }, 'policy failed to load; holding'));
    }
    return Promise.resolve();
  }

  private onMessage(m: InferenceMessage): void {
    switch (m.type) {
      case 'loaded': {
        this.state = 'ready';
        this.active = m.active;
        this.previous = m.previous;
        this.error = null;
        const a = m.active;
        this.log.info({ policy: a.name, version: a.version, provider: a.provider, fallbacks: a.fallbacks, warmUpMs: Math.round(a.warmUpMs * 10) / 10 }, 'policy ready');
        this.pending.get(m.id)?.resolve(a);
        this.pending.delete(m.id);
        for (const fn of this.readyListeners) fn(a);
        break;
      }
      case 'loadFailed':
        if (this.active === null) this.state = 'failed';
        else this.state = 'ready';
        this.error = m.message;
        this.pending.get(m.id)?.reject(new ReflexError('COMMAND_FAILED', m.message));
        this.pending.delete(m.id);
        break;
      case 'inferenceError':
        this.log.error({ err: m.message }, 'inference failed; the loop holds until a good chunk comes');
        break;
    }
  }

  private request(req: InferenceRequest & { id: number }): Promise<PolicyInfo> {
    const worker = this.worker;
    if (worker === null) return Promise.reject(new ReflexError('COMMAND_FAILED', 'the inference worker is not running'));
    return new Promise((resolve, reject) => {
      this.pending.set(req.id, { resolve, reject });
      worker.postMessage(req);
    });
  }

  /** Loads `dir`, warms it up, and makes it the active policy (a hot swap when one runs). */
  activate(dir: string): Promise<PolicyInfo> {
    if (this.active === null) this.state = 'loading';
    return this.request({ type: 'load', dir, id: ++this.seq });
  }

  /** Swaps back to the previous policy (still loaded). */
  rollback(): Promise<PolicyInfo> {
    return this.request({ type: 'rollback', id: ++this.seq });
  }

  status(): PolicyStatus {
    const s = this.stats;
    const n = s[S.INFERENCES]!;
    const r = (v: number) => Math.round(v * 100) / 100;
    return {
      state: this.state,
      active: this.active,
      previous: this.previous,
      error: this.error,
      inference: {
        count: n,
        errors: s[S.ERRORS]!,
        overBudget: s[S.OVER_BUDGET]!,
        lastMs: r(s[S.LAST_MS]!),
        meanMs: r(n > 0 ? s[S.SUM_MS]! / n : 0),
        meanOrtMs: r(n > 0 ? s[S.SUM_ORT_MS]! / n : 0),
        maxMs: r(s[S.MAX_MS]!),
        p50Ms: r(quantileUs(this.hist(HIST.LATENCY), 0.5) / 1000),
        p99Ms: r(quantileUs(this.hist(HIST.LATENCY), 0.99) / 1000),
      },
      frameAgeMs: { p50: r(quantileUs(this.hist(HIST.FRAME_AGE), 0.5) / 1000), p99: r(quantileUs(this.hist(HIST.FRAME_AGE), 0.99) / 1000) },
    };
  }

  private hist(at: number): Uint32Array {
    return Uint32Array.from(this.stats.subarray(at, at + HIST.BUCKETS));
  }

  /** Fault injection: the policy answers nothing for `ms`. */
  stall(ms: number): void {
    this.worker?.postMessage({ type: 'stall', ms } satisfies InferenceRequest);
  }

  async stop(): Promise<void> {
    const worker = this.worker;
    if (worker === null) return;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    worker.postMessage({ type: 'stop' } satisfies InferenceRequest);
    const timer = setTimeout(() => void worker.terminate(), 2000);
    await exited;
    clearTimeout(timer);
  }
}
