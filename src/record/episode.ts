// An episode being recorded, in its staging directory under the dataset
// (.reflex/staging/<seq>/): episode.json (task, policy, flags), rows.bin (the row journal) and
// one fragmented MP4 per camera. Finishing one (normally, or after a crash) turns whatever
// complete rows and frames it holds into a committed episode; nothing outside staging is
// touched until then.
import { closeSync, existsSync, fdatasync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { monoMs } from '../rt/index.js';
import { writeFileAtomic } from './files.js';
import { countFrames, remux, VideoEncoder } from './video.js';
import { journalRows, type RowLayout } from './row.js';
import type { Dataset, EpisodeEntry, EpisodeFlag, Outcome } from './dataset.js';
import type { FrameFeed } from './frames.js';

export interface EpisodeInfo {
  task: string;
  policy: { name: string; version: string } | null;
  startedAt: string;
  flags: EpisodeFlag[];
  outcome: Outcome | null;
}

export const STAGING = '.reflex/staging';
const INFO = 'episode.json';
const ROWS = 'rows.bin';
/** Rows journalled between fsyncs (about a second at the usual rates). */
const SYNC_EVERY_MS = 1000;

export interface Tools {
  ffmpeg: string;
  ffprobe: string;
}

export class LiveEpisode {
  readonly dir: string;
  rows = 0;
  interventionMarked = false;
  private readonly fd: number;
  private readonly encoders: VideoEncoder[];
  private readonly batch: Float64Array;
  private batched = 0;
  private lastSyncMs = monoMs();
  private syncing = false;

  constructor(
    root: string,
    readonly seq: string,
    private readonly layout: RowLayout,
    readonly feeds: readonly FrameFeed[],
    readonly info: EpisodeInfo,
    readonly generation: number,
    tools: Tools,
    fps: number,
  ) {
    this.dir = join(root, STAGING, seq);
    mkdirSync(this.dir, { recursive: true });
    this.saveInfo();
    this.fd = openSync(join(this.dir, ROWS), 'a');
    this.batch = new Float64Array(layout.length * 64);
    this.encoders = feeds.map((f) => new VideoEncoder({ ffmpeg: tools.ffmpeg, width: f.width, height: f.height, fps, out: join(this.dir, `${f.name}.mp4`) }));
  }

  saveInfo(): void {
    writeFileAtomic(join(this.dir, INFO), JSON.stringify(this.info));
  }

  /** Appends one row (journalled at the next flush) and its frames, one per feed. */
  append(row: Float64Array, frames: readonly Uint8Array[]): void {
    if (this.batched * this.layout.length >= this.batch.length) this.flush();
    this.batch.set(row, this.batched * this.layout.length);
    this.batched++;
    this.rows++;
    frames.forEach((frame, i) => {
      const feed = this.feeds[i]!;
      this.encoders[i]!.write(frame, () => feed.release(frame));
    });
  }

  /** Writes the journalled rows to the file; syncs it about once a second (off the thread, async). */
  flush(): void {
    if (this.batched > 0) {
      const bytes = new Uint8Array(this.batch.buffer, 0, this.batched * this.layout.length * 8);
      let at = 0;
      while (at < bytes.byteLength) at += writeSync(this.fd, bytes, at, bytes.byteLength - at);
      this.batched = 0;
    }
    if (!this.syncing && monoMs() - this.lastSyncMs >= SYNC_EVERY_MS) {
      this.syncing = true;
      this.lastSyncMs = monoMs();
      fdatasync(this.fd, () => (this.syncing = false));
    }
  }

  /** Frames handed to an encoder and not yet taken (the most of any camera). */
  get backlog(): number {
    return Math.max(0, ...this.encoders.map((e) => e.pending));
  }

  /** Why an encoder failed, if one did. */
  get failure(): string | null {
    return this.encoders.find((e) => e.failed !== null)?.failed ?? null;
  }

  /** Ends the recording: the journal flushed and closed, every encoder finished. */
  async close(timeoutMs: number): Promise<void> {
    this.flush();
    closeSync(this.fd);
    await Promise.all(this.encoders.map((e) => e.finish(timeoutMs)));
  }

  /** Drops the episode: encoders killed, staging removed. */
  async abort(): Promise<void> {
    try {
      closeSync(this.fd);
    } catch {
      // already closed
    }
    await Promise.all(this.encoders.map((e) => e.abort()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Staging directories left (by a crash, or waiting to be finished), oldest first. */
export function stagedEpisodes(root: string): string[] {
  const dir = join(root, STAGING);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((n) => statSync(join(dir, n)).isDirectory())
    .sort()
    .map((n) => join(dir, n));
}

export interface FinishResult {
  entry: EpisodeEntry | null;
  /** Rows the journal held, and how many became the episode (the last complete frame of every camera). */
  journalled: number;
  kept: number;
}

/**
 * Turns a staging directory into a committed episode: the complete rows of its journal and the
 * complete frames of each camera's fragmented MP4 (or `framesWritten`, after a clean finish), cut
 * to the shorter, the videos remuxed into
 * plain MP4s. Nothing usable (no complete row with its frames): the directory is removed and
 * the result says so. The staging directory is removed once the episode is committed.
 */
export async function finishStaged(dir: string, dataset: Dataset, layout: RowLayout, tools: Tools, recovered: boolean, framesWritten?: number): Promise<FinishResult> {
  const info = JSON.parse(readFileSync(join(dir, INFO), 'utf8')) as EpisodeInfo;
  const rowsFile = join(dir, ROWS);
  const rows = existsSync(rowsFile) ? journalRows(readFileSync(rowsFile), layout) : [];
  let n = rows.length;
  const cameras = dataset.shape.cameras;
  // After a crash the files say how many frames made it; after a clean finish, every frame
  // handed to ffmpeg is in its file (it exited 0), which saves a probe per camera.
  if (framesWritten !== undefined) n = Math.min(n, framesWritten);
  else for (const c of cameras) n = Math.min(n, await countFrames(tools.ffprobe, join(dir, `${c.name}.mp4`)));
  if (n === 0) {
    rmSync(dir, { recursive: true, force: true });
    return { entry: null, journalled: rows.length, kept: 0 };
  }
  const videos: string[] = [];
  for (const c of cameras) {
    const out = join(dir, `${c.name}.final.mp4`);
    await remux(tools.ffmpeg, join(dir, `${c.name}.mp4`), out, n);
    videos.push(out);
  }
  const flags = [...info.flags];
  if (recovered && !flags.includes('recovered')) flags.push('recovered');
  const entry = dataset.commit({ rows: rows.slice(0, n), layout, task: info.task, flags, outcome: info.outcome, policy: info.policy, startedAt: info.startedAt, videos });
  rmSync(dir, { recursive: true, force: true });
  return { entry, journalled: rows.length, kept: n };
}
