export { configSchema, DYNAMIXEL_BAUDS } from './schema.js';
export type { Config, ConfigInput, BusConfig, JointConfig, CameraConfig } from './schema.js';
export { loadConfig, parseConfig, ConfigError, DEFAULT_CONFIG_PATH, ENV_OVERRIDES } from './load.js';
export type { ConfigProblem } from './errors.js';
