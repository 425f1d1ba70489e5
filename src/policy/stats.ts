/** Float64 slots the inference worker counts in, read by the main thread. */
export const S = {
  INFERENCES: 0,
  ERRORS: 1,
  OVER_BUDGET: 2,
  LAST_MS: 3,
  LAST_ORT_MS: 4,
  SUM_MS: 5,
  SUM_ORT_MS: 6,
  MAX_MS: 7,
  GENERATION: 8,
  LENGTH: 10,
} as const;

/** Histograms after the slots: inference latency, and the age of the camera frames it used (us, log buckets). */
export const HIST = { LATENCY: S.LENGTH, FRAME_AGE: S.LENGTH + 192, BUCKETS: 192, END: S.LENGTH + 2 * 192 } as const;

/**
 * Int32 words every inference worker shares (one worker per loaded policy). ACTIVE: the id of
 * the worker that serves the loop (0: none). LOCK: the id of the worker that is checking ACTIVE
 * and writing a chunk (0: free), so that the chunk slot has one writer at a time and no chunk
 * of the policy swapped out lands after the first chunk of the one swapped in.
 */
export const CTRL = { ACTIVE: 0, LOCK: 1, LENGTH: 2 } as const;
