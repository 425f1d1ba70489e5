// `reflex top`: registered here; the screen (ink and React, slow to load) is loaded only when
// it runs, so every other verb starts without them.
import type { Command } from 'commander';
import { ReflexError } from '../core/index.js';
import { daemonOptions, socketPath, type DaemonOptions } from './program.js';

export function registerTop(program: Command): void {
  daemonOptions(
    program
      .command('top')
      .description('live full-screen view: loop timing, every joint, safety, policy, cameras, fleet, faults; keys e, r, s, S, q')
      .option('--interval <ms>', 'refresh every this many ms (100 or more)', '250'),
  ).action(async (opts: DaemonOptions & { interval: string }) => {
    const ms = Number(opts.interval);
    if (!Number.isFinite(ms) || ms < 100) throw new ReflexError('BAD_REQUEST', `--interval ${opts.interval}: want a number of ms, 100 or more`);
    if (!process.stdout.isTTY || !process.stdin.isTTY) {
      throw new ReflexError('BAD_REQUEST', 'reflex top needs a terminal; for scripts use `reflex status --json`');
    }
    const { top } = await import('./top-screen.js');
    await top(socketPath(opts), ms);
    // The terminal is given back; nothing the view opened may keep the process alive.
    process.exit(0);
  });
}
