export { PolicyRuntime, type PolicyRuntimeOptions, type PolicyStatus, type ReadyCause, type Preloaded } from './runtime.js';
export { loadBundle, mismatches, imageSpecs, policySchema, BUNDLE_FORMAT, POLICY_JSON_MAX_BYTES, MODEL_MAX_BYTES, type PolicyBundle, type PolicySpec, type RobotShape } from './bundle.js';
export { openSession, loadOrt, ioMismatches, providerEntry, type ProviderName, type SessionOptions, type Ort } from './session.js';
export { PolicyRunner } from './runner.js';
export type { PolicyInfo, ShadowReport } from './worker.js';
export { importCheckpoint, type ImportOptions, type ImportResult } from './import.js';
export { readSafetensors, parseSafetensors, SAFETENSORS_MAX_BYTES, type SafeTensor, type Dtype } from './safetensors.js';
