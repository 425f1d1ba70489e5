// The fleet side of the flywheel: episodes recorded by two robots (the real recorder and real
// ffmpeg), snapshotted for upload by the real uploader (data.parquet, the video, episode.json),
// laid out as the bucket holds them (<device>/<id>/), merged by `reflex fleet dataset`, and the
// result read back with independent readers (hyparquet, ffprobe). Then a run with one more
// episode and a bucket with hostile and broken folders in it: only the new one goes in, each
// bad one is skipped saying why, and the dataset still reads back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { UPLOADS_DISABLED, Uploader, type EpisodeEntry } from '../src/record/index.js';
import { runReflex, tempDir } from '../tools/testkit/daemon.js';
import { readParquet, recorderRig, until } from './helpers/record-rig.js';

const FPS = 10;
const HOLD = 0;
const POLICY = 1;
const num = (v: unknown) => Number(v);
type Row = Record<string, unknown>;

interface Recorded {
  device: string;
  entries: EpisodeEntry[];
  /** <id> -> the folder the uploader made for it (data.parquet, the video, episode.json). */
  uploads: Map<string, string>;
  /** <id> -> the robot's own data file. */
  data: Map<string, string>;
}

/** Records `episodes` ([task, marker] each) on a robot, then lets its uploader snapshot them. */
async function robot(dir: string, device: string, episodes: [string, number][]): Promise<Recorded> {
  const r = recorderRig({ dir, width: 64, height: 48 });
  await r.recorder.start();
  const source = r.recorder.uploadSource(() => UPLOADS_DISABLED('test'));
  try {
    await until('recovery done', () => r.recorder.status().state === 'idle');
    for (const [i, [task, marker]] of episodes.entries()) {
      r.recorder.startRecording(task);
      r.frame(40 * (i + 1));
      r.ticks(POLICY, 1, marker);
      await until('an episode opens', () => r.recorder.status().episode !== null);
      r.ticks(POLICY, 40 + 10 * i, marker);
      r.ticks(HOLD, 1, marker);
      await until(`episode ${i} saved`, () => r.recorder.status().episodes === i + 1 && r.recorder.status().saving === 0);
    }
    // The robot's uploader, with no grant ever coming: it snapshots each episode for upload,
    // episode.json included, exactly as the bucket gets them.
    const outbox = join(dir, 'dataset', '.reflex', 'uploads');
    const up = new Uploader({ deviceId: device, dir: outbox, origins: [], maxBytesPerS: 0, pollMs: 50 }, source, { publishPending: () => undefined, event: () => undefined }, pino({ level: 'silent' }));
    await up.start();
    const entries = [...source.episodes()];
    try {
      await until('every episode snapshotted', () => entries.every((e) => existsSync(join(outbox, e.id, 'progress.json'))));
    } finally {
      await up.stop();
    }
    return {
      device,
      entries,
      uploads: new Map(entries.map((e) => [e.id, join(outbox, e.id)])),
      data: new Map(entries.map((e) => [e.id, source.files(e)[0]!.path])),
    };
  } finally {
    await r.recorder.stop();
  }
}

/** Puts an episode where `aws s3 sync` puts it: <bucket>/<device>/<id>/ (the uploader's own progress file left out). */
function toBucket(bucket: string, rec: Recorded, id: string): string {
  const to = join(bucket, rec.device, id);
  mkdirSync(to, { recursive: true });
  for (const f of readdirSync(rec.uploads.get(id)!)) if (f !== 'progress.json') cpSync(join(rec.uploads.get(id)!, f), join(to, f));
  return to;
}

/** The parts of episode.json the attacks change. */
interface Doc {
  dataset: { fps: number; features: Record<string, { info?: Record<string, unknown> }> };
  episode: { id: string; length: number; outcome: string | null; flags: string[] };
}

/** A copy of an episode's folder under a new id (folder and episode.json), changed by `spoil` (true: it wrote episode.json itself). */
function clone(bucket: string, rec: Recorded, id: string, spoil: (dir: string, doc: Doc) => boolean | void): string {
  const fresh = randomUUID();
  const to = join(bucket, rec.device, fresh);
  cpSync(rec.uploads.get(id)!, to, { recursive: true });
  rmSync(join(to, 'progress.json'));
  const doc = JSON.parse(readFileSync(join(to, 'episode.json'), 'utf8')) as Doc;
  doc.episode.id = fresh;
  if (spoil(to, doc) !== true) writeFileSync(join(to, 'episode.json'), JSON.stringify(doc));
  return `${rec.device}/${fresh}`;
}

function probeFrames(file: string): { frames: number; rate: string } {
  const out = execFileSync('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-count_frames', '-show_entries', 'stream=nb_read_frames,r_frame_rate', '-of', 'json', file], { encoding: 'utf8' });
  const s = (JSON.parse(out) as { streams: Record<string, string>[] }).streams[0]!;
  return { frames: Number(s.nb_read_frames), rate: String(s.r_frame_rate) };
}

const pad = (n: number) => String(n).padStart(3, '0');

/** The dataset at `root` read back as LeRobot reads it; returns its episodes table and each episode's rows. */
async function readBack(root: string, expect: { device: string; id: string; task: string; rows: Row[] }[]): Promise<Row[]> {
  const info = JSON.parse(readFileSync(join(root, 'meta/info.json'), 'utf8')) as { codebase_version: string; fps: number; total_episodes: number; total_tasks: number; total_frames: number; features: Record<string, unknown> };
  assert.equal(info.codebase_version, 'v3.0');
  assert.equal(info.fps, FPS);
  assert.equal(info.total_episodes, expect.length);
  const episodes = await readParquet(join(root, 'meta/episodes/chunk-000/file-000.parquet'));
  assert.equal(episodes.length, expect.length);
  const tasks = await readParquet(join(root, 'meta/tasks.parquet'));
  const taskOf = new Map(tasks.map((t) => [num(t.task_index), t.__index_level_0__ as string]));
  assert.equal(info.total_tasks, new Set(expect.map((e) => e.task)).size);
  assert.equal(tasks.length, info.total_tasks);
  let total = 0;
  const allState: number[] = [];
  for (const [i, ep] of episodes.entries()) {
    const want = expect[i]!;
    assert.equal(num(ep.episode_index), i, 'episode indices are 0..N-1');
    assert.equal(ep['reflex/device'], want.device, `episode ${i} is ${want.device}'s`);
    assert.deepEqual(ep.tasks, [want.task]);
    const length = num(ep.length);
    assert.equal(length, want.rows.length, `episode ${i}: as long as on the robot`);
    assert.equal(num(ep.dataset_from_index), total);
    assert.equal(num(ep.dataset_to_index), total + length);
    const rows = await readParquet(join(root, `data/chunk-000/file-${pad(num(ep['data/file_index']))}.parquet`));
    assert.equal(rows.length, length);
    rows.forEach((r, k) => {
      assert.equal(num(r.index), total + k, 'index is the global row position');
      assert.equal(num(r.episode_index), i);
      assert.equal(num(r.frame_index), k);
      assert.equal(r.timestamp, Math.fround(k / FPS), 'timestamp = frame_index / fps');
      assert.equal(taskOf.get(num(r.task_index)), want.task, 'task_index names the episode\'s task in tasks.parquet');
      // Everything else is the robot's own row, untouched.
      assert.deepEqual(r['observation.state'], want.rows[k]!['observation.state']);
      assert.deepEqual(r.action, want.rows[k]!.action);
      assert.equal(r.intervention, want.rows[k]!.intervention);
      allState.push(...(r['observation.state'] as number[]));
    });
    const video = join(root, `videos/observation.images.top/chunk-000/file-${pad(num(ep['videos/observation.images.top/file_index']))}.mp4`);
    const p = probeFrames(video);
    assert.equal(p.frames, length, `episode ${i}: one video frame per row`);
    assert.equal(p.rate, `${FPS}/1`);
    assert.equal(num(ep['videos/observation.images.top/from_timestamp']), 0);
    assert.ok(Math.abs(num(ep['videos/observation.images.top/to_timestamp']) - length / FPS) < 1e-9);
    total += length;
  }
  assert.equal(info.total_frames, total);
  const stats = JSON.parse(readFileSync(join(root, 'meta/stats.json'), 'utf8')) as Record<string, { mean: unknown; count: number[]; max: number[] }>;
  for (const key of Object.keys(info.features)) assert.ok(stats[key]?.mean !== undefined && stats[key].count[0]! > 0, `stats for ${key}`);
  assert.equal(stats.index!.count[0], total);
  assert.equal(stats.index!.max[0], total - 1);
  assert.equal(stats.episode_index!.max[0], expect.length - 1);
  const mean = allState.reduce((a, b) => a + b, 0) / allState.length;
  const statsMean = (stats['observation.state']!.mean as number[]).reduce((a, b) => a + b, 0) / 3;
  assert.ok(Math.abs(statsMean - mean) < 1e-5, `observation.state mean ${statsMean}, the rows' ${mean}`);
  assert.equal((stats['observation.images.top']!.mean as number[][][]).length, 3);
  return episodes;
}

test('reflex fleet dataset: two robots\' uploads become one LeRobot dataset; a run again adds only the new episode; broken and hostile folders are skipped saying why', { timeout: 240_000 }, async () => {
  const dir = tempDir('reflex-merge-');
  const a = await robot(join(dir, 'robot-a'), 'robot-a', [['stack the cups', 0.1], ['stack the cups', 0.2], ['fold the towel', 0.3]]);
  const b = await robot(join(dir, 'robot-b'), 'robot-b', [['fold the towel', 0.4], ['stack the cups', 0.5]]);
  const bucket = join(dir, 'bucket');
  const out = join(dir, 'merged');
  for (const e of a.entries) toBucket(bucket, a, e.id);
  toBucket(bucket, b, b.entries[0]!.id);
  const expect = async (rec: Recorded, e: EpisodeEntry) => ({ device: rec.device, id: e.id, task: e.task, rows: await readParquet(rec.data.get(e.id)!) });
  const first = [...(await Promise.all(a.entries.map((e) => expect(a, e)))), await expect(b, b.entries[0]!)];

  const run1 = await runReflex(['fleet', 'dataset', '--from', bucket, '--out', out]);
  assert.equal(run1.code, 0, run1.stdout + run1.stderr);
  assert.match(run1.stdout, /added 4 episodes/);
  const eps = await readBack(out, first);
  assert.deepEqual(eps.map((e) => e['reflex/outcome']), ['', '', '', '']);

  // More comes in: robot B's second episode, and folders a careless sync or a hostile bucket left.
  toBucket(bucket, b, b.entries[1]!.id);
  const src = a.entries[0]!.id;
  const corrupt = clone(bucket, a, src, (d) => truncateSync(join(d, 'data.parquet'), 100));
  const noVideo = clone(bucket, a, src, (d) => rmSync(join(d, 'observation.images.top.mp4')));
  const otherFps = clone(bucket, a, src, (_d, doc) => {
    doc.dataset.fps = 30;
    doc.dataset.features['observation.images.top']!.info!['video.fps'] = 30;
  });
  const huge = clone(bucket, a, src, (d) => {
    writeFileSync(join(d, 'episode.json'), `{"format":"reflex.episode/1","pad":"${'x'.repeat(10 * 1024 * 1024)}"}`);
    return true;
  });
  const shortData = clone(bucket, a, src, (_d, doc) => void (doc.episode.length += 1));
  const linked = clone(bucket, a, src, (d) => {
    rmSync(join(d, 'data.parquet'));
    symlinkSync(a.data.get(src)!, join(d, 'data.parquet'));
  });
  const pathInJson = clone(bucket, a, src, (_d, doc) => {
    doc.dataset.features['observation.images.../../../etc'] = doc.dataset.features['observation.images.top']!;
  });
  // A video from another episode: a valid MP4, but not one frame per row.
  const other = a.entries.find((e) => e.length !== a.entries[0]!.length);
  assert.ok(other !== undefined, 'robot A recorded episodes of different lengths');
  const wrongFrames = clone(bucket, a, src, (d) => cpSync(join(a.uploads.get(other.id)!, 'observation.images.top.mp4'), join(d, 'observation.images.top.mp4')));
  // A named pipe where the data file should be: opening it must not wait for a writer.
  const fifo = clone(bucket, a, src, (d) => {
    rmSync(join(d, 'data.parquet'));
    execFileSync('mkfifo', [join(d, 'data.parquet')]);
  });
  // A device folder that is a link to somewhere else: never walked into.
  symlinkSync(join(dir, 'robot-a'), join(bucket, 'robot-z'));

  const run2 = await runReflex(['fleet', 'dataset', '--from', bucket, '--out', out]);
  assert.equal(run2.code, 65, `some were skipped: ${run2.stdout}${run2.stderr}`);
  const reasons: [string, RegExp][] = [
    [corrupt, /data\.parquet is not a readable parquet file/],
    [noVideo, /observation\.images\.top\.mp4: missing/],
    [otherFps, /another robot's shape \(fps 30, the dataset's 10\)/],
    [huge, /episode\.json: larger than \d+ bytes/],
    [shortData, /data\.parquet has \d+ rows, episode\.json says \d+/],
    [linked, /data\.parquet: a symbolic link \(not followed\)/],
    [pathInJson, /is not observation\.images\.<camera>/],
    ['robot-z', /a symbolic link \(not followed\)/],
    [wrongFrames, /observation\.images\.top\.mp4 has \d+ frames, the episode \d+ rows/],
    [fifo, /data\.parquet: not a regular file/],
  ];
  for (const [path, why] of reasons) {
    const line = run2.stdout.split('\n').find((l) => l.startsWith(`skipped ${path}:`));
    assert.ok(line !== undefined, `a line says why ${path} is skipped:\n${run2.stdout}`);
    assert.match(line, why);
  }
  assert.match(run2.stdout, /added 1 episode \(\d+ frames\); 4 already there; 10 skipped/);
  const all = [...first, await expect(b, b.entries[1]!)];
  await readBack(out, all);

  // What a run killed mid-write leaves (files past the last committed episode, a half-written
  // temporary) is cleared by the next run; the same again adds nothing; --device picks a robot.
  writeFileSync(join(out, 'data/chunk-000/file-005.parquet'), 'half an episode');
  writeFileSync(join(out, 'data/chunk-000/file-006.parquet.reflex-tmp'), 'half a file');
  writeFileSync(join(out, 'videos/observation.images.top/chunk-000/file-005.mp4'), 'half a video');
  // Robot B's technician marked its last episode a failure after it went up: the robot sent
  // episode.json again, and the label follows into the dataset.
  const marked = join(bucket, 'robot-b', b.entries[1]!.id, 'episode.json');
  const doc = JSON.parse(readFileSync(marked, 'utf8')) as Doc;
  doc.episode.outcome = 'failure';
  doc.episode.flags.push('intervention');
  writeFileSync(marked, JSON.stringify(doc));
  const run3 = await runReflex(['fleet', 'dataset', '--from', join(bucket, 'robot-b'), '--out', out, '--device', 'robot-b']);
  assert.equal(run3.code, 0, run3.stdout + run3.stderr);
  assert.match(run3.stdout, /added 0 episodes \(0 frames\); 2 already there \(1 relabeled\)/);
  assert.match(run3.stdout, /relabeled episode 4 from .*: outcome failure, flags (\S+,)?intervention/);
  const labeled = await readBack(out, all);
  assert.deepEqual(labeled.map((e) => e['reflex/outcome']), ['', '', '', '', 'failure']);
  assert.ok((labeled[4]!['reflex/flags'] as string[]).includes('intervention'), JSON.stringify(labeled[4]!['reflex/flags']));
  const again = await runReflex(['fleet', 'dataset', '--from', join(bucket, 'robot-b'), '--out', out]);
  assert.equal(again.code, 0, again.stdout);
  assert.doesNotMatch(again.stdout, /relabeled/, 'the same labels again change nothing');
  assert.deepEqual(readdirSync(join(out, 'data/chunk-000')), [0, 1, 2, 3, 4].map((i) => `file-00${i}.parquet`));
  assert.deepEqual(readdirSync(join(out, 'videos/observation.images.top/chunk-000')), [0, 1, 2, 3, 4].map((i) => `file-00${i}.mp4`));

  // A dataset of robot A's episodes of one task only, from robot A's folder.
  const towel = join(dir, 'towel');
  const run4 = await runReflex(['fleet', 'dataset', '--from', join(bucket, 'robot-a'), '--out', towel, '--task', 'fold the towel']);
  assert.equal(run4.code, 65, run4.stdout); // robot A's folder holds the bad clones too
  await readBack(towel, [await expect(a, a.entries[2]!)]);
});
