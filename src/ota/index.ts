export { unpackBundle, verifyBundleDir, compareVersions, BundleRefused, type Trust, type TrustedKey, type RefusalCode, type Manifest, type VerifiedBundle, type ArchiveLimits } from './verify.js';
export { download, DownloadFailed, type DownloadOptions, type DownloadFailureCode } from './download.js';
