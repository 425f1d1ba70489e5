// Helpers shared by the benchmarks: percentiles, progress on stderr, the one JSON line on stdout.
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { CLI } from '../tools/testkit/paths.js';

export function percentile(sorted: Float64Array | number[], q: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

export function summary(samples: Float64Array | number[], digits = 1): { p50: number; p99: number; max: number } {
  const s = Float64Array.from(samples).sort();
  return { p50: round(percentile(s, 0.5), digits), p99: round(percentile(s, 0.99), digits), max: round(s[s.length - 1] ?? 0, digits) };
}

export function round(v: number, digits = 1): number {
  const k = 10 ** digits;
  return Math.round(v * k) / k;
}

export function progress(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

export function machine(): { cpu: string; cores: number; node: string; arch: string } {
  return { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version, arch: process.arch };
}

export function result(obj: unknown): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

/**
 * `--smoke`: a run of seconds, not minutes, that `npm test` makes of every benchmark so that
 * none can rot unnoticed. Its numbers mean nothing; its output's shape does.
 */
export const SMOKE = process.argv.includes('--smoke');

/** `--NAME N`; without it, `fallback`, or `smoke` in a smoke run. */
export function argNumber(name: string, fallback: number, smoke?: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return SMOKE && smoke !== undefined ? smoke : fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} wants a positive number`);
  return v;
}

/**
 * Bytes allocated per call of `tick`, by V8's sampling heap profiler with collected objects
 * kept: every allocation is attributed, not only what survives (heapUsed differences also
 * count compiled code and miss what a scavenge freed). The profiler's own messages are
 * excluded; `tick` must be warm (optimized) already.
 */
export async function sampledAllocationPerTick(ticks: number, tick: (k: number) => void): Promise<number> {
  const { Session } = await import('node:inspector/promises');
  const s = new Session();
  s.connect();
  await s.post('HeapProfiler.startSampling', { samplingInterval: 32, includeObjectsCollectedByMinorGC: true, includeObjectsCollectedByMajorGC: true });
  for (let k = 0; k < ticks; k++) tick(k);
  const { profile } = await s.post('HeapProfiler.stopSampling');
  s.disconnect();
  interface Node { callFrame: { url: string }; selfSize: number; children: Node[] }
  let bytes = 0;
  const walk = (n: Node, inspector: boolean) => {
    const own = inspector || n.callFrame.url.startsWith('node:inspector') || n.callFrame.url.startsWith('node:internal/util');
    if (!own) bytes += n.selfSize;
    for (const c of n.children) walk(c, own);
  };
  walk(profile.head, false);
  return bytes / ticks;
}

export function argString(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = process.argv[i + 1];
  if (v === undefined || v.startsWith('--')) throw new Error(`--${name} wants a value`);
  return v;
}

/** A busy process at normal priority on every core, as other software on a robot would be. */
export function cpuHogs(): () => void {
  const hogs = cpus().map(() => spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
  return () => {
    for (const h of hogs) h.kill('SIGKILL');
  };
}

/**
 * Heap growth per tick of `pass` (which runs `ticks` ticks), the least of three passes: an
 * allocation in every tick shows in every pass, while the one-off growth of code and inline
 * caches settling (hundreds of KB once, seen in the ODrive pass) shows in one. Also returns
 * each pass's growth in bytes, for the progress line.
 */
export function heapPerTick(ticks: number, pass: () => void): { perTick: number; passes: number[] } {
  const passes: number[] = [];
  for (let p = 0; p < 3; p++) {
    const heap0 = process.memoryUsage().heapUsed;
    pass();
    passes.push(process.memoryUsage().heapUsed - heap0);
  }
  return { perTick: Math.min(...passes) / ticks, passes };
}

/** `reflex sim dynamixel` with servos 1..n on a pty in a temporary folder, once it has printed its link. */
export async function startSimDynamixel(n: number): Promise<{ link: string; stop: () => void }> {
  const link = join(mkdtempSync(join(tmpdir(), 'reflex-bench-')), 'dxl');
  const proc = spawn(process.execPath, [CLI, 'sim', 'dynamixel', '--link', link, '--ids', `1-${n}`], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: proc.stdout }).once('line', () => resolve());
    proc.once('exit', (c) => reject(new Error(`simulator exited ${c}`)));
  });
  return { link, stop: () => proc.kill('SIGTERM') };
}
