// The inference worker: holds the ONNX Runtime session(s) and answers the control loop's
// requests for chunks through shared memory. It never touches hardware, and the loop never
// waits for it: a late or failed inference only means the loop holds.
import { parentPort, workerData } from 'node:worker_threads';
import { FrameSlot, LatestSlot, monoMs } from '../rt/index.js';
import { CHUNK_HEADER, MAX_HORIZON, chunkLength, observationLength, type LoopBuffers } from '../control/index.js';
import { errorMessage } from '../core/index.js';
import { loadBundle, mismatches, type RobotShape } from './bundle.js';
import { ioMismatches, loadOrt, openSession, type SessionOptions } from './session.js';
import { PolicyRunner } from './runner.js';
import { HIST, S } from './stats.js';
import { bucketOf } from '../control/shared.js';

export interface InferenceWorkerData {
  loop: LoopBuffers;
  stats: SharedArrayBuffer;
  onnxruntimePath: string | null;
  session: SessionOptions;
  robot: RobotShape;
  warmUpRuns: number;
  /** Pre-processed camera frames, by camera name, from the vision worker. */
  frames: { name: string; buffer: SharedArrayBuffer; height: number; width: number; maxAgeMs: number }[];
}

export type InferenceRequest =
  | { type: 'load'; dir: string; id: number }
  | { type: 'rollback'; id: number }
  | { type: 'stop' }
  /** Fault injection: answer no request for `ms`, as a hung or overloaded accelerator would. */
  | { type: 'stall'; ms: number };

export interface PolicyInfo {
  name: string;
  version: string;
  dir: string;
  provider: string;
  fallbacks: { provider: string; error: string }[];
  warmUpMs: number;
  generation: number;
}

export type InferenceMessage =
  | { type: 'loaded'; id: number; active: PolicyInfo; previous: PolicyInfo | null }
  | { type: 'loadFailed'; id: number; message: string }
  | { type: 'inferenceError'; message: string };

const data = workerData as InferenceWorkerData;
const post = (m: InferenceMessage) => parentPort!.postMessage(m);
const ort = loadOrt(data.onnxruntimePath);
const joints = data.loop.joints;
const observation = new LatestSlot(data.loop.observation, observationLength(joints));
const chunk = new LatestSlot(data.loop.chunk, chunkLength(joints));
const request = new Int32Array(data.loop.request);
const stats = new Float64Array(data.stats);
const frames = new Map(data.frames.map((f) => [f.name, { ...f, slot: new FrameSlot(f.buffer, 3 * f.height * f.width) }]));

interface Active {
  runner: PolicyRunner;
  info: PolicyInfo;
}
let active: Active | null = null;
let previous: Active | null = null;
let generation = 0;
let running = true;
let lastErrorPost = 0;
let stalledUntil = 0;

async function load(dir: string): Promise<Active> {
  const bundle = loadBundle(dir);
  const misfit = mismatches(bundle, data.robot);
  if (misfit.length > 0) throw new Error(`policy ${bundle.spec.name} does not fit this robot: ${misfit.join('; ')}`);
  if (bundle.horizon > MAX_HORIZON) throw new Error(`policy ${bundle.spec.name}: horizon ${bundle.horizon} exceeds ${MAX_HORIZON}`);
  const opened = await openSession(ort, bundle.modelPath, { ...data.session, intraOpThreads: bundle.spec.runtime.intraOpThreads });
  const io = ioMismatches(opened.session, bundle);
  for (const cam of bundle.spec.cameras) {
    const f = frames.get(cam);
    const shape = bundle.images.find((i) => i.name === `observation.images.${cam}`)!.shape;
    if (!f) io.push(`camera ${cam} has no frames (is it in the config's cameras?)`);
    else if (f.height !== shape[1] || f.width !== shape[2]) io.push(`camera ${cam} is pre-processed to ${f.height}x${f.width}, the policy wants ${shape[1]}x${shape[2]} (restart to re-size)`);
  }
  if (io.length > 0) {
    await opened.session.release();
    throw new Error(`policy ${bundle.spec.name}: ${io.join('; ')}`);
  }
  const runner = new PolicyRunner(ort, bundle, opened);
  const warmUpMs = await runner.warmUp(data.warmUpRuns);
  generation++;
  return {
    runner,
    info: { name: bundle.spec.name, version: bundle.spec.version, dir, provider: opened.provider, fallbacks: opened.fallbacks, warmUpMs, generation },
  };
}

/** Loads and warms up a bundle while the current policy keeps serving, then switches. */
async function handle(m: InferenceRequest): Promise<void> {
  if (m.type === 'stop') {
    running = false;
    Atomics.notify(request, 0);
    return;
  }
  if (m.type === 'stall') {
    stalledUntil = monoMs() + m.ms;
    return;
  }
  try {
    if (m.type === 'rollback') {
      if (!previous) throw new Error('there is no previous policy to go back to');
      [active, previous] = [previous, active];
      active.info.generation = ++generation;
    } else {
      const next = await load(m.dir);
      if (previous) await previous.runner.release();
      previous = active;
      active = next;
    }
    stats[S.GENERATION] = generation;
    post({ type: 'loaded', id: m.id, active: active.info, previous: previous?.info ?? null });
  } catch (err) {
    post({ type: 'loadFailed', id: m.id, message: errorMessage(err) });
  }
}

parentPort!.on('message', (m: InferenceRequest) => void handle(m));

/** Copies each camera's newest frame into the runner's input; refuses missing or stale ones. */
function takeFrames(runner: PolicyRunner, now: number): void {
  for (const [cam, into] of runner.images) {
    const f = frames.get(cam)!;
    const captured = f.slot.read(into);
    if (captured < 0) throw new Error(`camera ${cam}: no frame yet`);
    const age = now - captured;
    stats[HIST.FRAME_AGE + bucketOf(age * 1000)]! += 1;
    // Acting on old pixels is worse than holding: the loop holds until a fresh frame comes.
    if (age > f.maxAgeMs) throw new Error(`camera ${cam}: newest frame is ${Math.round(age)} ms old (limit ${f.maxAgeMs} ms)`);
  }
}

async function serve(): Promise<void> {
  const obs = new Float64Array(observationLength(joints));
  const state = new Float64Array(joints);
  const rec = new Float64Array(chunkLength(joints));
  const out = new Float64Array(MAX_HORIZON * joints);
  let seen = Atomics.load(request, 0);
  while (running) {
    const w = Atomics.waitAsync(request, 0, seen, 1000);
    if (w.async) await w.value;
    const seq = Atomics.load(request, 0);
    if (seq === seen || !running) continue;
    seen = seq;
    const current = active;
    if (current === null || monoMs() < stalledUntil) continue;
    if (observation.read(obs) <= 0) continue;
    const t0 = monoMs();
    const obsTick = obs[0]!;
    for (let j = 0; j < joints; j++) state[j] = obs[3 + j]!;
    try {
      takeFrames(current.runner, t0);
      await current.runner.run(state, out);
    } catch (err) {
      stats[S.ERRORS]! += 1;
      if (monoMs() - lastErrorPost > 1000) {
        lastErrorPost = monoMs();
        post({ type: 'inferenceError', message: errorMessage(err) });
      }
      continue;
    }
    const ms = monoMs() - t0;
    stats[S.INFERENCES]! += 1;
    stats[S.LAST_MS] = ms;
    stats[S.LAST_ORT_MS] = current.runner.lastOrtMs;
    stats[S.SUM_MS]! += ms;
    stats[S.SUM_ORT_MS]! += current.runner.lastOrtMs;
    if (ms > stats[S.MAX_MS]!) stats[S.MAX_MS] = ms;
    stats[HIST.LATENCY + bucketOf(ms * 1000)]! += 1;
    if (ms > current.runner.bundle.spec.runtime.budgetMs) {
      // Too late to be worth acting on: the loop holds rather than play a stale plan.
      stats[S.OVER_BUDGET]! += 1;
      continue;
    }
    const b = current.runner.bundle;
    rec[0] = obsTick;
    rec[1] = b.horizon;
    rec[2] = current.info.generation;
    const n = b.horizon * joints;
    for (let i = 0; i < n; i++) rec[CHUNK_HEADER + i] = out[i]!;
    chunk.write(rec);
  }
  if (active) await active.runner.release();
  if (previous) await previous.runner.release();
  process.exit(0);
}

void serve();
