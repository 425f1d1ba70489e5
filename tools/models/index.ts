// Policies made from code, offline and reproducibly: the default policies in models/ (see
// scripts/make-models.mjs), the benchmark's ACT-size model, and the small models the tests
// load. Not part of the daemon: nothing under src/ imports this.
export { buildModel, weights, DataType, type GraphInit, type NodeInit } from './onnx-builder.js';
export { writeBundle, offsetModel, imageOffsetModel, actModel, writeActBundle, writeHomeBundle, writeReachBundle, reachModel, ACT_BENCH, type ReachOptions, type ActOptions } from './models.js';
export { safetensorsBytes, writeLeRobotCheckpoint, LEROBOT_FILES, type CheckpointOptions, type FeatureStats, type TensorOut } from './lerobot.js';
export { vlaModel, writeVlaBundle, tokenizerJson, VLA_INPUTS, VLA_VOCAB, type VlaOptions } from './vla.js';
