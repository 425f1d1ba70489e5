// Inference through the real inference worker, seen from the control side: an observation is
// published and a chunk requested, as the loop does, and the time until the chunk is visible
// in shared memory is measured, next to ONNX Runtime's own run time. Two policies: the default
// one (models/home) and an ACT-like model of realistic size (two 224x224 cameras, chunk 50x14).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { FrameSlot, PolicyLink, allocPolicyLink, monoMs } from '../src/rt/index.js';
import { PolicyRuntime, loadBundle, type PolicyInfo } from '../src/policy/index.js';
import { REPO } from '../tools/testkit/paths.js';
import { argNumber, machine, progress, result, summary } from './_util.js';
import { ensureActBundle } from './_fixtures.js';

const RUNS = argNumber('runs', 200, 20);

/**
 * Camera frames as the vision worker publishes them: one slot per camera the policy looks
 * through, rewritten at 30 fps with a fresh capture time (a mid-grey image).
 */
function cameraFrames(cameras: readonly string[], images: { name: string; shape: readonly number[] }[]) {
  const frames = cameras.map((name) => {
    const shape = images.find((i) => i.name === `observation.images.${name}`)!.shape;
    const [, height, width] = shape as [number, number, number];
    const slot = FrameSlot.create(3 * height * width);
    return { name, buffer: slot.buffer, height, width, maxAgeMs: 2000, slot };
  });
  const publish = () => {
    for (const f of frames) f.slot.write(monoMs(), (px) => px.fill(0.5));
  };
  publish();
  const timer = setInterval(publish, 33);
  return { frames: frames.map(({ slot: _s, ...f }) => f), stop: () => clearInterval(timer) };
}

async function measure(dir: string, runs: number) {
  const b = loadBundle(dir);
  const buffers = allocPolicyLink(b.dof);
  const cams = cameraFrames(b.spec.cameras, b.images);
  const runtime = new PolicyRuntime(
    {
      bundle: null,
      onnxruntimePath: null,
      providers: ['tensorrt', 'cuda', 'cpu'],
      stateDir: mkdtempSync(join(tmpdir(), 'reflex-bench-')),
      robot: { rateHz: b.spec.fps, joints: b.spec.joints, cameras: b.spec.cameras },
      frames: cams.frames,
    },
    buffers,
    pino({ level: 'warn' }, pino.destination(2)),
  );
  await runtime.start();
  const info: PolicyInfo = await runtime.activate(dir);
  const link = new PolicyLink(buffers);
  const { chunk } = link;
  const stats = runtime.metrics.counters;
  const rec = link.observationRecord();
  const seen = link.chunkRecord();
  const total: number[] = [];
  const worker: number[] = [];
  const ortMs: number[] = [];
  /** Inferences that gave no chunk: past the policy's budget (the worker drops them) or failed. */
  const dropped = () => stats.get('overBudget') + stats.get('errors');
  let retried = 0;
  for (let k = 0; k < runs + 10; k++) {
    rec.tick = k;
    for (let j = 0; j < b.dof; j++) rec.q[j] = 0.1 * Math.sin(k + j);
    const version = chunk.version;
    const drops = dropped();
    link.observation.write(rec.data);
    const t0 = performance.now();
    link.request.ring();
    // Spin as the control loop would see it: the chunk is there at the first tick after this.
    // A chunk for an older observation can still land first: a policy that has just become
    // active answers the newest observation at once and then the request rung for it too, so
    // the first observation may be answered twice. The loop takes it as stale; so does this.
    let answered = version;
    for (;;) {
      if (performance.now() - t0 > 5000) throw new Error(`no chunk in 5 s (${stats.get('inferences')} inferences, ${stats.get('overBudget')} over budget, ${stats.get('errors')} failed)`);
      if (dropped() !== drops) break;
      if (chunk.version === answered) continue;
      answered = chunk.version;
      chunk.read(seen.data);
      if (seen.obsTick >= k) break;
    }
    if (chunk.version === version || seen.obsTick < k) {
      // Dropped (a loaded machine can push one past the budget): the loop would ask again.
      if (++retried > runs) throw new Error(`${retried} of ${k + 1} inferences gave no chunk`);
      k--;
      await new Promise((r) => setImmediate(r));
      continue;
    }
    const t = performance.now() - t0;
    if (seen.obsTick !== k) throw new Error(`chunk for observation ${seen.obsTick}, expected ${k}`);
    if (k >= 10) {
      total.push(t);
      worker.push(stats.get('lastMs'));
      ortMs.push(stats.get('lastOrtMs'));
    }
    await new Promise((r) => setImmediate(r));
  }
  await runtime.stop();
  cams.stop();
  const overhead = total.map((t, i) => t - ortMs[i]!);
  return {
    provider: info.provider,
    latency_ms: summary(worker, 3),
    obs_to_chunk_ms: summary(total, 3),
    ort_run_ms: summary(ortMs, 3),
    js_overhead_ms: summary(overhead, 3),
    runs,
    dropped_and_retried: retried,
  };
}

const home = join(REPO, 'models', 'home');
const act = ensureActBundle();
progress(`default policy (models/home), ${RUNS} runs...`);
const d = await measure(home, RUNS);
progress(`act-bench, ${Math.max(20, Math.round(RUNS / 4))} runs...`);
const a = await measure(act, Math.max(20, Math.round(RUNS / 4)));
result({ machine: machine(), provider: a.provider, default: d, act: a });
