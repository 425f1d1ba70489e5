import type { Cv, Mat } from './opencv.js';

/** How a camera's frames become a policy's input: size, and per-channel normalization. */
export interface ImageSpec {
  height: number;
  width: number;
  /** Per RGB channel, on pixel values scaled to [0, 1]: input = (pixel / 255 - mean) / std. */
  mean: [number, number, number];
  std: [number, number, number];
  /** Keep the aspect ratio and pad with black to the size (π0, SmolVLA), rather than stretch. */
  pad?: boolean;
}

export const DEFAULT_SPEC: ImageSpec = { height: 224, width: 224, mean: [0, 0, 0], std: [1, 1, 1] };

export function specLength(s: ImageSpec): number {
  return 3 * s.height * s.width;
}

/** Resized to fit inside the size with its aspect ratio, centred, the rest black. */
function padded(cv: Cv, frame: Mat, s: ImageSpec): Mat {
  const k = Math.min(s.height / frame.rows, s.width / frame.cols);
  const h = Math.max(1, Math.min(s.height, Math.round(frame.rows * k)));
  const w = Math.max(1, Math.min(s.width, Math.round(frame.cols * k)));
  const top = Math.floor((s.height - h) / 2);
  const left = Math.floor((s.width - w) / 2);
  return frame.resize(h, w, 0, 0, cv.INTER_AREA).copyMakeBorder(top, s.height - h - top, left, s.width - w - left, cv.BORDER_CONSTANT, new cv.Vec3(0, 0, 0));
}

/**
 * BGR frame -> resized, RGB, CHW float32, normalized: all in OpenCV (resize, split, one
 * convertTo per channel with the normalization folded into its scale and offset), written
 * straight into `out`. No per-pixel JavaScript.
 */
export function preprocess(cv: Cv, frame: Mat, s: ImageSpec, out: Float32Array): void {
  const resized = frame.rows === s.height && frame.cols === s.width ? frame : s.pad ? padded(cv, frame, s) : frame.resize(s.height, s.width, 0, 0, cv.INTER_AREA);
  const bgr = resized.splitChannels();
  const plane = s.height * s.width;
  for (let c = 0; c < 3; c++) {
    // RGB order: channel c of the input is plane 2 - c of a BGR frame.
    const src = bgr[2 - c]!;
    const f = src.convertTo(cv.CV_32F, 1 / (255 * s.std[c]!), -s.mean[c]! / s.std[c]!);
    const data = f.getData();
    // A small Buffer may sit at an unaligned offset in Node's pool; a float view needs 4.
    const bytes = data.byteOffset % 4 === 0 ? data : Buffer.from(data);
    out.set(new Float32Array(bytes.buffer, bytes.byteOffset, plane), c * plane);
  }
}
