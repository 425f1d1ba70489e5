// The vision worker: the one thread of the daemon that loads OpenCV. It captures every camera,
// keeps only the newest frame of each, pre-processes it once for the policy, and publishes it
// with its capture time in a FrameSlot. A camera that stops is marked
// stale, retried with backoff, and reported; the policy side holds on stale frames.
import { workerData } from 'node:worker_threads';
import type { CameraConfig } from '../../config/index.js';
import { FrameSlot, SpscRing, hostPort, monoMs, type Counters } from '../../rt/index.js';
import { loadOpenCv, type Mat, type VideoCapture } from './opencv.js';
import { openCapture } from './source.js';
import { preprocess, specLength, type ImageSpec } from './preprocess.js';
import { copyRaw, rawSlotLength } from './raw.js';
import { CAMERA_METRICS, CameraState, FrameTiming, TIMING_CAPACITY, TIMING_LENGTH } from './stats.js';

export interface VisionCamera {
  config: CameraConfig;
  spec: ImageSpec;
  frame: SharedArrayBuffer;
  /** Raw BGR frames at the configured size (raw.ts), for the recorder; null when not wanted. */
  raw: SharedArrayBuffer | null;
}

export interface VisionWorkerData {
  cameras: VisionCamera[];
  /** CAMERA_METRICS, one table per camera. */
  stats: SharedArrayBuffer;
  /** Per-frame FrameTiming records, for benchmarks; dropped when full. */
  timings: SharedArrayBuffer;
  /** Consecutive failed reads before a camera is declared stale and reopened. */
  failureLimit: number;
  /** Int32 [1 while the raw frames are wanted]. */
  rawWanted: SharedArrayBuffer;
}

export type CameraEvent = { type: 'camera'; camera: string; state: 'streaming' | 'stale'; reason: string };

/** What the vision worker and its host say (rt/worker-host.ts): snapshots are requests by id. */
export interface VisionProtocol {
  ready: null;
  event: CameraEvent;
  post: never;
  /** The newest frame of a camera, as JPEG. */
  request: { camera: string };
  reply: Uint8Array;
}

type CameraCounters = Counters<keyof typeof CAMERA_METRICS.counters>;

const data = workerData as VisionWorkerData;
const port = hostPort<VisionProtocol>();
const cv = loadOpenCv();
const timings = new SpscRing(data.timings, TIMING_CAPACITY, TIMING_LENGTH);
const timing = FrameTiming.view(0);
const rawWanted = new Int32Array(data.rawWanted);
let running = true;
const latest = new Map<string, Mat>();

/** One camera's capture state in the worker's round-robin. */
class CameraLoop {
  private cap: VideoCapture | null = null;
  private failures = 0;
  private backoffMs = 100;
  private retryAt = 0;
  private fps = { frames: 0, since: monoMs() };
  private readonly stats: CameraCounters;
  private readonly slot: FrameSlot;
  private readonly raw: FrameSlot | null;

  constructor(
    private readonly index: number,
    private readonly cam: VisionCamera,
  ) {
    this.stats = CAMERA_METRICS.view(data.stats, index).counters;
    this.slot = new FrameSlot(cam.frame, specLength(cam.spec));
    this.raw = cam.raw === null ? null : new FrameSlot(cam.raw, rawSlotLength(cam.config.width, cam.config.height));
  }

  /** Reads one frame if the camera is open (or due for a retry); false when it has nothing. */
  step(): boolean {
    const name = this.cam.config.name;
    if (this.cap === null) {
      if (monoMs() < this.retryAt) return false;
      try {
        this.cap = openCapture(cv, this.cam.config);
      } catch (err) {
        this.stale(err instanceof Error ? err.message : String(err));
        return false;
      }
    }
    // A synchronous read: readAsync, together with the per-frame Mat operations, aborts V8
    // during garbage collection with this addon (seen here, in the main thread too).
    const frame = this.cap.read();
    if (frame.empty) {
      this.failures++;
      this.stats.add('failures');
      if (this.failures >= data.failureLimit) this.stale(`${this.failures} reads in a row gave no frame (unplugged, or end of stream)`);
      return false;
    }
    const captured = monoMs();
    this.failures = 0;
    this.backoffMs = 100;
    const s = this.stats;
    if (s.get('state') !== CameraState.STREAMING) {
      s.set('state', CameraState.STREAMING);
      port.event({ type: 'camera', camera: name, state: 'streaming', reason: 'frames arriving' });
    }
    const t0 = monoMs();
    this.slot.write(captured, (into) => preprocess(cv, frame, this.cam.spec, into));
    const ms = monoMs() - t0;
    const { width, height } = this.cam.config;
    if (this.raw !== null && Atomics.load(rawWanted, 0) === 1) this.raw.write(captured, (into) => copyRaw(cv, frame, width, height, into));
    timing.camera = this.index;
    timing.publishMs = monoMs() - captured;
    timings.push(timing.data);
    latest.set(name, frame);
    s.add('frames');
    s.set('lastCaptureMs', captured);
    s.add('preprocessSumMs', ms);
    s.max('preprocessMaxMs', ms);
    this.fps.frames++;
    const span = captured - this.fps.since;
    if (span >= 1000) {
      s.set('fps', (this.fps.frames * 1000) / span);
      this.fps = { frames: 0, since: captured };
    }
    return true;
  }

  private stale(reason: string): void {
    this.cap?.release();
    this.cap = null;
    this.failures = 0;
    this.stats.set('state', CameraState.STALE);
    this.stats.add('reopens');
    port.event({ type: 'camera', camera: this.cam.config.name, state: 'stale', reason });
    this.retryAt = monoMs() + this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, 5000);
  }

  close(): void {
    this.cap?.release();
    this.cap = null;
  }
}

port.onStop(() => (running = false));
port.onRequest(({ camera }) => {
  const frame = latest.get(camera);
  if (!frame) throw new Error(`camera ${camera} has no frame yet`);
  return new Uint8Array(cv.imencode('.jpg', frame));
});

// Round-robin over the cameras. A read blocks until that camera's next frame, and the others
// keep only their newest frame meanwhile (one buffer, or an appsink that drops), so no frame
// handed on is older than about one period. Between rounds the event loop runs (messages).
const loops = data.cameras.map((cam, i) => new CameraLoop(i, cam));
port.ready(null);
while (running) {
  let got = false;
  for (const l of loops) got = l.step() || got;
  await new Promise((r) => setTimeout(r, got ? 0 : 20));
}
for (const l of loops) l.close();
process.exit(0);
