// The raw frame, as the camera delivered it (BGR bytes, at the camera's configured size), for
// whoever records video: published beside the policy's pre-processed tensor, in a FrameSlot of
// its own, and only while someone asks for it (the recorder), since the copy costs a
// megabyte a frame.
import type { Cv, Mat } from './opencv.js';

/** A camera's raw frames: BGR bytes, width x height x 3, in a FrameSlot of rawSlotLength floats. */
export interface RawFrameSource {
  name: string;
  buffer: SharedArrayBuffer;
  width: number;
  height: number;
}

/** FrameSlot length (float32 values) that holds a width x height BGR frame. */
export function rawSlotLength(width: number, height: number): number {
  return Math.ceil((width * height * 3) / 4);
}

/** Copies `frame` (resized to width x height when the camera gave another size) into a slot buffer. */
export function copyRaw(cv: Cv, frame: Mat, width: number, height: number, into: Float32Array): void {
  const sized = frame.rows === height && frame.cols === width ? frame : frame.resize(height, width, 0, 0, cv.INTER_AREA);
  const data = sized.getData();
  new Uint8Array(into.buffer, into.byteOffset, into.byteLength).set(data.subarray(0, width * height * 3));
}
