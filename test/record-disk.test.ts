// The recorder's disk policy and highlight ring, driven as test/record-recorder.test.ts drives
// it (a tick ring written as the control thread writes it, a raw camera slot, real ffmpeg, real
// files), read back with hyparquet: what a technician would notice is which episodes are left,
// and that the dataset still loads (indices 0..N-1, `index` = row position, videos in place).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Intervention } from '../src/rt/index.js';
import { MODE_NAMES } from '../src/control/index.js';
import { UPLOADS_DISABLED, type RecorderOptions } from '../src/record/index.js';
import { EVICT_DIR, stageEpisode } from '../src/record/evict.js';
import { tempDir } from '../tools/testkit/daemon.js';
import { readParquet, recorderRig, until } from './helpers/record-rig.js';

const HOLD = MODE_NAMES.indexOf('hold');
const POLICY = MODE_NAMES.indexOf('policy');
const FAULT = MODE_NAMES.indexOf('fault');
const W = 64;
const H = 48;

function rig(dir: string, over: Partial<RecorderOptions> = {}) {
  return recorderRig({ dir, width: W, height: H, ringTicks: 4096 }, over);
}

const pad = (i: number) => String(i).padStart(3, '0');

/** The dataset as LeRobot would load it: checks contiguity, returns each episode's marker (its q) and flags. */
async function readBack(ds: string): Promise<{ marker: number; flags: string[] }[]> {
  const info = JSON.parse(readFileSync(join(ds, 'meta/info.json'), 'utf8')) as { total_episodes: number; total_frames: number };
  const eps = await readParquet(join(ds, 'meta/episodes/chunk-000/file-000.parquet'));
  assert.equal(eps.length, info.total_episodes);
  let row = 0;
  const out: { marker: number; flags: string[] }[] = [];
  for (const [i, e] of eps.entries()) {
    assert.equal(Number(e.episode_index), i);
    assert.equal(Number(e.dataset_from_index), row);
    const rows = await readParquet(join(ds, `data/chunk-000/file-${pad(i)}.parquet`));
    assert.equal(rows.length, Number(e.length));
    for (const [k, r] of rows.entries()) {
      assert.equal(Number(r.episode_index), i, `episode ${i} row ${k}`);
      assert.equal(Number(r.index), row + k, `episode ${i} row ${k}`);
      assert.equal(Number(r.frame_index), k);
    }
    assert.ok(existsSync(join(ds, `videos/observation.images.top/chunk-000/file-${pad(i)}.mp4`)), `video of episode ${i}`);
    out.push({ marker: Math.round((rows[0]!['observation.state'] as number[])[0]! ), flags: e['reflex/flags'] as string[] });
    row += rows.length;
  }
  assert.equal(row, info.total_frames);
  assert.ok(!existsSync(join(ds, `data/chunk-000/file-${pad(eps.length)}.parquet`)), 'no file past the last episode');
  return out;
}

/** The state (q) of the last committed episode, from the recorder's own list of them. */
function lastSavedMarker(dir: string): number | null {
  try {
    const s = JSON.parse(readFileSync(join(dir, 'dataset/.reflex/episodes.json'), 'utf8')) as { episodes: { stats: Record<string, { max: number[] }> }[] };
    return s.episodes.at(-1)?.stats['observation.state']!.max[0] ?? null;
  } catch {
    return null;
  }
}

/** Records one episode of 20 rows whose state is `marker`; `fault` ends it with a fault. */
async function episode(r: ReturnType<typeof rig>, marker: number, fault = false): Promise<void> {
  r.frame(marker);
  r.ticks(POLICY, 100, marker);
  r.ticks(fault ? FAULT : HOLD, 1, marker);
  await until(`episode ${marker} saved`, () => lastSavedMarker(r.dir) === marker);
  await r.recorder.settled();
}

test('past record.maxDiskMb the oldest unflagged episodes are deleted, the flagged one kept, and the indices stay contiguous', async () => {
  const dir = tempDir('reflex-record-disk-');
  const a = rig(dir);
  await a.recorder.start();
  await until('recovery done', () => a.recorder.status().state === 'idle');
  a.recorder.startRecording();
  await episode(a, 1);
  await episode(a, 2, true); // a fault: flagged
  await episode(a, 3);
  await episode(a, 4);
  const bytes = (JSON.parse(readFileSync(join(dir, 'dataset/.reflex/episodes.json'), 'utf8')) as { episodes: { bytes: number }[] }).episodes.map((e) => e.bytes);
  await a.recorder.stop();
  assert.deepEqual((await readBack(join(dir, 'dataset'))).map((e) => e.marker), [1, 2, 3, 4]);

  // The bound now holds exactly what is there: the next episode would cross it.
  const total = bytes.reduce((x, y) => x + y, 0);
  const b = rig(dir, { maxDiskMb: total / 1024 ** 2 });
  await b.recorder.start();
  try {
    await until('recovery done', () => b.recorder.status().state === 'armed');
    await episode(b, 5);
    const s = b.recorder.status();
    assert.ok(s.evicted.episodes >= 1, JSON.stringify(s.evicted));
    assert.equal(s.evicted.flagged, 0);
    assert.match(s.evicted.last ?? '', /record\.maxDiskMb/);
    assert.equal(s.reason, null);
    const left = await readBack(join(dir, 'dataset'));
    const markers = left.map((e) => e.marker);
    assert.ok(markers.includes(2), `the faulted episode is kept: ${JSON.stringify(markers)}`);
    assert.ok(!markers.includes(1), `the oldest unflagged episode is gone: ${JSON.stringify(markers)}`);
    assert.equal(markers.at(-1), 5);
    assert.deepEqual(markers, [...markers].sort((x, y) => x - y), 'the order of the rest is kept');
    assert.ok(left.find((e) => e.marker === 2)!.flags.includes('fault'));
    assert.equal(s.episodes, left.length);
  } finally {
    await b.recorder.stop();
  }
  // Reopened, the dataset is as left (nothing half-moved to finish).
  const c = rig(dir);
  await c.recorder.start();
  await until('recovery done', () => c.recorder.status().state !== 'starting');
  await c.recorder.stop();
  assert.equal((await readBack(join(dir, 'dataset'))).length, b.recorder.status().episodes);
});

test('an episode already uploaded is deleted before any that is not, flagged or not', async () => {
  const dir = tempDir('reflex-record-disk-');
  const a = rig(dir);
  await a.recorder.start();
  await until('recovery done', () => a.recorder.status().state === 'idle');
  a.recorder.startRecording();
  await episode(a, 1);
  await episode(a, 2, true); // a fault: flagged, and (below) already at home in the bucket
  const saved = JSON.parse(readFileSync(join(dir, 'dataset/.reflex/episodes.json'), 'utf8')) as { episodes: { id: string; bytes: number }[] };
  a.recorder.uploadSource(() => UPLOADS_DISABLED('test')).markUploaded(saved.episodes[1]!.id, 'meta', new Date().toISOString());
  await a.recorder.stop();
  const total = saved.episodes.reduce((x, e) => x + e.bytes, 0);
  const b = rig(dir, { maxDiskMb: total / 1024 ** 2 });
  await b.recorder.start();
  try {
    await until('recovery done', () => b.recorder.status().state === 'armed');
    await episode(b, 3);
    const s = b.recorder.status();
    assert.ok(s.evicted.episodes >= 1, JSON.stringify(s.evicted));
    assert.equal(s.evicted.unsent, 0, 'nothing was deleted that had not gone up');
    const markers = (await readBack(join(dir, 'dataset'))).map((e) => e.marker);
    assert.ok(!markers.includes(2), `the uploaded (flagged) episode went first: ${JSON.stringify(markers)}`);
    assert.ok(markers.includes(1), `the unflagged one not yet uploaded is kept: ${JSON.stringify(markers)}`);
  } finally {
    await b.recorder.stop();
  }
});

test('with nothing unflagged left, flagged episodes go too, and recording goes on', async () => {
  const dir = tempDir('reflex-record-disk-');
  const a = rig(dir);
  await a.recorder.start();
  await until('recovery done', () => a.recorder.status().state === 'idle');
  a.recorder.startRecording();
  await episode(a, 1, true);
  await episode(a, 2, true);
  const bytes = (JSON.parse(readFileSync(join(dir, 'dataset/.reflex/episodes.json'), 'utf8')) as { episodes: { bytes: number }[] }).episodes.map((e) => e.bytes);
  await a.recorder.stop();
  // Room for one episode only (the average): both must go for the next to fit.
  const b = rig(dir, { maxDiskMb: (bytes[0]! + bytes[1]!) / 2 / 1024 ** 2 });
  await b.recorder.start();
  try {
    await until('recovery done', () => b.recorder.status().state === 'armed');
    b.frame(9);
    b.ticks(POLICY, 1, 9, Intervention.LIMIT);
    await until('both deleted', () => b.recorder.status().evicted.episodes === 2);
    assert.equal(b.recorder.status().evicted.flagged, 2);
    await episode(b, 9);
    const left = await readBack(join(dir, 'dataset'));
    assert.deepEqual(left.map((e) => e.marker), [9]);
    assert.ok(left[0]!.flags.includes('safety_clamp'));
    assert.equal(b.recorder.status().reason, null);
  } finally {
    await b.recorder.stop();
  }
});

test('not recording, a fault saves the last record.highlightS seconds as an episode flagged highlight and fault; a clamp right after waits for the ring to refill', async () => {
  const dir = tempDir('reflex-record-highlight-');
  const r = rig(dir, { highlightS: 2 }); // 20 rows at 10 fps
  await r.recorder.start();
  try {
    await until('recovery done', () => r.recorder.status().state === 'idle');
    r.frame(3);
    r.ticks(POLICY, 200, 3); // 4 s of policy, not recorded: only the last 2 s are kept
    await until('the ring full', () => r.recorder.status().highlightS === 2);
    r.frame(4);
    r.ticks(POLICY, 50, 4);
    r.ticks(FAULT, 1, 4);
    r.ticks(HOLD, 10, 4, Intervention.LIMIT); // a clamp in hold: no highlight of its own
    await until('the highlight saved', () => r.recorder.status().highlights === 1);
    await r.recorder.settled();
    const s = r.recorder.status();
    assert.equal(s.episodes, 1);
    assert.equal(s.state, 'idle', 'recording was not turned on by it');
    const ds = join(dir, 'dataset');
    const [ep] = await readBack(ds);
    assert.deepEqual([...ep!.flags].sort(), ['fault', 'frames_repeated', 'highlight']);
    const rows = await readParquet(join(ds, 'data/chunk-000/file-000.parquet'));
    assert.equal(rows.length, 20, 'highlightS x fps rows');
    // The older second of policy (marker 3) then the newer (marker 4), ending on the faulting tick.
    const markers = rows.map((x) => Math.round((x['observation.state'] as number[])[0]!));
    assert.deepEqual(markers, [...Array<number>(9).fill(3), ...Array<number>(11).fill(4)]); // the faulting tick is the last row
    assert.equal(Number(rows.at(-1)!['complementary_info.mode']), FAULT);
    assert.deepEqual(
      rows.map((x) => x['complementary_info.frame_repeated']),
      rows.map((_, i) => i !== 9),
      'a new frame where the camera sent one (the first one\'s row has left the ring), the previous one repeated elsewhere',
    );
    const eps = await readParquet(join(ds, 'meta/episodes/chunk-000/file-000.parquet'));
    assert.deepEqual(eps[0]!['stats/observation.images.top/max'], [[[4 / 255]], [[4 / 255]], [[4 / 255]]], 'image stats of the frames kept');
    // Straight after, a clamp under the policy: the ring is not full again, no second highlight.
    r.ticks(POLICY, 5, 5, Intervention.LIMIT);
    r.ticks(POLICY, 120, 5);
    r.ticks(POLICY, 1, 5, Intervention.STARVED); // the ring is full again: this one is saved
    await until('the second highlight', () => r.recorder.status().highlights === 2);
    await r.recorder.settled();
    const all = await readBack(ds);
    assert.equal(all.length, 2);
    assert.ok(all[1]!.flags.includes('starvation') && all[1]!.flags.includes('highlight'), JSON.stringify(all[1]));
  } finally {
    await r.recorder.stop();
  }
});

test('a crash in the middle of a deletion: before its commit the dataset is as it was, after it the next start finishes the renumbering', async () => {
  const dir = tempDir('reflex-record-evict-crash-');
  const ds = join(dir, 'dataset');
  const a = rig(dir);
  await a.recorder.start();
  await until('recovery done', () => a.recorder.status().state === 'idle');
  a.recorder.startRecording();
  await episode(a, 1);
  await episode(a, 2);
  await a.recorder.stop();

  // Killed while staging (before the commit): the staged files are discarded, nothing else moves.
  const stage = join(ds, EVICT_DIR);
  mkdirSync(stage, { recursive: true });
  writeFileSync(join(stage, 'data__chunk-000__file-000.parquet'), 'half written');
  const b = rig(dir);
  await b.recorder.start();
  await until('recovery done', () => b.recorder.status().state !== 'starting');
  await b.recorder.stop();
  assert.deepEqual((await readBack(ds)).map((e) => e.marker), [1, 2]);
  assert.ok(!existsSync(stage), 'the stage is cleared');

  // Killed after the commit (episode 0 deleted, episode 1 staged as 0), before the moves.
  const videos: [string, string][] = [['videos/observation.images.top/chunk-000/file-001.mp4', 'videos/observation.images.top/chunk-000/file-000.mp4']];
  const moves = stageEpisode(ds, 'data/chunk-000/file-001.parquet', 'data/chunk-000/file-000.parquet', 0, 0, videos);
  const stateFile = join(ds, '.reflex/episodes.json');
  const state = JSON.parse(readFileSync(stateFile, 'utf8')) as { episodes: { episodeIndex: number; from: number; to: number; length: number }[] };
  const kept = { ...state.episodes[1]!, episodeIndex: 0, from: 0, to: state.episodes[1]!.length };
  writeFileSync(stateFile, JSON.stringify({ ...state, episodes: [kept], moves }));
  const c = rig(dir);
  await c.recorder.start();
  await until('recovery done', () => c.recorder.status().state !== 'starting');
  await c.recorder.stop();
  assert.deepEqual((await readBack(ds)).map((e) => e.marker), [2]);
  assert.ok(!existsSync(stage), 'the stage is cleared');
});
