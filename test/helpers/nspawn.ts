// Debian's systemd booted as PID 1 of a `systemd-nspawn --boot` container, for the tests that
// need a real systemd (test/systemd-boot, test/flash-ssh). The caller says what the container
// is made of (its root, binds, overlays); this boots it, finds its PID 1, runs commands in it
// with nsenter and powers it off.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';

/** Why no container can be booted here, or null. */
/**
 * The config a container's reflex runs on: the simulated Dynamixel bus unit's pty, shoulder and
 * elbow. `extra`: more YAML lines (e.g. fault injection).
 */
export function containerConfig(deviceId: string, extra = ''): string {
  return `deviceId: ${deviceId}
log: { level: info, pretty: false }
buses:
  - { name: arm, kind: dynamixel, port: /run/reflex-sim/dxl0 }
robot:
  joints:
    - { name: shoulder, bus: arm, id: 2, model: xm430-w350, limits: { min: -1.6, max: 1.6 } }
    - { name: elbow, bus: arm, id: 3, model: xm430-w350, limits: { min: -2.2, max: 2.2 } }
${extra}`;
}

export function nspawnCannotRun(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (systemd-nspawn)';
  if (spawnSync('systemd-nspawn', ['--version']).status !== 0) return 'systemd-nspawn is not installed (Debian: systemd-container; scripts/bootstrap.mjs installs it as root)';
  if (!existsSync('/usr/lib/systemd/systemd') && !existsSync('/lib/systemd/systemd')) return 'no systemd to boot in /usr';
  if (spawnSync('nsenter', ['--version']).status !== 0) return 'nsenter is not installed (Debian: util-linux)';
  return null;
}

/** CAP_SYS_RESOURCE (bit 24): without it no container here gets hard limits above this machine's. */
export function mayRaiseLimits(): boolean {
  const eff = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0';
  return (BigInt(`0x${eff}`) & (1n << 24n)) !== 0n;
}

function children(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const ids = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
      if (ids) out.push(...ids.split(/\s+/).map(Number));
    }
  } catch {
    // gone
  }
  return out;
}

/** The container's PID 1 as this machine sees it: the process below nspawn that runs systemd. */
function containerInit(nspawn: number): number | null {
  const queue = children(nspawn);
  while (queue.length > 0) {
    const pid = queue.shift()!;
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'systemd') return pid;
    } catch {
      continue;
    }
    queue.push(...children(pid));
  }
  return null;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Container {
  /** A shell command inside the container (as its root), with its output and status. */
  sh(cmd: string): { code: number | null; out: string };
  /** `systemctl show -p PROP --value UNIT` inside the container. */
  show(unit: string, prop: string): string;
  /** Wait until check() holds, polling; fails with the container's journal tail after ms. */
  until(what: string, check: () => boolean, ms: number): Promise<void>;
  /** Power the container off (SIGTERM to nspawn), killing it after 20 s. */
  stop(): Promise<void>;
  /** What nspawn printed (the container's console). */
  log(): string;
}

/**
 * Boot `systemd-nspawn ARGS --boot -- systemd.unit=UNIT` (ARGS say what the container is made
 * of: -D ROOT, --volatile, binds). Resolves to the container, or to why it did not boot here.
 */
export async function bootContainer(args: string[], unit: string): Promise<Container | string> {
  const keepUnit = readFileSync('/proc/1/comm', 'utf8').trim() !== 'systemd';
  const all = [
    '-q', '--register=no', ...(keepUnit ? ['--keep-unit'] : []), `--machine=reflex-test-${process.pid}`,
    ...args,
    '--boot', '--', `systemd.unit=${unit}`,
  ];
  const proc: ChildProcess = spawn('systemd-nspawn', all, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  let init: number | null = null;
  for (let i = 0; i < 100 && init === null && proc.exitCode === null; i++) {
    await sleep(200);
    init = containerInit(proc.pid!);
  }
  if (init === null) {
    proc.kill('SIGKILL');
    await exited;
    return `systemd-nspawn did not boot a container here: ${output.trim().split('\n').slice(-3).join(' / ')}`;
  }
  const pid1 = init;
  const sh = (cmd: string) => {
    const r = spawnSync('nsenter', ['-t', String(pid1), '-a', 'sh', '-c', cmd], { encoding: 'utf8', timeout: 30_000 });
    return { code: r.status, out: r.stdout + r.stderr };
  };
  return {
    sh,
    show: (u, prop) => sh(`systemctl show -p ${prop} --value ${u}`).out.trim(),
    until: async (what, check, ms) => {
      const end = Date.now() + ms;
      while (!check()) {
        if (Date.now() > end) assert.fail(`${what}: not within ${ms} ms\n${sh('journalctl -o cat --no-pager -n 40').out}`);
        await sleep(250);
      }
    },
    stop: async () => {
      // SIGTERM to nspawn powers the container off.
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(t);
    },
    log: () => output,
  };
}
