// An inference worker: one thread per loaded policy. It loads and warms up its bundle, then
// answers the control loop's requests for chunks through shared memory, but only while it is
// the active policy. A new policy therefore loads in its own thread while the active one keeps
// serving (ONNX Runtime opens a session synchronously: a load blocks the thread that does it,
// for seconds with a large model, for minutes with a TensorRT engine build). It never touches
// hardware, and the loop never waits for it: a late or failed inference only means the loop
// holds.
import { parentPort, workerData } from 'node:worker_threads';
// A worker starts at every activation, on a robot that is running: it imports only what it
// uses, directly (core's and control's index files pull in pino and the drivers, tens of ms of
// CPU per start).
import { FrameSlot, LatestSlot, monoMs } from '../rt/index.js';
import { CHUNK_HEADER, MAX_HORIZON, chunkLength, observationLength, bucketOf, type LoopBuffers } from '../control/shared.js';
import { errorMessage } from '../core/errors.js';
import type { PolicyBundle } from './bundle.js';
import { ioMismatches, loadOrt, openSession, type SessionOptions } from './session.js';
import { PolicyRunner } from './runner.js';
import { CTRL, HIST, S } from './stats.js';

export interface InferenceWorkerData {
  /** This worker's id (> 0), unique in the process. */
  id: number;
  /** The bundle this worker loads and serves, read and checked against the robot by the runtime. */
  bundle: PolicyBundle;
  ctrl: SharedArrayBuffer;
  /** One Int32: the generation this worker's chunks carry; set by the runtime before it activates this worker. */
  generation: SharedArrayBuffer;
  loop: LoopBuffers;
  stats: SharedArrayBuffer;
  onnxruntimePath: string | null;
  session: SessionOptions;
  warmUpRuns: number;
  /** Fault injection: block this thread for this long before opening the model, as a slow load does. */
  loadDelayMs: number;
  /** Pre-processed camera frames, by camera name, from the vision worker. */
  frames: { name: string; buffer: SharedArrayBuffer; height: number; width: number; maxAgeMs: number }[];
}

export type InferenceRequest =
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
  | { type: 'loaded'; info: PolicyInfo }
  | { type: 'loadFailed'; message: string }
  | { type: 'inferenceError'; message: string };

const data = workerData as InferenceWorkerData;
const post = (m: InferenceMessage) => parentPort!.postMessage(m);
const joints = data.loop.joints;
const ctrl = new Int32Array(data.ctrl);
const ownGeneration = new Int32Array(data.generation);
const observation = new LatestSlot(data.loop.observation, observationLength(joints));
const chunk = new LatestSlot(data.loop.chunk, chunkLength(joints));
const request = new Int32Array(data.loop.request);
const stats = new Float64Array(data.stats);
const frames = new Map(data.frames.map((f) => [f.name, { ...f, slot: new FrameSlot(f.buffer, 3 * f.height * f.width) }]));
let running = true;
let lastErrorPost = 0;
let stalledUntil = 0;

parentPort!.on('message', (m: InferenceRequest) => {
  if (m.type === 'stop') {
    running = false;
    Atomics.notify(request, 0);
  } else if (m.type === 'stall') {
    stalledUntil = monoMs() + m.ms;
  }
});

async function load(): Promise<PolicyRunner> {
  const bundle = data.bundle;
  const ort = loadOrt(data.onnxruntimePath);
  if (data.loadDelayMs > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, data.loadDelayMs);
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
  return new PolicyRunner(ort, bundle, opened);
}

/** Copies each camera's newest frame into the runner's input; refuses missing or stale ones. */
function takeFrames(runner: PolicyRunner, now: number): void {
  for (const [cam, into] of runner.images) {
    const f = frames.get(cam)!;
    const captured = f.slot.read(into);
    // "No frame yet" means none ever arrived; a copy overtaken by the writer is another thing.
    if (captured === FrameSlot.NONE) throw new Error(`camera ${cam}: no frame yet`);
    if (captured < 0) throw new Error(`camera ${cam}: no consistent frame within 100 ms (the vision worker kept overtaking the copy)`);
    const age = now - captured;
    stats[HIST.FRAME_AGE + bucketOf(age * 1000)]! += 1;
    // Acting on old pixels is worse than holding: the loop holds until a fresh frame comes.
    if (age > f.maxAgeMs) throw new Error(`camera ${cam}: newest frame is ${Math.round(age)} ms old (limit ${f.maxAgeMs} ms)`);
  }
}

const active = () => Atomics.load(ctrl, CTRL.ACTIVE) === data.id;

/**
 * Takes the chunk slot's lock. Every holder keeps it for a check and one copy (microseconds),
 * and the runtime frees it if its holder's thread ends, so this never waits long.
 */
function lock(): void {
  for (;;) {
    const holder = Atomics.compareExchange(ctrl, CTRL.LOCK, 0, data.id);
    if (holder === 0) return;
    Atomics.wait(ctrl, CTRL.LOCK, holder, 1);
  }
}

function unlock(): void {
  Atomics.store(ctrl, CTRL.LOCK, 0);
  Atomics.notify(ctrl, CTRL.LOCK);
}

async function serve(runner: PolicyRunner): Promise<void> {
  const obs = new Float64Array(observationLength(joints));
  const state = new Float64Array(joints);
  const rec = new Float64Array(chunkLength(joints));
  const out = new Float64Array(MAX_HORIZON * joints);
  const b = runner.bundle;
  let seen = Atomics.load(request, 0);
  while (running) {
    const w = Atomics.waitAsync(request, 0, seen, 1000);
    if (w.async) await w.value;
    const seq = Atomics.load(request, 0);
    if (seq === seen || !running) continue;
    seen = seq;
    // Only the active policy answers; the others stay loaded, idle, ready to be swapped in.
    if (!active() || monoMs() < stalledUntil) continue;
    if (observation.read(obs) <= 0) continue;
    const t0 = monoMs();
    const obsTick = obs[0]!;
    for (let j = 0; j < joints; j++) state[j] = obs[3 + j]!;
    try {
      takeFrames(runner, t0);
      await runner.run(state, out);
    } catch (err) {
      if (!active()) continue;
      stats[S.ERRORS]! += 1;
      if (monoMs() - lastErrorPost > 1000) {
        lastErrorPost = monoMs();
        post({ type: 'inferenceError', message: errorMessage(err) });
      }
      continue;
    }
    const ms = monoMs() - t0;
    lock();
    try {
      // Swapped out while inferring: this chunk belongs to a policy no longer running.
      if (!active()) continue;
      stats[S.INFERENCES]! += 1;
      stats[S.LAST_MS] = ms;
      stats[S.LAST_ORT_MS] = runner.lastOrtMs;
      stats[S.SUM_MS]! += ms;
      stats[S.SUM_ORT_MS]! += runner.lastOrtMs;
      if (ms > stats[S.MAX_MS]!) stats[S.MAX_MS] = ms;
      stats[HIST.LATENCY + bucketOf(ms * 1000)]! += 1;
      if (ms > b.spec.runtime.budgetMs) {
        // Too late to be worth acting on: the loop holds rather than play a stale plan.
        stats[S.OVER_BUDGET]! += 1;
        continue;
      }
      rec[0] = obsTick;
      rec[1] = b.horizon;
      rec[2] = Atomics.load(ownGeneration, 0);
      const n = b.horizon * joints;
      for (let i = 0; i < n; i++) rec[CHUNK_HEADER + i] = out[i]!;
      chunk.write(rec);
    } finally {
      unlock();
    }
  }
}

async function main(): Promise<void> {
  let runner: PolicyRunner;
  try {
    runner = await load();
    const warmUpMs = await runner.warmUp(data.warmUpRuns);
    const spec = runner.bundle.spec;
    post({
      type: 'loaded',
      info: { name: spec.name, version: spec.version, dir: data.bundle.dir, provider: runner.provider, fallbacks: runner.fallbacks, warmUpMs, generation: 0 },
    });
  } catch (err) {
    post({ type: 'loadFailed', message: errorMessage(err) });
    return;
  }
  try {
    await serve(runner);
  } finally {
    await runner.release();
  }
}

// Ends the thread when done (stopped, or a load that failed), whatever is left scheduled.
void main().finally(() => process.exit(0));
