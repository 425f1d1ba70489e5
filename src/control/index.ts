export { ControlLoop, LATENESS_EDGES_US, loopHeadline, type BusErrors, type JogResult, type ControlLoopOptions, type JointInterventions, type LoopStatus, type LastTick } from './loop.js';
export { controlConfigFrom, type ControlConfig, type JointSpec } from './config.js';
export { ChunkExecutor, type BlendMode, type ExecutorOptions } from './executor.js';
export { SafetyFilter, type JointLimits } from './safety.js';
export { MODE_NAMES, allocShared, type ModeName, type LoopBuffers } from './shared.js';
