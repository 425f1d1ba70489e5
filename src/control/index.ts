export { ControlLoop, loopHeadline, type ControlLoopOptions, type LoopStatus } from './loop.js';
export { controlConfigFrom, type ControlConfig, type JointSpec } from './config.js';
export { ChunkExecutor, type BlendMode, type ExecutorOptions } from './executor.js';
export { SafetyFilter, type JointLimits } from './safety.js';
export { MAX_HORIZON, CHUNK_HEADER, MODE_NAMES, observationLength, chunkLength, type ModeName, type LoopBuffers } from './shared.js';
