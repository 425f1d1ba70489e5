// The simulated camera: renders the scene at a fixed rate and serves it as an MJPEG stream
// (multipart JPEG, as IP cameras do) over TCP on localhost, through GStreamer, so reflex reads
// it through its real capture path as a GStreamer pipeline source. (RTP over UDP was the first
// choice; GStreamer's UDP sender delivered nothing in this sandbox, TCP does.) Rendering runs
// in its own thread (camera-worker.ts).
import { Worker } from 'node:worker_threads';
import type { Scene } from './scene.js';
import type { CameraWorkerData } from './camera-worker.js';

export interface SimCameraOptions {
  port: number;
  fps: number;
  width: number;
  height: number;
}

/** The pipeline a reflex camera config uses to read the simulated camera on `port`. */
export function simCameraSource(port: number): string {
  return `tcpclientsrc host=127.0.0.1 port=${port} ! multipartdemux ! jpegdec`;
}

export class SimCamera {
  private readonly state = new Float64Array(new SharedArrayBuffer(6 * 8));
  private readonly worker: Worker;
  private readonly timer: NodeJS.Timeout;

  constructor(opts: SimCameraOptions, scene: () => Scene) {
    const data: CameraWorkerData = { ...opts, state: this.state.buffer };
    this.worker = new Worker(new URL('./camera-worker.js', import.meta.url), { workerData: data, name: 'sim-camera' });
    const update = () => {
      const s = scene();
      this.state[0] = s.joints[0] ?? 0;
      this.state[1] = s.joints[1] ?? 0;
      this.state[2] = s.joints[2] ?? 0;
      this.state[3] = s.target.x;
      this.state[4] = s.target.y;
    };
    update();
    this.timer = setInterval(update, 10);
  }

  get frames(): number {
    return this.state[5]!;
  }

  close(): void {
    clearInterval(this.timer);
    void this.worker.terminate();
  }
}
