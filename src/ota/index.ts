export { unpackBundle, verifyBundleDir, compareVersions, BundleRefused, type Trust, type TrustedKey, type RefusalCode, type Manifest, type VerifiedBundle, type ArchiveLimits, type Checks } from './verify.js';
export * as bundleTools from './bundle-tools.js';
export { trustSchema, trustedKeySchema, resolveTrustedKeys, type TrustConfig } from './config.js';
export { download, DownloadFailed, type DownloadOptions, type DownloadFailureCode } from './download.js';
export { desiredPolicySchema, jobReportSchema, bundleRefSchema, parseDesired, topics, isId, JOB_STATES, TERMINAL_STATES, STEPS, DESIRED_MAX_BYTES, BUNDLE_MAX_BYTES, type DesiredPolicy, type JobReport, type JobState, type Step, type BundleRef } from './protocol.js';
export { UpdateStore, emptyRecord, MAX_TRANSITIONS, STORE_FILES, type UpdateRecord, type JobRecord, type PolicyRef } from './store.js';
export { Updater, type UpdaterOptions, type UpdaterPorts, type UpdaterStatus } from './updater.js';
export { otaSettingsSchema, type OtaSettings, type TrialThresholds } from './settings.js';
