// The simulated camera: renders the scene at a fixed rate and serves it as an MJPEG stream
// (multipart JPEG, as IP cameras do) over TCP on localhost, through GStreamer, so reflex reads
// it through its real capture path as a GStreamer pipeline source. (RTP over UDP was the first
// choice; GStreamer's UDP sender delivered nothing in this sandbox, TCP does.)
import { loadOpenCv, type Cv } from '../hardware/camera/index.js';
import { render, type Scene } from './scene.js';

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
  private readonly cv: Cv;
  private readonly writer: InstanceType<Cv['VideoWriter']>;
  private readonly timer: NodeJS.Timeout;
  frames = 0;

  constructor(
    private readonly opts: SimCameraOptions,
    private readonly scene: () => Scene,
  ) {
    this.cv = loadOpenCv();
    const pipeline = `appsrc ! videoconvert ! jpegenc quality=85 ! multipartmux ! tcpserversink host=127.0.0.1 port=${opts.port} sync=false`;
    this.writer = new this.cv.VideoWriter(pipeline, 0, opts.fps, new this.cv.Size(opts.width, opts.height), true);
    this.timer = setInterval(() => this.frame(), 1000 / opts.fps);
  }

  private frame(): void {
    this.writer.write(render(this.cv, this.scene(), this.opts.width, this.opts.height));
    this.frames++;
  }

  close(): void {
    clearInterval(this.timer);
    this.writer.release();
  }
}
