// What the uploader tests share: a dataset as the uploader sees it (episodes with real files on
// disk) and a logger whose records a test reads back.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { EpisodeEntry, PendingUploads, UploadGrant, UploadSource, Uploader } from '../../src/record/index.js';
import type { Logger } from '../../src/core/index.js';

const MiB = 1024 ** 2;

/**
 * One episode per entry of `sizes` (its files' sizes: data.parquet first, then a video per
 * further size), with `flags[i]`. Files over a MiB are a repeated byte (cheap to make), smaller
 * ones random. `uploaded` lists the ids marked uploaded, in order.
 */
export function uploadDataset(dir: string, sizes: number[][], flags: string[][] = []) {
  mkdirSync(join(dir, 'files'), { recursive: true });
  const episodes = sizes.map((fileSizes, i) => {
    const id = randomUUID();
    const files = fileSizes.map((bytes, k) => {
      const name = k === 0 ? 'data.parquet' : `observation.images.cam${k}.mp4`;
      const path = join(dir, 'files', `${id}-${name}`);
      writeFileSync(path, bytes > MiB ? Buffer.alloc(bytes, i + k + 1) : randomBytes(bytes));
      return { name, path };
    });
    const entry = {
      id, episodeIndex: i, length: 10, task: 'fold the towel', from: i * 10, to: i * 10 + 10, flags: flags[i] ?? [], outcome: null, policy: { name: 'act', version: '1' },
      startedAt: new Date().toISOString(), repeatedFrames: 0, bytes: fileSizes.reduce((a, b) => a + b, 0), stats: {}, uploaded: null,
    } as unknown as EpisodeEntry;
    return { entry, files };
  });
  const uploaded: string[] = [];
  const source: UploadSource = {
    episodes: () => episodes.map((e) => e.entry),
    files: (e) => episodes.find((x) => x.entry.id === e.id)!.files,
    describe: () => ({ codebase_version: 'v3.0', fps: 10, robot_type: 'test', features: {} }),
    markUploaded: (id, meta, at) => {
      const e = episodes.find((x) => x.entry.id === id)!;
      e.entry = { ...e.entry, uploaded: { meta, at } };
      uploaded.push(id);
    },
  };
  return { episodes, source, uploaded };
}

/** A logger whose records the test reads back. */
export function recordingLogger(): { log: Logger; lines: { msg: string; err?: string }[] } {
  const lines: { msg: string; err?: string }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as { msg: string });
      done();
    },
  });
  return { log: pino({ level: 'info' }, sink), lines };
}

/**
 * The fleet link with a grant service folded in: every pending list with episodes is answered
 * with `answer`'s grant (none when it gives null), delivered to the attached uploader.
 */
export function fleetChannel(answer: (doc: PendingUploads) => UploadGrant | null | Promise<UploadGrant | null>) {
  const pending: PendingUploads[] = [];
  const events: { kind: string; data: unknown }[] = [];
  let target: Uploader | null = null;
  return {
    pending,
    events,
    attach: (u: Uploader) => (target = u),
    channel: {
      publishPending: (doc: PendingUploads) => {
        pending.push(doc);
        if (doc.episodes.length === 0) return;
        void Promise.resolve(answer(doc)).then((g) => {
          if (g !== null) setImmediate(() => target?.onGrant(Buffer.from(JSON.stringify(g))));
        });
      },
      event: (kind: string, data: unknown) => void events.push({ kind, data }),
    },
  };
}
