import { ReflexError, type Logger, type Part } from '../../core/index.js';
import type { CameraConfig } from '../../config/index.js';
import { FrameSlot, SpscRing, WorkerHost, monoMs } from '../../rt/index.js';
import { specLength, type ImageSpec, DEFAULT_SPEC } from './preprocess.js';
import { CAMERA_METRICS, CAMERA_STATE_NAMES, TIMING_CAPACITY, TIMING_LENGTH, type CameraStateName } from './stats.js';
import type { VisionProtocol, VisionWorkerData } from './vision-worker.js';
import { rawSlotLength, type RawFrameSource } from './raw.js';
import type { DaemonHandlers } from '../../api/index.js';

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

/** A snapshot is one JPEG encode in the vision worker: it answers between two frames. */
const SNAPSHOT_TIMEOUT_MS = 5000;

/**
 * The main thread's handle on the vision worker (every camera, one thread: see opencv.ts).
 * Frames reach the inference worker through the FrameSlots in `sources`.
 */
export class VisionRuntime implements Part {
  readonly name = 'cameras';
  readonly sources: FrameSource[];
  /** CAMERA_METRICS, one table per camera. */
  private readonly stats: SharedArrayBuffer;
  /** Per-frame FrameTiming records [camera index, capture-to-published ms], for whoever wants the distribution. */
  readonly timings = SpscRing.create(TIMING_CAPACITY, TIMING_LENGTH);
  private host: WorkerHost<VisionProtocol> | null = null;
  /** Each camera's raw frames (BGR, as captured), when asked for at construction (`raw`); else empty. */
  readonly raw: RawFrameSource[];
  /** 1 while a reader of `raw` wants frames: the vision worker copies them only then. */
  readonly rawWanted = new Int32Array(new SharedArrayBuffer(4));

  constructor(
    private readonly cameras: readonly CameraConfig[],
    specs: ReadonlyMap<string, ImageSpec>,
    private readonly log: Logger,
    opts: { raw?: boolean } = {},
  ) {
    this.sources = cameras.map((c) => {
      const spec = specs.get(c.name) ?? DEFAULT_SPEC;
      return { name: c.name, buffer: FrameSlot.create(specLength(spec)).buffer, spec, maxAgeMs: c.maxAgeMs };
    });
    this.stats = CAMERA_METRICS.alloc(cameras.length);
    this.raw = opts.raw === true ? cameras.map((c) => ({ name: c.name, width: c.width, height: c.height, buffer: FrameSlot.create(rawSlotLength(c.width, c.height)).buffer })) : [];
  }

  start(): Promise<void> {
    if (this.cameras.length === 0) return Promise.resolve();
    if (visionWorkerStarted) return Promise.reject(new ReflexError('START_FAILED', 'a vision worker already ran in this process: OpenCV cannot be loaded twice'));
    visionWorkerStarted = true;
    const data: VisionWorkerData = {
      cameras: this.cameras.map((config, i) => ({ config, spec: this.sources[i]!.spec, frame: this.sources[i]!.buffer, raw: this.raw[i]?.buffer ?? null })),
      rawWanted: this.rawWanted.buffer,
      stats: this.stats,
      timings: this.timings.buffer,
      failureLimit: 10,
    };
    // Started, not awaited: the daemon runs without frames (the policy holds) until they come.
    const host = new WorkerHost<VisionProtocol>({
      name: 'reflex-vision',
      url: new URL('./vision-worker.js', import.meta.url),
      workerData: data,
      readyTimeoutMs: null,
      // A capture blocked in a native read (a hung camera) keeps the thread even past
      // terminate(); then it is left to die with the process rather than hang the stop.
      stopMs: 2000,
    });
    this.host = host;
    host.onEvent((m) => {
      if (m.state === 'stale') this.log.warn({ camera: m.camera, reason: m.reason }, 'camera stale: the policy holds; retrying');
      else this.log.info({ camera: m.camera }, 'camera streaming');
    });
    host.ready.catch((err: Error) => this.log.error({ err: err.message }, 'vision worker failed'));
    host.onDied((err) => this.log.error({ err: err.message }, 'vision worker failed'));
    host.onExit(() => (this.host = null));
    return Promise.resolve();
  }

  status(): CameraStatus[] {
    const now = monoMs();
    return this.cameras.map((c, i) => {
      const s = CAMERA_METRICS.view(this.stats, i).counters;
      const frames = s.get('frames');
      const last = s.get('lastCaptureMs');
      const r = (v: number) => Math.round(v * 100) / 100;
      return {
        name: c.name,
        state: CAMERA_STATE_NAMES[s.get('state')] ?? 'starting',
        frames,
        fps: r(s.get('fps')),
        failures: s.get('failures'),
        reopens: s.get('reopens'),
        ageMs: last > 0 ? r(now - last) : null,
        preprocessMs: { mean: r(frames > 0 ? s.get('preprocessSumMs') / frames : 0), max: r(s.get('preprocessMaxMs')) },
      };
    });
  }

  /** The newest frame of `camera` as JPEG. */
  async snapshot(camera: string): Promise<Uint8Array> {
    const host = this.host;
    if (!this.cameras.some((c) => c.name === camera)) throw new ReflexError('BAD_REQUEST', `no camera ${camera}`);
    if (host === null) throw new ReflexError('COMMAND_FAILED', 'the vision worker is not running');
    try {
      return await host.request({ camera }, SNAPSHOT_TIMEOUT_MS);
    } catch (err) {
      const e = err as Error & { timeout?: boolean };
      throw new ReflexError(e.timeout === true ? 'TIMEOUT' : 'COMMAND_FAILED', e.message, { timeout: e.timeout === true });
    }
  }

  /** Ends the vision worker within its bound (twice 2 s); never waits longer. */
  async stop(): Promise<void> {
    const host = this.host;
    if (host === null) return;
    const outcome = await host.stop();
    if (outcome === 'abandoned') this.log.error('the vision worker did not end (a capture stuck in a native read); left to end with the process');
  }

  // --- The cameras as a part of the daemon: what they report and the command they answer. ---

  telemetry(): { cameras: object[] } {
    return { cameras: this.status().map((c) => ({ name: c.name, state: c.state, fps: c.fps, ageMs: c.ageMs })) };
  }

  api(): DaemonHandlers {
    return {
      'camera.snapshot': async ({ name }) => ({ jpeg: Buffer.from(await this.snapshot(name)).toString('base64') }),
    };
  }
}
