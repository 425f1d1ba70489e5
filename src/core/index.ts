export { ReflexError, EXIT, errorMessage, type ErrorCode } from './errors.js';
export { Logging, LOG_LEVELS, isLogLevel, type Logger, type LogLevel, type LoggingOptions, type LogTap } from './log.js';
export { Lifecycle, type Part, type Reporter, type LifecycleOptions } from './lifecycle.js';
export { Report, type Statuses } from './report.js';
export { acquireInstanceLock, lockPathFor, LOCK_FILE, type InstanceLock } from './instance-lock.js';
export { readRegularFile, checkRegularFile, fileKind, groupIdOf, RefusedFile } from './files.js';
export { versions, type Versions } from './versions.js';
