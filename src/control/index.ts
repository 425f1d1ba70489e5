export { ControlLoop, type ControlLoopOptions, type LoopStatus } from './loop.js';
