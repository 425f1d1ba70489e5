// The recorder on its own, fed like the daemon feeds it: a tick ring written here as the
// control thread writes it, a raw camera FrameSlot written as the vision worker writes it, real
// ffmpeg and real files. What a technician or a bad day would notice: the rate and the repeated
// frames, a full disk, a missing encoder, an encoder that cannot keep up, a dataset of another
// robot in the way, a mark that comes after the episode ended.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type RecorderOptions } from '../src/record/index.js';
import { tempDir } from '../tools/testkit/daemon.js';
import { readParquet, recorderRig, until } from './helpers/record-rig.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const HOLD = 0;
const POLICY = 1;

function rig(width: number, height: number, over: Partial<RecorderOptions> = {}) {
  return recorderRig({ dir: tempDir('reflex-record-'), width, height }, over);
}

test('rows at the dataset rate (50 Hz ticks at 10 fps), a camera with no new frame repeated and marked; a mark after the episode goes to the last saved one', async () => {
  const r = rig(64, 48);
  await r.recorder.start();
  try {
    await until('recovery done', () => r.recorder.status().state === 'idle');
    r.recorder.startRecording('stack the cups');
    r.frame(100);
    r.ticks(POLICY, 1);
    await until('an episode opens', () => r.recorder.status().episode !== null);
    r.ticks(POLICY, 49); // 50 ticks = 10 rows; the camera sent one frame
    await until('10 rows', () => r.recorder.status().episode?.frames === 10);
    // A technician steps in: the episode is flagged, and its rows from now on are interventions.
    await r.recorder.mark('intervention');
    r.ticks(POLICY, 50);
    r.ticks(HOLD, 1); // the policy stops: the episode ends
    await until('the episode is saved', () => r.recorder.status().episodes === 1);
    await r.recorder.mark('failure');
    const ds = join(r.dir, 'dataset');
    const rows = await readParquet(join(ds, 'data/chunk-000/file-000.parquet'));
    assert.equal(rows.length, 20);
    assert.deepEqual(
      rows.map((x) => x['complementary_info.frame_repeated'] as boolean),
      [false, ...Array<boolean>(19).fill(true)],
    );
    assert.equal(r.recorder.status().repeatedFrames, 19);
    assert.deepEqual(
      rows.map((x) => x.intervention),
      [...Array<boolean>(10).fill(false), ...Array<boolean>(10).fill(true)],
    );
    const eps = await readParquet(join(ds, 'meta/episodes/chunk-000/file-000.parquet'));
    assert.equal(eps[0]!['reflex/outcome'], 'failure');
    assert.ok((eps[0]!['reflex/flags'] as string[]).includes('frames_repeated'));
    assert.ok((eps[0]!['reflex/flags'] as string[]).includes('intervention'));
    assert.equal(eps[0]!['reflex/policy_version'], '7');
    assert.deepEqual(eps[0]!.tasks, ['stack the cups']);
  } finally {
    await r.recorder.stop();
  }
});

test('below the free-space floor no episode starts, and status and faults say why; the ticks are still taken', async () => {
  const r = rig(64, 48, { minFreeMb: 1e12 });
  await r.recorder.start();
  try {
    await until('recovery done', () => r.recorder.status().state === 'idle');
    r.recorder.startRecording();
    r.frame(10);
    r.ticks(POLICY, 50);
    await sleep(300);
    const s = r.recorder.status();
    assert.equal(s.episode, null);
    assert.match(s.reason ?? '', /below record\.minFreeMb/);
    assert.ok(r.recorder.faults().some((f) => /recording paused/.test(f)), JSON.stringify(r.recorder.faults()));
    assert.equal(s.lostTicks, 0);
  } finally {
    await r.recorder.stop();
  }
});

test('no ffmpeg: recording is unavailable and record.start is refused with the reason', async () => {
  const r = rig(64, 48, { tools: { ffmpeg: '/nonexistent/ffmpeg', ffprobe: '/nonexistent/ffprobe' } });
  await r.recorder.start();
  try {
    assert.equal(r.recorder.status().state, 'unavailable');
    assert.throws(() => r.recorder.startRecording(), (err: Error & { code?: string }) => err.code === 'REFUSED' && /no video encoder/.test(err.message));
  } finally {
    await r.recorder.stop();
  }
});

test('an encoder that cannot keep up drops the whole episode, counts it and says why', async () => {
  // An "ffmpeg" that reads nothing, as one starved of CPU: the pipe fills, the frame buffers run out.
  const dir = tempDir('reflex-slow-ffmpeg-');
  const slow = join(dir, 'ffmpeg');
  writeFileSync(slow, '#!/bin/sh\nif [ "$2" = "-encoders" ]; then echo " V..... libx264"; exit 0; fi\nexec sleep 60\n');
  chmodSync(slow, 0o755);
  const r = rig(640, 480, { tools: { ffmpeg: slow, ffprobe: 'ffprobe' }, poolFrames: 3 });
  await r.recorder.start();
  try {
    await until('recovery done', () => r.recorder.status().state === 'idle');
    r.recorder.startRecording();
    r.ticks(POLICY, 1);
    await until('an episode opens', () => r.recorder.status().episode !== null);
    for (let i = 0; i < 20 && r.recorder.status().dropped.episodes === 0; i++) {
      r.frame(i); // a new frame for every row
      r.ticks(POLICY, 5);
      await sleep(30);
    }
    const s = r.recorder.status();
    assert.equal(s.dropped.episodes, 1);
    assert.match(s.dropped.last ?? '', /not keeping up/);
    // No new episode at once (no thrashing), then one after the back-off, with the frame
    // buffers of the dropped one back in the pool: it is dropped for a full queue again.
    r.ticks(POLICY, 5);
    await sleep(200);
    assert.equal(r.recorder.status().episode, null);
    await until('the next episode after the back-off', () => {
      r.ticks(POLICY, 1);
      return r.recorder.status().episode !== null;
    });
    for (let i = 0; i < 20 && r.recorder.status().dropped.episodes === 1; i++) {
      r.frame(i);
      r.ticks(POLICY, 5);
      await sleep(30);
    }
    assert.equal(r.recorder.status().dropped.episodes, 2);
    assert.match(r.recorder.status().dropped.last ?? '', /\([1-9]\d* frames queued\)/);
    r.ticks(HOLD, 1);
    r.recorder.stopRecording();
    await r.recorder.settled();
    assert.equal(r.recorder.status().episodes, 0, 'nothing half-recorded was saved');
  } finally {
    await r.recorder.stop();
  }
});

test('a dataset recorded with other joints is refused, saying so, rather than mixed', async () => {
  const a = rig(64, 48);
  await a.recorder.start();
  await a.recorder.stop();
  const other = join(a.dir, 'dataset');
  const b = rig(64, 48, { dir: other, joints: ['a', 'b'] });
  mkdirSync(other, { recursive: true });
  await b.recorder.start();
  try {
    const s = b.recorder.status();
    assert.equal(s.state, 'unavailable');
    assert.match(s.reason ?? '', /other features or rate/);
  } finally {
    await b.recorder.stop();
  }
});

test('episodes are recorded under the task the policy is given; a new task ends the episode; a task named at record.start wins', async () => {
  const r = rig(64, 48);
  await r.recorder.start();
  try {
    await until('recovery done', () => r.recorder.status().state === 'idle');
    r.recorder.followPolicyTask('pick up the red cube');
    r.recorder.startRecording();
    r.frame(100);
    r.ticks(POLICY, 20);
    await until('an episode opens', () => r.recorder.status().episode !== null);
    assert.equal(r.recorder.status().episode?.task, 'pick up the red cube');
    // The technician gives the policy another instruction while it runs.
    r.recorder.followPolicyTask('put it in the bowl');
    r.ticks(POLICY, 20);
    await until('the first episode is saved and the next opens', () => r.recorder.status().episodes === 1 && r.recorder.status().episode !== null);
    assert.equal(r.recorder.status().episode?.task, 'put it in the bowl');
    r.recorder.startRecording('calibration run');
    r.ticks(POLICY, 20);
    r.recorder.followPolicyTask('ignored while record.start named a task');
    r.ticks(POLICY, 20);
    r.ticks(HOLD, 1);
    await until('three episodes saved', () => r.recorder.status().episodes === 3);
    const eps = await readParquet(join(r.dir, 'dataset', 'meta/episodes/chunk-000/file-000.parquet'));
    assert.deepEqual(eps.map((e) => e.tasks), [['pick up the red cube'], ['put it in the bowl'], ['calibration run']]);
  } finally {
    await r.recorder.stop();
  }
});
