// `reflex record start|stop|mark|status`: the flywheel recorder of the running daemon. Episodes
// follow the policy (they open when it starts and close when it stops); these verbs turn
// recording on and off, name the task, and mark how an episode went.
import type { Command } from 'commander';
import { request } from '../api/wire.js';
import type { RecordStatus } from '../record/index.js';
import { daemonOptions, print, socketPath, type DaemonOptions } from './program.js';

const MARKS = ['success', 'failure', 'intervention'] as const;

function uploadLine(u: RecordStatus['upload']): string {
  if (u.state === 'disabled') return `upload     off (${u.reason})`;
  const now =
    u.current !== null
      ? `sending ${u.current.file} of ${u.current.episode.slice(0, 8)}: ${u.current.sentMb}/${u.current.totalMb} MB`
      : u.state === 'waiting'
        ? 'waiting for the fleet to grant URLs'
        : u.state === 'backoff'
          ? `failed, again in ${u.retryInS ?? '?'} s: ${u.reason}`
          : u.state;
  return `upload     ${u.waiting} episodes waiting (${u.waitingMb} MB); ${u.uploaded} uploaded, ${u.sentMb} MB sent since start; ${now}${u.capKBps > 0 ? `; cap ${u.capKBps} KiB/s` : ''}`;
}

export function recordText(s: RecordStatus): string {
  const ep = s.episode;
  const lines = [
    `recorder   ${s.state}${s.reason ? ` (${s.reason})` : ''}`,
    `dataset    ${s.dir}: ${s.episodes} episodes, ${s.frames} frames at ${s.fps} fps, ${s.diskMb} MB${s.freeMb === null ? '' : `, ${s.freeMb} MB free`}`,
    ...(s.task !== null ? [`task       ${s.task}`] : []),
    ep === null
      ? `episode    ${s.state === 'armed' ? 'none open: one starts when the policy runs' : 'none'}`
      : `episode    ${s.episodes} recording: ${ep.frames} frames, ${ep.seconds} s${ep.flags.length ? `, flags ${ep.flags.join(', ')}` : ''}${ep.outcome ? `, ${ep.outcome}` : ''}`,
    `dropped    ${s.dropped.episodes} episodes${s.dropped.last ? ` (last: ${s.dropped.last})` : ''}; ${s.repeatedFrames} repeated frames, ${s.lostTicks} ticks lost`,
    ...(s.evicted.episodes > 0 ? [`deleted    ${s.evicted.episodes} old episodes for the disk bounds (${s.evicted.flagged} flagged, ${s.evicted.unsent} never uploaded; last: ${s.evicted.last})`] : []),
    uploadLine(s.upload),
    ...(s.recovered + s.discarded > 0 ? [`crashes    ${s.recovered} episodes recovered, ${s.discarded} discarded`] : []),
  ];
  return `${lines.join('\n')}\n`;
}

export function registerRecord(program: Command): void {
  const r = program.command('record').description('record LeRobot datasets from the running policy (episodes follow policy start and stop)');
  daemonOptions(r.command('start').description('record episodes while the policy runs; --task names what the robot is doing').option('--task <text>', 'the task of the episodes')).action(
    async (opts: DaemonOptions & { task?: string }) => {
      const s = await request(socketPath(opts), 'record.start', opts.task === undefined ? {} : { task: opts.task });
      print(opts, s, () => recordText(s));
    },
  );
  daemonOptions(r.command('stop').description('stop recording: the open episode is closed and saved')).action(async (opts: DaemonOptions) => {
    const s = await request(socketPath(opts), 'record.stop');
    print(opts, s, () => recordText(s));
  });
  daemonOptions(r.command('mark').description('mark the episode: success or failure (ends it), intervention (flags it)').argument('<label>', MARKS.join('|'))).action(
    async (label: string, opts: DaemonOptions) => {
      const s = await request(socketPath(opts), 'record.mark', { label: label as (typeof MARKS)[number] });
      print(opts, s, () => `marked ${label}\n${recordText(s)}`);
    },
  );
  daemonOptions(r.command('status').description('the recorder: state, the episode being recorded, episodes saved and dropped, disk')).action(async (opts: DaemonOptions) => {
    const s = await request(socketPath(opts), 'record.status');
    print(opts, s, () => recordText(s));
  });
}
