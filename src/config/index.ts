export { configSchema, configSchemaFor } from './schema.js';
export type { Config, ConfigInput, BusConfig, JointConfig, CameraConfig } from './schema.js';
export { loadConfig, parseConfig, ConfigError, DEFAULT_CONFIG_PATH, ENV_OVERRIDES, MAX_CONFIG_BYTES, type LoadOptions } from './load.js';
export { hostProblems, type HostFacts } from './host.js';
export type { ConfigProblem } from './errors.js';
