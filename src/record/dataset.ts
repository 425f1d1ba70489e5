// The dataset on disk: the committed episodes, and how a finished episode joins them. The
// commit point is one small file, .reflex/episodes.json, replaced atomically: an episode exists
// once its entry is there, and its entry is written only after its data and video files are in
// place and synced. Every meta/ file of LeRobot's is derived from that list and rewritten after
// each commit (and again at start, so a crash between the commit and the meta files heals), and
// files with an index past the last committed episode are leftovers of a crash and are removed:
// the episode indices are 0..N-1 and each row's `index` its position, always.
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { ReflexError } from '../core/index.js';
import { copyIntoPlace, writeFileAtomic, moveIntoPlace, sweepTemporaries } from './files.js';
import { EPISODES_PATH, INFO_PATH, STATS_PATH, TASKS_PATH, chunkOf, dataPath, featuresOf, infoJson, sameShape, videoKey, videoPath, type DatasetShape } from './format.js';
import {
  boolColumn, fixedBoolColumn, fixedFloat32Column, float32Column, float64Column, int64Column, int64ListColumn, nestedFloat64Column, parquetBytes,
  stringColumn, stringListColumn, type Column,
} from './parquet.js';
import { CAM, ROW, type RowLayout } from './row.js';
import { aggregateStats, imageStats, vectorStats, emptyPixelSums, type EpisodeStats, type FeatureStats } from './stats.js';
import { applyMoves, clearStage, renumberedColumns, stageEpisode, type Move } from './evict.js';
import { columnStats, type AdoptedEpisode } from './episode-table.js';

/** Why an episode was flagged: technician marks and what the loop reported. */
export type EpisodeFlag = 'highlight' | 'intervention' | 'fault' | 'estop' | 'starvation' | 'safety_clamp' | 'recovered' | 'frames_repeated';
export type Outcome = 'success' | 'failure';

/** One committed episode, as .reflex/episodes.json keeps it. */
export interface EpisodeEntry {
  /** Stable for the episode's life: its index changes when older episodes are deleted, this does not. */
  id: string;
  episodeIndex: number;
  length: number;
  task: string;
  from: number;
  to: number;
  flags: EpisodeFlag[];
  outcome: Outcome | null;
  policy: { name: string; version: string } | null;
  startedAt: string;
  repeatedFrames: number;
  bytes: number;
  stats: EpisodeStats;
  /** When the episode's files were uploaded, and the hash of the metadata sent with them (a later mark sends it again). */
  uploaded: { at: string; meta: string } | null;
  /** The robot it was recorded on, for an episode brought in from a fleet's uploads (merge.ts). */
  device?: string;
}

interface State {
  version: 1;
  shape: DatasetShape;
  tasks: string[];
  episodes: EpisodeEntry[];
  /** An eviction committed but not yet in place: staged files to rename (finished at open). */
  moves?: Move[];
}

/**
 * Something went wrong in it or a technician said so: the disk policy keeps it longest and the
 * uploader sends it first. Repeated frames and a crash recovery alone do not count.
 */
export function isFlagged(e: EpisodeEntry): boolean {
  return e.flags.some((f) => f !== 'frames_repeated' && f !== 'recovered') || e.outcome === 'failure';
}

/** What the recorder hands over when an episode's rows and videos are final. */
export interface FinishedEpisode {
  rows: readonly Float64Array[];
  layout: RowLayout;
  task: string;
  flags: EpisodeFlag[];
  outcome: Outcome | null;
  policy: { name: string; version: string } | null;
  startedAt: string;
  /** Per recorded camera (in shape order), the episode's finished MP4 (synced), exactly rows.length frames. */
  videos: string[];
}

const STATE_FILE = '.reflex/episodes.json';
const MAX_STATE_BYTES = 256 * 1024 * 1024;

export class Dataset {
  private state: State;

  private constructor(
    readonly dir: string,
    state: State,
  ) {
    this.state = state;
  }

  /**
   * Opens (or creates) the dataset at `dir` for recordings of `shape`: removes what a crash left
   * half-written, and rewrites the meta files from the committed list. A dataset recorded with
   * other features or another rate is refused, saying so: one dataset holds one shape.
   */
  static open(dir: string, shape: DatasetShape): Dataset {
    mkdirSync(join(dir, '.reflex'), { recursive: true });
    const file = join(dir, STATE_FILE);
    let state: State = { version: 1, shape, tasks: [], episodes: [] };
    if (existsSync(file)) {
      state = readState(file);
      // Datasets written before episodes had ids (or upload state) get them once.
      if (state.episodes.some((e) => e.id === undefined || e.uploaded === undefined)) {
        state = { ...state, episodes: state.episodes.map((e) => ({ ...e, id: e.id ?? randomUUID(), uploaded: e.uploaded ?? null })) };
        writeFileAtomic(file, JSON.stringify(state));
      }
      if (!sameShape(state.shape, shape)) {
        throw new ReflexError(
          'CONFIG_INVALID',
          `the dataset at ${dir} was recorded with other features or rate (fps ${state.shape.fps}, joints ${state.shape.joints.join(',')}, cameras ${state.shape.cameras.map((c) => `${c.name} ${c.width}x${c.height}`).join(',') || 'none'}); move it away or set record.dir`,
        );
      }
    } else if (existsSync(join(dir, INFO_PATH))) {
      throw new ReflexError('CONFIG_INVALID', `${dir} holds a dataset reflex did not write (no ${STATE_FILE}); choose another record.dir`);
    } else {
      writeFileAtomic(file, JSON.stringify(state));
    }
    const ds = new Dataset(dir, state);
    ds.finishEviction();
    sweepTemporaries(dir);
    ds.removeOrphans();
    ds.writeMeta();
    return ds;
  }

  /** The shape of the dataset reflex keeps at `dir`; null when there is none there yet. */
  static shapeAt(dir: string): DatasetShape | null {
    const file = join(dir, STATE_FILE);
    return existsSync(file) ? readState(file).shape : null;
  }

  get shape(): DatasetShape {
    return this.state.shape;
  }

  get episodes(): readonly EpisodeEntry[] {
    return this.state.episodes;
  }

  get totalFrames(): number {
    return this.state.episodes.reduce((a, e) => a + e.length, 0);
  }

  /**
   * Writes a finished episode's data file, moves its videos into place, then commits its entry
   * and rewrites the meta files. Returns the entry.
   */
  commit(ep: FinishedEpisode): EpisodeEntry {
    const s = this.state;
    const index = s.episodes.length;
    const from = this.totalFrames;
    let taskIndex = s.tasks.indexOf(ep.task);
    const tasks = taskIndex < 0 ? [...s.tasks, ep.task] : s.tasks;
    if (taskIndex < 0) taskIndex = tasks.length - 1;
    const { columns, stats, repeated } = this.dataColumns(ep, index, from, taskIndex);
    const bytes = this.placeEpisode(index, columns, ep.videos, moveIntoPlace);
    const flags = [...ep.flags];
    if (repeated > 0 && !flags.includes('frames_repeated')) flags.push('frames_repeated');
    const entry: EpisodeEntry = {
      id: randomUUID(),
      episodeIndex: index,
      length: ep.rows.length,
      task: ep.task,
      from,
      to: from + ep.rows.length,
      flags,
      outcome: ep.outcome,
      policy: ep.policy,
      startedAt: ep.startedAt,
      repeatedFrames: repeated,
      bytes,
      stats,
      uploaded: null,
    };
    this.save({ ...s, tasks, episodes: [...s.episodes, entry] });
    return entry;
  }

  /**
   * Appends episodes recorded elsewhere (a fleet's uploads, checked by merge.ts against this
   * shape): each one's rows rewritten with its new episode_index, index and task_index as evict
   * rewrites them, its stats computed from those rows, its videos copied; then one commit for
   * them all and the meta files. A crash before the commit leaves the dataset as it was (open
   * removes the files past the last episode). Episodes whose id is already here are left out.
   * Returns the new entries.
   */
  adopt(list: readonly AdoptedEpisode[]): EpisodeEntry[] {
    const s = this.state;
    const features = featuresOf(s.shape);
    const known = new Set(s.episodes.map((e) => e.id));
    const tasks = [...s.tasks];
    const added: EpisodeEntry[] = [];
    let from = this.totalFrames;
    for (const ep of list) {
      if (known.has(ep.id)) continue;
      known.add(ep.id);
      const index = s.episodes.length + added.length;
      let taskIndex = tasks.indexOf(ep.task);
      if (taskIndex < 0) taskIndex = tasks.push(ep.task) - 1;
      const n = ep.table.numRows;
      const columns = renumberedColumns(ep.table, index, from, taskIndex);
      const bytes = this.placeEpisode(index, columns, ep.videos, copyIntoPlace);
      added.push({
        id: ep.id,
        episodeIndex: index,
        length: n,
        task: ep.task,
        from,
        to: from + n,
        flags: ep.flags,
        outcome: ep.outcome,
        policy: ep.policy,
        startedAt: ep.startedAt,
        repeatedFrames: ep.repeatedFrames,
        bytes,
        stats: { ...columnStats(columns, features), ...ep.videoStats },
        uploaded: null,
        device: ep.device,
      });
      from += n;
    }
    if (added.length === 0) return [];
    this.save({ ...s, tasks, episodes: [...s.episodes, ...added] });
    return added;
  }

  /** Commits `next`: the list file first (synced, renamed), then this object, then the meta files unless `meta` is false. */
  private save(next: State, meta = true): void {
    writeFileAtomic(join(this.dir, STATE_FILE), JSON.stringify(next));
    this.state = next;
    if (meta) this.writeMeta();
  }

  /** Writes episode `index`'s data file and puts its videos in place (moved or copied); their bytes. */
  private placeEpisode(index: number, columns: Parameters<typeof parquetBytes>[0], videos: readonly string[], place: (from: string, to: string) => void): number {
    const dataFile = join(this.dir, dataPath(index));
    writeFileAtomic(dataFile, parquetBytes(columns));
    let bytes = statSync(dataFile).size;
    this.state.shape.cameras.forEach((c, i) => {
      const to = join(this.dir, videoPath(videoKey(c.name), index));
      place(videos[i]!, to);
      bytes += statSync(to).size;
    });
    return bytes;
  }

  /** Marks a committed episode (a technician's mark that came after it ended). */
  mark(index: number, mark: { outcome?: Outcome; flag?: EpisodeFlag }): EpisodeEntry {
    const s = this.state;
    const old = s.episodes[index];
    if (old === undefined) throw new ReflexError('BAD_REQUEST', `no episode ${index}`);
    const entry: EpisodeEntry = {
      ...old,
      outcome: mark.outcome ?? old.outcome,
      flags: mark.flag !== undefined && !old.flags.includes(mark.flag) ? [...old.flags, mark.flag] : old.flags,
    };
    this.save({ ...s, episodes: s.episodes.map((e, i) => (i === index ? entry : e)) });
    return entry;
  }

  /**
   * Takes committed episodes' later labels (their robots marked them after the upload): the
   * outcome given, and every flag given added to their own; one commit for them all. Returns the
   * entries that changed.
   */
  relabel(labels: readonly { id: string; outcome: Outcome | null; flags: readonly EpisodeFlag[] }[]): EpisodeEntry[] {
    const byId = new Map(labels.map((l) => [l.id, l]));
    const changed: EpisodeEntry[] = [];
    const episodes = this.state.episodes.map((old) => {
      const label = byId.get(old.id);
      if (label === undefined) return old;
      const outcome = label.outcome ?? old.outcome;
      const added = label.flags.filter((f) => !old.flags.includes(f));
      if (outcome === old.outcome && added.length === 0) return old;
      const entry: EpisodeEntry = { ...old, outcome, flags: [...old.flags, ...new Set(added)] };
      changed.push(entry);
      return entry;
    });
    if (changed.length > 0) this.save({ ...this.state, episodes });
    return changed;
  }

  /** Records that episode `id` is uploaded with metadata `meta` (its hash); false when it is gone. */
  setUploaded(id: string, meta: string, at: string): boolean {
    const s = this.state;
    if (!s.episodes.some((e) => e.id === id)) return false;
    // Not in the meta files: nothing there changes.
    this.save({ ...s, episodes: s.episodes.map((e) => (e.id === id ? { ...e, uploaded: { at, meta } } : e)) }, false);
    return true;
  }

  /** A committed episode's files: the data file and each camera's video, by the names an upload gives them. */
  files(entry: EpisodeEntry): { name: string; path: string }[] {
    return [
      { name: 'data.parquet', path: join(this.dir, dataPath(entry.episodeIndex)) },
      ...this.state.shape.cameras.map((c) => ({ name: `${videoKey(c.name)}.mp4`, path: join(this.dir, videoPath(videoKey(c.name), entry.episodeIndex)) })),
    ];
  }

  /**
   * Deletes the committed episodes `drop` (indices) and renumbers the rest so that episode
   * indices stay 0..N-1 and `index` the row position: each later episode's data file is
   * rewritten and its videos renamed. Crash-safe: the new files are staged beside the old ones,
   * the new list (naming the staged files) is committed, then the staged files are renamed into
   * place and the tail removed; a crash before the commit leaves the old dataset, after it
   * `open` finishes the moves. Returns the deleted entries.
   */
  evict(drop: ReadonlySet<number>): EpisodeEntry[] {
    if (drop.size === 0) return [];
    this.finishEviction(); // one that failed half-way (a full disk) is finished first, not discarded
    const s = this.state;
    const cams = s.shape.cameras.map((c) => videoKey(c.name));
    const kept: EpisodeEntry[] = [];
    const removed: EpisodeEntry[] = [];
    const moves: Move[] = [];
    let from = 0;
    for (const e of s.episodes) {
      if (drop.has(e.episodeIndex)) {
        removed.push(e);
        continue;
      }
      const index = kept.length;
      if (index !== e.episodeIndex) {
        const videos = cams.map((k) => [videoPath(k, e.episodeIndex), videoPath(k, index)] as [string, string]);
        moves.push(...stageEpisode(this.dir, dataPath(e.episodeIndex), dataPath(index), index, from, videos));
      }
      const n = e.length;
      const stats = { ...e.stats, episode_index: vectorStats([Float64Array.from({ length: n }, () => index)], n), index: vectorStats([Float64Array.from({ length: n }, (_, i) => from + i)], n) };
      kept.push({ ...e, episodeIndex: index, from, to: from + n, stats });
      from += n;
    }
    this.save({ ...s, episodes: kept, moves }, false);
    this.finishEviction();
    this.removeOrphans();
    this.writeMeta();
    return removed;
  }

  /** Puts a committed eviction's staged files in place (again, after a crash), or discards an uncommitted one. */
  private finishEviction(): void {
    const moves = this.state.moves;
    if (moves !== undefined) {
      applyMoves(this.dir, moves);
      const { moves: _done, ...rest } = this.state;
      this.save(rest, false);
    }
    clearStage(this.dir);
  }

  /** Bytes of every committed episode's files. */
  get bytes(): number {
    return this.state.episodes.reduce((a, e) => a + e.bytes, 0);
  }

  private dataColumns(ep: FinishedEpisode, episodeIndex: number, from: number, taskIndex: number): { columns: Record<string, Column>; stats: EpisodeStats; repeated: number } {
    const { rows, layout } = ep;
    const n = rows.length;
    const J = layout.joints;
    const C = layout.cameras;
    const fps = this.state.shape.fps;
    const state = new Float32Array(n * J);
    const action = new Float32Array(n * J);
    const policyAction = new Float32Array(n * J);
    const hasAction: boolean[] = [];
    const intervention: boolean[] = [];
    const safety: number[] = [];
    const mode: number[] = [];
    const faults: number[] = [];
    const repeatedRows: boolean[][] = [];
    const pixels = Array.from({ length: C }, emptyPixelSums);
    let repeated = 0;
    rows.forEach((r, i) => {
      const has = r[ROW.hasAction] === 1;
      for (let j = 0; j < J; j++) {
        state[i * J + j] = r[layout.q + j]!;
        action[i * J + j] = r[layout.command + j]!;
        policyAction[i * J + j] = has ? r[layout.action + j]! : r[layout.command + j]!;
      }
      hasAction.push(has);
      intervention.push(r[ROW.intervention] === 1);
      safety.push(r[ROW.safety]!);
      mode.push(r[ROW.mode]!);
      faults.push(r[ROW.faults]!);
      const rep: boolean[] = [];
      for (let c = 0; c < C; c++) {
        const at = layout.camera(c);
        const was = r[at + CAM.repeated] === 1;
        rep.push(was);
        if (was) repeated++;
        const p = pixels[c]!;
        const k = r[at + CAM.n]!;
        if (k > 0) {
          for (let ch = 0; ch < 3; ch++) {
            p.min[ch] = Math.min(p.min[ch]!, r[at + CAM.min + ch]!);
            p.max[ch] = Math.max(p.max[ch]!, r[at + CAM.max + ch]!);
            p.sum[ch]! += r[at + CAM.sum + ch]!;
            p.sumSq[ch]! += r[at + CAM.sumSq + ch]!;
          }
          p.n += k;
          p.frames++;
        }
      }
      repeatedRows.push(rep);
    });
    const seq = (f: (i: number) => number) => Array.from({ length: n }, (_, i) => f(i));
    const frameIndex = seq((i) => i);
    const timestamp = seq((i) => i / fps);
    const columns: Record<string, Column> = {
      'observation.state': fixedFloat32Column(state, J),
      action: fixedFloat32Column(action, J),
      'complementary_info.policy_action': fixedFloat32Column(policyAction, J),
      'complementary_info.has_policy_action': boolColumn(hasAction),
      'complementary_info.safety': int64Column(safety),
      'complementary_info.mode': int64Column(mode),
      'complementary_info.faults': int64Column(faults),
      intervention: boolColumn(intervention),
      timestamp: float32Column(timestamp),
      frame_index: int64Column(frameIndex),
      episode_index: int64Column(seq(() => episodeIndex)),
      index: int64Column(seq((i) => from + i)),
      task_index: int64Column(seq(() => taskIndex)),
    };
    if (C > 0) columns['complementary_info.frame_repeated'] = fixedBoolColumn(repeatedRows, C);
    const columnsOf = (flat: Float32Array) => Array.from({ length: J }, (_, j) => Float64Array.from({ length: n }, (_, i) => flat[i * J + j]!));
    const one = (v: ArrayLike<number>) => [Float64Array.from(v)];
    const bools = (v: readonly boolean[]) => one(v.map((b) => (b ? 1 : 0)));
    const stats: EpisodeStats = {
      'observation.state': vectorStats(columnsOf(state), n),
      action: vectorStats(columnsOf(action), n),
      'complementary_info.policy_action': vectorStats(columnsOf(policyAction), n),
      'complementary_info.has_policy_action': vectorStats(bools(hasAction), n),
      'complementary_info.safety': vectorStats(one(safety), n),
      'complementary_info.mode': vectorStats(one(mode), n),
      'complementary_info.faults': vectorStats(one(faults), n),
      intervention: vectorStats(bools(intervention), n),
      // LeRobot's timestamp column is float32: its stats are of the stored values.
      timestamp: vectorStats(one(Float32Array.from(timestamp)), n),
      frame_index: vectorStats(one(frameIndex), n),
      episode_index: vectorStats(one(seq(() => episodeIndex)), n),
      index: vectorStats(one(seq((i) => from + i)), n),
      task_index: vectorStats(one(seq(() => taskIndex)), n),
    };
    if (C > 0) stats['complementary_info.frame_repeated'] = vectorStats(Array.from({ length: C }, (_, c) => Float64Array.from(repeatedRows, (r) => (r[c] ? 1 : 0))), n);
    this.state.shape.cameras.forEach((c, i) => (stats[videoKey(c.name)] = imageStats(pixels[i]!)));
    return { columns, stats, repeated };
  }

  /** Files past the last committed episode: a crash came between their rename and the commit. */
  private removeOrphans(): void {
    const n = this.state.episodes.length;
    const isOrphan = (name: string) => {
      const m = /^file-(\d+)\.(parquet|mp4)$/.exec(name);
      return m !== null && Number(m[1]) >= n;
    };
    const sweep = (dir: string) => {
      if (!existsSync(dir)) return;
      for (const chunk of readdirSync(dir)) {
        const cdir = join(dir, chunk);
        if (!statSync(cdir).isDirectory()) continue;
        for (const f of readdirSync(cdir)) if (isOrphan(f)) rmSync(join(cdir, f), { force: true });
      }
    };
    sweep(join(this.dir, 'data'));
    for (const c of this.state.shape.cameras) sweep(join(this.dir, 'videos', videoKey(c.name)));
  }

  /** meta/info.json, stats.json, tasks.parquet and the episodes table, from the committed list. */
  private writeMeta(): void {
    const { shape, tasks, episodes } = this.state;
    const frames = this.totalFrames;
    writeFileAtomic(join(this.dir, INFO_PATH), `${JSON.stringify(infoJson(shape, { episodes: episodes.length, frames, tasks: tasks.length }), null, 4)}\n`);
    writeFileAtomic(join(this.dir, STATS_PATH), `${JSON.stringify(aggregateStats(episodes.map((e) => e.stats)), null, 4)}\n`);
    writeFileAtomic(join(this.dir, TASKS_PATH), tasksParquet(tasks));
    if (episodes.length > 0) writeFileAtomic(join(this.dir, EPISODES_PATH), this.episodesParquet());
    else rmSync(join(this.dir, EPISODES_PATH), { force: true });
  }

  private episodesParquet(): Uint8Array {
    const { shape, episodes } = this.state;
    const fps = shape.fps;
    const cols: Record<string, Column> = {
      episode_index: int64Column(episodes.map((e) => e.episodeIndex)),
      tasks: stringListColumn(episodes.map((e) => [e.task])),
      length: int64Column(episodes.map((e) => e.length)),
      'data/chunk_index': int64Column(episodes.map((e) => chunkOf(e.episodeIndex).chunk)),
      'data/file_index': int64Column(episodes.map((e) => e.episodeIndex)),
      dataset_from_index: int64Column(episodes.map((e) => e.from)),
      dataset_to_index: int64Column(episodes.map((e) => e.to)),
    };
    for (const c of shape.cameras) {
      const key = videoKey(c.name);
      cols[`videos/${key}/chunk_index`] = int64Column(episodes.map((e) => chunkOf(e.episodeIndex).chunk));
      cols[`videos/${key}/file_index`] = int64Column(episodes.map((e) => e.episodeIndex));
      cols[`videos/${key}/from_timestamp`] = float64Column(episodes.map(() => 0));
      cols[`videos/${key}/to_timestamp`] = float64Column(episodes.map((e) => e.length / fps));
    }
    cols['meta/episodes/chunk_index'] = int64Column(episodes.map(() => 0));
    cols['meta/episodes/file_index'] = int64Column(episodes.map(() => 0));
    for (const feature of Object.keys(episodes[0]!.stats)) {
      for (const stat of Object.keys(episodes[0]!.stats[feature]!)) {
        const values = episodes.map((e) => (e.stats[feature] as FeatureStats)[stat] as number[] | number[][][]);
        cols[`stats/${feature}/${stat}`] = stat === 'count' ? int64ListColumn(values as number[][]) : nestedFloat64Column(values);
      }
    }
    // reflex's own columns (LeRobot reads the ones above and carries these along).
    cols['reflex/outcome'] = stringColumn(episodes.map((e) => e.outcome ?? ''));
    cols['reflex/flags'] = stringListColumn(episodes.map((e) => e.flags));
    cols['reflex/policy_name'] = stringColumn(episodes.map((e) => e.policy?.name ?? ''));
    cols['reflex/policy_version'] = stringColumn(episodes.map((e) => e.policy?.version ?? ''));
    cols['reflex/started_at'] = stringColumn(episodes.map((e) => e.startedAt));
    cols['reflex/repeated_frames'] = int64Column(episodes.map((e) => e.repeatedFrames));
    cols['reflex/device'] = stringColumn(episodes.map((e) => e.device ?? ''));
    return parquetBytes(cols);
  }

  /** Features of this dataset (for status and tests). */
  features(): ReturnType<typeof featuresOf> {
    return featuresOf(this.state.shape);
  }
}

function readState(file: string): State {
  const st = statSync(file);
  if (!st.isFile() || st.size > MAX_STATE_BYTES) throw new ReflexError('CONFIG_INVALID', `${file} is not a regular file of bounded size`);
  return JSON.parse(readFileSync(file, 'utf8')) as State;
}

/**
 * meta/tasks.parquet: LeRobot reads it with pandas and looks tasks up by the frame's index,
 * so the task strings are the pandas index (`__index_level_0__` with pandas' metadata, as
 * DataFrame.to_parquet writes it) and task_index the one column.
 */
function tasksParquet(tasks: readonly string[]): Uint8Array {
  return parquetBytes(
    { task_index: int64Column(tasks.map((_, i) => i)), __index_level_0__: stringColumn(tasks) },
    new Map([['pandas', PANDAS_TASKS_METADATA]]),
  );
}

const PANDAS_TASKS_METADATA = JSON.stringify({
  index_columns: ['__index_level_0__'],
  column_indexes: [{ name: null, field_name: null, pandas_type: 'unicode', numpy_type: 'object', metadata: { encoding: 'UTF-8' } }],
  columns: [
    { name: 'task_index', field_name: 'task_index', pandas_type: 'int64', numpy_type: 'int64', metadata: null },
    { name: null, field_name: '__index_level_0__', pandas_type: 'unicode', numpy_type: 'object', metadata: null },
  ],
  creator: { library: 'pyarrow', version: '19.0.0' },
  pandas_version: '2.2.3',
});
