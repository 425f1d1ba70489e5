export { VisionRuntime, type CameraStatus, type FrameSource } from './runtime.js';
export { DEFAULT_SPEC, specLength, preprocess, type ImageSpec } from './preprocess.js';
export { sourceKind, latestOnlyPipeline, openCapture } from './source.js';
export { loadOpenCv, type Cv, type Mat } from './opencv.js';
export { rawSlotLength, type RawFrameSource } from './raw.js';
