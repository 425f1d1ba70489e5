import { defineMetrics, defineRecord } from '../../rt/index.js';

/** What the vision worker counts per camera (one table per camera, in one shared buffer). */
export const CAMERA_METRICS = defineMetrics(['state', 'frames', 'failures', 'reopens', 'lastCaptureMs', 'preprocessSumMs', 'preprocessMaxMs', 'fps'] as const);

export const CameraState = { STARTING: 0, STREAMING: 1, STALE: 2 } as const;
export const CAMERA_STATE_NAMES = ['starting', 'streaming', 'stale'] as const;
export type CameraStateName = (typeof CAMERA_STATE_NAMES)[number];

/** Records in the per-frame timing ring. */
export const TIMING_CAPACITY = 1024;

/** One frame's timing: which camera, and how long from capture to published (ms). */
export const FrameTiming = defineRecord('frame timing', ['camera', 'publishMs'] as const, {});
export const TIMING_LENGTH = FrameTiming.size(0);
