import { Worker } from 'node:worker_threads';
import { errorMessage, ReflexError, type Logger, type Part } from '../../core/index.js';
import type { CameraConfig } from '../../config/index.js';
import { FrameSlot, SpscRing, monoMs } from '../../rt/index.js';
import { specLength, type ImageSpec, DEFAULT_SPEC } from './preprocess.js';
import { C, CAMERA_STATE_NAMES, TIMING_CAPACITY, type CameraStateName } from './stats.js';
import type { VisionMessage, VisionRequest, VisionWorkerData } from './vision-worker.js';

export interface CameraStatus {
  name: string;
  state: CameraStateName;
  frames: number;
  fps: number;
  failures: number;
  reopens: number;
  /** Age of the newest frame now, ms; null before the first. */
  ageMs: number | null;
  preprocessMs: { mean: number; max: number };
}

/** A camera's frames as the policy side takes them: the slot, its spec and the age bound. */
export interface FrameSource {
  name: string;
  buffer: SharedArrayBuffer;
  spec: ImageSpec;
  maxAgeMs: number;
}

/**
 * OpenCV's addon can be loaded by one thread per process, once: a second vision worker, even
 * after the first has exited, aborts the process inside V8 (seen here). This flag is the one
 * module-level state in reflex, because the constraint it guards is process-wide.
 */
let visionWorkerStarted = false;

/**
 * The main thread's handle on the vision worker (every camera, one thread: see opencv.ts).
 * Frames reach the inference worker through the FrameSlots in `sources`.
 */
export class VisionRuntime implements Part {
  readonly name = 'cameras';
  readonly sources: FrameSource[];
  private readonly stats: Float64Array;
  /** Per-frame [camera index, capture-to-published ms], for whoever wants the distribution. */
  readonly timings = SpscRing.create(TIMING_CAPACITY, 2);
  private worker: Worker | null = null;
  private seq = 0;
  private readonly snapshots = new Map<number, (r: { jpeg: Uint8Array | null; error: string | null }) => void>();

  constructor(
    private readonly cameras: readonly CameraConfig[],
    specs: ReadonlyMap<string, ImageSpec>,
    private readonly log: Logger,
  ) {
    this.sources = cameras.map((c) => {
      const spec = specs.get(c.name) ?? DEFAULT_SPEC;
      return { name: c.name, buffer: FrameSlot.create(specLength(spec)).buffer, spec, maxAgeMs: c.maxAgeMs };
    });
    this.stats = new Float64Array(new SharedArrayBuffer(Math.max(1, cameras.length) * C.LENGTH * 8));
  }

  start(): Promise<void> {
    if (this.cameras.length === 0) return Promise.resolve();
    if (visionWorkerStarted) return Promise.reject(new ReflexError('START_FAILED', 'a vision worker already ran in this process: OpenCV cannot be loaded twice'));
    visionWorkerStarted = true;
    const data: VisionWorkerData = {
      cameras: this.cameras.map((config, i) => ({ config, spec: this.sources[i]!.spec, frame: this.sources[i]!.buffer })),
      stats: this.stats.buffer as SharedArrayBuffer,
      timings: this.timings.buffer,
      failureLimit: 10,
    };
    const worker = new Worker(new URL('./vision-worker.js', import.meta.url), { workerData: data, name: 'reflex-vision' });
    this.worker = worker;
    worker.on('message', (m: VisionMessage) => {
      if (m.type === 'camera') {
        if (m.state === 'stale') this.log.warn({ camera: m.camera, reason: m.reason }, 'camera stale: the policy holds; retrying');
        else this.log.info({ camera: m.camera }, 'camera streaming');
      } else {
        this.snapshots.get(m.id)?.({ jpeg: m.jpeg, error: m.error });
        this.snapshots.delete(m.id);
      }
    });
    worker.on('error', (err) => this.log.error({ err: errorMessage(err) }, 'vision worker failed'));
    worker.on('exit', () => (this.worker = null));
    return Promise.resolve();
  }

  status(): CameraStatus[] {
    const now = monoMs();
    return this.cameras.map((c, i) => {
      const b = i * C.LENGTH;
      const s = this.stats;
      const frames = s[b + C.FRAMES]!;
      const last = s[b + C.LAST_CAPTURE_MS]!;
      const r = (v: number) => Math.round(v * 100) / 100;
      return {
        name: c.name,
        state: CAMERA_STATE_NAMES[s[b + C.STATE]!] ?? 'starting',
        frames,
        fps: r(s[b + C.FPS]!),
        failures: s[b + C.FAILURES]!,
        reopens: s[b + C.REOPENS]!,
        ageMs: last > 0 ? r(now - last) : null,
        preprocessMs: { mean: r(frames > 0 ? s[b + C.PREPROCESS_SUM_MS]! / frames : 0), max: r(s[b + C.PREPROCESS_MAX_MS]!) },
      };
    });
  }

  /** The newest frame of `camera` as JPEG. */
  snapshot(camera: string): Promise<Uint8Array> {
    const worker = this.worker;
    if (!this.cameras.some((c) => c.name === camera)) return Promise.reject(new ReflexError('BAD_REQUEST', `no camera ${camera}`));
    if (worker === null) return Promise.reject(new ReflexError('COMMAND_FAILED', 'the vision worker is not running'));
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      this.snapshots.set(id, (r) => (r.jpeg ? resolve(r.jpeg) : reject(new ReflexError('COMMAND_FAILED', r.error ?? 'no frame'))));
      worker.postMessage({ type: 'snapshot', camera, id } satisfies VisionRequest);
    });
  }

  async stop(): Promise<void> {
    const worker = this.worker;
    if (worker === null) return;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    worker.postMessage({ type: 'stop' } satisfies VisionRequest);
    // A capture blocked in a native read (a hung camera) keeps the thread even past
    // terminate(); then it is left to die with the process rather than hang the stop.
    const timer = setTimeout(() => void worker.terminate(), 2000);
    await Promise.race([exited, new Promise((r) => setTimeout(r, 4000).unref())]);
    clearTimeout(timer);
  }
}
