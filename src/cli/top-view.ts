// What `reflex top` shows, as plain lines from one status (and the fault history): a pure
// function, so the screen is the same whatever draws it, and it degrades by dropping the least
// needed sections when the terminal is small and cutting lines at its width.
import type { DaemonStatus, FaultHistoryView } from '../api/wire.js';
import { hardwareErrorText } from './format.js';

/** Wake-up lateness counts in the status's coarse buckets over a window (see LoopStatus.latenessBuckets). */
export interface LatenessWindow {
  edgesUs: readonly number[];
  counts: readonly number[];
  /** How long the window is, s; null: since the daemon started. */
  seconds: number | null;
}

export interface TopInput {
  status: DaemonStatus | null;
  faults: FaultHistoryView | null;
  /** The small histogram of wake-up lateness; null before the first status. */
  lateness: LatenessWindow | null;
  /** Why the daemon cannot be read now, if it cannot. */
  problem: string | null;
  /** The outcome of the last key. */
  message: string;
  width: number;
  height: number;
}

const EIGHTHS = ' ▏▎▍▌▋▊▉';

/** A bar `width` characters long at most, scaled to `max`; any count above 0 shows at least a sliver. */
export function bar(v: number, max: number, width: number): string {
  if (!(v > 0) || !(max > 0)) return ' '.repeat(width);
  const eighths = Math.max(1, Math.round((v / max) * width * 8));
  const full = Math.floor(eighths / 8);
  const rest = eighths % 8;
  return `${'█'.repeat(full)}${rest > 0 ? EIGHTHS[rest] : ''}`.padEnd(width);
}

function uptime(s: number): string {
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
}

const f = (x: number | null | undefined, d: number) => (x === null || x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d));
const col = (s: string, w: number) => (s.length >= w ? `${s.slice(0, w - 1)} ` : s.padEnd(w));
const num = (s: string, w: number) => `${s.padStart(w - 1)} `;

const KEYS = 'q quit  e e-stop  r reset  s start policy  S stop policy';

function header(s: DaemonStatus): string[] {
  const l = s.loop;
  const mode = l.healthy ? l.mode.toUpperCase() : 'STALLED';
  return [`reflex top  ${s.deviceId}  up ${uptime(s.uptimeS)}  ${mode}  ${f(l.rateHz, 1)} of ${l.targetHz} Hz  pid ${s.pid}`];
}

function loop(s: DaemonStatus): string[] {
  const l = s.loop;
  const rt = l.realtime === null ? 'real time unknown' : l.realtime.fifoPriority !== null ? `SCHED_FIFO ${l.realtime.fifoPriority}` : 'not real time';
  return [
    `LOOP    lateness p50 ${f(l.latenessUs.p50, 1)} p99 ${f(l.latenessUs.p99, 1)} max ${f(l.latenessUs.max, 1)} us   tick p50 ${f(l.tickDurationUs.p50, 0)} p99 ${f(l.tickDurationUs.p99, 0)} max ${f(l.tickDurationUs.max, 0)} us`,
    `        ticks ${l.ticks}  missed ${l.missedDeadlines}  overruns ${l.overruns}  starved ${l.starvedTicks}  ${rt}`,
  ];
}

const us = (v: number) => (v >= 1000 ? `${v / 1000} ms` : `${v} us`);

/** The lateness histogram: two columns of buckets, each with its bar and count. */
function latenessHistogram(w: LatenessWindow | null): string[] {
  if (w === null || w.counts.length !== w.edgesUs.length + 1) return [];
  const total = w.counts.reduce((a, b) => a + b, 0);
  const max = Math.max(0, ...w.counts);
  const label = (i: number) => (i < w.edgesUs.length ? `<=${us(w.edgesUs[i]!)}` : `>${us(w.edgesUs.at(-1)!)}`);
  const cell = (i: number) => `${label(i).padEnd(9)}${bar(w.counts[i]!, max, 12)} ${String(w.counts[i]).padStart(6)}`;
  const rows = Math.ceil(w.counts.length / 2);
  const out = [`WAKE    lateness histogram, ${total} ticks ${w.seconds === null ? 'since start' : `in the last ${w.seconds.toFixed(0)} s`}`];
  for (let r = 0; r < rows; r++) out.push(`        ${cell(r)}${r + rows < w.counts.length ? `    ${cell(r + rows)}` : ''}`);
  return out;
}

/** Safety interventions by joint and rule, and each joint's failed reads, since the daemon started. */
function interventions(s: DaemonStatus): string[] {
  const l = s.loop;
  const by = (l.safety.byJoint as DaemonStatus['loop']['safety']['byJoint'] | undefined) ?? [];
  if (by.length === 0) return [];
  const rows = [`${col('INTERVENTIONS', 14)}${num('limit', 8)}${num('velocity', 10)}${num('NaN/Inf', 9)}${num('failed reads', 14)} since start, ${f(l.policyTimeS, 0)} s of policy`];
  for (const j of by) rows.push(`${col(j.joint, 14)}${num(String(j.limitClamps), 8)}${num(String(j.deltaClamps), 10)}${num(String(j.nonFinite), 9)}${num(String(j.failedReads), 14)}`);
  return rows;
}

function joints(s: DaemonStatus): string[] {
  const last = s.loop.lastTick?.joints ?? [];
  const health = new Map((s.joints ?? []).map((h) => [h.joint, h]));
  const names = last.length > 0 ? last.map((j) => j.name) : [...health.keys()];
  const rows = [`${col('JOINT', 12)}${num('position', 10)}${num('target', 10)}${num('command', 10)}${num('velocity', 10)}${num('effort', 9)}${num('temp C', 8)}${num('volt', 7)} hardware`];
  for (const name of names) {
    const j = last.find((x) => x.name === name);
    const h = health.get(name);
    rows.push(
      `${col(name, 12)}${num(f(j?.position, 3), 10)}${num(f(j?.action, 3), 10)}${num(f(j?.command, 3), 10)}${num(f(j?.velocity, 3), 10)}${num(f(j?.effort, 2), 9)}` +
        `${num(f(h?.temperatureC, 0), 8)}${num(f(h?.voltageV, 1), 7)} ${h === undefined ? '-' : hardwareErrorText(h.hardwareError)}`,
    );
  }
  return rows;
}

function safety(s: DaemonStatus): string[] {
  const x = s.loop.safety;
  const b = s.loop.bus;
  const now = s.loop.lastTick?.interventions ?? [];
  return [
    `SAFETY  limit ${x.limitClamps}  velocity ${x.deltaClamps}  NaN/Inf ${x.nonFinite}  soft starts ${x.softStarts}  e-stops ${x.estops}  faults ${x.faults}  now: ${now.length === 0 ? 'none' : now.join(', ')}`,
    `BUSES   ${s.loop.buses.map((bus) => `${bus.name} ${bus.state}${bus.reason ? ` (${bus.reason})` : ''}${busErrors(s, bus.name)}`).join('; ') || 'none'}   CAN load ${b.loadPct}%`,
  ];
}

/** A bus's failed reads and retries (retries are counted per bus, not per motor). */
function busErrors(s: DaemonStatus, name: string): string {
  const e = (s.loop.bus.byBus as DaemonStatus['loop']['bus']['byBus'] | undefined)?.find((x) => x.name === name);
  return e === undefined ? '' : ` ${e.failedReads} failed reads ${e.retries} retries`;
}

function policy(s: DaemonStatus): string[] {
  const p = s.policy;
  const name = p.active ? `${p.active.name} ${p.active.version} on ${p.active.provider}` : `none (${p.state}${p.error ? `: ${p.error}` : ''})`;
  const i = p.inference;
  return [
    `POLICY  ${name}  inference p50 ${f(i.p50Ms, 1)} p99 ${f(i.p99Ms, 1)} ms  ${i.count} runs ${i.errors} errors  chunk age ${f(s.loop.chunks.ageMs, 0)} ms  frame age p50 ${f(p.frameAgeMs.p50, 0)} ms  starved ${s.loop.starvedTicks}`,
  ];
}

function cameras(s: DaemonStatus): string[] {
  if (s.cameras.length === 0) return ['CAMERAS none'];
  return [`CAMERAS ${s.cameras.map((c) => `${c.name} ${c.state} ${f(c.fps, 1)} fps age ${c.ageMs === null ? '-' : `${f(c.ageMs, 0)} ms`}`).join('; ')}`];
}

function fleet(s: DaemonStatus): string[] {
  const fl = s.fleet;
  if (!('outbox' in fl)) return [`FLEET   ${fl.state}`];
  return [`FLEET   ${fl.state}${fl.error ? ` (${fl.error})` : ''}  outbox ${fl.outbox.pending} pending  ${fl.reconnects} reconnects`];
}

function faults(s: DaemonStatus, h: FaultHistoryView | null): string[] {
  const out = [`FAULTS  ${s.faults.length === 0 ? 'none now' : s.faults.join('; ')}`];
  for (const e of (h?.entries ?? []).slice(-3).reverse()) {
    out.push(`        ${e.at.slice(11, 19)} ${e.kind === 'estop' ? 'e-stop' : 'fault'} ${e.reason}${e.cleared ? `  (cleared: ${e.cleared.by})` : '  (holding)'}`);
  }
  return out;
}

/** The screen, at most `height` lines of at most `width` characters. */
export function topLines(t: TopInput): string[] {
  const width = Math.max(20, t.width);
  const height = Math.max(3, t.height);
  const footer = [`${t.message ? `> ${t.message}` : ''}`, KEYS];
  let body: string[][];
  if (t.status === null) {
    body = [[`reflex top: ${t.problem ?? 'waiting for the daemon...'}`]];
  } else {
    const s = t.status;
    // Most needed first: a short terminal loses the last ones.
    body = [header(s), ...(t.problem ? [[`(${t.problem})`]] : []), loop(s), joints(s), interventions(s), safety(s), policy(s), faults(s, t.faults), latenessHistogram(t.lateness), cameras(s), fleet(s)];
  }
  const room = height - footer.length;
  const all = body.flat();
  // What does not fit is cut from the end (the least needed sections), and the cut is said.
  const lines = all.length <= room ? all : [...all.slice(0, Math.max(0, room - 1)), `... ${all.length - room + 1} more lines: enlarge the terminal`];
  return [...lines, ...footer].slice(-height).map((l) => (l.length > width ? l.slice(0, width) : l));
}
