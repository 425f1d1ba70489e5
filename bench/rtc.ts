// Real-time chunking against crossfade and temporal ensembling, on the simulated arm in the
// real loop: a policy whose chunks track a moving target but disagree with each other (each
// chunk draws its own offset, as a sampled flow-matching policy does), answered after 40 ms
// plus an injected delay (0, +100, +200 ms). With rtc the policy gets the committed prefix and
// the delay and continues from it; the others blend. Prints per mode and delay: the task error
// (measured joint vs target), the mean and max jerk at chunk boundaries, missed deadlines
// (goal 0) and starved ticks.
import { pino } from 'pino';
import { ChunkExecutor, ControlLoop, type BlendMode } from '../src/control/index.js';
import { MAX_HORIZON } from '../src/rt/index.js';
import { armConfig } from '../tools/testkit/control.js';
import { argNumber, machine, progress, result, round, sampledAllocationPerTick, SMOKE, startSimDynamixel } from './_util.js';

const SECONDS = argNumber('seconds', 20, 1.5);
const RATE = 50;
const JOINTS = 3;
const HORIZON = 50;
const BASE_LATENCY_MS = 40;
/** Spread of each chunk's own offset (rad): how much consecutive chunks disagree. */
const CHUNK_SPREAD = 0.04;
/** Steps over which an rtc chunk eases from its prefix into its own plan (crossfade's overlap, for a fair comparison). */
const EASE = 10;
const MODES: readonly BlendMode[] = ['crossfade', 'ensemble', 'rtc'];
const DELAYS_MS = [0, 100, 200] as const;

const target = (tick: number, j: number) => 0.4 * Math.sin((2 * Math.PI * tick) / (RATE * 4) + j);

/** Seeded standard normals (the same chunk offsets for every mode). */
function normals(seed: number): () => number {
  let s = seed >>> 0;
  const u = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
}

/** The policy side: answers each request after the latency, conditioned on the prefix when given one. */
class BenchPolicy {
  /** Ticks at which a chunk was handed to the loop (it takes it at its next tick). */
  readonly arrivals: number[] = [];
  private running = true;
  private readonly done: Promise<void>;
  private readonly draw = normals(7);

  constructor(
    private readonly loop: ControlLoop,
    private readonly latencyMs: number,
  ) {
    this.done = this.serve();
  }

  private async serve(): Promise<void> {
    const link = this.loop.shared.link;
    const obs = link.observationRecord();
    const now = link.observationRecord();
    const rec = link.chunkRecord();
    let seen = link.request.seq;
    while (this.running) {
      const seq = await link.request.wait(seen, 50);
      if (seq === seen) continue;
      seen = seq;
      if (link.observation.read(obs.data) <= 0) continue;
      await new Promise((r) => setTimeout(r, this.latencyMs));
      const d = Math.min(obs.prefixLen, HORIZON);
      for (let j = 0; j < JOINTS; j++) {
        const offset = CHUNK_SPREAD * this.draw();
        const plan = (i: number) => target(obs.tick + i, j) + offset;
        // Past the prefix, ease from its last action into this chunk's own plan.
        const last = d > 0 ? obs.prefix[(d - 1) * JOINTS + j]! - plan(d - 1) : 0;
        for (let i = 0; i < HORIZON; i++) {
          rec.actions[i * JOINTS + j] = i < d ? obs.prefix[i * JOINTS + j]! : plan(i) + last * Math.max(0, 1 - (i - d + 1) / EASE);
        }
      }
      rec.obsTick = obs.tick;
      rec.horizon = HORIZON;
      rec.generation = 0;
      rec.delay = obs.delay;
      link.chunk.write(rec.data);
      if (link.observation.read(now.data) > 0) this.arrivals.push(now.tick + 1);
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}

interface Run {
  task_error_rad: number;
  jerk_at_boundaries: { mean: number; max: number; unit: string };
  missed_deadlines: number;
  starved_ticks: number;
  /** Faults during the run (a faulted run's numbers are not a comparison). */
  faults: number;
  chunks: number;
}

async function measure(link: string, blend: BlendMode, delayMs: number): Promise<Run> {
  const config = armConfig(link, {
      softStartTicks: 10,
      firstChunkTicks: 100,
      starvationLimitTicks: 100,
      chunk: { blend, overlapTicks: 10, ensembleDecay: 0.01, refillTicks: 25 },
      realtime: { priority: 80, cpu: null, lockMemory: false },
    });
  // The simulated bus shares two loaded cores with everything else: a slow read is not the subject here.
  const bus = config.buses[0]!;
  const loop = new ControlLoop({ ...config, buses: [{ ...bus, errorBudgetMs: 2000 }] }, { stallMs: 1000 }, pino({ level: 'warn' }, pino.destination(2)));
  await loop.start(new AbortController().signal);
  const policy = new BenchPolicy(loop, BASE_LATENCY_MS + delayMs);
  const reader = loop.ticks.reader();
  try {
    await loop.startPolicy();
    // Past the soft start and the first (warm-up) chunks.
    await new Promise((r) => setTimeout(r, 1500));
    while (reader.next()) {
      /* drain: measure from here */
    }
    const s0 = loop.status();
    const from = reader.record.tick;
    const actions = new Map<number, Float64Array>();
    let errSum = 0;
    let errN = 0;
    const end = Date.now() + SECONDS * 1000;
    while (Date.now() < end) {
      await new Promise((r) => setTimeout(r, 100));
      while (reader.next()) {
        const t = reader.record;
        if (!Number.isNaN(t.action[0]!)) actions.set(t.tick, Float64Array.from(t.action));
        for (let j = 0; j < JOINTS; j++) {
          errSum += Math.abs(t.q[j]! - target(t.tick, j));
          errN++;
        }
      }
    }
    const s1 = loop.status();
    // Jerk (third difference of the action, rad/s^3) in the ticks right after each chunk arrived.
    const dt = 1 / RATE;
    const jerks: number[] = [];
    for (const tau of policy.arrivals) {
      if (tau < from + 3) continue;
      let worst = 0;
      for (let t = tau; t < tau + 3; t++) {
        const a = [actions.get(t), actions.get(t - 1), actions.get(t - 2), actions.get(t - 3)];
        if (a.some((x) => x === undefined)) continue;
        for (let j = 0; j < JOINTS; j++) {
          const jerk = Math.abs(a[0]![j]! - 3 * a[1]![j]! + 3 * a[2]![j]! - a[3]![j]!) / dt ** 3;
          if (Number.isFinite(jerk) && jerk > worst) worst = jerk;
        }
      }
      jerks.push(worst);
    }
    return {
      task_error_rad: round(errN > 0 ? errSum / errN : NaN, 4),
      jerk_at_boundaries: { mean: round(jerks.reduce((a, b) => a + b, 0) / Math.max(1, jerks.length), 1), max: round(Math.max(0, ...jerks), 1), unit: 'rad/s^3' },
      missed_deadlines: s1.missedDeadlines - s0.missedDeadlines,
      starved_ticks: s1.starvedTicks - s0.starvedTicks,
      faults: s1.safety.faults,
      chunks: s1.chunks.received - s0.chunks.received,
    };
  } finally {
    await policy.stop();
    await loop.stop();
  }
}

/**
 * What the tick does with rtc (the committed prefix for the observation, the action for now, a
 * chunk spliced in every 25 ticks), by V8's sampling heap profiler: it must allocate nothing.
 */
async function rtcTickAllocation(): Promise<number> {
  const e = new ChunkExecutor({ dof: JOINTS, blend: 'rtc', overlapTicks: 10, ensembleDecay: 0.01, refillTicks: 25, requestTimeoutTicks: 5, capacity: 2 * MAX_HORIZON + 25 });
  const prefix = new Float64Array(MAX_HORIZON * JOINTS);
  const chunk = new Float64Array(MAX_HORIZON * JOINTS).fill(0.1);
  const act = new Float64Array(JOINTS);
  const tick = (k: number) => {
    if (k % 25 === 0) e.ingest(k, k - 3, chunk, HORIZON, 0, 3);
    e.prefix(k, prefix);
    e.next(k, act);
    e.wantsRefill(k);
  };
  // Long enough a warm-up that what is measured is optimized code, not the compiler at work.
  for (let k = 0; k < 100_000; k++) tick(k);
  return sampledAllocationPerTick(50_000, (k) => tick(100_000 + k));
}

/** The same measurement of a tick that does nothing: the profiler's own floor. */
async function emptyTickAllocation(): Promise<number> {
  let x = 0;
  const tick = (k: number) => {
    x += k & 1;
  };
  for (let k = 0; k < 100_000; k++) tick(k);
  const bytes = await sampledAllocationPerTick(50_000, (k) => tick(100_000 + k));
  return x >= 0 ? bytes : NaN;
}

if (HORIZON > MAX_HORIZON) throw new Error('horizon beyond the chunk record');
const allocated = await rtcTickAllocation();
const floor = await emptyTickAllocation();
progress(`rtc executor: ${allocated} bytes allocated per tick (an empty tick measures ${floor})`);
const sim = await startSimDynamixel(JOINTS);
const out: Record<string, Record<string, Run>> = {};
try {
  for (const mode of MODES) {
    out[mode] = {};
    for (const delay of DELAYS_MS) {
      progress(`${mode}, +${delay} ms: ${SECONDS} s...`);
      const r = await measure(sim.link, mode, delay);
      out[mode][`d${delay}`] = r;
      progress(`  task error ${(r.task_error_rad * 1000).toFixed(1)} mrad, jerk at boundaries mean ${r.jerk_at_boundaries.mean} max ${r.jerk_at_boundaries.max} rad/s^3, missed ${r.missed_deadlines}, starved ${r.starved_ticks}, ${r.faults} faults, ${r.chunks} chunks`);
    }
  }
} finally {
  sim.stop();
}
result({ seconds: SECONDS, smoke: SMOKE, machine: machine(), base_latency_ms: BASE_LATENCY_MS, chunk_spread_rad: CHUNK_SPREAD, horizon: HORIZON, executor_rtc_allocated_bytes_per_tick: allocated, baseline: { empty_tick_allocated_bytes: floor }, ...out });
