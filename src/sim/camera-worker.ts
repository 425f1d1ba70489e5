// The simulated camera's own thread: rendering and JPEG encoding take milliseconds a frame,
// which on the simulator's main thread would delay the servos' replies past their timeouts.
import { workerData } from 'node:worker_threads';
import { loadOpenCv } from '../hardware/camera/index.js';
import { render } from './scene.js';

export interface CameraWorkerData {
  port: number;
  fps: number;
  width: number;
  height: number;
  /** [base, shoulder, elbow, targetX, targetY, frames], written by the simulator's main thread. */
  state: SharedArrayBuffer;
}

const d = workerData as CameraWorkerData;
const cv = loadOpenCv();
const s = new Float64Array(d.state);
const pipeline = `appsrc ! videoconvert ! jpegenc quality=85 ! multipartmux ! tcpserversink host=127.0.0.1 port=${d.port} sync=false`;
const writer = new cv.VideoWriter(pipeline, 0, d.fps, new cv.Size(d.width, d.height), true);
setInterval(() => {
  writer.write(render(cv, { joints: [s[0]!, s[1]!, s[2]!], target: { x: s[3]!, y: s[4]! } }, d.width, d.height));
  s[5]! += 1;
}, 1000 / d.fps);
