// `reflex logs [-f] [--module M] [--level L] [--since T]`: the daemon's log as readable lines.
// Under systemd the journal has it all (journalctl -u reflex -o cat gives the JSON lines);
// elsewhere (a checkout, a container) the daemon keeps its newest lines and hands them out.
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import { LOG_LEVELS, ReflexError, isLogLevel } from '../core/index.js';
import { request } from '../api/wire.js';
import { daemonOptions, socketPath, type DaemonOptions } from './program.js';

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const LEVEL_VALUES: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };
const SKIP = new Set(['level', 'time', 'mod', 'msg']);

export interface LogFilter {
  module?: string | undefined;
  minLevel: number;
  sinceMs: number | null;
}

/** `10m`, `2h`, `30s`, `1d` ago, or anything Date parses; null when it is neither. */
export function parseSince(text: string, now = Date.now()): number | null {
  const m = /^(\d+(?:\.\d+)?)\s*(s|m|h|d)$/.exec(text.trim());
  if (m) return now - Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'];
  const t = Date.parse(text);
  return Number.isNaN(t) ? null : t;
}

/** One JSON log line as a technician reads it, or null when the filter drops it. Other text passes as it is. */
export function prettyLine(line: string, f: LogFilter): string | null {
  let r: Record<string, unknown>;
  try {
    r = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return f.module === undefined && f.sinceMs === null ? line : null;
  }
  const level = typeof r.level === 'number' ? r.level : 30;
  const time = typeof r.time === 'number' ? r.time : null;
  if (level < f.minLevel) return null;
  if (f.module !== undefined && r.mod !== f.module) return null;
  if (f.sinceMs !== null && time !== null && time < f.sinceMs) return null;
  const extra = Object.entries(r)
    .filter(([k]) => !SKIP.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  const when = time === null ? '' : `${new Date(time).toISOString().replace('T', ' ').slice(0, 23)} `;
  return `${when}${(LEVEL_NAMES[level] ?? String(level)).padEnd(5)} [${typeof r.mod === 'string' ? r.mod : '-'}] ${typeof r.msg === 'string' ? r.msg : ''}${extra ? `  ${extra}` : ''}`;
}

/** Whether reflex runs as a systemd unit here, whose journal journalctl can read. */
function underSystemd(): boolean {
  const active = spawnSync('systemctl', ['is-active', '--quiet', 'reflex'], { timeout: 3000 });
  return active.status === 0 && spawnSync('journalctl', ['--version'], { timeout: 3000 }).status === 0;
}

async function fromJournal(opts: LogsOptions, f: LogFilter): Promise<void> {
  const args = ['-u', 'reflex', '-o', 'cat', '--no-pager', '-n', opts.lines];
  if (opts.follow) args.push('-f');
  if (opts.since !== undefined) args.push('--since', `@${Math.floor((f.sinceMs ?? 0) / 1000)}`);
  const j = spawn('journalctl', args, { stdio: ['ignore', 'pipe', 'inherit'] });
  for await (const line of createInterface({ input: j.stdout })) {
    const out = prettyLine(line, f);
    if (out !== null) process.stdout.write(`${out}\n`);
  }
}

async function fromDaemon(opts: LogsOptions, f: LogFilter): Promise<void> {
  const path = socketPath(opts);
  let r = await request(path, 'logs', { limit: Math.min(2000, Math.max(1, Number(opts.lines) || 200)) });
  for (;;) {
    if (r.missed > 0 && opts.follow) process.stdout.write(`(${r.missed} lines were not kept by the daemon)\n`);
    for (const line of r.lines) {
      const out = opts.json ? line : prettyLine(line, f);
      if (out !== null) process.stdout.write(`${out}\n`);
    }
    if (!opts.follow) return;
    await new Promise((res) => setTimeout(res, 500));
    r = await request(path, 'logs', { since: r.next });
  }
}

interface LogsOptions extends DaemonOptions {
  follow?: boolean;
  module?: string;
  level: string;
  since?: string;
  lines: string;
  daemon?: boolean;
}

export function registerLogs(program: Command): void {
  daemonOptions(
    program
      .command('logs')
      .description('the daemon\'s log as readable lines: from the journal under systemd, else from the daemon')
      .option('-f, --follow', 'keep printing new lines')
      .option('--module <mod>', 'only this module (control, policy, camera, fleet, socket, ...)')
      .option('--level <level>', `this level and above (${LOG_LEVELS.filter((l) => l !== 'silent').join(', ')})`, 'trace')
      .option('--since <time>', 'only lines since then: 10m, 2h, 1d, or a date')
      .option('-n, --lines <n>', 'the newest N lines to start with', '200')
      .option('--daemon', 'ask the daemon even under systemd'),
  ).action(async (opts: LogsOptions) => {
    if (!isLogLevel(opts.level)) throw new ReflexError('BAD_REQUEST', `--level ${opts.level}: want one of ${LOG_LEVELS.join(', ')}`);
    const sinceMs = opts.since === undefined ? null : parseSince(opts.since);
    if (opts.since !== undefined && sinceMs === null) throw new ReflexError('BAD_REQUEST', `--since ${opts.since}: want e.g. 10m, 2h, 1d or a date`);
    const f: LogFilter = { module: opts.module, minLevel: LEVEL_VALUES[opts.level] ?? 10, sinceMs };
    if (!opts.daemon && underSystemd()) await fromJournal(opts, f);
    else await fromDaemon(opts, f);
  });
}
