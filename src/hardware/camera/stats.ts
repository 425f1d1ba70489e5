/** Per-camera Float64 slots the vision worker counts in (camera i at i * C.LENGTH). */
export const C = {
  STATE: 0,
  FRAMES: 1,
  FAILURES: 2,
  REOPENS: 3,
  LAST_CAPTURE_MS: 4,
  PREPROCESS_SUM_MS: 5,
  PREPROCESS_MAX_MS: 6,
  FPS: 7,
  LENGTH: 8,
} as const;

export const CameraState = { STARTING: 0, STREAMING: 1, STALE: 2 } as const;
export const CAMERA_STATE_NAMES = ['starting', 'streaming', 'stale'] as const;
export type CameraStateName = (typeof CAMERA_STATE_NAMES)[number];

/** Records in the per-frame timing ring. */
export const TIMING_CAPACITY = 1024;
