// The highlight ring: while no episode is being recorded, the last record.highlightS seconds of
// rows (at the dataset rate) and of each recorded camera's raw frame, in memory, so that when
// something goes wrong (a fault, an e-stop, starvation, a safety clamp) those seconds can be
// saved as an episode. Every buffer is allocated up front (rows x frame size per camera: 10 s
// of a 640x480 camera at 10 fps is 92 MB): pushing a row copies into them and allocates nothing.
// A row whose camera had no new frame gets a copy of the previous one, marked repeated, as in
// a recorded episode. Frozen while a snapshot is being saved (its buffers go to the encoder).
import { FrameSlot } from '../rt/index.js';
import type { RawFrameSource } from '../hardware/camera/index.js';
import { CAM, type RowLayout } from './row.js';

interface CameraRing {
  slot: FrameSlot;
  frameBytes: number;
  bytes: Uint8Array;
  /** Per ring position, the frame's float view (for FrameSlot.read) and byte view. */
  floats: Float32Array[];
  frames: Uint8Array[];
  lastVersion: number;
  lastAt: number;
}

export class HighlightRing {
  private readonly rows: Float64Array;
  private readonly cams: CameraRing[];
  private head = 0;
  private count = 0;
  frozen = false;

  constructor(
    readonly capacity: number,
    private readonly layout: RowLayout,
    cameras: readonly RawFrameSource[],
  ) {
    this.rows = new Float64Array(capacity * layout.length);
    this.cams = cameras.map((c) => {
      const frameBytes = c.width * c.height * 3;
      const floatsPer = Math.ceil(frameBytes / 4);
      const ab = new ArrayBuffer(capacity * floatsPer * 4);
      return {
        slot: new FrameSlot(c.buffer, floatsPer),
        frameBytes,
        bytes: new Uint8Array(ab),
        floats: Array.from({ length: capacity }, (_, i) => new Float32Array(ab, i * floatsPer * 4, floatsPer)),
        frames: Array.from({ length: capacity }, (_, i) => new Uint8Array(ab, i * floatsPer * 4, frameBytes)),
        lastVersion: 0,
        lastAt: -1,
      };
    });
  }

  get size(): number {
    return this.count;
  }

  get full(): boolean {
    return this.count === this.capacity;
  }

  /** Keeps `row` (copied) and each camera's newest frame as the newest entry, over the oldest. */
  push(row: Float64Array): void {
    if (this.frozen || this.capacity === 0) return;
    const at = this.head;
    const L = this.layout.length;
    this.rows.set(row, at * L);
    for (let c = 0; c < this.cams.length; c++) {
      const cam = this.cams[c]!;
      const block = at * L + this.layout.camera(c);
      const version = cam.slot.version;
      let fresh = false;
      if (version !== 0 && version !== cam.lastVersion && cam.slot.read(cam.floats[at]!) >= 0) {
        cam.lastVersion = version;
        fresh = true;
      } else if (cam.lastAt >= 0) {
        const from = cam.lastAt * cam.floats[0]!.byteLength;
        if (cam.lastAt !== at) cam.bytes.copyWithin(at * cam.floats[0]!.byteLength, from, from + cam.frameBytes);
      } else cam.frames[at]!.fill(0);
      cam.lastAt = at;
      this.rows[block + CAM.repeated] = fresh ? 0 : 1;
      this.rows[block + CAM.n] = 0; // image stats are taken when saved, off the tick path
    }
    this.head = (at + 1) % this.capacity;
    if (this.count < this.capacity) this.count++;
  }

  /** The kept rows and their frames (per row, one per camera), oldest first: views into the ring, valid until it is pushed to again. */
  snapshot(): { rows: Float64Array[]; frames: Uint8Array[][] } {
    const L = this.layout.length;
    const rows: Float64Array[] = [];
    const frames: Uint8Array[][] = [];
    const first = (this.head - this.count + this.capacity) % this.capacity;
    for (let k = 0; k < this.count; k++) {
      const i = (first + k) % this.capacity;
      rows.push(this.rows.subarray(i * L, (i + 1) * L));
      frames.push(this.cams.map((c) => c.frames[i]!));
    }
    return { rows, frames };
  }

  /** Forgets what is kept (an episode started, or a highlight was saved). */
  clear(): void {
    this.head = 0;
    this.count = 0;
    for (const c of this.cams) {
      c.lastVersion = 0;
      c.lastAt = -1;
    }
  }
}
