// One recorded row as the recorder journals it: a fixed number of float64 values, appended to
// the episode's journal file as it is recorded. The parquet file is written from the journal
// when the episode closes, and after a crash from whatever complete rows the journal holds, so
// both paths read the same bytes.

/** Per camera per row: was the frame repeated, then a pixel sample's per-channel (RGB) min, max, sum, sum of squares, and its size. */
export const CAMERA_VALUES = 1 + 3 * 4 + 1;

export interface RowLayout {
  joints: number;
  cameras: number;
  /** Values per row. */
  length: number;
  q: number;
  command: number;
  action: number;
  camera(i: number): number;
}

export const ROW = { tick: 0, timeMs: 1, mode: 2, safety: 3, faults: 4, hasAction: 5, intervention: 6 } as const;
const SCALARS = 7;

export function rowLayout(joints: number, cameras: number): RowLayout {
  const q = SCALARS;
  const command = q + joints;
  const action = command + joints;
  const cams = action + joints;
  return { joints, cameras, length: cams + cameras * CAMERA_VALUES, q, command, action, camera: (i) => cams + i * CAMERA_VALUES };
}

/** Offsets inside one camera's block. */
export const CAM = { repeated: 0, min: 1, max: 4, sum: 7, sumSq: 10, n: 13 } as const;

/** The complete rows in a journal's bytes (a torn last row, from a crash, is left out). */
export function journalRows(bytes: Uint8Array, layout: RowLayout): Float64Array[] {
  const rowBytes = layout.length * 8;
  const n = Math.floor(bytes.byteLength / rowBytes);
  const aligned = new Float64Array(n * layout.length);
  new Uint8Array(aligned.buffer).set(bytes.subarray(0, n * rowBytes));
  const rows: Float64Array[] = [];
  for (let i = 0; i < n; i++) rows.push(aligned.subarray(i * layout.length, (i + 1) * layout.length));
  return rows;
}
