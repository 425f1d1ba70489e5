// `reflex estop | reset | policy ...`: the verbs that stop, clear and drive the robot through the
// running daemon. Each says what the loop did; an operation the daemon's state refuses (a
// policy start with no policy, a reset of a loop that was fine) exits 1, not 64 (usage).
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { ReflexError } from '../core/index.js';
import { request, type DaemonStatus } from '../api/wire.js';
import { daemonOptions, print, socketPath, type DaemonOptions } from './program.js';

/** How long a command the loop takes at its next tick may take; a reset reopens buses (backoff). */
const RESET_TIMEOUT_MS = 60_000;

function policyLine(p: DaemonStatus['policy']): string {
  if (p.active === null) return `no active policy (${p.state}${p.error ? `: ${p.error}` : ''})`;
  return `${p.active.name} ${p.active.version} on ${p.active.provider}`;
}

function refused(message: string): never {
  throw new ReflexError('REFUSED', message);
}

export function registerControl(program: Command): void {
  daemonOptions(program.command('estop').description('e-stop: hold (or torque off) where the arm is, latched until reset (always allowed)')).action(
    async (opts: DaemonOptions) => {
      const r = await request(socketPath(opts), 'estop');
      print(opts, r, () => `e-stop engaged: the loop is in ${r.mode}; \`reflex reset\` clears it\n`);
    },
  );

  daemonOptions(program.command('reset').description('clear an e-stop or a fault (reopening a lost bus); the loop goes back to hold')).action(
    async (opts: DaemonOptions) => {
      const sock = socketPath(opts);
      const before = await request(sock, 'status');
      const was = before.loop.mode;
      if (was !== 'estop' && was !== 'fault') refused(`nothing to reset: the loop is in ${was}${before.faults.length > 0 ? ` (faults: ${before.faults.join('; ')})` : ''}`);
      const r = await request(sock, 'reset', {}, RESET_TIMEOUT_MS);
      print(opts, { was, ...r }, () => `${was === 'estop' ? 'e-stop' : `fault (${before.loop.fault ?? 'unknown'})`} cleared: the loop is in ${r.mode}; \`reflex policy start\` moves the arm again\n`);
    },
  );

  const policy = program.command('policy').description('the policy that drives the arm');
  daemonOptions(policy.command('status').description('the active policy, its inference numbers and the loop\'s mode')).action(async (opts: DaemonOptions) => {
    const s = await request(socketPath(opts), 'status');
    const p = s.policy;
    print(opts, { mode: s.loop.mode, ...p }, () =>
      [
        `policy     ${policyLine(p)}`,
        `loop       ${s.loop.mode}${s.loop.mode === 'policy' ? ' (the policy drives the arm)' : ''}`,
        `inference  ${p.inference.count} runs, p50 ${p.inference.p50Ms} ms, p99 ${p.inference.p99Ms} ms, max ${p.inference.maxMs} ms, ${p.inference.errors} errors, ${p.inference.overBudget} over budget`,
        `starved    ${s.loop.starvedTicks} ticks without an action`,
        ...(p.loading ? [`loading    ${p.loading}`] : []),
        ...(p.previous ? [`previous   ${p.previous.name} ${p.previous.version} (\`reflex policy rollback\`)`] : []),
      ].join('\n') + '\n',
    );
  });
  daemonOptions(policy.command('list').description('the policies the daemon holds: active, previous (for rollback), loading')).action(async (opts: DaemonOptions) => {
    const p = (await request(socketPath(opts), 'status')).policy;
    const rows = [
      ...(p.active ? [{ role: 'active', name: p.active.name, version: p.active.version, dir: p.active.dir, provider: p.active.provider }] : []),
      ...(p.previous ? [{ role: 'previous', name: p.previous.name, version: p.previous.version, dir: p.previous.dir, provider: p.previous.provider }] : []),
      ...(p.loading ? [{ role: 'loading', name: '', version: '', dir: p.loading, provider: '' }] : []),
    ];
    print(opts, rows, () => (rows.length === 0 ? `no policy loaded (${p.state}${p.error ? `: ${p.error}` : ''})\n` : rows.map((r) => `${r.role.padEnd(9)} ${r.name} ${r.version}  ${r.dir}${r.provider ? `  (${r.provider})` : ''}`).join('\n') + '\n'));
  });
  daemonOptions(policy.command('start').description('run the active policy (soft start from hold)')).action(async (opts: DaemonOptions) => {
    const sock = socketPath(opts);
    const r = await request(sock, 'policy.start');
    if (r.mode !== 'policy') {
      const s = await request(sock, 'status');
      refused(`the policy did not start: the loop is in ${r.mode}${s.policy.active === null ? ' and there is no active policy (`reflex policy activate PATH`)' : ''}${r.mode === 'estop' || r.mode === 'fault' ? ' (`reflex reset` first)' : ''}`);
    }
    print(opts, r, () => 'the policy drives the arm (soft start)\n');
  });
  daemonOptions(policy.command('stop').description('stop acting on the policy: hold where the arm is')).action(async (opts: DaemonOptions) => {
    const r = await request(socketPath(opts), 'policy.stop');
    print(opts, r, () => `holding: the loop is in ${r.mode}\n`);
  });
  daemonOptions(policy.command('activate').description('load a policy bundle, warm it up, and swap it in at a chunk boundary (the mode is kept)').argument('<path>', 'the bundle directory on the robot')).action(
    async (path: string, opts: DaemonOptions) => {
      // The daemon resolves paths from its own working directory; the technician means theirs.
      const info = await request(socketPath(opts), 'policy.activate', { path: resolve(path) }, 10 * 60_000);
      print(opts, info, () => `active: ${info.name} ${info.version} on ${info.provider} (warm-up ${info.warmUpMs} ms)\n`);
    },
  );
  daemonOptions(policy.command('rollback').description('swap back to the previous policy (the mode is kept)')).action(async (opts: DaemonOptions) => {
    const info = await request(socketPath(opts), 'policy.rollback', {}, 60_000);
    print(opts, info, () => `active: ${info.name} ${info.version} on ${info.provider} (rolled back)\n`);
  });
}
