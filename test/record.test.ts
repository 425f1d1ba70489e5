// The flywheel recorder end to end: the simulated robot and its camera, the real daemon, real
// ffmpeg; the dataset read back with independent readers (hyparquet for the parquet files,
// ffprobe for the videos), then a kill -9 in the middle of an episode and a restart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parquetReadObjects } from 'hyparquet';
import { request } from '../src/api/index.js';
import type { RecordStatus } from '../src/record/index.js';
import { startE2E } from '../tools/testkit/e2e.js';
import { runReflex, spawnReflex } from '../tools/testkit/daemon.js';

const FPS = 10;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, check: () => Promise<T | false>, ms: number, explain?: () => Promise<string>): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check().catch(() => false as const);
    if (v !== false) return v;
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}${explain ? `; ${await explain().catch((err: Error) => err.message)}` : ''}`);
    await sleep(100);
  }
}

type Row = Record<string, unknown>;

async function readParquet(file: string): Promise<Row[]> {
  const bytes = readFileSync(file);
  const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  return (await parquetReadObjects({ file: ab })) as Row[];
}

const num = (v: unknown) => Number(v);

function probe(file: string): { frames: number; rate: string; width: number; height: number; codec: string } {
  const out = execFileSync('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-count_frames', '-show_entries', 'stream=nb_read_frames,r_frame_rate,width,height,codec_name', '-of', 'json', file], { encoding: 'utf8' });
  const s = (JSON.parse(out) as { streams: Record<string, string | number>[] }).streams[0]!;
  return { frames: Number(s.nb_read_frames), rate: String(s.r_frame_rate), width: Number(s.width), height: Number(s.height), codec: String(s.codec_name) };
}

/** Frame timestamps of a video (s), as a decoder sees them. */
function frameTimes(file: string): number[] {
  const out = execFileSync('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'frame=pts_time', '-of', 'json', file], { encoding: 'utf8' });
  return (JSON.parse(out) as { frames: { pts_time: string }[] }).frames.map((f) => Number(f.pts_time));
}

/** Everything a LeRobot loader relies on, checked on the dataset at `root`; returns the episodes table. */
async function checkDataset(root: string, expectEpisodes: number): Promise<Row[]> {
  const info = JSON.parse(readFileSync(join(root, 'meta/info.json'), 'utf8')) as Record<string, unknown> & { features: Record<string, { dtype: string; shape: number[] }> };
  assert.equal(info.codebase_version, 'v3.0');
  assert.equal(info.fps, FPS);
  assert.equal(info.total_episodes, expectEpisodes);
  for (const k of ['chunks_size', 'data_files_size_in_mb', 'video_files_size_in_mb', 'data_path', 'video_path', 'robot_type', 'splits', 'total_tasks', 'total_frames']) assert.ok(k in info, `info.json has ${k}`);
  assert.equal(info.features['observation.images.top']?.dtype, 'video');
  assert.deepEqual(info.features['observation.state']?.shape, [3]);
  const episodes = await readParquet(join(root, 'meta/episodes/chunk-000/file-000.parquet'));
  assert.equal(episodes.length, expectEpisodes);
  let total = 0;
  for (const [i, ep] of episodes.entries()) {
    assert.equal(num(ep.episode_index), i, 'episode indices are 0..N-1');
    assert.equal(num(ep.dataset_from_index), total, `episode ${i} starts where the previous ended`);
    const length = num(ep.length);
    assert.ok(length > 0);
    assert.equal(num(ep.dataset_to_index), total + length);
    const rows = await readParquet(join(root, `data/chunk-000/file-${String(num(ep['data/file_index'])).padStart(3, '0')}.parquet`));
    assert.equal(rows.length, length, `episode ${i}: rows`);
    rows.forEach((r, k) => {
      assert.equal(num(r.index), total + k, 'index is the row position');
      assert.equal(num(r.frame_index), k);
      assert.equal(num(r.episode_index), i);
      assert.equal(r.timestamp, Math.fround(k / FPS), 'timestamp = frame_index / fps');
      assert.equal((r['observation.state'] as number[]).length, 3);
      assert.equal((r.action as number[]).length, 3);
      assert.equal(typeof r.intervention, 'boolean');
    });
    const video = join(root, `videos/observation.images.top/chunk-000/file-${String(num(ep['videos/observation.images.top/file_index'])).padStart(3, '0')}.mp4`);
    const p = probe(video);
    assert.equal(p.frames, length, `episode ${i}: one video frame per row`);
    assert.equal(p.rate, `${FPS}/1`);
    assert.equal(p.codec, 'h264');
    assert.deepEqual([p.width, p.height], [640, 480]);
    const times = frameTimes(video);
    times.forEach((t, k) => assert.ok(Math.abs(t - k / FPS) < 1e-4, `episode ${i} frame ${k} at ${t} s, want ${k / FPS}`));
    assert.equal(num(ep['videos/observation.images.top/from_timestamp']), 0);
    assert.ok(Math.abs(num(ep['videos/observation.images.top/to_timestamp']) - length / FPS) < 1e-9);
    total += length;
  }
  assert.equal(info.total_frames, total);
  const stats = JSON.parse(readFileSync(join(root, 'meta/stats.json'), 'utf8')) as Record<string, Record<string, unknown>>;
  for (const [key, f] of Object.entries(info.features)) {
    const s = stats[key];
    assert.ok(s !== undefined, `stats for ${key}`);
    for (const k of ['min', 'max', 'mean', 'std', 'count']) assert.ok(k in s, `stats ${key}.${k}`);
    if (f.dtype === 'video') {
      const mean = s.mean as number[][][];
      assert.equal(mean.length, 3);
      assert.ok(mean.every((c) => c[0]![0]! >= 0 && c[0]![0]! <= 1), 'image stats per channel on [0, 1]');
    } else assert.equal((s.mean as number[]).length, f.shape[0]);
  }
  assert.equal((stats.index!.count as number[])[0], total);
  const tasks = await readParquet(join(root, 'meta/tasks.parquet'));
  assert.ok(tasks.some((t) => t.__index_level_0__ === 'reach the red target'), JSON.stringify(tasks, (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v)));
  return episodes;
}

test('recorder: episodes from the simulated robot read back as LeRobotDataset v3.0; flags where they belong; kill -9 mid-episode recovers', { timeout: 600_000 }, async () => {
  // Generous bus and starvation bounds: on a loaded shared machine the simulated rig misses
  // reads and frames, and a loop that faults by itself every few seconds would end episodes
  // before the test's own e-stop, fault and marks do.
  const e = await startE2E({ record: { fps: FPS }, control: { starvationLimitMs: 10_000, bus: { errorBudgetMs: 2000 } } });
  const root = join(e.dir, 'state', 'recordings', 'dataset');
  // The daemon now running: the rig's servos may miss the start on a loaded machine (the daemon
  // then exits, saying so, as it should); it is started again, as systemd would.
  let daemon = e.daemon;
  let restarted: ReturnType<typeof spawnReflex> | null = null;
  const config = join(e.dir, 'reflex.yaml');
  for (let tries = 0; ; tries++) {
    const up = await Promise.race([until('the control socket', () => Promise.resolve(existsSync(e.socket)), 60_000).then(() => true, () => false), daemon.exited.then(() => false)]);
    if (up || tries === 2) break;
    restarted = daemon = spawnReflex(['run', '--config', config]);
  }
  const rec = async () => await request(e.socket, 'record.status');
  const mode = async () => (await request(e.socket, 'status')).loop.mode;
  const explain = async () => `recorder ${await rec().then((s) => JSON.stringify(s), (err: Error) => err.message)}; stderr ${daemon.stderr.slice(-10).join('\n')}; log ${JSON.stringify(daemon.logs.filter((l) => l.mod !== 'socket').slice(-25).map((l) => `${String(l.time).slice(-5)} ${String(l.mod)} ${String(l.msg)} ${JSON.stringify({ ...l, time: undefined, msg: undefined, mod: undefined, level: undefined, pid: undefined, hostname: undefined })}`).join('\n'))}`;
  const saved = (n: number) => until(`${n} episodes saved`, async () => (await rec()).episodes >= n && (await rec()), 60_000, explain);
  // The simulated rig on a loaded machine can fault by itself (a CAN read missing its budget):
  // the loop is brought back to running the policy before each step, and a step whose episode
  // ended before its action is done again.
  const ensurePolicy = () =>
    until(
      'the policy runs',
      async () => {
        const m = await mode();
        if (m === 'policy') return true;
        if (m === 'fault' || m === 'estop') await request(e.socket, 'reset').catch(() => undefined);
        else await request(e.socket, 'policy.start').catch(() => undefined);
        return false;
      },
      90_000,
      explain,
    );
  /** An open episode of at least `frames` frames, the loop brought back to the policy whenever it fell out of it; its index. */
  const openEpisode = async (frames: number): Promise<number> => {
    for (;;) {
      await ensurePolicy();
      const got = await until(
        `an episode with ${frames} frames`,
        async () => {
          const s = await rec();
          if ((s.episode?.frames ?? 0) >= frames) return s.episodes + s.saving;
          if (s.episode === null && (await mode()) !== 'policy') return -1;
          return false;
        },
        60_000,
        explain,
      );
      if (got >= 0) return got;
    }
  };
  /** Runs `act` on an open episode of at least 15 frames and waits until it is saved; returns its index. */
  const step = async (act: () => Promise<void>): Promise<number> => {
    const index = await openEpisode(15);
    await act();
    await saved(index + 1);
    return index;
  };
  try {
    await ensurePolicy();
    const s0 = await request(e.socket, 'record.start', { task: 'reach the red target' });
    assert.equal(s0.task, 'reach the red target');

    // A technician marks an episode a success, which ends it; the next opens by itself.
    const success = await step(async () => void (await request(e.socket, 'record.mark', { label: 'success' })));
    // An episode ended by an e-stop.
    const estop = await step(async () => void (await request(e.socket, 'estop')));
    // An episode ended by an injected servo fault (overload on the shoulder).
    const fault = await step(async () => {
      await request(e.rigSocket, 'servo.fault', { id: 2, bits: 0x20 });
      await until('the loop faults', async () => (await mode()) === 'fault', 10_000);
      await request(e.rigSocket, 'servo.clear', { id: 2 });
    });
    await request(e.socket, 'record.stop');
    const stopped = await until('every episode saved', async () => { const s = await rec(); return s.saving === 0 && s; }, 60_000, explain);
    assert.equal(stopped.dropped.episodes, 0, `dropped: ${stopped.dropped.last}`);
    const count = stopped.episodes;

    const episodes = await checkDataset(root, count);
    const flags = episodes.map((ep) => ep['reflex/flags'] as string[]);
    assert.equal(episodes[success]!['reflex/outcome'], 'success');
    assert.ok(flags[estop]!.includes('estop'), `episode ${estop} flags ${JSON.stringify(flags[estop])}`);
    assert.ok(flags[fault]!.includes('fault'), `episode ${fault} flags ${JSON.stringify(flags[fault])}`);
    assert.ok(!flags[success]!.includes('estop') && !flags[success]!.includes('fault'), `episode ${success} flags ${JSON.stringify(flags[success])}`);
    assert.equal(episodes[success]!['reflex/policy_name'], 'reach');
    // The technician's view of the same.
    const cli = await runReflex(['record', 'status', '--socket', e.socket]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.ok(cli.stdout.includes(`${root}: ${count} episodes`), cli.stdout);

    // Kill -9 in the middle of an episode, then restart on the same config.
    await request(e.socket, 'record.start', { task: 'reach the red target' });
    await openEpisode(35);
    daemon.proc.kill('SIGKILL');
    await daemon.exited;
    assert.ok(existsSync(join(root, '.reflex', 'staging')), 'the interrupted episode is staged');
    restarted = daemon = spawnReflex(['run', '--config', config]);
    const after = await until(
      'the interrupted episode is recovered',
      async () => {
        const s: RecordStatus = await request(e.socket, 'record.status');
        return s.state !== 'starting' && s.recovered + s.discarded > 0 && s;
      },
      120_000,
    );
    assert.equal(after.recovered, 1, JSON.stringify(after));
    // Recording was on when the daemon died: it goes on (the task kept); stopped here to read back.
    assert.ok(after.state === 'armed' || after.state === 'recording', after.state);
    assert.equal(after.task, 'reach the red target');
    await request(e.socket, 'record.stop');
    await until('every episode saved', async () => { const s = await rec(); return s.saving === 0 && s.episode === null && s; }, 60_000, explain);
    const again = await checkDataset(root, (await rec()).episodes);
    assert.ok(again.slice(count).some((ep) => (ep['reflex/flags'] as string[]).includes('recovered')));
    // The finished episodes are untouched by the crash and the recovery.
    assert.deepEqual(
      again.slice(0, count).map((ep) => [num(ep.length), ep['reflex/flags'], ep['reflex/outcome']]),
      episodes.map((ep) => [num(ep.length), ep['reflex/flags'], ep['reflex/outcome']]),
    );
  } finally {
    if (restarted !== null) {
      restarted.proc.kill('SIGTERM');
      await restarted.exited;
    }
    await e.stop();
  }
});
