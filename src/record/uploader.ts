// Store and forward: committed episodes go to object storage, flagged ones first, through the
// presigned URLs the fleet grants (see upload-protocol.ts). An episode about to go up is first
// snapshotted: its files hard-linked under <dataset>/.reflex/uploads/<id>/, so that the disk
// policy renumbering or deleting episodes never changes bytes half-sent. Progress (a multipart
// upload's id and each stored part's ETag) is synced after every part, so a restart or a new
// grant resumes at the first part not stored. Failures back off exponentially; a refused or
// expired grant asks for a new one. Only URLs under record.upload.origins are ever contacted.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, linkSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage, type Logger, type Part } from '../core/index.js';
import { monoMs } from '../rt/index.js';
import { isFlagged, type EpisodeEntry } from './dataset.js';
import { writeFileAtomic } from './files.js';
import { OFFER_MAX, parseGrant, type GrantedFile, type OfferedFile, type PendingUploads, type UploadGrant } from './upload-protocol.js';
import { TokenBucket, UploadError, completeMultipart, putRange, type RequestOptions } from './upload-http.js';

/** What the uploader needs of the dataset (the recorder lends it once the dataset is open). */
export interface UploadSource {
  /** The committed episodes, oldest first; empty while the dataset is not open. */
  episodes(): readonly EpisodeEntry[];
  files(e: EpisodeEntry): { name: string; path: string }[];
  /** What every episode.json carries so that the fleet can rebuild a LeRobot dataset. */
  describe(): { codebase_version: string; fps: number; robot_type: string; features: Record<string, unknown> } | null;
  markUploaded(id: string, meta: string, at: string): void;
}

/** The fleet link as the uploader uses it. */
export interface UploadChannel {
  publishPending(doc: PendingUploads): void;
  event(kind: string, data: unknown): void;
}

export interface UploaderOptions {
  deviceId: string;
  /** Where the snapshots and their progress live: <dataset>/.reflex/uploads. */
  dir: string;
  /** URL prefixes (scheme, host, port, path) an upload may go to; anything else is refused. */
  origins: readonly string[];
  /** The bandwidth cap over all uploads, bytes/s (0: none). */
  maxBytesPerS: number;
  /** A request that moves no byte for this long is abandoned. */
  idleMs?: number;
  /** A request slower than this on average is abandoned (default 4 KiB/s, at most half the cap). */
  minBytesPerS?: number;
  backoff?: { minMs: number; maxMs: number };
  /** How often the dataset is looked at for new episodes or marks. */
  pollMs?: number;
  /**
   * How long to wait for a grant before asking again (default 10 min): a pending list can be
   * lost (a broker restarted without its retained messages, a grant service that missed it).
   */
  reaskMs?: number;
}

export interface UploadStatus {
  state: 'disabled' | 'idle' | 'waiting' | 'uploading' | 'backoff';
  /** Why uploads are disabled, or what the last failure was. */
  reason: string | null;
  /** Episodes not yet uploaded (or whose marks changed since), and their bytes. */
  waiting: number;
  waitingMb: number;
  /** Since the daemon started. */
  uploaded: number;
  sentMb: number;
  current: { episode: string; file: string; sentMb: number; totalMb: number } | null;
  retryInS: number | null;
  capKBps: number;
}

export const UPLOADS_DISABLED = (reason: string): UploadStatus => ({
  state: 'disabled', reason, waiting: 0, waitingMb: 0, uploaded: 0, sentMb: 0, current: null, retryInS: null, capKBps: 0,
});

interface FileProgress extends OfferedFile {
  done: boolean;
  partBytes?: number;
  etags: string[];
}

/** <uploads>/<id>/progress.json: synced after every part. */
interface Progress {
  id: string;
  meta: string;
  files: FileProgress[];
}

const PROGRESS = 'progress.json';
/** How often snapshots of deleted episodes are looked for (the disk policy looks every second). */
const RELEASE_MS = 500;
const NOT_OPEN = 'the dataset is not open (recording unavailable): its episodes wait';
const EPISODE_JSON = 'episode.json';
const MB = 1024 ** 2;
const round1 = (x: number) => Math.round(x * 10) / 10;

/** Stops when `signal` does: a multi-GB file on a slow card must not hold up the daemon's stop. */
async function sha256File(path: string, signal: AbortSignal): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path, { highWaterMark: 256 * 1024, signal }) as AsyncIterable<Buffer>) h.update(c);
  return h.digest('hex');
}

/** The parts of an episode that a technician's mark can change, and the rest the fleet wants; hashed to notice a mark after the upload. */
function episodeMeta(e: EpisodeEntry): Record<string, unknown> {
  const { episode_index: _e, index: _i, ...stats } = e.stats as Record<string, unknown>;
  return { id: e.id, task: e.task, length: e.length, flags: e.flags, outcome: e.outcome, policy: e.policy, startedAt: e.startedAt, repeatedFrames: e.repeatedFrames, stats };
}

/** Entries are replaced, never changed, when marked: one hash per entry object, not one per look (status asks often). */
const hashes = new WeakMap<EpisodeEntry, string>();
function metaHash(e: EpisodeEntry): string {
  let h = hashes.get(e);
  if (h === undefined) {
    h = createHash('sha256').update(JSON.stringify(episodeMeta(e))).digest('hex');
    hashes.set(e, h);
  }
  return h;
}


export class Uploader implements Part {
  readonly name = 'uploads';
  private readonly throttle: TokenBucket;
  private readonly abort = new AbortController();
  private running: Promise<void> | null = null;
  private wakeUp: (() => void) | null = null;
  private stopped = false;
  private grant: UploadGrant | null = null;
  private seq = 0;
  /** The offer last published, to publish again only when it changes. */
  private offered = '';
  private renew = false;
  /** The file being sent, to be abandoned when the disk policy deletes its episode. */
  private inFlight: { id: string; gone: AbortController } | null = null;
  private releaser: NodeJS.Timeout | null = null;
  /** When the pending list last went out (monotonic ms). */
  private offeredAtMs = 0;
  private failures = 0;
  private retryAtMs: number | null = null;
  private state: UploadStatus['state'] = 'idle';
  private reason: string | null = null;
  private current: UploadStatus['current'] = null;
  private readonly counts = { uploaded: 0, sent: 0 };
  /** Episodes whose files cannot be snapshotted (missing on disk): not offered again this boot. */
  private readonly broken = new Set<string>();

  constructor(
    private readonly o: UploaderOptions,
    private readonly source: UploadSource,
    private readonly channel: UploadChannel,
    private readonly log: Logger,
  ) {
    this.throttle = new TokenBucket(o.maxBytesPerS);
  }

  /** A grant document from the fleet (retained: also the current one at every connect). */
  onGrant(payload: Buffer): void {
    if (payload.length === 0) return;
    const r = parseGrant(payload);
    if (!r.ok) {
      this.log.warn({ err: r.reason }, 'upload grant refused');
      return;
    }
    this.grant = r.grant;
    this.kick();
  }

  start(): Promise<void> {
    mkdirSync(this.o.dir, { recursive: true });
    this.running = this.run();
    this.releaser = setInterval(() => this.release(), RELEASE_MS);
    return Promise.resolve();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.releaser !== null) clearInterval(this.releaser);
    this.abort.abort();
    this.kick();
    await this.running;
  }

  private kick(): void {
    this.wakeUp?.();
  }

  private async wait(ms: number): Promise<void> {
    if (this.stopped) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wakeUp = () => {
        clearTimeout(t);
        resolve();
      };
    });
    this.wakeUp = null;
  }

  /** Episodes that need an upload: never uploaded, or marked since; flagged ones first, then the oldest. */
  private queue(): EpisodeEntry[] {
    const need = this.source.episodes().filter((e) => !this.broken.has(e.id) && (e.uploaded === null || e.uploaded.meta !== metaHash(e)));
    return [...need.filter(isFlagged), ...need.filter((e) => !isFlagged(e))];
  }

  private async run(): Promise<void> {
    const backoff = this.o.backoff ?? { minMs: 2000, maxMs: 300_000 };
    while (!this.stopped) {
      try {
        // Recording unavailable (a config the dataset refuses, a bad disk): its episodes are still
        // there, and so are the snapshots of those half-sent; none is swept, and status says why.
        if (this.source.describe() === null) {
          this.state = 'idle';
          this.reason = NOT_OPEN;
          await this.wait(this.o.pollMs ?? 2000);
          continue;
        }
        if (this.reason === NOT_OPEN) this.reason = null;
        const queue = this.queue();
        this.sweep(new Set(queue.map((e) => e.id)));
        const batch: Progress[] = [];
        for (const e of queue.slice(0, OFFER_MAX)) {
          const p = await this.snapshot(e);
          if (p !== null) batch.push(p);
        }
        this.offer(batch, queue);
        if (batch.length === 0) {
          this.state = 'idle';
          const broken = this.source.episodes().filter((e) => this.broken.has(e.id)).length;
          if (broken > 0) this.reason = `${broken} episode${broken === 1 ? '' : 's'} cannot be uploaded: files missing on disk (see the log)`;
          await this.wait(this.o.pollMs ?? 2000);
          continue;
        }
        const grant = this.grant?.seq === this.seq ? this.grant : null;
        if (grant === null) {
          if (monoMs() - this.offeredAtMs >= (this.o.reaskMs ?? 600_000)) this.renew = true;
          this.state = 'waiting';
          await this.wait(this.o.pollMs ?? 2000);
          continue;
        }
        this.state = 'uploading';
        this.adopt(grant, batch);
        let progressed = false;
        for (const g of grant.episodes) {
          const p = batch.find((b) => b.id === g.id);
          if (p !== undefined && (await this.uploadEpisode(p, g.files))) progressed = true;
        }
        // A grant for this very list that moves nothing is wrong (a careless or hostile grant
        // service): asked again only after a backoff, not once per poll forever.
        if (!progressed) throw new UploadError('refused', 'the grant covers none of the files offered');
        this.failures = 0;
        this.retryAtMs = null;
        this.reason = null;
      } catch (err) {
        if (this.stopped) break;
        this.current = null;
        this.failures++;
        const ms = Math.min(backoff.maxMs, backoff.minMs * 2 ** Math.min(this.failures - 1, 20)) * (0.75 + Math.random() * 0.5);
        this.reason = errorMessage(err);
        if (err instanceof UploadError && err.kind !== 'transient') this.renew = true;
        this.state = 'backoff';
        this.retryAtMs = monoMs() + ms; // monotonic: a clock set by NTP meanwhile does not move it
        this.log.warn({ err: this.reason, retryInS: Math.round(ms / 100) / 10 }, 'upload failed; trying again later');
        await this.wait(ms);
        this.retryAtMs = null;
      }
    }
    this.state = 'idle';
  }

  /**
   * Keeps at once every multipart upload the grant began, not when its file's turn comes: asked
   * again meanwhile (a failure on an earlier file), the robot names them and the fleet begins no
   * new ones (each would be left behind half-made in the bucket).
   */
  private adopt(grant: UploadGrant, batch: readonly Progress[]): void {
    for (const g of grant.episodes) {
      const p = batch.find((b) => b.id === g.id);
      if (p === undefined) continue;
      let changed = false;
      for (const gf of g.files) {
        const f = 'multipart' in gf ? p.files.find((x) => x.name === gf.name) : undefined;
        if (f === undefined || !('multipart' in gf) || f.done || f.etags.length > 0 || f.uploadId === gf.multipart.uploadId) continue;
        f.uploadId = gf.multipart.uploadId;
        f.partBytes = gf.multipart.partBytes;
        changed = true;
      }
      if (changed) this.save(join(this.o.dir, p.id), p);
    }
  }

  /** Publishes the pending list when what is offered changed, or a new grant is needed. */
  private offer(batch: readonly Progress[], queue: readonly EpisodeEntry[]): void {
    const doc = {
      episodes: batch.map((p) => ({ id: p.id, files: p.files.filter((f) => !f.done).map(({ name, bytes, sha256, uploadId }) => ({ name, bytes, sha256, ...(uploadId !== undefined ? { uploadId } : {}) })) })),
      waiting: queue.length,
      waitingBytes: queue.reduce((a, e) => a + e.bytes, 0),
    };
    const text = JSON.stringify(doc);
    if (text === this.offered && !this.renew) return;
    this.offered = text;
    this.renew = false;
    this.offeredAtMs = monoMs();
    // Unique across restarts without a file: a grant for an older list never matches.
    this.seq = Math.max(this.seq + 1, Date.now());
    this.channel.publishPending({ seq: this.seq, ...doc });
  }

  /** The episode's files, linked and hashed once; its progress so far when a snapshot exists. */
  private async snapshot(queued: EpisodeEntry): Promise<Progress | null> {
    // The entry as it is now, not as it was queued: the disk policy may have renumbered the
    // episodes (and renamed their files) while an earlier one was being hashed.
    const e = this.source.episodes().find((x) => x.id === queued.id);
    if (e === undefined) return null;
    const dir = join(this.o.dir, e.id);
    const meta = metaHash(e);
    const file = join(dir, PROGRESS);
    if (existsSync(file)) {
      let p: Progress | null = null;
      try {
        p = JSON.parse(readFileSync(file, 'utf8')) as Progress;
      } catch (err) {
        this.log.warn({ err: errorMessage(err), id: e.id }, 'upload progress unreadable; the episode starts over');
      }
      if (p !== null && p.meta === meta) return p;
      rmSync(dir, { recursive: true, force: true }); // marked again since (the new episode.json goes up), or unreadable
    }
    const described = this.source.describe();
    if (described === null) return null;
    const files: FileProgress[] = [];
    mkdirSync(dir, { recursive: true });
    try {
      // Files already uploaded are not sent again when only the marks changed.
      const names: string[] = [];
      if (e.uploaded === null) {
        for (const f of this.source.files(e)) {
          const to = join(dir, f.name);
          rmSync(to, { force: true });
          linkSync(f.path, to);
          names.push(f.name);
        }
      }
      for (const name of names) {
        const path = join(dir, name);
        files.push({ name, bytes: statSync(path).size, sha256: await sha256File(path, this.abort.signal), done: false, etags: [] });
      }
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      // Only a file that is not there is the episode's fault; a full disk or a stop is tried again.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      this.broken.add(e.id);
      this.log.error({ err: errorMessage(err), episode: e.episodeIndex, id: e.id }, 'episode files cannot be read; it is not uploaded');
      return null;
    }
    // The files' sizes and hashes are in the offer and the episode.uploaded event, not here: a
    // mark after the upload sends this file again, alone.
    const body = JSON.stringify({ format: 'reflex.episode/1', deviceId: this.o.deviceId, dataset: described, episode: episodeMeta(e) }, null, 1);
    writeFileAtomic(join(dir, EPISODE_JSON), body);
    files.push({ name: EPISODE_JSON, bytes: Buffer.byteLength(body), sha256: createHash('sha256').update(body).digest('hex'), done: false, etags: [] });
    const p: Progress = { id: e.id, meta, files };
    writeFileAtomic(file, JSON.stringify(p));
    return p;
  }

  /**
   * Snapshots of episodes the disk policy deleted go at once, the one being sent included: their
   * hard links would otherwise keep the bytes the policy counts on freeing (it deletes more when
   * the free space does not come), for as long as a backoff or a slow upload lasts.
   */
  private release(): void {
    if (this.source.describe() === null) return;
    const alive = new Set(this.source.episodes().map((e) => e.id));
    if (this.inFlight !== null && !alive.has(this.inFlight.id)) this.inFlight.gone.abort();
    try {
      for (const name of existsSync(this.o.dir) ? readdirSync(this.o.dir) : []) {
        if (!alive.has(name) && name !== this.inFlight?.id) rmSync(join(this.o.dir, name), { recursive: true, force: true });
      }
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, 'upload snapshots not released');
    }
  }

  /** Snapshots of episodes that no longer need an upload (uploaded, or deleted by the disk policy) go. */
  private sweep(keep: ReadonlySet<string>): void {
    for (const name of existsSync(this.o.dir) ? readdirSync(this.o.dir) : []) {
      if (!keep.has(name)) rmSync(join(this.o.dir, name), { recursive: true, force: true });
    }
  }

  private allowed(url: string): boolean {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      return false;
    }
    if (u.username !== '' || u.password !== '') return false;
    return this.o.origins.some((o) => {
      const a = new URL(o);
      // A path prefix ends at a segment: "/fleet" allows /fleet/..., never /fleet-other-team/.
      const dirPath = a.pathname.endsWith('/') ? a.pathname : `${a.pathname}/`;
      return a.protocol === u.protocol && a.host === u.host && (u.pathname === a.pathname || u.pathname.startsWith(dirPath));
    });
  }

  /** Sends what the grant covers of one episode; true when that moved it on (sent, completed or gone). Throws on the first failure. */
  private async uploadEpisode(p: Progress, granted: readonly GrantedFile[]): Promise<boolean> {
    const dir = join(this.o.dir, p.id);
    let sent = false;
    for (const f of p.files) {
      if (f.done) continue;
      const g = granted.find((x) => x.name === f.name);
      if (g === undefined) continue;
      if (!this.source.episodes().some((e) => e.id === p.id)) return true; // deleted meanwhile: the sweep removes it
      const urls = 'put' in g ? [g.put] : [...g.multipart.parts, g.multipart.complete];
      const bad = urls.find((u) => !this.allowed(u));
      if (bad !== undefined) throw new UploadError('refused', `the grant names ${new URL(bad).origin}, which is not under record.upload.origins`);
      const gone = new AbortController();
      this.inFlight = { id: p.id, gone };
      try {
        await this.uploadFile(dir, p, f, g, AbortSignal.any([this.abort.signal, gone.signal]));
      } catch (err) {
        if (gone.signal.aborted && !this.stopped) {
          this.current = null;
          return true; // deleted while it was being sent: release() has let its bytes go
        }
        throw err;
      } finally {
        this.inFlight = null;
      }
      sent = true;
    }
    if (p.files.every((f) => f.done)) {
      const at = new Date().toISOString();
      this.source.markUploaded(p.id, p.meta, at);
      rmSync(dir, { recursive: true, force: true });
      this.counts.uploaded++;
      const bytes = p.files.reduce((a, f) => a + f.bytes, 0);
      this.log.info({ id: p.id, files: p.files.length, mb: round1(bytes / MB) }, 'episode uploaded');
      this.channel.event('episode.uploaded', { id: p.id, at, files: p.files.map(({ name, bytes, sha256 }) => ({ name, bytes, sha256 })) });
      return true;
    }
    return sent;
  }

  private save(dir: string, p: Progress): void {
    writeFileAtomic(join(dir, PROGRESS), JSON.stringify(p));
  }

  private async uploadFile(dir: string, p: Progress, f: FileProgress, g: GrantedFile, signal: AbortSignal): Promise<void> {
    const path = join(dir, f.name);
    const cap = this.o.maxBytesPerS;
    const minBytesPerS = Math.min(this.o.minBytesPerS ?? 4096, cap > 0 ? cap / 2 : Infinity);
    const opts: RequestOptions = { throttle: this.throttle, idleMs: this.o.idleMs ?? 30_000, minBytesPerS, signal };
    this.current = { episode: p.id, file: f.name, sentMb: 0, totalMb: round1(f.bytes / MB) };
    const sentUpTo = (bytes: number) => {
      if (this.current !== null) this.current.sentMb = round1(bytes / MB);
    };
    if ('put' in g) {
      await putRange(g.put, path, 0, f.bytes, opts);
      this.counts.sent += f.bytes;
    } else {
      const m = g.multipart;
      const n = Math.max(1, Math.ceil(f.bytes / m.partBytes));
      if (m.parts.length !== n) throw new UploadError('refused', `the grant has ${m.parts.length} part URLs for ${f.name}, which takes ${n} parts of ${m.partBytes} bytes`);
      if (f.uploadId !== m.uploadId || f.partBytes !== m.partBytes) {
        // Another multipart upload than the one begun: its parts start again.
        f.uploadId = m.uploadId;
        f.partBytes = m.partBytes;
        f.etags = [];
        this.save(dir, p);
      }
      try {
        for (let i = f.etags.length; i < n; i++) {
          const start = i * m.partBytes;
          const end = Math.min(f.bytes, start + m.partBytes);
          sentUpTo(start);
          f.etags.push(await putRange(m.parts[i]!, path, start, end, opts));
          this.counts.sent += end - start;
          this.save(dir, p);
        }
        await completeMultipart(m.complete, f.etags, opts);
      } catch (err) {
        // The upload itself is gone (aborted by the bucket's lifecycle, or completed before a crash): begin anew.
        if (err instanceof UploadError && /NoSuchUpload/.test(err.message)) {
          delete f.uploadId;
          f.etags = [];
          this.save(dir, p);
        }
        throw err;
      }
    }
    f.done = true;
    this.save(dir, p);
    this.current = null;
  }

  status(): UploadStatus {
    const queue = this.queue();
    return {
      state: this.state,
      reason: this.reason,
      waiting: queue.length,
      waitingMb: round1(queue.reduce((a, e) => a + e.bytes, 0) / MB),
      uploaded: this.counts.uploaded,
      sentMb: round1(this.counts.sent / MB),
      current: this.current === null ? null : { ...this.current },
      retryInS: this.retryAtMs === null ? null : Math.max(0, Math.round((this.retryAtMs - monoMs()) / 100) / 10),
      capKBps: Math.round(this.o.maxBytesPerS / 1024),
    };
  }

  faults(): string[] {
    return this.state === 'backoff' && this.failures >= 3 ? [`uploads failing (${this.failures} in a row): ${this.reason}`] : [];
  }
}
