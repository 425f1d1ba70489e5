// `reflex faults`: what went wrong lately, to which joint, and what cleared it.
import type { Command } from 'commander';
import { request, type FaultHistoryView } from '../api/wire.js';
import { daemonOptions, print, socketPath, type DaemonOptions } from './program.js';

export function formatFaults(h: FaultHistoryView): string {
  if (h.entries.length === 0) return 'no faults or e-stops since the daemon started\n';
  const lines = h.entries.map((e) => {
    const state = e.cleared === null ? "HOLDING (not cleared)" : `cleared ${e.cleared.at}: ${e.cleared.by}`;
    return `${e.at}  ${e.kind === 'estop' ? 'E-STOP' : 'FAULT '}  ${e.joint === null ? '' : `[${e.joint}] `}${e.reason}\n    ${state}`;
  });
  if (h.dropped > 0) lines.unshift(`(${h.dropped} older entries dropped)`);
  return `${lines.join('\n')}\n`;
}

export function registerInspect(program: Command): void {
  daemonOptions(program.command('faults').description('the recent faults and e-stops: time, reason, joint, what cleared them').option('-n, --limit <n>', 'only the newest N')).action(
    async (opts: DaemonOptions & { limit?: string }) => {
      const limit = opts.limit === undefined ? undefined : Number(opts.limit);
      const h = await request(socketPath(opts), 'faults', limit === undefined ? {} : { limit });
      print(opts, h, () => formatFaults(h));
    },
  );
}
