import { defineMetrics } from '../rt/index.js';

/**
 * What the inference workers count, read by the main thread: counters, then two histograms
 * (µs): inference latency, and the age of the camera frames it used.
 */
export const INFERENCE_METRICS = defineMetrics(
  ['inferences', 'errors', 'overBudget', 'lastMs', 'lastOrtMs', 'sumMs', 'sumOrtMs', 'maxMs', 'generation'] as const,
  ['latencyUs', 'frameAgeUs'] as const,
);

/**
 * Int32 words every inference worker shares (one worker per loaded policy). active: the id of
 * the worker that serves the loop (0: none). lock: the id of the worker that is checking
 * active and writing a chunk (0: free), so that the chunk slot has one writer at a time and no
 * chunk of the policy swapped out lands after the first chunk of the one swapped in.
 */
export const POLICY_WORDS = ['active', 'lock'] as const;
