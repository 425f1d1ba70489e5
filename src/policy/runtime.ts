import { join } from 'node:path';
import { ReflexError, errorMessage, type Logger, type Part } from '../core/index.js';
import { Doorbell, MAX_HORIZON, WorkerHost, Words, type PolicyLinkBuffers } from '../rt/index.js';
import { MODEL_MAX_BYTES, loadBundle, mismatches, type PolicyBundle, type RobotShape } from './bundle.js';
import type { SessionOptions } from './session.js';
import { INFERENCE_METRICS, POLICY_WORDS } from './stats.js';
import type { InferenceProtocol, InferenceWorkerData, PolicyInfo, ShadowReport } from './worker.js';
import type { DaemonHandlers } from '../api/index.js';

export interface PolicyRuntimeOptions {
  /** Bundle to load at start; null starts with none (the loop holds). */
  bundle: string | null;
  /** Bundle to load at start beside it, idle, as the rollback slot (the committed previous policy). */
  previous?: string | null;
  onnxruntimePath: string | null;
  providers: SessionOptions['providers'];
  stateDir: string;
  robot: RobotShape;
  warmUpRuns?: number;
  frames?: InferenceWorkerData['frames'];
  /** VLA bundles: the task instruction at start (config policy.task) and the noise seed (null: random). */
  task?: string;
  seed?: number | null;
  /** Largest model file a bundle may hold (default MODEL_MAX_BYTES). */
  maxModelBytes?: number;
  /**
   * Bound on stopping one inference worker: it is asked to stop, terminated after this long,
   * and abandoned after as long again (a thread inside a native call cannot be interrupted).
   */
  workerStopMs?: number;
}

export interface PolicyStatus {
  state: 'none' | 'loading' | 'ready' | 'failed';
  active: PolicyInfo | null;
  /** The policy a rollback goes back to: loaded, idle. */
  previous: PolicyInfo | null;
  /** The bundle being loaded beside the active policy, if any. */
  loading: string | null;
  error: string | null;
  inference: { count: number; errors: number; overBudget: number; lastMs: number; meanMs: number; meanOrtMs: number; maxMs: number; p50Ms: number; p99Ms: number };
  /** Age of the camera frames the policy used, ms. */
  frameAgeMs: { p50: number; p99: number };
  /** The task instruction and noise seed fed to VLA bundles (a replay sets the same seed). */
  task: string;
  seed: number;
}

/** Why a policy became active: the configured bundle at start, an activation, or a rollback. */
export type ReadyCause = 'boot' | 'activate' | 'rollback';

/** A policy loaded and warmed up beside the running one, not yet answering the loop. */
export interface Preloaded {
  readonly id: number;
  readonly dir: string;
  readonly info: PolicyInfo;
}

/** One inference worker and the policy it holds. */
interface Slot {
  id: number;
  dir: string;
  /** Its thread; `host.ready` settles when the policy is loaded and warmed up, or could not be. */
  host: WorkerHost<InferenceProtocol>;
  /** The generation its chunks carry (shared with it). */
  generation: Int32Array;
  info: PolicyInfo | null;
}

/**
 * The main thread's handle on the inference workers. Each policy runs in its own worker: a
 * new one loads and warms up in a fresh thread while the active one keeps serving, then the
 * runtime switches which worker answers the loop (the chunk's generation changes, so the loop
 * switches at a chunk boundary). The policy swapped out stays loaded, idle, for a rollback;
 * the one before it is released.
 */
export class PolicyRuntime implements Part {
  readonly name = 'policy';
  /** The inference workers' counters and histograms (see stats.ts). */
  readonly metrics = INFERENCE_METRICS.create();
  private readonly ctrl = new Words(POLICY_WORDS);
  private readonly request: Doorbell;
  private ids = 0;
  private generation = 0;
  private state: PolicyStatus['state'] = 'none';
  private active: Slot | null = null;
  private previous: Slot | null = null;
  private loading: Slot | null = null;
  /** Preloaded, waiting for swapIn or discard. */
  private readonly staged = new Map<number, Slot>();
  /** Every worker not yet ended: the three above, and any being released. */
  private readonly live = new Set<Slot>();
  private nextLoadDelayMs = 0;
  private readonly vla: { task: string; seed: number };
  private error: string | null = null;
  private stopping = false;
  /** Activations and rollbacks run one at a time, in the order asked. */
  private queue: Promise<unknown> = Promise.resolve();
  private readyListeners: ((info: PolicyInfo, cause: ReadyCause) => void)[] = [];

  constructor(
    private readonly opts: PolicyRuntimeOptions,
    private readonly loop: PolicyLinkBuffers,
    private readonly log: Logger,
  ) {
    this.request = new Doorbell(loop.request);
    this.vla = { task: opts.task ?? '', seed: opts.seed ?? Math.floor(Math.random() * 2 ** 32) };
  }

  /** Called each time a policy becomes active, with why. */
  onReady(fn: (info: PolicyInfo, cause: ReadyCause) => void): void {
    this.readyListeners.push(fn);
  }

  start(): Promise<void> {
    if (this.opts.bundle !== null) {
      // A policy that fails to load is reported and the robot holds; the daemon still starts,
      // so a technician or the fleet can put a working policy on it.
      this.enqueue(() => this.load(this.opts.bundle!, 'boot')).catch((err: unknown) => this.log.error({ err: errorMessage(err) }, 'policy failed to load; holding'));
    }
    const previous = this.opts.previous ?? null;
    if (previous !== null) {
      // The rollback slot: loaded after the active one, idle. One that cannot load only means
      // there is nothing to roll back to.
      this.enqueue(async () => {
        const slot = await this.loadSlot(previous);
        if (this.previous === null && this.active !== slot) this.previous = slot;
        else await this.retire(slot);
      }).catch((err: unknown) => this.log.warn({ err: errorMessage(err) }, 'the previous policy failed to load; no rollback slot'));
    }
    return Promise.resolve();
  }

  /**
   * Loads `dir` in its own worker and warms it up beside the running policy, without swapping
   * it in: the update engine checks it (shadow), then swaps it in (swapIn) or drops it (discard).
   */
  preload(dir: string): Promise<Preloaded> {
    return this.enqueue(async () => {
      const slot = await this.loadSlot(dir);
      this.staged.set(slot.id, slot);
      return { id: slot.id, dir: slot.dir, info: slot.info! };
    });
  }

  /**
   * Runs a preloaded policy `runs` times on the live observation (and frames), its chunks
   * going nowhere: finite actions, within `limits` (joint space, per joint), each inference
   * within the bundle's budget. The running policy keeps serving meanwhile.
   */
  async shadow(p: Preloaded, runs: number, limits: readonly { min: number; max: number }[]): Promise<ShadowReport> {
    const slot = this.staged.get(p.id);
    if (slot === undefined || !slot.host.alive) throw new ReflexError('COMMAND_FAILED', `the preloaded policy ${p.dir} is gone (its worker ended)`);
    return (await slot.host.request({ type: 'shadow', runs, limits: limits.map((l) => ({ min: l.min, max: l.max })) }, 30_000 + runs * 5_000));
  }

  /** Makes a preloaded policy the active one (at the loop's next chunk boundary). */
  swapIn(p: Preloaded): Promise<PolicyInfo> {
    return this.enqueue(() => {
      const slot = this.staged.get(p.id);
      this.staged.delete(p.id);
      if (this.stopping) throw new ReflexError('COMMAND_FAILED', 'the policy runtime is stopping');
      if (slot === undefined || !slot.host.alive || slot.info === null) throw new ReflexError('COMMAND_FAILED', `the preloaded policy ${p.dir} is gone (its worker ended)`);
      return Promise.resolve(this.promote(slot, slot.info, 'activate'));
    });
  }

  /** Releases a preloaded policy that will not be swapped in. */
  async discard(p: Preloaded): Promise<void> {
    const slot = this.staged.get(p.id);
    this.staged.delete(p.id);
    if (slot !== undefined) await this.retire(slot);
  }

  /** Loads `dir` in its own worker, warms it up, and makes it the active policy (a hot swap when one runs). */
  activate(dir: string): Promise<PolicyInfo> {
    return this.enqueue(() => this.load(dir, 'activate'));
  }

  /**
   * Swaps back to the previous policy (still loaded). The policy rolled back from is released:
   * a second rollback has nothing to go back to, rather than re-activating it.
   */
  rollback(): Promise<PolicyInfo> {
    return this.enqueue(() => {
      const to = this.previous;
      const from = this.active;
      if (this.stopping) throw new ReflexError('COMMAND_FAILED', 'the policy runtime is stopping');
      if (to === null || to.info === null) throw new ReflexError('COMMAND_FAILED', 'there is no previous policy to go back to');
      const info = this.swapTo(to, to.info);
      this.previous = null;
      this.log.info({ from: from?.info ? brief(from.info) : null, to: brief(info) }, 'policy rolled back');
      if (from) void this.retire(from);
      this.announce(info, 'rollback');
      return Promise.resolve(info);
    });
  }

  private enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async load(dir: string, cause: ReadyCause): Promise<PolicyInfo> {
    const slot = await this.loadSlot(dir);
    return this.promote(slot, slot.info!, cause);
  }

  /** A new worker for `dir`, its policy loaded and warmed up (slot.info set, generation 0). */
  private async loadSlot(dir: string): Promise<Slot> {
    if (this.stopping) throw new ReflexError('COMMAND_FAILED', 'the policy runtime is stopping');
    const before = this.state;
    if (this.active === null) this.state = 'loading';
    let slot: Slot | null = null;
    let loaded: PolicyInfo;
    try {
      slot = this.spawn(this.check(dir));
      this.loading = slot;
      loaded = await slot.host.ready;
      if (this.stopping) throw new ReflexError('COMMAND_FAILED', 'the policy runtime is stopping');
    } catch (err) {
      this.state = this.active === null ? 'failed' : 'ready';
      this.error = errorMessage(err);
      if (slot) await this.retire(slot);
      throw err instanceof ReflexError ? err : new ReflexError('COMMAND_FAILED', policyError(dir, err));
    } finally {
      this.loading = null;
    }
    // promote() makes it 'ready'; a preload alone leaves the state as it was.
    if (this.active === null) this.state = before;
    slot.info = loaded;
    return slot;
  }

  /** Swaps `slot` in; the active one becomes the previous (rollback) slot, the one before released. */
  private promote(slot: Slot, loaded: PolicyInfo, cause: ReadyCause): PolicyInfo {
    const released = this.previous;
    this.previous = this.active;
    const info = this.swapTo(slot, loaded);
    this.log.info({ policy: info.name, version: info.version, provider: info.provider, fallbacks: info.fallbacks, warmUpMs: Math.round(info.warmUpMs * 10) / 10, generation: info.generation }, 'policy ready');
    if (released) void this.retire(released);
    this.announce(info, cause);
    return info;
  }

  /**
   * Reads and checks the bundle here, before a thread is started for it: one that cannot run on
   * this robot is refused at once (the files are regular and bounded, so this never blocks).
   */
  private check(dir: string): PolicyBundle {
    const bundle = loadBundle(dir, { maxModelBytes: this.opts.maxModelBytes ?? MODEL_MAX_BYTES });
    const misfit = mismatches(bundle, this.opts.robot);
    if (misfit.length > 0) throw new ReflexError('BAD_REQUEST', `policy ${bundle.spec.name} does not fit this robot: ${misfit.join('; ')}`);
    if (bundle.horizon > MAX_HORIZON) throw new ReflexError('BAD_REQUEST', `policy ${bundle.spec.name}: horizon ${bundle.horizon} exceeds ${MAX_HORIZON}`);
    return bundle;
  }

  /** Makes `slot` the one that answers the loop, under a new generation. */
  private swapTo(slot: Slot, info: PolicyInfo): PolicyInfo {
    const generation = ++this.generation;
    Atomics.store(slot.generation, 0, generation);
    slot.info = { ...info, generation };
    this.ctrl.store('active', slot.id);
    this.active = slot;
    this.state = 'ready';
    this.error = null;
    this.metrics.counters.set('generation', generation);
    // The policy swapped in answers at once rather than at the loop's next refill; a chunk the
    // one swapped out was still computing is dropped (the worker checks active before writing).
    this.request.ring();
    return slot.info;
  }

  private announce(info: PolicyInfo, cause: ReadyCause): void {
    for (const fn of this.readyListeners) {
      try {
        fn(info, cause);
      } catch (err) {
        this.log.error({ err: errorMessage(err) }, 'a policy ready listener failed');
      }
    }
  }

  private spawn(bundle: PolicyBundle): Slot {
    const dir = bundle.dir;
    const id = ++this.ids;
    const generation = new Int32Array(new SharedArrayBuffer(4));
    const data: InferenceWorkerData = {
      id,
      bundle,
      ctrl: this.ctrl.buffer,
      generation: generation.buffer,
      loop: this.loop,
      stats: this.metrics.buffer,
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
      warmUpRuns: this.opts.warmUpRuns ?? 3,
      loadDelayMs: this.nextLoadDelayMs,
      frames: this.opts.frames ?? [],
      task: this.vla.task,
      seed: this.vla.seed,
    };
    this.nextLoadDelayMs = 0;
    // No bound on the ready handshake: a load may take minutes (a TensorRT engine build); the
    // thread is stopped within its bound when the runtime stops or the load is retired.
    const host = new WorkerHost<InferenceProtocol>({
      name: `reflex-inference-${id}`,
      url: new URL('./worker.js', import.meta.url),
      workerData: data,
      readyTimeoutMs: null,
      stopMs: this.opts.workerStopMs ?? 1000,
    });
    const slot: Slot = { id, dir, host, generation, info: null };
    host.onEvent((m) => this.log.error({ err: m.message }, 'inference failed; the loop holds until a good chunk comes'));
    host.onExit((code) => {
      // A thread that ended while holding the chunk slot's lock must not block the others.
      if (this.ctrl.compareExchange('lock', id, 0) === id) this.ctrl.notify('lock');
      this.live.delete(slot);
      this.onExit(slot, code);
    });
    host.onDied((err) => this.log.error({ err: err.message, policy: dir }, 'inference worker failed'));
    this.live.add(slot);
    return slot;
  }

  private onExit(slot: Slot, code: number): void {
    if (this.stopping) return;
    this.staged.delete(slot.id);
    if (slot === this.previous) this.previous = null;
    if (slot !== this.active) return;
    this.ctrl.compareExchange('active', slot.id, 0);
    this.active = null;
    this.state = 'failed';
    this.error = `the inference worker of ${slot.info?.name ?? slot.dir} exited (code ${code})`;
    this.log.error({ err: this.error }, 'the active policy stopped; the loop holds');
  }

  /** Ends a worker within twice the stop bound, whatever it is doing; never waits longer. */
  private async retire(slot: Slot): Promise<void> {
    if (!slot.host.alive) return;
    if (slot === this.active) this.ctrl.compareExchange('active', slot.id, 0);
    if ((await slot.host.stop()) !== 'abandoned') return;
    this.log.error({ policy: slot.dir, boundMs: 2 * (this.opts.workerStopMs ?? 1000) }, 'an inference worker did not end within its bound (stuck in a native call); abandoned');
  }

  status(): PolicyStatus {
    const s = this.metrics.counters;
    const { latencyUs, frameAgeUs } = this.metrics.hist;
    const n = s.get('inferences');
    const r = (v: number) => Math.round(v * 100) / 100;
    return {
      state: this.state,
      active: this.active?.info ?? null,
      previous: this.previous?.info ?? null,
      loading: this.loading?.dir ?? null,
      error: this.error,
      inference: {
        count: n,
        errors: s.get('errors'),
        overBudget: s.get('overBudget'),
        lastMs: r(s.get('lastMs')),
        meanMs: r(n > 0 ? s.get('sumMs') / n : 0),
        meanOrtMs: r(n > 0 ? s.get('sumOrtMs') / n : 0),
        maxMs: r(s.get('maxMs')),
        p50Ms: r(latencyUs.quantile(0.5) / 1000),
        p99Ms: r(latencyUs.quantile(0.99) / 1000),
      },
      frameAgeMs: { p50: r(frameAgeUs.quantile(0.5) / 1000), p99: r(frameAgeUs.quantile(0.99) / 1000) },
      task: this.vla.task,
      seed: this.vla.seed,
    };
  }

  /**
   * Sets the task instruction (tokenized once, in each worker) and, given, the noise seed, for
   * the running policy and every one loaded later.
   */
  setVla(text: string | undefined, seed: number | undefined): { task: string; seed: number } {
    if (text !== undefined) this.vla.task = text;
    if (seed !== undefined) this.vla.seed = seed >>> 0;
    for (const slot of this.live) {
      if (text !== undefined) slot.host.post({ type: 'task', text });
      if (seed !== undefined) slot.host.post({ type: 'seed', seed: this.vla.seed });
    }
    return { ...this.vla };
  }

  /** Fault injection: the policy answers nothing for `ms`. */
  stall(ms: number): void {
    this.active?.host.post({ type: 'stall', ms });
  }

  /**
   * Fault injection: the next policy load blocks its thread for `ms` before opening the model,
   * as a large model or a TensorRT engine build does.
   */
  slowNextLoad(ms: number): void {
    this.nextLoadDelayMs = ms;
  }

  /** Ends every inference worker, each within its bound; never waits longer. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.ctrl.store('active', 0);
    await Promise.all([...this.live].map((s) => this.retire(s)));
  }

  // --- The policy as a part of the daemon: what it reports and the commands it answers. ---

  headline(): string {
    const p = this.status();
    return `policy ${p.active ? `${p.active.name} ${p.active.version} on ${p.active.provider}` : p.state}`;
  }

  telemetry(): { inference: object; policy: object | null } {
    const p = this.status();
    return {
      inference: { meanMs: p.inference.meanMs, p99Ms: p.inference.p99Ms, errors: p.inference.errors },
      policy: p.active ? { name: p.active.name, version: p.active.version, provider: p.active.provider } : null,
    };
  }

  api(): DaemonHandlers {
    return {
      // A policy running keeps running, on the new one; a robot held stays held (policy.start moves it).
      'policy.activate': ({ path }) => this.activate(path),
      'policy.rollback': () => this.rollback(),
      'debug.policy.slowLoad': ({ ms }) => (this.slowNextLoad(ms), null),
      'debug.policy.stall': ({ ms }) => (this.stall(ms), null),
      'policy.task': ({ text, seed }) => this.setVla(text, seed),
    };
  }
}

function brief(i: PolicyInfo): { name: string; version: string; generation: number } {
  return { name: i.name, version: i.version, generation: i.generation };
}

/** Why a load failed, as the runtime has always said it. */
function policyError(dir: string, err: unknown): string {
  const e = err as Error & { reason?: string };
  // The worker's own message says which policy; the host's (exited, abandoned) does not.
  return e.reason === 'failed' ? e.message : `policy ${dir}: ${errorMessage(err)}`;
}
