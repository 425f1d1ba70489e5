// The flywheel recorder against the loop it must never disturb: the 50 Hz loop on the simulated
// servo bus with a scripted policy, a 640x480 camera at 30 fps (synthetic frames published in a
// raw FrameSlot, as the vision worker does), and the recorder off then on in the same run, in
// alternating windows (a shared machine's load drifts over a minute: one off phase then one on
// phase measured the drift as much as the recorder). Reports the loop's wake lateness both
// ways, pooled over the windows and round by round (goal: p99 and max within 1.1x), the recorder's
// CPU per camera (reflex's own threads plus the ffmpeg it spawns), bytes per recorded minute,
// the time from an episode's end to its files closed and committed, and frames dropped; then the
// loop's lateness again while an episode uploads to a real S3-compatible server at the cap.
import { execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { ControlLoop, type ControlConfig } from '../src/control/index.js';
import { FrameSlot, Histogram, keepThreadsOffCpu } from '../src/rt/index.js';
import { rawSlotLength, type RawFrameSource } from '../src/hardware/camera/index.js';
import { Recorder, UPLOADS_DISABLED, Uploader, dataPath, videoKey, videoPath } from '../src/record/index.js';
import { startS3 } from '../tools/testkit/s3.js';
import { ScriptedChunks } from '../tools/testkit/chunks.js';
import { armConfig } from '../tools/testkit/control.js';
import { argNumber, machine, progress, result, round, startSimDynamixel } from './_util.js';

/** Seconds with the recorder off, and as many with it on, over ROUNDS alternating pairs of windows. */
const SECONDS = argNumber('seconds', 60, 4);
const ROUNDS = Math.round(argNumber('rounds', 3, 2));
const FPS = argNumber('fps', 50);
const SERVOS = 6;
const RATE = 50;
const W = 640;
const H = 480;
const CAMERA_FPS = 30;
/** The upload phase's cap, KiB/s (an LTE uplink's share). */
const UPLOAD_KBPS = argNumber('upload-kbps', 2048);
/**
 * `--cpu N`: the control thread pinned to CPU N (realtime.cpu) and everything else of the
 * process kept off it, as on a robot with a CPU set aside; -1 (no flag): no CPU set aside.
 */
const CONTROL_CPU = process.argv.includes('--cpu') ? argNumber('cpu', 0) : -1;

/**
 * A camera at 30 fps: a second of frames made up front (a gradient, a moving disc, and sensor
 * noise of a few levels, so the encoder has the work a real camera gives it), played in a loop.
 */
function syntheticCamera(): { source: RawFrameSource; stop: () => void } {
  const length = rawSlotLength(W, H);
  const slot = FrameSlot.create(length);
  let seed = 1;
  const noise = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) >> 16) % 9;
  const frames = Array.from({ length: CAMERA_FPS }, (_, k) => {
    const px = new Uint8Array(W * H * 3);
    const cx = W / 2 + (W / 4) * Math.cos((2 * Math.PI * k) / CAMERA_FPS);
    const cy = H / 2 + (H / 4) * Math.sin((2 * Math.PI * k) / CAMERA_FPS);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const inDisc = (x - cx) ** 2 + (y - cy) ** 2 < 40 ** 2;
        const i = (y * W + x) * 3;
        px[i] = inDisc ? 30 : (x >> 2) + noise();
        px[i + 1] = inDisc ? 200 : (y >> 2) + noise();
        px[i + 2] = inDisc ? 40 : 90 + noise();
      }
    }
    return px;
  });
  let k = 0;
  const timer = setInterval(() => {
    const frame = frames[k++ % frames.length]!;
    slot.write(performance.now(), (into) => new Uint8Array(into.buffer, into.byteOffset, W * H * 3).set(frame));
  }, 1000 / CAMERA_FPS);
  return { source: { name: 'top', buffer: slot.buffer, width: W, height: H }, stop: () => clearInterval(timer) };
}

/** This process's CPU seconds: its own threads, and its reaped children (ffmpeg). */
function cpuSeconds(): { self: number; children: number } {
  const f = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
  const hz = 100;
  return { self: (Number(f[11]) + Number(f[12])) / hz, children: (Number(f[13]) + Number(f[14])) / hz };
}

// The simulated servos stand for hardware: with a CPU set aside for the control thread they are
// kept off it too, as a robot's servos (on their own bus, not on its CPUs) would be.
if (CONTROL_CPU >= 0) keepThreadsOffCpu(CONTROL_CPU);
const sim = await startSimDynamixel(SERVOS);
const config: ControlConfig = armConfig(
  sim.link,
  { softStartTicks: 50, firstChunkTicks: 100, realtime: { priority: 80, cpu: CONTROL_CPU < 0 ? null : CONTROL_CPU, lockMemory: false } },
  Array.from({ length: SERVOS }, (_, i) => ({ name: `j${i + 1}`, bus: 'arm', id: i + 1, min: -1.5, max: 1.5, maxVelocity: 3, offset: 0, direction: 1 as const })),
);
const log = pino({ level: 'warn' }, pino.destination(2));
const loop = new ControlLoop(config, { stallMs: 500 }, log);
await loop.start(new AbortController().signal);
const source = new ScriptedChunks(loop, SERVOS, (obsTick, i, out) => out.fill(0.5 * Math.sin((2 * Math.PI * (obsTick + i)) / (RATE * 4))), 50, 40);
await loop.startPolicy();
const camera = syntheticCamera();
const dir = join(mkdtempSync(join(tmpdir(), 'reflex-bench-record-')), 'dataset');
const recorder = new Recorder(
  {
    dir,
    fps: FPS,
    rateHz: RATE,
    robotType: 'bench',
    joints: config.joints.map((j) => j.name),
    cameras: [camera.source],
    rawWanted: null,
    task: 'bench',
    maxDiskMb: 100_000,
    minFreeMb: 100,
  },
  loop.ticks,
  () => ({ name: 'scripted', version: '1' }),
  log,
);
await recorder.start();
await new Promise((r) => setTimeout(r, 2000));

/** Windows of one kind pooled: the lateness histogram, CPU seconds, missed deadlines, and each window's p99. */
interface Pool {
  hist: Histogram;
  cpu: { self: number; children: number };
  missed: number;
  p99s: number[];
}
const pool = (): Pool => ({ hist: new Histogram(new Float64Array(Histogram.LENGTH)), cpu: { self: 0, children: 0 }, missed: 0, p99s: [] });

async function window(name: string, into: Pool, seconds: number): Promise<void> {
  const s0 = loop.status();
  const wake0 = loop.shared.lateness.snapshot();
  const c0 = cpuSeconds();
  progress(`${name}: ${round(seconds, 1)} s...`);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const c1 = cpuSeconds();
  into.hist.addSince(loop.shared.lateness, wake0);
  into.p99s.push(loop.shared.lateness.since(wake0).p99);
  into.cpu.self += c1.self - c0.self;
  into.cpu.children += c1.children - c0.children;
  into.missed += loop.status().missedDeadlines - s0.missedDeadlines;
}

const off = pool();
const on = pool();
const closeMs: number[] = [];
let ffmpegCpu = 0;
for (let r = 1; r <= ROUNDS; r++) {
  await window(`round ${r}/${ROUNDS}, recorder off`, off, SECONDS / ROUNDS);
  const c0 = cpuSeconds();
  recorder.startRecording('bench');
  await window(`round ${r}/${ROUNDS}, recorder on`, on, SECONDS / ROUNDS);
  const endAt = performance.now();
  recorder.stopRecording();
  await recorder.settled();
  closeMs.push(recorder.status().lastCloseMs ?? performance.now() - endAt);
  // ffmpeg's CPU is the process's once it is reaped, at the episode's end.
  ffmpegCpu += cpuSeconds().children - c0.children;
}
const st = recorder.status();

// Store and forward while the loop runs: an episode of SECONDS x UPLOAD_KBPS KiB goes to a real
// S3-compatible server (s3rver, in this process: its CPU counts against ours, an upper bound)
// in 5 MiB multipart parts, at the cap a robot on LTE would use, so the upload spans the phase.
const s3 = await startS3();
const uploadDir = mkdtempSync(join(tmpdir(), 'reflex-bench-upload-'));
const uploadBytes = Math.round(SECONDS * UPLOAD_KBPS * 1024);
const bigFile = join(uploadDir, 'observation.images.top.mp4');
writeFileSync(bigFile, randomBytes(uploadBytes));
const entry = { ...recorder.uploadSource(() => UPLOADS_DISABLED('bench')).episodes()[0]!, id: randomUUID(), uploaded: null };
let uploadedAt: number | null = null;
let uploader: Uploader | null = null;
uploader = new Uploader(
  { deviceId: 'bench', dir: join(uploadDir, 'snapshots'), origins: [`${s3.endpoint}/`], maxBytesPerS: UPLOAD_KBPS * 1024, pollMs: 100 },
  {
    episodes: () => (uploadedAt === null ? [entry] : []),
    files: () => [{ name: 'observation.images.top.mp4', path: bigFile }],
    describe: () => ({ codebase_version: 'v3.0', fps: FPS, robot_type: 'bench', features: {} }),
    markUploaded: () => void (uploadedAt = performance.now()),
  },
  {
    publishPending: (doc) => void s3.presigner().grant('bench', doc).then((g) => uploader?.onGrant(Buffer.from(JSON.stringify(g)))),
    event: () => undefined,
  },
  log,
);
const uploadStart = performance.now();
await uploader.start();
const uploading = pool();
await window('uploading', uploading, SECONDS);
while (uploadedAt === null && performance.now() - uploadStart < SECONDS * 4000) await new Promise((r) => setTimeout(r, 50));
const uploadS = ((uploadedAt ?? performance.now()) - uploadStart) / 1000;
await uploader.stop();
await s3.stop();
await recorder.stop();
camera.stop();
await source.stop();
await loop.safe();
await loop.stop();
sim.stop();

// The recorder's CPU: what the process spent above the recorder-off windows, plus ffmpeg.
const extraSelf = Math.max(0, on.cpu.self - off.cpu.self);
const cpuPct = ((extraSelf + ffmpegCpu) / SECONDS) * 100;
const rows = st.frames;
const episodes = Array.from({ length: st.episodes }, (_, i) => ({ video: join(dir, videoPath(videoKey('top'), i)), data: join(dir, dataPath(i)) }));
const recordedBytes = episodes.reduce((a, e) => a + statSync(e.video).size + statSync(e.data).size, 0);
const videoFrames = episodes.reduce((a, e) => a + Number(execFileSync('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-count_packets', '-show_entries', 'stream=nb_read_packets', '-of', 'csv=p=0', e.video], { encoding: 'utf8' }).trim()), 0);
progress(`${st.episodes} episodes: ${rows} rows, ${round(st.diskMb, 2)} MB`);
const offS = off.hist.summary();
const onS = on.hist.summary();
const upS = uploading.hist.summary();
result({
  seconds: SECONDS,
  rounds: ROUNDS,
  machine: machine(),
  dataset_fps: FPS,
  camera: { width: W, height: H, fps: CAMERA_FPS },
  wake_lateness_us: { off: { p99: offS.p99, max: offS.max }, on: { p99: onS.p99, max: onS.max }, uploading: { p99: upS.p99, max: upS.max } },
  ratio: {
    p99: round(onS.p99 / Math.max(offS.p99, 1), 2),
    max: round(onS.max / Math.max(offS.max, 1), 2),
    // Round by round (each on window against the off window just before it): how much is drift.
    p99_by_round: on.p99s.map((p, i) => round(p / Math.max(off.p99s[i]!, 1), 2)),
    uploading_p99: round(upS.p99 / Math.max(offS.p99, 1), 2),
  },
  missed_deadlines: { off: off.missed, on: on.missed, uploading: uploading.missed },
  upload: {
    cap_kib_per_s: UPLOAD_KBPS,
    mb: round(uploadBytes / 1024 ** 2, 1),
    done: uploadedAt !== null,
    mib_per_s: round(uploadBytes / 1024 ** 2 / uploadS, 2),
    // The process's CPU above the recorder-off windows: the uploader plus s3rver, which shares this process.
    cpu_pct_with_server: round((Math.max(0, uploading.cpu.self - off.cpu.self) / SECONDS) * 100, 1),
  },
  recorder_cpu_pct_per_camera: round(cpuPct, 1),
  ffmpeg_cpu_pct: round((ffmpegCpu / SECONDS) * 100, 1),
  bytes_per_minute: Math.round((recordedBytes / Math.max(rows / FPS, 1e-9)) * 60),
  episode_close_ms: round(Math.max(...closeMs), 0),
  // Rows lost to ticks the recorder never saw, and rows whose video frame is missing from the files.
  dropped_frames: Math.ceil(st.lostTicks / (RATE / FPS)) + Math.max(0, rows - videoFrames),
  video_frames: videoFrames,
  dropped_episodes: st.dropped.episodes,
  repeated_frames: st.repeatedFrames,
  rows,
  episodes: st.episodes,
});
process.exit(0);
