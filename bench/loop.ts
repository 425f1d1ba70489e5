// The 50 Hz loop against the simulated servo bus (its own process) with a scripted policy,
// while the main thread churns garbage as hard as it can. Compared in the same run with a
// naive setTimeout loop on the main thread (what most Node robot code does) and with
// cyclictest, the OS's own timer latency at the same period.
//
// `--load full` runs the whole daemon instead: 14 simulated servos, two GStreamer cameras,
// the ACT-size policy inferring on the CPU, the allocation storm on the daemon's main thread
// and a CPU hog at normal priority on every core; cyclictest runs under the same load.
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { ControlLoop, loopHeadline, type ControlConfig } from '../src/control/index.js';
import { ScriptedChunks } from '../tools/testkit/chunks.js';
import { armConfig } from '../tools/testkit/control.js';
import { argNumber, argString, cpuHogs, machine, progress, result, round, summary, startSimDynamixel } from './_util.js';

const SECONDS = argNumber('seconds', 60, 3);
const FULL = argString('load', 'light') === 'full';
const SERVOS = FULL ? 14 : 6;
const RATE = 50;

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
    keep = [];
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

if (FULL) await fullLoad();
else await lightLoad();

async function lightLoad(): Promise<void> {
  const sim = await startSimDynamixel(SERVOS);
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
  const wake0 = loop.shared.lateness.snapshot();
  const tick0 = loop.shared.duration.snapshot();
  // A consumer of the tick ring on the stormy main thread, as status or a recorder would be.
  const ticks = loop.ticks.reader();
  const drain = setInterval(() => {
    while (ticks.next());
  }, 250);
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
  clearInterval(drain);
  while (ticks.next());
  const f1 = loop.status();
  const wake = loop.shared.lateness.since(wake0);
  const tick = loop.shared.duration.since(tick0);
  await source.stop();
  await loop.safe();
  await loop.stop();
  sim.stop();

  progress(`cyclictest for ${Math.min(SECONDS, 30)} s...`);
  const cyc = cyclictest(Math.min(SECONDS, 30));

  result({
    seconds: SECONDS,
    servos: SERVOS,
    machine: machine(),
    realtime: f1.realtime,
    load: 'light',
    wake_lateness_us: { p50: wake.p50, p99: wake.p99, max: wake.max },
    lateness_max_us_since_start: round(f1.latenessUs.max),
    ticks: f1.ticks - f0.ticks,
    missed_deadlines: f1.missedDeadlines - f0.missedDeadlines,
    overruns: f1.overruns - f0.overruns,
    worker_gc_events: f1.gcEvents - f0.gcEvents,
    tick_duration_us: { p50: tick.p50, p99: tick.p99, max: tick.max, mean: tick.mean },
    starved_ticks: f1.starvedTicks - f0.starvedTicks,
    bus_failed_reads: f1.bus.failedReads - f0.bus.failedReads,
    tick_records: { taken: ticks.taken, lost: ticks.lost, overruns: ticks.overruns },
    baseline: {
      settimeout_lateness_us: summary(naive),
      cyclictest_us: cyc,
    },
  });
}

/** The whole daemon, in this process, under every load a robot sees at once. */
async function fullLoad(): Promise<void> {
  const { Daemon } = await import('../src/daemon.js');
  const { parseConfig } = await import('../src/config/index.js');
  const { Logging } = await import('../src/core/index.js');
  const { ensureActBundle } = await import('./_fixtures.js');
  const dir = mkdtempSync(join(tmpdir(), 'reflex-bench-full-'));
  const act = ensureActBundle();
  const sim = await startSimDynamixel(SERVOS);
  const camera = 'videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=480,framerate=30/1';
  const config = parseConfig(
    {
      deviceId: 'bench-full',
      log: { level: 'warn', pretty: false },
      paths: { stateDir: join(dir, 'state') },
      socket: { path: join(dir, 'control.sock') },
      buses: [{ name: 'arm', kind: 'dynamixel', port: sim.link }],
      robot: { joints: Array.from({ length: SERVOS }, (_, i) => ({ name: `joint_${i}`, bus: 'arm', id: i + 1, model: 'xm430-w350', limits: { min: -1.5, max: 1.5 } })) },
      cameras: [
        { name: 'top', source: camera, maxAgeMs: 500 },
        { name: 'wrist', source: camera, maxAgeMs: 500 },
      ],
      policy: { bundle: act },
    },
    'bench',
  );
  const logging = new Logging({ level: 'warn', pretty: false, destination: process.stderr });
  const daemon = new Daemon({ config, logging, env: {} });
  const ran = daemon.run();
  const loop = daemon.loop;
  const until = Date.now() + 120_000;
  while (loop.mode !== 'policy') {
    if (Date.now() > until) throw new Error(`the policy did not start in 120 s: ${JSON.stringify(daemon.status().policy)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const rt = loop.status().realtime;
  progress(`control thread: ${rt?.fifoPriority ? `SCHED_FIFO ${rt.fifoPriority}` : 'not real time'}${rt?.notes.length ? ` (${rt.notes.join('; ')})` : ''}`);
  await new Promise((r) => setTimeout(r, 2000));
  const f0 = loop.status();
  const p0 = daemon.policy.status().inference;
  const wake0 = loop.shared.lateness.snapshot();
  const tick0 = loop.shared.duration.snapshot();
  const stopHogs = cpuHogs();
  const stopStorm = allocationStorm();
  progress(`running ${SECONDS} s: policy inferring, 2 cameras, allocation storm, ${cpus().length} CPU hogs...`);
  for (let s = 0; s < SECONDS; s += 10) {
    await new Promise((r) => setTimeout(r, Math.min(10, SECONDS - s) * 1000));
    const st = loop.status();
    progress(`  ${Math.min(s + 10, SECONDS)} s: ${loopHeadline(st)}`);
  }
  stopStorm();
  const f1 = loop.status();
  const p1 = daemon.policy.status().inference;
  const wake = loop.shared.lateness.since(wake0);
  const tick = loop.shared.duration.since(tick0);
  progress(`cyclictest for ${Math.min(SECONDS, 30)} s, under the same CPU hogs...`);
  const cyc = cyclictest(Math.min(SECONDS, 30));
  stopHogs();
  daemon.shutdown('benchmark done');
  await ran;
  sim.stop();
  result({
    seconds: SECONDS,
    load: 'full',
    servos: SERVOS,
    machine: machine(),
    realtime: f1.realtime,
    wake_lateness_us: { p50: wake.p50, p99: wake.p99, max: wake.max },
    tick_duration_us: { p50: tick.p50, p99: tick.p99, max: tick.max, mean: tick.mean },
    ticks: f1.ticks - f0.ticks,
    missed_deadlines: f1.missedDeadlines - f0.missedDeadlines,
    overruns: f1.overruns - f0.overruns,
    starved_ticks: f1.starvedTicks - f0.starvedTicks,
    inferences: p1.count - p0.count,
    inference_ms: { p50: p1.p50Ms, p99: p1.p99Ms, max: p1.maxMs },
    worker_gc_events: f1.gcEvents - f0.gcEvents,
    baseline: { cyclictest_us: cyc },
  });
}
