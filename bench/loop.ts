// The 50 Hz loop against the simulated servo bus (its own process) with a scripted policy,
// while the main thread churns garbage as hard as it can. Compared in the same run with a
// naive setTimeout loop on the main thread (what most Node robot code does) and with
// cyclictest, the OS's own timer latency at the same period.
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { ControlLoop, type ControlConfig } from '../src/control/index.js';
import { CLI } from '../test/helpers/paths.js';
import { ScriptedChunks } from '../test/helpers/chunks.js';
import { armConfig } from '../test/helpers/control.js';
import { argNumber, machine, progress, result, round, summary } from './_util.js';

const SECONDS = argNumber('seconds', 60);
const SERVOS = 6;
const RATE = 50;

async function startSim(): Promise<{ link: string; stop: () => void }> {
  const link = join(mkdtempSync(join(tmpdir(), 'reflex-bench-')), 'dxl');
  const proc = spawn(process.execPath, [CLI, 'sim', 'dynamixel', '--link', link, '--ids', `1-${SERVOS}`], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: proc.stdout }).once('line', () => resolve());
    proc.once('exit', (c) => reject(new Error(`simulator exited ${c}`)));
  });
  return { link, stop: () => proc.kill('SIGTERM') };
}

/** Garbage as fast as the main thread can make it, with enough survivors to force full GCs. */
function allocationStorm(): () => void {
  let keep: unknown[] = [];
  let bytes = 0;
  const timer = setInterval(() => {
    const batch: unknown[] = [];
    for (let i = 0; i < 20_000; i++) batch.push({ i, s: `x${i}`, a: [i, i + 1, i + 2] });
    bytes += 20_000 * 120;
    keep.push(batch);
    if (keep.length > 40) keep = keep.slice(20);
  }, 2);
  return () => {
    clearInterval(timer);
    progress(`allocation storm: ~${Math.round(bytes / SECONDS / 1e6)} MB/s`);
  };
}

/** A 50 Hz loop the usual Node way: setTimeout to each absolute deadline, on the main thread. */
function setTimeoutLoop(): () => Float64Array {
  const lateness: number[] = [];
  const period = 1000 / RATE;
  let deadline = performance.now() + period;
  let running = true;
  const step = () => {
    if (!running) return;
    const now = performance.now();
    lateness.push((now - deadline) * 1000);
    deadline += period;
    while (deadline < now) deadline += period;
    setTimeout(step, Math.max(0, deadline - performance.now()));
  };
  setTimeout(step, period);
  return () => {
    running = false;
    return Float64Array.from(lateness);
  };
}

function cyclictest(seconds: number): { p99: number; max: number } | { error: string } {
  const loops = Math.round(seconds * RATE);
  const r = spawnSync('cyclictest', ['-t1', '-p80', `-i${1_000_000 / RATE}`, `-l${loops}`, '-h10000', '-q', '-m'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return { error: r.error?.message ?? r.stderr.trim() };
  const counts: [number, number][] = [];
  for (const line of r.stdout.split('\n')) {
    const m = /^(\d+) (\d+)$/.exec(line.trim());
    if (m) counts.push([Number(m[1]), Number(m[2])]);
  }
  const total = counts.reduce((n, [, c]) => n + c, 0);
  let seen = 0;
  let p99 = 0;
  for (const [us, c] of counts) {
    seen += c;
    if (seen >= 0.99 * total) {
      p99 = us;
      break;
    }
  }
  const max = Number(/# Max Latencies: (\d+)/.exec(r.stdout)?.[1] ?? NaN);
  return { p99, max };
}

const sim = await startSim();
// Deployment settings for the real-time part: SCHED_FIFO 80, mlockall where permitted.
const config: ControlConfig = armConfig(
  sim.link,
  { softStartTicks: 50, firstChunkTicks: 100, chunk: { blend: 'crossfade', overlapTicks: 10, ensembleDecay: 0.01, refillTicks: 20 }, realtime: { priority: 80, cpu: null, lockMemory: true } },
  Array.from({ length: SERVOS }, (_, i) => ({ name: `j${i + 1}`, bus: 'arm', id: i + 1, min: -1.5, max: 1.5, maxVelocity: 3, offset: 0, direction: 1 as const })),
);
const loop = new ControlLoop(config, { stallMs: 500 }, pino({ level: 'warn' }, pino.destination(2)));
await loop.start(new AbortController().signal);
const rt = loop.status().realtime;
progress(`control thread: ${rt?.fifoPriority ? `SCHED_FIFO ${rt.fifoPriority}` : 'not real time'}${rt?.notes.length ? ` (${rt.notes.join('; ')})` : ''}`);
// A slow sine wave on every joint, answered 40 ms after each request, as a policy would.
const source = new ScriptedChunks(loop, SERVOS, (obsTick, i, out) => out.fill(0.5 * Math.sin((2 * Math.PI * (obsTick + i)) / (RATE * 4))), 50, 40);
await loop.startPolicy();
await new Promise((r) => setTimeout(r, 2000));

// Measure from a clean slate: the histogram and counters so far include start-up.
const f0 = loop.status();
const hist0 = Uint32Array.from(loop.shared.hist);
const stopStorm = allocationStorm();
const stopNaive = setTimeoutLoop();
progress(`running ${SECONDS} s with an allocation storm on the main thread...`);
for (let s = 0; s < SECONDS; s += 10) {
  await new Promise((r) => setTimeout(r, Math.min(10, SECONDS - s) * 1000));
  const st = loop.status();
  progress(`  ${Math.min(s + 10, SECONDS)} s: ${st.ticks - f0.ticks} ticks, lateness p99 ${st.latenessUs.p99} us, missed ${st.missedDeadlines - f0.missedDeadlines}`);
}
const naive = stopNaive();
stopStorm();
const f1 = loop.status();
const hist = Uint32Array.from(loop.shared.hist).map((v, i) => v - hist0[i]!);
await source.stop();
await loop.safe();
await loop.stop();
sim.stop();

const { quantileUs, bucketUpperUs } = await import('../src/control/shared.js');
// The loop's own max counts start-up too; over the window, the highest bucket reached is the max.
let top = 0;
hist.forEach((c, i) => {
  if (c > 0) top = i;
});
progress(`cyclictest for ${Math.min(SECONDS, 30)} s...`);
const cyc = cyclictest(Math.min(SECONDS, 30));

result({
  seconds: SECONDS,
  servos: SERVOS,
  machine: machine(),
  realtime: f1.realtime,
  lateness_us: { p50: round(quantileUs(hist, 0.5)), p99: round(quantileUs(hist, 0.99)), max: round(bucketUpperUs(top)) },
  lateness_max_us_since_start: round(f1.latenessUs.max),
  ticks: f1.ticks - f0.ticks,
  missed_deadlines: f1.missedDeadlines - f0.missedDeadlines,
  overruns: f1.overruns - f0.overruns,
  worker_gc_events: f1.gcEvents - f0.gcEvents,
  tick_duration_us: { mean: f1.tickDurationUs.mean, max: f1.tickDurationUs.max },
  starved_ticks: f1.starvedTicks - f0.starvedTicks,
  bus_failed_reads: f1.bus.failedReads - f0.bus.failedReads,
  baseline: {
    settimeout_lateness_us: summary(naive),
    cyclictest_us: cyc,
  },
});
