// An inference worker: one thread per loaded policy. It loads and warms up its bundle, then
// answers the control loop's requests for chunks through shared memory, but only while it is
// the active policy. A new policy therefore loads in its own thread while the active one keeps
// serving (ONNX Runtime opens a session synchronously: a load blocks the thread that does it,
// for seconds with a large model, for minutes with a TensorRT engine build). It never touches
// hardware, and the loop never waits for it: a late or failed inference only means the loop
// holds.
import { workerData } from 'node:worker_threads';
// A worker starts at every activation, on a robot that is running: it imports only what it
// uses, directly (core's and control's index files pull in pino and the drivers, tens of ms of
// CPU per start).
import { FrameSlot, PolicyLink, Words, hostPort, monoMs, type PolicyLinkBuffers } from '../rt/index.js';
import { errorMessage } from '../core/index.js';
import type { PolicyBundle } from './bundle.js';
import { ioMismatches, loadOrt, openSession, type SessionOptions } from './session.js';
import { PolicyRunner } from './runner.js';
import { INFERENCE_METRICS, POLICY_WORDS } from './stats.js';

export interface InferenceWorkerData {
  /** This worker's id (> 0), unique in the process. */
  id: number;
  /** The bundle this worker loads and serves, read and checked against the robot by the runtime. */
  bundle: PolicyBundle;
  ctrl: SharedArrayBuffer;
  /** One Int32: the generation this worker's chunks carry; set by the runtime before it activates this worker. */
  generation: SharedArrayBuffer;
  loop: PolicyLinkBuffers;
  /** INFERENCE_METRICS, shared by every inference worker. */
  stats: SharedArrayBuffer;
  onnxruntimePath: string | null;
  session: SessionOptions;
  warmUpRuns: number;
  /** Fault injection: block this thread for this long before opening the model, as a slow load does. */
  loadDelayMs: number;
  /** The task instruction and the noise seed at start (VLA bundles; others ignore them). */
  task: string;
  seed: number;
  /** Pre-processed camera frames, by camera name, from the vision worker. */
  frames: { name: string; buffer: SharedArrayBuffer; height: number; width: number; maxAgeMs: number }[];
}

/** Fault injection: answer no request for `ms`, as a hung or overloaded accelerator would. */
export interface InferenceStall {
  type: 'stall';
  ms: number;
}

/** A new task instruction (tokenized once, here) or noise seed, for every worker alike. */
export type VlaSetting = { type: 'task'; text: string } | { type: 'seed'; seed: number };

/**
 * A shadow run: a preloaded (inactive) policy runs on the live observation, its chunks going
 * nowhere, so the update engine sees what it would do before it drives the arm.
 */
export interface ShadowRequest {
  type: 'shadow';
  runs: number;
  /** Joint limits (joint space), per joint in the bundle's order. */
  limits: { min: number; max: number }[];
}

export interface ShadowReport {
  runs: number;
  meanMs: number;
  maxMs: number;
  /** The bundle's inference budget (the chunk period it must fit). */
  budgetMs: number;
  /** The first thing wrong (not finite, beyond a limit, too slow, no observation), else null. */
  problem: string | null;
}

export interface PolicyInfo {
  name: string;
  version: string;
  dir: string;
  provider: string;
  fallbacks: { provider: string; error: string }[];
  warmUpMs: number;
  generation: number;
}

/**
 * What an inference worker and its host say (rt/worker-host.ts): ready once the policy is
 * loaded and warmed up (or failed, with why), inference errors as events, stalls posted.
 */
export interface InferenceProtocol {
  ready: PolicyInfo;
  event: { type: 'inferenceError'; message: string };
  post: InferenceStall | VlaSetting;
  request: ShadowRequest;
  reply: ShadowReport;
}

const data = workerData as InferenceWorkerData;
const port = hostPort<InferenceProtocol>();
const link = new PolicyLink(data.loop);
const ctrl = new Words(POLICY_WORDS, data.ctrl);
const ownGeneration = new Int32Array(data.generation);
const metrics = INFERENCE_METRICS.view(data.stats);
const stats = metrics.counters;
const frames = new Map(data.frames.map((f) => [f.name, { ...f, slot: new FrameSlot(f.buffer, 3 * f.height * f.width) }]));
let running = true;
let lastErrorPost = 0;
let stalledUntil = 0;

port.onStop(() => {
  running = false;
  link.request.wake();
});
let loaded: PolicyRunner | null = null;
let vlaSetting: { task: string; seed: number } = { task: data.task, seed: data.seed };
port.onPost((m) => {
  if (m.type === 'stall') stalledUntil = monoMs() + m.ms;
  else if (m.type === 'task') vlaSetting = { ...vlaSetting, task: m.text };
  else vlaSetting = { ...vlaSetting, seed: m.seed };
  // A setting that comes while the policy loads is taken when it is ready.
  if (loaded && m.type === 'task') loaded.vla.setTask(m.text);
  if (loaded && m.type === 'seed') loaded.vla.setSeed(m.seed);
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
  return new PolicyRunner(ort, bundle, opened, vlaSetting);
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
    metrics.hist.frameAgeUs.record(age * 1000);
    // Acting on old pixels is worse than holding: the loop holds until a fresh frame comes.
    if (age > f.maxAgeMs) throw new Error(`camera ${cam}: newest frame is ${Math.round(age)} ms old (limit ${f.maxAgeMs} ms)`);
  }
}

const active = () => ctrl.load('active') === data.id;

/**
 * Takes the chunk slot's lock. Every holder keeps it for a check and one copy (microseconds),
 * and the runtime frees it if its holder's thread ends, so this never waits long.
 */
function lock(): void {
  for (;;) {
    const holder = ctrl.compareExchange('lock', 0, data.id);
    if (holder === 0) return;
    ctrl.wait('lock', holder, 1);
  }
}

function unlock(): void {
  ctrl.store('lock', 0);
  ctrl.notify('lock');
}

async function serve(runner: PolicyRunner): Promise<void> {
  const obs = link.observationRecord();
  const rec = link.chunkRecord();
  const b = runner.bundle;
  let seen = link.request.seq;
  let wasActive = false;
  while (running) {
    // An idle policy looks for its activation often: a request rung between its warm-up and
    // its activation would otherwise be taken as seen and never answered.
    const seq = await link.request.wait(seen, wasActive ? 1000 : 20);
    const isActive = active();
    const becameActive = isActive && !wasActive;
    wasActive = isActive;
    if ((seq === seen && !becameActive) || !running) continue;
    seen = seq;
    // Only the active policy answers; the others stay loaded, idle, ready to be swapped in.
    // One that has just become active answers the newest observation at once.
    if (!isActive || monoMs() < stalledUntil) continue;
    if (link.observation.read(obs.data) <= 0) continue;
    const t0 = monoMs();
    const obsTick = obs.tick;
    try {
      takeFrames(runner, t0);
      // Straight into the chunk record: it is written to the loop only if it is still wanted.
      await runner.run(obs.q, rec.actions, obs.prefix, obs.prefixLen, obs.delay);
    } catch (err) {
      if (!active()) continue;
      stats.add('errors');
      if (monoMs() - lastErrorPost > 1000) {
        lastErrorPost = monoMs();
        port.event({ type: 'inferenceError', message: errorMessage(err) });
      }
      continue;
    }
    const ms = monoMs() - t0;
    lock();
    try {
      // Swapped out while inferring: this chunk belongs to a policy no longer running.
      if (!active()) continue;
      stats.add('inferences');
      stats.set('lastMs', ms);
      stats.set('lastOrtMs', runner.lastOrtMs);
      stats.add('sumMs', ms);
      stats.add('sumOrtMs', runner.lastOrtMs);
      stats.max('maxMs', ms);
      metrics.hist.latencyUs.record(ms * 1000);
      if (ms > b.spec.runtime.budgetMs) {
        // Too late to be worth acting on: the loop holds rather than play a stale plan.
        stats.add('overBudget');
        continue;
      }
      rec.obsTick = obsTick;
      rec.horizon = b.horizon;
      // The loop splices an RTC chunk after the prefix it was conditioned on.
      rec.delay = b.spec.rtc ? obs.delay : 0;
      rec.generation = Atomics.load(ownGeneration, 0);
      link.chunk.write(rec.data);
    } finally {
      unlock();
    }
  }
}

/** Runs the (inactive) policy on the newest observations; never writes a chunk. */
async function shadow(runner: PolicyRunner, req: ShadowRequest): Promise<ShadowReport> {
  const b = runner.bundle;
  const budgetMs = b.spec.runtime.budgetMs;
  const report: ShadowReport = { runs: 0, meanMs: 0, maxMs: 0, budgetMs, problem: null };
  if (active()) return { ...report, problem: 'the policy is already active' };
  const obs = link.observationRecord();
  const out = new Float64Array(b.horizon * b.dof);
  let sum = 0;
  for (let r = 0; r < req.runs && report.problem === null; r++) {
    if (link.observation.read(obs.data) <= 0) {
      report.problem = 'no observation from the loop yet';
      break;
    }
    const t0 = monoMs();
    try {
      takeFrames(runner, t0);
      await runner.run(obs.q, out);
    } catch (err) {
      report.problem = errorMessage(err);
      break;
    }
    const ms = monoMs() - t0;
    report.runs++;
    sum += ms;
    report.maxMs = Math.max(report.maxMs, ms);
    if (ms > budgetMs) report.problem = `inference took ${Math.round(ms)} ms, over the ${budgetMs} ms budget`;
    for (let i = 0; i < out.length && report.problem === null; i++) {
      const j = i % b.dof;
      const lim = req.limits[j];
      const v = out[i]!;
      if (lim !== undefined && (v < lim.min || v > lim.max)) {
        report.problem = `action ${Math.floor(i / b.dof)} of joint ${b.spec.joints[j]} is ${v.toFixed(3)}, beyond its limits [${lim.min}, ${lim.max}]`;
      }
    }
    // The next run sees a newer observation (one tick later at least).
    await new Promise((res) => setTimeout(res, 25));
  }
  report.meanMs = report.runs > 0 ? sum / report.runs : 0;
  return report;
}

async function main(): Promise<void> {
  let runner: PolicyRunner;
  try {
    runner = await load();
    const warmUpMs = await runner.warmUp(data.warmUpRuns);
    // Warm-up drew noise: the first real run starts from the seed, as a replay does.
    runner.vla.setTask(vlaSetting.task);
    runner.vla.setSeed(vlaSetting.seed);
    loaded = runner;
    const spec = runner.bundle.spec;
    port.ready({ name: spec.name, version: spec.version, dir: data.bundle.dir, provider: runner.provider, fallbacks: runner.fallbacks, warmUpMs, generation: 0 });
  } catch (err) {
    port.failed(errorMessage(err));
    return;
  }
  port.onRequest((req) => shadow(runner, req));
  try {
    await serve(runner);
  } finally {
    await runner.release();
  }
}

// Ends the thread when done (stopped, or a load that failed), whatever is left scheduled.
void main().finally(() => process.exit(0));
