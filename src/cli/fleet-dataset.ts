// `reflex fleet dataset`: the episodes a fleet uploaded (a bucket prefix synced to a folder) put
// together into one LeRobot dataset to train on; run again, it adds only what is new.
import type { Command } from 'commander';
import { EXIT, ReflexError, errorMessage } from '../core/index.js';
import { mergeEpisodes } from '../record/index.js';

/** sysexits' EX_DATAERR: some episodes were refused (each said why), the rest went in. */
const EX_DATAERR = 65;

interface DatasetCliOptions {
  from: string;
  out: string;
  device?: string[];
  task?: string;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];
const plural = (n: number, one: string) => `${n} ${one}${n === 1 ? '' : 's'}`;

export function registerFleetDataset(fleet: Command): void {
  fleet
    .command('dataset')
    .description("put the episodes robots uploaded (e.g. `aws s3 sync s3://bucket/prefix ./episodes`) into one LeRobot dataset; run again, it adds only the new ones")
    .requiredOption('--from <dir>', 'the synced folder: <device>/<episode id>/ (or one device\'s folder: <episode id>/)')
    .requiredOption('--out <dir>', 'the LeRobot dataset to create or add to')
    .option('--device <id>', 'only episodes of this device (repeatable)', collect)
    .option('--task <text>', 'only episodes of this task')
    .action(async (opts: DatasetCliOptions) => {
      const say = (s: string) => process.stdout.write(`${s}\n`);
      try {
        const r = await mergeEpisodes({ from: opts.from, out: opts.out, ...(opts.device ? { devices: opts.device } : {}), ...(opts.task !== undefined ? { task: opts.task } : {}) }, say);
        const frames = r.added.reduce((a, e) => a + e.length, 0);
        const parts = [`added ${plural(r.added.length, 'episode')} (${plural(frames, 'frame')})`];
        if (r.already > 0) parts.push(`${r.already} already there${r.relabeled.length > 0 ? ` (${r.relabeled.length} relabeled)` : ''}`);
        if (r.filtered > 0) parts.push(`${r.filtered} not asked for`);
        if (r.skipped.length > 0) parts.push(`${r.skipped.length} skipped (above, each with why)`);
        say(`${parts.join('; ')}; found ${plural(r.found, 'episode folder')} under ${opts.from}`);
        if (r.dataset !== null) say(`${opts.out}: ${plural(r.dataset.episodes, 'episode')}, ${plural(r.dataset.frames, 'frame')}, ${plural(r.dataset.tasks, 'task')}`);
        else say(`${opts.out}: nothing to make a dataset of`);
        process.exitCode = r.skipped.length > 0 ? EX_DATAERR : EXIT.OK;
      } catch (err) {
        process.stderr.write(`reflex fleet dataset: ${errorMessage(err)}\n`);
        process.exitCode = err instanceof ReflexError && err.code === 'BAD_REQUEST' ? EXIT.USAGE : EXIT.FAILURE;
      }
    });
}
