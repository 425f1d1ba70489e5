// The fleet side of the flywheel: the episodes robots uploaded (a bucket synced to a folder,
// `<device>/<episode id>/` each holding data.parquet, a video per camera and episode.json, see
// uploader.ts) put together into one LeRobotDataset v3.0, through Dataset.adopt.
//
// What comes from the bucket is checked before anything is written: episode.json bounded in
// size and validated; the data file read back, its columns those of the dataset's features and
// its rows as many as the episode says; each video a regular MP4. An episode that fails is
// skipped with the reason, the others go in. No name from episode.json becomes a path except a
// camera name that passed a strict pattern; the episode's folder is found by the layout, and
// symbolic links in it are neither followed nor read through.
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, lstatSync, readSync, readdirSync, realpathSync, statSync, type Dirent } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';
import { ReflexError, errorMessage } from '../core/index.js';
import { Dataset, type EpisodeEntry, type EpisodeFlag } from './dataset.js';
import { columnsDiffer, type AdoptedEpisode } from './episode-table.js';
import { readTable } from './evict.js';
import { openRegular, readRegular } from './files.js';
import { CODEBASE_VERSION, INFO_PATH, featuresOf, videoKey, type DatasetShape } from './format.js';
import type { EpisodeStats } from './stats.js';
import { countFrames } from './video.js';

/** episode.json is a few KiB; anything near this is not one. */
export const EPISODE_JSON_MAX_BYTES = 4 * 1024 * 1024;
/** An hour at 50 Hz of a 30-joint robot is a few MB; this bounds what one episode may make us hold. */
const DATA_MAX_BYTES = 1024 ** 3;
/** Episodes committed at once: an interrupted run keeps every batch before it. */
const BATCH = 32;

const idPattern = /^[A-Za-z0-9_.-]{1,64}$/;
const cameraPattern = /^[A-Za-z0-9_-]{1,64}$/;
const CAMERA_PREFIX = 'observation.images.';

const featureSchema = z.object({
  dtype: z.enum(['float32', 'int64', 'bool', 'video']),
  shape: z.array(z.number().int().min(0).max(100_000)).min(1).max(4),
  names: z.array(z.string().max(256)).max(4096).nullable(),
  info: z.record(z.string().max(64), z.unknown()).optional(),
});

const stat = z.array(z.unknown()).max(4096);
const imageChannel = z.tuple([z.tuple([z.number().min(0).max(1)])]);
const imageStatsSchema = z.object({
  min: z.tuple([imageChannel, imageChannel, imageChannel]),
  max: z.tuple([imageChannel, imageChannel, imageChannel]),
  mean: z.tuple([imageChannel, imageChannel, imageChannel]),
  std: z.tuple([imageChannel, imageChannel, imageChannel]),
  count: z.tuple([z.number().int().min(0)]),
});

/** uploader.ts's episode.json ('reflex.episode/1'). */
const episodeDocSchema = z.object({
  format: z.literal('reflex.episode/1'),
  deviceId: z.string().regex(idPattern),
  dataset: z.object({
    codebase_version: z.string().max(16),
    fps: z.number().positive().max(1000),
    robot_type: z.string().max(256),
    features: z.record(z.string().max(256), featureSchema).refine((f) => Object.keys(f).length <= 256, 'at most 256 features'),
  }),
  episode: z.object({
    id: z.string().regex(idPattern),
    task: z.string().max(4096),
    length: z.number().int().positive().max(100_000_000),
    // Strings, not the flags this version knows: a newer robot's flag is carried, not refused.
    flags: z.array(z.string().regex(/^[a-z_]{1,32}$/)).max(32),
    outcome: z.enum(['success', 'failure']).nullable(),
    policy: z.object({ name: z.string().max(256), version: z.string().max(256) }).nullable(),
    startedAt: z.string().datetime({ offset: true }),
    repeatedFrames: z.number().int().min(0),
    stats: z.record(z.string().max(256), z.record(z.string().max(16), stat)).refine((s) => Object.keys(s).length <= 256, 'at most 256 features'),
  }),
});
type EpisodeDoc = z.infer<typeof episodeDocSchema>;

export interface MergeOptions {
  /** A synced bucket prefix (`<device>/<id>/...`) or one device's folder (`<id>/...`). */
  from: string;
  /** The LeRobot dataset to create or add to. */
  out: string;
  /** Only these devices (their deviceId); all when empty. */
  devices?: readonly string[];
  /** Only episodes of this task. */
  task?: string;
  /** ffprobe, which counts each video's frames against its rows (default: the one on PATH). */
  ffprobe?: string;
}

export interface MergeReport {
  /** Episode folders found under `from`. */
  found: number;
  added: EpisodeEntry[];
  /** Already in the dataset (by id): a run again adds only what is new. */
  already: number;
  /** Of those, the ones whose outcome or flags changed since (a mark on the robot after the upload). */
  relabeled: EpisodeEntry[];
  /** Left out by --device or --task. */
  filtered: number;
  /** Refused, with why; the path is relative to `from`. */
  skipped: { path: string; reason: string }[];
  /** The dataset after the run (null when nothing was there and nothing could be added). */
  dataset: { episodes: number; frames: number; tasks: number } | null;
}

interface Found {
  rel: string;
  dir: string;
}

interface Candidate extends Found {
  doc: EpisodeDoc;
  shape: DatasetShape;
}

/** Merges the episodes under `o.from` into the dataset at `o.out`; `say` hears a line per episode added or skipped. */
export async function mergeEpisodes(o: MergeOptions, say: (line: string) => void): Promise<MergeReport> {
  const ffprobe = o.ffprobe ?? 'ffprobe';
  // Without it a video with a frame missing would go in, and fail LeRobot's loader at training.
  if (spawnSync(ffprobe, ['-version'], { stdio: 'ignore' }).status !== 0) throw new ReflexError('COMMAND_FAILED', `${ffprobe} cannot be run: install ffmpeg (each video's frames are counted against its rows)`);
  let root: string;
  try {
    root = realpathSync(o.from);
    if (!statSync(root).isDirectory()) throw new Error('not a directory');
  } catch (err) {
    throw new ReflexError('BAD_REQUEST', `--from ${o.from}: ${errorMessage(err)}`);
  }
  const report: MergeReport = { found: 0, added: [], already: 0, relabeled: [], filtered: 0, skipped: [], dataset: null };
  const skip = (rel: string, reason: string) => {
    report.skipped.push({ path: rel, reason });
    say(`skipped ${rel}: ${reason}`);
  };
  const existing = Dataset.shapeAt(o.out);
  if (existing === null && existsSync(join(o.out, INFO_PATH))) throw new ReflexError('BAD_REQUEST', `--out ${o.out} holds a dataset reflex did not write; choose another --out`);
  // The dataset itself may sit inside --from (./episodes/dataset): it is not an episode folder.
  const outReal = existsSync(o.out) ? realpathSync(o.out) : null;
  const found = findEpisodes(root, outReal, skip);
  report.found = found.length;
  const known = new Set<string>();
  let ds: Dataset | null = null;
  if (existing !== null) {
    ds = Dataset.open(o.out, existing);
    for (const e of ds.episodes) known.add(e.id);
  }

  // First every episode.json (small): the order and the dataset's shape are known before any data is read.
  const candidates: Candidate[] = [];
  const labels: Parameters<Dataset['relabel']>[0][number][] = [];
  /** Each episode's folder (relative to --from), by id: what the lines say, and how a twin is found. */
  const relOf = new Map<string, string>();
  for (const f of found) {
    const r = readDoc(f);
    if (typeof r === 'string') {
      skip(f.rel, r);
      continue;
    }
    const { doc } = r;
    if ((o.devices?.length ?? 0) > 0 && !o.devices!.includes(doc.deviceId)) {
      report.filtered++;
      continue;
    }
    if (o.task !== undefined && doc.episode.task !== o.task) {
      report.filtered++;
      continue;
    }
    if (known.has(doc.episode.id)) {
      report.already++;
      // The robot sends episode.json again after a mark: the label follows, the rows stay.
      labels.push({ id: doc.episode.id, outcome: doc.episode.outcome, flags: doc.episode.flags as EpisodeFlag[] });
      relOf.set(doc.episode.id, f.rel);
      continue;
    }
    const twin = relOf.get(doc.episode.id);
    if (twin !== undefined) {
      skip(f.rel, `the same episode id as ${twin}`);
      continue;
    }
    relOf.set(doc.episode.id, f.rel);
    candidates.push({ ...f, ...r });
  }
  if (ds !== null && labels.length > 0) {
    report.relabeled = ds.relabel(labels);
    for (const e of report.relabeled) say(`relabeled episode ${e.episodeIndex} from ${relOf.get(e.id)}: outcome ${e.outcome ?? 'none'}, flags ${e.flags.join(',') || 'none'}`);
  }
  candidates.sort((a, b) => Date.parse(a.doc.episode.startedAt) - Date.parse(b.doc.episode.startedAt) || (a.doc.episode.id < b.doc.episode.id ? -1 : 1));

  const shape = existing ?? commonShape(candidates);
  let batch: AdoptedEpisode[] = [];
  const flush = () => {
    if (batch.length === 0) return;
    ds ??= Dataset.open(o.out, shape!);
    let added: EpisodeEntry[];
    try {
      added = ds.adopt(batch);
    } catch (err) {
      throw new ReflexError('COMMAND_FAILED', `writing ${o.out} after adding ${report.added.length} episodes: ${errorMessage(err)} (the dataset holds what was added before; run again to add the rest)`);
    }
    for (const e of added) say(`added ${relOf.get(e.id)} as episode ${e.episodeIndex} (${e.length} frames)`);
    report.added.push(...added);
    batch = [];
  };
  for (const c of candidates) {
    const differs = shapeDifference(shape!, c.shape);
    if (differs !== null) {
      skip(c.rel, `another robot's shape (${differs}); one dataset holds one shape: merge it into another --out, or choose with --device`);
      continue;
    }
    const r = await checkFiles(c, ffprobe);
    if (typeof r === 'string') {
      skip(c.rel, r);
      continue;
    }
    batch.push(r);
    if (batch.length >= BATCH) flush();
  }
  flush();
  if (ds !== null) report.dataset = { episodes: ds.episodes.length, frames: ds.totalFrames, tasks: new Set(ds.episodes.map((e) => e.task)).size };
  return report;
}

function entries(dir: string): Dirent[] {
  return readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function isEntry(dir: string, name: string): boolean {
  try {
    lstatSync(join(dir, name));
    return true;
  } catch {
    return false;
  }
}

/**
 * Episode folders: `<root>/<device>/<id>/` with an episode.json, or `<root>/<id>/` when root is
 * one device's folder. Symbolic links are reported and not followed; a folder that holds an
 * episode's files but no episode.json (an upload not finished: it goes last) is reported.
 */
function findEpisodes(root: string, exclude: string | null, skip: (rel: string, reason: string) => void): Found[] {
  const out: Found[] = [];
  const rel = (p: string) => relative(root, p) || basename(root);
  const visit = (dir: string, depth: number) => {
    for (const d of entries(dir)) {
      const p = join(dir, d.name);
      if (d.isSymbolicLink()) {
        skip(rel(p), 'a symbolic link (not followed)');
        continue;
      }
      if (!d.isDirectory() || p === exclude) continue;
      if (isEntry(p, 'episode.json')) out.push({ rel: rel(p), dir: p });
      else if (depth === 0 && !isEntry(p, 'data.parquet')) visit(p, 1);
      else skip(rel(p), 'no episode.json (its upload is not finished?)');
    }
  };
  visit(root, 0);
  return out;
}

function readDoc(f: Found): { doc: EpisodeDoc; shape: DatasetShape } | string {
  let text: string;
  try {
    text = readRegular(join(f.dir, 'episode.json'), EPISODE_JSON_MAX_BYTES).toString('utf8');
  } catch (err) {
    return `episode.json: ${fileProblem(err, EPISODE_JSON_MAX_BYTES)}`;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return `episode.json is not JSON (${errorMessage(err)})`;
  }
  const r = episodeDocSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0]!;
    return `episode.json: ${i.path.join('.') || 'the document'}: ${i.message}`;
  }
  const doc = r.data;
  if (doc.episode.id !== basename(f.dir)) return `episode.json names episode ${doc.episode.id}, its folder is ${basename(f.dir)}`;
  if (doc.dataset.codebase_version !== CODEBASE_VERSION) return `recorded as LeRobot ${doc.dataset.codebase_version}, this dataset is ${CODEBASE_VERSION}`;
  const shape = shapeOf(doc, (raw as { dataset: { features: unknown } }).dataset.features);
  return typeof shape === 'string' ? shape : { doc, shape };
}

/** The recording shape episode.json describes; why not, when its features are not those reflex records. */
function shapeOf(doc: EpisodeDoc, rawFeatures: unknown): DatasetShape | string {
  const { features, fps, robot_type } = doc.dataset;
  const joints = features['observation.state']?.names;
  if (joints === undefined || joints === null) return 'episode.json: no observation.state feature naming the joints';
  const cameras: DatasetShape['cameras'][number][] = [];
  for (const [key, f] of Object.entries(features)) {
    if (f.dtype !== 'video') continue;
    const name = key.startsWith(CAMERA_PREFIX) ? key.slice(CAMERA_PREFIX.length) : '';
    if (!cameraPattern.test(name)) return `episode.json: video feature ${JSON.stringify(key.slice(0, 80))} is not observation.images.<camera> (letters, digits, _ -)`;
    cameras.push({ name, height: f.shape[0] ?? 0, width: f.shape[1] ?? 0 });
  }
  const shape: DatasetShape = { fps, robotType: robot_type, joints, cameras };
  // The features must be exactly those of a reflex recording of that shape: its data file is
  // then read and rewritten by the same rules as the dataset's own.
  if (!isDeepStrictEqual(JSON.parse(JSON.stringify(featuresOf(shape))), rawFeatures)) return 'episode.json: its features are not those of a reflex recording (a newer or foreign format?)';
  return shape;
}

/** The shape most episodes have (the earliest's, between equals): what a new dataset takes. */
function commonShape(candidates: readonly Candidate[]): DatasetShape | null {
  // shapeOf builds every shape with the same keys in the same order: equal shapes, equal JSON.
  const counts = new Map<string, { shape: DatasetShape; n: number }>();
  for (const c of candidates) {
    const key = JSON.stringify(c.shape);
    const seen = counts.get(key);
    if (seen) seen.n++;
    else counts.set(key, { shape: c.shape, n: 1 });
  }
  let best: { shape: DatasetShape; n: number } | null = null;
  for (const e of counts.values()) if (best === null || e.n > best.n) best = e;
  return best?.shape ?? null;
}

/** What differs between the dataset's shape `ds` and an episode's `ep`, in words; null when nothing. */
export function shapeDifference(ds: DatasetShape, ep: DatasetShape): string | null {
  const d: string[] = [];
  if (ep.fps !== ds.fps) d.push(`fps ${ep.fps}, the dataset's ${ds.fps}`);
  if (ep.robotType !== ds.robotType) d.push(`robot type ${ep.robotType}, the dataset's ${ds.robotType}`);
  if (ep.joints.join(',') !== ds.joints.join(',')) d.push(`joints ${ep.joints.join(',')}, the dataset's ${ds.joints.join(',')}`);
  const cams = (s: DatasetShape) => s.cameras.map((c) => `${c.name} ${c.width}x${c.height}`).join(',') || 'none';
  if (cams(ep) !== cams(ds)) d.push(`cameras ${cams(ep)}, the dataset's ${cams(ds)}`);
  return d.length > 0 ? d.join('; ') : null;
}

function fileProblem(err: unknown, max: number): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'missing';
  if (code === 'ELOOP') return 'a symbolic link (not followed)';
  if (code === 'ENOTREG') return 'not a regular file';
  if (code === 'ETOOBIG') return `larger than ${max} bytes`;
  return errorMessage(err);
}

/** The episode's data file and videos checked against its episode.json; the episode to adopt, or why not. */
async function checkFiles(c: Candidate, ffprobe: string): Promise<AdoptedEpisode | string> {
  const { doc, shape } = c;
  let bytes: Buffer;
  try {
    bytes = readRegular(join(c.dir, 'data.parquet'), DATA_MAX_BYTES);
  } catch (err) {
    return `data.parquet: ${fileProblem(err, DATA_MAX_BYTES)}`;
  }
  let table: ReturnType<typeof readTable>;
  try {
    table = readTable(bytes);
  } catch (err) {
    return `data.parquet is not a readable parquet file (${errorMessage(err).slice(0, 200)})`;
  }
  const features = featuresOf(shape);
  const differs = columnsDiffer(table, features);
  if (differs !== null) return `data.parquet: ${differs}`;
  if (table.numRows !== doc.episode.length) return `data.parquet has ${table.numRows} rows, episode.json says ${doc.episode.length}`;
  const frames = table.getChild('frame_index')!;
  const times = table.getChild('timestamp')!;
  for (let i = 0; i < table.numRows; i++) {
    if (Number(frames.get(i)) !== i) return `data.parquet: row ${i} has frame_index ${String(frames.get(i))}`;
    if (Math.abs(Number(times.get(i)) - i / shape.fps) > 1e-3) return `data.parquet: row ${i} has timestamp ${String(times.get(i))}, not frame_index / fps`;
  }
  const videos: string[] = [];
  const videoStats: EpisodeStats = {};
  for (const cam of shape.cameras) {
    const key = videoKey(cam.name);
    const path = join(c.dir, `${key}.mp4`);
    const problem = notMp4(path);
    if (problem !== null) return `${key}.mp4: ${problem}`;
    const frames = await countFrames(ffprobe, path);
    if (frames !== doc.episode.length) return `${key}.mp4 has ${frames} frames, the episode ${doc.episode.length} rows (LeRobot wants one frame per row)`;
    videos.push(path);
    const s = imageStatsSchema.safeParse(doc.episode.stats[key]);
    if (!s.success) return `episode.json: stats of ${key}: ${s.error.issues[0]!.path.join('.') || 'missing'}: ${s.error.issues[0]!.message}`;
    videoStats[key] = s.data;
  }
  const e = doc.episode;
  return {
    id: e.id,
    device: doc.deviceId,
    table,
    task: e.task,
    flags: e.flags as EpisodeFlag[],
    outcome: e.outcome,
    policy: e.policy,
    startedAt: e.startedAt,
    repeatedFrames: e.repeatedFrames,
    videoStats,
    videos,
  };
}

/** Why `path` is not an MP4 we can take (missing, a link, not a regular file, no ftyp box); null when it is one. */
function notMp4(path: string): string | null {
  let f: { fd: number; size: number };
  try {
    f = openRegular(path);
  } catch (err) {
    return fileProblem(err, 0);
  }
  try {
    const head = Buffer.alloc(8);
    const n = readSync(f.fd, head, 0, 8, 0);
    if (n < 8 || head.toString('latin1', 4, 8) !== 'ftyp') return 'not an MP4 file';
    return null;
  } finally {
    closeSync(f.fd);
  }
}
