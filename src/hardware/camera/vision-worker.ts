// The vision worker: the one thread of the daemon that loads OpenCV. It captures every camera,
// keeps only the newest frame of each, pre-processes it once for the policy, and publishes it
// with its capture time in a FrameSlot. A camera that stops is marked
// stale, retried with backoff, and reported; the policy side holds on stale frames.
import { parentPort, workerData } from 'node:worker_threads';
import type { CameraConfig } from '../../config/index.js';
import { FrameSlot, SpscRing, monoMs } from '../../rt/index.js';
import { loadOpenCv, type Mat, type VideoCapture } from './opencv.js';
import { openCapture } from './source.js';
import { preprocess, specLength, type ImageSpec } from './preprocess.js';
import { C, CameraState, TIMING_CAPACITY } from './stats.js';

export interface VisionCamera {
  config: CameraConfig;
  spec: ImageSpec;
  frame: SharedArrayBuffer;
}

export interface VisionWorkerData {
  cameras: VisionCamera[];
  stats: SharedArrayBuffer;
  /** Per-frame timings [camera index, capture-to-published ms], for benchmarks; dropped when full. */
  timings: SharedArrayBuffer;
  /** Consecutive failed reads before a camera is declared stale and reopened. */
  failureLimit: number;
}

export type VisionRequest = { type: 'snapshot'; camera: string; id: number } | { type: 'stop' };
export type VisionMessage =
  | { type: 'snapshot'; id: number; jpeg: Uint8Array | null; error: string | null }
  | { type: 'camera'; camera: string; state: 'streaming' | 'stale'; reason: string };

const data = workerData as VisionWorkerData;
const cv = loadOpenCv();
const stats = new Float64Array(data.stats);
const timings = new SpscRing(data.timings, TIMING_CAPACITY, 2);
const timing = new Float64Array(2);
const post = (m: VisionMessage) => parentPort!.postMessage(m);
let running = true;
const latest = new Map<string, Mat>();

/** One camera's capture state in the worker's round-robin. */
class CameraLoop {
  private cap: VideoCapture | null = null;
  private failures = 0;
  private backoffMs = 100;
  private retryAt = 0;
  private fps = { frames: 0, since: monoMs() };
  private readonly base: number;
  private readonly slot: FrameSlot;

  constructor(
    private readonly index: number,
    private readonly cam: VisionCamera,
  ) {
    this.base = index * C.LENGTH;
    this.slot = new FrameSlot(cam.frame, specLength(cam.spec));
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
      stats[this.base + C.FAILURES]! += 1;
      if (this.failures >= data.failureLimit) this.stale(`${this.failures} reads in a row gave no frame (unplugged, or end of stream)`);
      return false;
    }
    const captured = monoMs();
    this.failures = 0;
    this.backoffMs = 100;
    const s = stats;
    const b = this.base;
    if (s[b + C.STATE] !== CameraState.STREAMING) {
      s[b + C.STATE] = CameraState.STREAMING;
      post({ type: 'camera', camera: name, state: 'streaming', reason: 'frames arriving' });
    }
    const t0 = monoMs();
    this.slot.write(captured, (into) => preprocess(cv, frame, this.cam.spec, into));
    const ms = monoMs() - t0;
    timing[0] = this.index;
    timing[1] = monoMs() - captured;
    timings.push(timing);
    latest.set(name, frame);
    s[b + C.FRAMES]! += 1;
    s[b + C.LAST_CAPTURE_MS] = captured;
    s[b + C.PREPROCESS_SUM_MS]! += ms;
    if (ms > s[b + C.PREPROCESS_MAX_MS]!) s[b + C.PREPROCESS_MAX_MS] = ms;
    this.fps.frames++;
    const span = captured - this.fps.since;
    if (span >= 1000) {
      s[b + C.FPS] = (this.fps.frames * 1000) / span;
      this.fps = { frames: 0, since: captured };
    }
    return true;
  }

  private stale(reason: string): void {
    this.cap?.release();
    this.cap = null;
    this.failures = 0;
    stats[this.base + C.STATE] = CameraState.STALE;
    stats[this.base + C.REOPENS]! += 1;
    post({ type: 'camera', camera: this.cam.config.name, state: 'stale', reason });
    this.retryAt = monoMs() + this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, 5000);
  }

  close(): void {
    this.cap?.release();
    this.cap = null;
  }
}

parentPort!.on('message', (m: VisionRequest) => {
  if (m.type === 'stop') {
    running = false;
    return;
  }
  const frame = latest.get(m.camera);
  if (!frame) {
    post({ type: 'snapshot', id: m.id, jpeg: null, error: `camera ${m.camera} has no frame yet` });
    return;
  }
  const jpeg = cv.imencode('.jpg', frame);
  post({ type: 'snapshot', id: m.id, jpeg: new Uint8Array(jpeg), error: null });
});

// Round-robin over the cameras. A read blocks until that camera's next frame, and the others
// keep only their newest frame meanwhile (one buffer, or an appsink that drops), so no frame
// handed on is older than about one period. Between rounds the event loop runs (messages).
const loops = data.cameras.map((cam, i) => new CameraLoop(i, cam));
while (running) {
  let got = false;
  for (const l of loops) got = l.step() || got;
  await new Promise((r) => setTimeout(r, got ? 0 : 20));
}
for (const l of loops) l.close();
process.exit(0);
