export { Recorder, defaultRecordDir, type RecorderOptions, type RecordStatus, type RecordState } from './recorder.js';
export { Dataset, type EpisodeEntry, type EpisodeFlag, type Outcome } from './dataset.js';
export { featuresOf, infoJson, videoKey, dataPath, videoPath, CODEBASE_VERSION, type DatasetShape, type Feature } from './format.js';
