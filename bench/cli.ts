// `npm run bench -- cli`: what the technician's command costs. `reflex status` wall time (a
// whole process: start, connect, ask, print), next to `systemctl status`'s own time as the
// baseline (only where systemd is PID 1; `systemctl --version` at least where systemctl exists),
// and the daemon's CPU while `reflex top` refreshes in a real pty, next to the same daemon idle.
// Goals (issue 18): status under 200 ms, top under 1% of a core for the daemon.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI } from '../tools/testkit/paths.js';
import { spawnReflex, tempDir, testConfig, writeConfig } from '../tools/testkit/daemon.js';
import { SMOKE, argNumber, machine, progress, result, round, summary } from './_util.js';

const runs = argNumber('runs', 20, 3);
const windowS = argNumber('window', 20, 3);
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** CPU seconds (user + system) the process has used. */
function cpuS(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** Wall time of a command, ms, over `n` runs. */
function timed(cmd: string, args: string[], n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
    out.push(performance.now() - t0);
    if (r.status !== 0 && cmd === process.execPath) throw new Error(`${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  }
  return out;
}

async function daemonCpuPct(pid: number, seconds: number): Promise<number> {
  const a = cpuS(pid);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  return round(((cpuS(pid) - a) / seconds) * 100, 2);
}

function systemdBaseline(): { systemctl_status_ms: number | null; systemctl_version_ms: number | null; skipped: string | null } {
  const has = spawnSync('systemctl', ['--version'], { stdio: 'ignore' }).status === 0;
  if (!has) return { systemctl_status_ms: null, systemctl_version_ms: null, skipped: 'no systemctl on this machine' };
  const version = summary(timed('systemctl', ['--version'], runs)).p50;
  let pid1 = '';
  try {
    pid1 = readFileSync('/proc/1/comm', 'utf8').trim();
  } catch {
    // unreadable: treated as not systemd
  }
  if (pid1 !== 'systemd') return { systemctl_status_ms: null, systemctl_version_ms: version, skipped: `systemd is not PID 1 here (PID 1 is ${pid1 || 'unknown'}): systemctl status has nothing to ask` };
  return { systemctl_status_ms: summary(timed('systemctl', ['status', '--no-pager', 'systemd-journald'], runs)).p50, systemctl_version_ms: version, skipped: null };
}

const dir = tempDir('reflex-bench-cli-');
const socket = join(dir, 'control.sock');
const d = spawnReflex(['run', '--config', writeConfig(dir, testConfig(dir))]);
try {
  await d.waitForLog((l) => l.msg === 'reflex is running', 30_000);
  progress(`reflex status x${runs}`);
  timed(process.execPath, [CLI, 'status', '--socket', socket], 1); // warm the page cache
  const status = summary(timed(process.execPath, [CLI, 'status', '--socket', socket], runs));
  // What any Node.js program pays to start here: the floor under reflex status.
  const baseline = { ...systemdBaseline(), node_start_ms: summary(timed(process.execPath, ['-e', '0'], runs)).p50 };
  progress(`daemon idle for ${windowS} s`);
  const pid = d.proc.pid!;
  const idle = await daemonCpuPct(pid, windowS);
  progress(`reflex top (4 refreshes/s) in a pty for ${windowS} s`);
  const top = spawn('script', ['-qfec', `stty rows 40 cols 160; exec ${process.execPath} ${CLI} top --socket ${socket} --interval 250`, '/dev/null'], { stdio: ['pipe', 'ignore', 'ignore'] });
  await new Promise((r) => setTimeout(r, 2000)); // ink and the first screens
  const withTop = await daemonCpuPct(pid, windowS);
  top.stdin.write('q');
  await new Promise((r) => top.once('close', r));
  result({
    status_ms: status,
    baseline,
    daemon_cpu_pct: { idle, top: withTop },
    top_extra_cpu_pct: round(withTop - idle, 2),
    goals: { status_ms: 200, top_extra_cpu_pct: 1 },
    runs,
    window_s: windowS,
    smoke: SMOKE,
    machine: machine(),
  });
} finally {
  d.proc.kill('SIGTERM');
  await d.exited;
}
