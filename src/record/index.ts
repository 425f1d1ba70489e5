export { Recorder, defaultRecordDir, type RecorderOptions, type RecordStatus, type RecordState } from './recorder.js';
export { Dataset, type EpisodeEntry, type EpisodeFlag, type Outcome } from './dataset.js';
export { featuresOf, infoJson, videoKey, dataPath, videoPath, CODEBASE_VERSION, type DatasetShape, type Feature } from './format.js';
export { Uploader, UPLOADS_DISABLED, type UploadStatus, type UploadSource, type UploadChannel, type UploaderOptions } from './uploader.js';
export { uploadTopics, parsePending, GRANT_MAX_BYTES, MIN_PART_BYTES, MAX_PARTS, type PendingUploads, type UploadGrant, type GrantedFile } from './upload-protocol.js';
export { Presigner, serveGrants, type GrantOptions } from './upload-grants.js';
export { mergeEpisodes, shapeDifference, EPISODE_JSON_MAX_BYTES, type MergeOptions, type MergeReport } from './merge.js';
