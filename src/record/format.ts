// What a LeRobotDataset v3.0 is on disk, as LeRobot (v0.4-v0.6) reads it: the paths, the
// features in meta/info.json, and the names reflex records under. Checked against LeRobot's
// src/lerobot/datasets/utils.py (create_empty_dataset_info, DEFAULT_FEATURES) and
// lerobot_dataset.py (episode metadata columns).
//
// Any feature named `action*` is a policy output and any `observation*` a policy input in
// LeRobot, so what reflex adds (the policy's raw action, safety bits, faults, flags) lives under
// `complementary_info.*`, as LeRobot's own RL recording does, and `intervention`, the boolean
// LeRobot's DAgger-style recording uses for frames whose action was not the policy's.

export const CODEBASE_VERSION = 'v3.0';
export const CHUNKS_SIZE = 1000;
export const DATA_FILES_SIZE_IN_MB = 100;
export const VIDEO_FILES_SIZE_IN_MB = 200;
export const DATA_PATH = 'data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet';
export const VIDEO_PATH = 'videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4';
export const EPISODES_PATH = 'meta/episodes/chunk-000/file-000.parquet';
export const TASKS_PATH = 'meta/tasks.parquet';
export const INFO_PATH = 'meta/info.json';
export const STATS_PATH = 'meta/stats.json';

/**
 * One data file and one video file per camera per episode, the file index advancing with the
 * episode index (LeRobot starts a new file whenever it likes: its loader follows each episode's
 * row in the episodes table). Each episode's files are then written once and never appended to,
 * which is what makes a crash unable to damage a finished episode.
 */
export function chunkOf(fileIndex: number): { chunk: number; file: number } {
  return { chunk: Math.floor(fileIndex / CHUNKS_SIZE), file: fileIndex };
}

const pad3 = (n: number) => String(n).padStart(3, '0');

export function dataPath(fileIndex: number): string {
  const { chunk, file } = chunkOf(fileIndex);
  return `data/chunk-${pad3(chunk)}/file-${pad3(file)}.parquet`;
}

export function videoPath(videoKey: string, fileIndex: number): string {
  const { chunk, file } = chunkOf(fileIndex);
  return `videos/${videoKey}/chunk-${pad3(chunk)}/file-${pad3(file)}.mp4`;
}

export function videoKey(camera: string): string {
  return `observation.images.${camera}`;
}

export type Dtype = 'float32' | 'int64' | 'bool' | 'video';

export interface Feature {
  dtype: Dtype;
  shape: number[];
  names: string[] | null;
  info?: Record<string, unknown>;
}

/** What a recording is made of: the robot's joints, the recorded cameras and their frame size, the rate. */
export interface DatasetShape {
  fps: number;
  robotType: string;
  joints: readonly string[];
  cameras: readonly { name: string; width: number; height: number }[];
}

/** The frame-level features of a reflex recording, in column order (videos last). */
export function featuresOf(s: DatasetShape): Record<string, Feature> {
  const j = s.joints.length;
  const jointNames = [...s.joints];
  const f: Record<string, Feature> = {
    'observation.state': { dtype: 'float32', shape: [j], names: jointNames },
    action: { dtype: 'float32', shape: [j], names: jointNames },
    // The policy's own action before the safety filter; where it gave none (hold, starved,
    // priming) the command actually sent, and complementary_info.has_policy_action is false.
    'complementary_info.policy_action': { dtype: 'float32', shape: [j], names: jointNames },
    'complementary_info.has_policy_action': { dtype: 'bool', shape: [1], names: null },
    // The safety filter's interventions at that step (rt/records.ts Intervention bits).
    'complementary_info.safety': { dtype: 'int64', shape: [1], names: null },
    // The loop's mode (0 hold, 1 policy, 2 e-stop, 3 fault) and its fault count since start.
    'complementary_info.mode': { dtype: 'int64', shape: [1], names: null },
    'complementary_info.faults': { dtype: 'int64', shape: [1], names: null },
    // The executed action was not the policy's: the safety filter changed it, the loop held, or
    // a technician marked an intervention (from the mark to the end of the episode).
    intervention: { dtype: 'bool', shape: [1], names: null },
    timestamp: { dtype: 'float32', shape: [1], names: null },
    frame_index: { dtype: 'int64', shape: [1], names: null },
    episode_index: { dtype: 'int64', shape: [1], names: null },
    index: { dtype: 'int64', shape: [1], names: null },
    task_index: { dtype: 'int64', shape: [1], names: null },
  };
  // Per camera: the camera had no new frame for this row, so the previous one was repeated.
  if (s.cameras.length > 0) f['complementary_info.frame_repeated'] = { dtype: 'bool', shape: [s.cameras.length], names: s.cameras.map((c) => c.name) };
  for (const c of s.cameras) {
    f[videoKey(c.name)] = {
      dtype: 'video',
      shape: [c.height, c.width, 3],
      names: ['height', 'width', 'channels'],
      info: {
        'video.height': c.height,
        'video.width': c.width,
        'video.codec': 'h264',
        'video.pix_fmt': 'yuv420p',
        'video.is_depth_map': false,
        'video.fps': s.fps,
        'video.channels': 3,
        has_audio: false,
      },
    };
  }
  return f;
}

export interface InfoTotals {
  episodes: number;
  frames: number;
  tasks: number;
}

/** meta/info.json (only the keys LeRobot knows: it drops unknown top-level keys). */
export function infoJson(s: DatasetShape, totals: InfoTotals): Record<string, unknown> {
  return {
    codebase_version: CODEBASE_VERSION,
    robot_type: s.robotType,
    total_episodes: totals.episodes,
    total_frames: totals.frames,
    total_tasks: totals.tasks,
    chunks_size: CHUNKS_SIZE,
    data_files_size_in_mb: DATA_FILES_SIZE_IN_MB,
    video_files_size_in_mb: VIDEO_FILES_SIZE_IN_MB,
    fps: s.fps,
    splits: totals.episodes > 0 ? { train: `0:${totals.episodes}` } : {},
    data_path: DATA_PATH,
    video_path: s.cameras.length > 0 ? VIDEO_PATH : null,
    features: featuresOf(s),
  };
}

/** Two shapes record the same features at the same rate (a dataset can only hold one). */
export function sameShape(a: DatasetShape, b: DatasetShape): boolean {
  return JSON.stringify(featuresOf(a)) === JSON.stringify(featuresOf(b)) && a.fps === b.fps && a.robotType === b.robotType;
}
