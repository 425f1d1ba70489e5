// The cameras' raw frames as the recorder takes them: one per data row, from the camera's raw
// FrameSlot (written by the vision worker, BGR bytes as captured), into a small pool of buffers
// that go to the encoder and come back when the pipe has taken them. A row whose camera had
// no new frame gets the previous one again, marked repeated: the video keeps exactly one frame
// per row at a constant rate. An empty pool means the encoder is not keeping up.
import { FrameSlot } from '../rt/index.js';
import type { RawFrameSource } from '../hardware/camera/index.js';
import { CAM } from './row.js';

interface PoolBuffer {
  bytes: Uint8Array;
  floats: Float32Array;
  refs: number;
}

/** Pixels sampled per frame for the image statistics (every k-th pixel). */
const STAT_SAMPLES = 4096;

export class FrameFeed {
  readonly name: string;
  readonly width: number;
  readonly height: number;
  private readonly slot: FrameSlot;
  private readonly pool: PoolBuffer[] = [];
  private last: PoolBuffer | null = null;
  private lastVersion = 0;
  private readonly frameBytes: number;

  constructor(src: RawFrameSource, poolSize: number) {
    this.name = src.name;
    this.width = src.width;
    this.height = src.height;
    this.frameBytes = src.width * src.height * 3;
    const floats = Math.ceil(this.frameBytes / 4);
    this.slot = new FrameSlot(src.buffer, floats);
    for (let i = 0; i < poolSize; i++) {
      const ab = new ArrayBuffer(floats * 4);
      this.pool.push({ bytes: new Uint8Array(ab, 0, this.frameBytes), floats: new Float32Array(ab), refs: 0 });
    }
  }

  /** Forgets the last frame (a new episode starts from the camera's newest). */
  reset(): void {
    this.last = null;
    this.lastVersion = 0;
  }

  /**
   * The frame for the next row, with its stats written into `row` at `at` (a CAM block), or
   * null when every buffer is still with the encoder. The caller hands it to the encoder and
   * calls `release` when the encoder is done with it.
   */
  next(row: Float64Array, at: number): Uint8Array | null {
    const version = this.slot.version;
    if (version !== 0 && version !== this.lastVersion) {
      const buf = this.pool.find((b) => b.refs === 0 && b !== this.last);
      if (buf === undefined) return null;
      const got = this.slot.read(buf.floats);
      if (got >= 0) {
        this.last = buf;
        this.lastVersion = version;
        buf.refs++;
        row[at + CAM.repeated] = 0;
        sampleStats(buf.bytes, row, at);
        return buf.bytes;
      }
    }
    // Nothing new (or the writer lapped every copy): the previous frame again, or black before the first.
    if (this.last === null) {
      const buf = this.pool.find((b) => b.refs === 0);
      if (buf === undefined) return null;
      buf.bytes.fill(0);
      this.last = buf;
    }
    this.last.refs++;
    row[at + CAM.repeated] = 1;
    row[at + CAM.n] = 0;
    return this.last.bytes;
  }

  release(frame: Uint8Array): void {
    const buf = this.pool.find((b) => b.bytes === frame);
    if (buf !== undefined && buf.refs > 0) buf.refs--;
  }

  get frameSize(): number {
    return this.frameBytes;
  }
}

/** Per-channel (RGB) min, max, sum and sum of squares over a sample of the BGR pixels. */
export function sampleStats(bgr: Uint8Array, row: Float64Array, at: number): void {
  const pixels = bgr.length / 3;
  const step = Math.max(1, Math.floor(pixels / STAT_SAMPLES));
  let n = 0;
  const min = [255, 255, 255];
  const max = [0, 0, 0];
  const sum = [0, 0, 0];
  const sq = [0, 0, 0];
  for (let p = 0; p < pixels; p += step) {
    for (let c = 0; c < 3; c++) {
      const v = bgr[p * 3 + (2 - c)]!; // RGB channel c is BGR byte 2 - c
      if (v < min[c]!) min[c] = v;
      if (v > max[c]!) max[c] = v;
      sum[c]! += v;
      sq[c]! += v * v;
    }
    n++;
  }
  for (let c = 0; c < 3; c++) {
    row[at + CAM.min + c] = min[c]!;
    row[at + CAM.max + c] = max[c]!;
    row[at + CAM.sum + c] = sum[c]!;
    row[at + CAM.sumSq + c] = sq[c]!;
  }
  row[at + CAM.n] = n;
}
