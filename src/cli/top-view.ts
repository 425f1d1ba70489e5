// What `reflex top` shows, as plain lines from one status (and the fault history): a pure
// function, so the screen is the same whatever draws it, and it degrades by dropping the least
// needed sections when the terminal is small and cutting lines at its width.
import type { DaemonStatus, FaultHistoryView } from '../api/index.js';
import { hardwareErrorText } from './format.js';

export interface TopInput {
  status: DaemonStatus | null;
  faults: FaultHistoryView | null;
  /** Recent p99 wake lateness, µs, oldest first (one per refresh): the small histogram. */
  latenessHistory: readonly number[];
  /** Why the daemon cannot be read now, if it cannot. */
  problem: string | null;
  /** The outcome of the last key. */
  message: string;
  width: number;
  height: number;
}

const BARS = '▁▂▃▄▅▆▇█';

/** One character per value, scaled to the largest. */
export function sparkline(values: readonly number[]): string {
  const max = Math.max(1, ...values);
  return values.map((v) => BARS[Math.min(BARS.length - 1, Math.floor((v / max) * (BARS.length - 1)))]).join('');
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

function loop(s: DaemonStatus, history: readonly number[]): string[] {
  const l = s.loop;
  const rt = l.realtime === null ? 'real time unknown' : l.realtime.fifoPriority !== null ? `SCHED_FIFO ${l.realtime.fifoPriority}` : 'not real time';
  return [
    `LOOP    lateness p50 ${f(l.latenessUs.p50, 1)} p99 ${f(l.latenessUs.p99, 1)} max ${f(l.latenessUs.max, 1)} us   tick p50 ${f(l.tickDurationUs.p50, 0)} p99 ${f(l.tickDurationUs.p99, 0)} max ${f(l.tickDurationUs.max, 0)} us`,
    `        ticks ${l.ticks}  missed ${l.missedDeadlines}  overruns ${l.overruns}  starved ${l.starvedTicks}  ${rt}`,
    `        p99 lateness, last ${history.length} refreshes: ${sparkline(history)} (max ${f(Math.max(0, ...history), 1)} us)`,
  ];
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
    `BUSES   ${s.loop.buses.map((bus) => `${bus.name} ${bus.state}${bus.reason ? ` (${bus.reason})` : ''}`).join('; ') || 'none'}   failed reads ${b.failedReads}, retries ${b.retries}, CAN load ${b.loadPct}%`,
  ];
}

function policy(s: DaemonStatus): string[] {
  const p = s.policy;
  const name = p.active ? `${p.active.name} ${p.active.version} on ${p.active.provider}` : `none (${p.state}${p.error ? `: ${p.error}` : ''})`;
  const i = p.inference;
  return [`POLICY  ${name}  inference p50 ${f(i.p50Ms, 1)} p99 ${f(i.p99Ms, 1)} ms  ${i.count} runs ${i.errors} errors  frame age p50 ${f(p.frameAgeMs.p50, 0)} ms  starved ${s.loop.starvedTicks}`];
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
    body = [header(s), ...(t.problem ? [[`(${t.problem})`]] : []), loop(s, t.latenessHistory), joints(s), safety(s), policy(s), faults(s, t.faults), cameras(s), fleet(s)];
  }
  const room = height - footer.length;
  const all = body.flat();
  // What does not fit is cut from the end (the least needed sections), and the cut is said.
  const lines = all.length <= room ? all : [...all.slice(0, Math.max(0, room - 1)), `... ${all.length - room + 1} more lines: enlarge the terminal`];
  return [...lines, ...footer].slice(-height).map((l) => (l.length > width ? l.slice(0, width) : l));
}
