// The recorder: a part of the daemon, on the main thread, that reads the loop's tick records
// (its own consumer of the tick ring: the loop never waits for it) and the cameras' raw frames,
// and writes LeRobotDataset v3.0 episodes. An episode runs while recording is on and the
// policy drives the arm: it opens when the policy starts, and closes when it stops, when the
// loop e-stops or faults (flagged so), when the task or the policy changes, or when a
// technician marks it a success or a failure. A recorder that falls behind (ticks lost, the
// encoder's queue full, the disk failing) drops the whole episode, counts it and says why;
// it never slows the tick.
import { readFileSync, rmSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { ReflexError, errorMessage, type Logger, type Part } from '../core/index.js';
import { Intervention, monoMs, type TickReader, type TickRecord, type TickRing } from '../rt/index.js';
import { MODE_NAMES } from '../control/index.js';
import type { RawFrameSource } from '../hardware/camera/index.js';
import type { DaemonHandlers } from '../api/index.js';
import { Dataset, isFlagged, type EpisodeEntry, type EpisodeFlag, type Outcome } from './dataset.js';
import { LiveEpisode, finishStaged, stagedEpisodes, type FinishResult, type Tools } from './episode.js';
import { FrameFeed, sampleStats } from './frames.js';
import { HighlightRing } from './highlight.js';
import { CAM, ROW, rowLayout, type RowLayout } from './row.js';
import { checkEncoder } from './video.js';
import { writeFileAtomic } from './files.js';
import { CODEBASE_VERSION, featuresOf, type DatasetShape } from './format.js';
import { UPLOADS_DISABLED, type UploadSource, type UploadStatus } from './uploader.js';

const POLICY = MODE_NAMES.indexOf('policy');
const ESTOP = MODE_NAMES.indexOf('estop');
const FAULT = MODE_NAMES.indexOf('fault');
const CLAMPS = Intervention.LIMIT | Intervention.DELTA | Intervention.NON_FINITE;
/** Whether recording is on, and its task, across restarts. */
const ARMED_FILE = '.reflex/recording.json';
/** How long after a dropped episode the next may start. */
const DROP_BACKOFF_MS = 5000;

export interface RecorderOptions {
  /** The dataset's directory. */
  dir: string;
  /** Dataset rows per second; divides the loop's rate. */
  fps: number;
  rateHz: number;
  robotType: string;
  joints: readonly string[];
  /** The recorded cameras' raw frames, and the flag that asks the vision worker for them. */
  cameras: readonly RawFrameSource[];
  rawWanted: Int32Array | null;
  /** Task of an episode when record.start names none. */
  task: string;
  maxDiskMb: number;
  minFreeMb: number;
  tools?: Tools;
  /** How often the tick ring is drained, ms. */
  pumpMs?: number;
  /**
   * Frame buffers per camera between the recorder and its encoder (a repeated frame takes none);
   * all in use = the encoder is behind. The default holds about a second of a 30 fps camera,
   * which also covers ffmpeg's start at the beginning of an episode (0.9 MB each at 640x480).
   */
  poolFrames?: number;
  /** Bound on finishing an episode's videos. */
  finishTimeoutMs?: number;
  /** Seconds of rows and frames kept while no episode is recorded, saved when something is flagged (0: none). */
  highlightS?: number;
  /** Why the recorder is turned off (config), or null. */
  disabled?: string | null;
}

export type RecordState = 'unavailable' | 'starting' | 'idle' | 'armed' | 'recording';

export interface RecordStatus {
  state: RecordState;
  /** Why recording is unavailable or paused (no encoder, the disk, a refused dataset). */
  reason: string | null;
  dir: string;
  fps: number;
  task: string | null;
  episode: { frames: number; seconds: number; flags: EpisodeFlag[]; outcome: Outcome | null; task: string } | null;
  /** Committed episodes and their frames. */
  episodes: number;
  /** Episodes ended and being saved (their files closed, then committed). */
  saving: number;
  frames: number;
  /** Episodes finished after a crash from what was on disk, and partial ones with nothing usable. */
  recovered: number;
  discarded: number;
  dropped: { episodes: number; last: string | null };
  /** Highlights saved (the seconds before a fault, e-stop, starvation or clamp while not recording). */
  highlights: number;
  /** Seconds the highlight ring holds now (0 while recording or with none configured). */
  highlightS: number;
  /** Saved episodes deleted to keep within record.maxDiskMb and record.minFreeMb. */
  evicted: { episodes: number; flagged: number; unsent: number; last: string | null };
  repeatedFrames: number;
  lostTicks: number;
  diskMb: number;
  freeMb: number | null;
  /** Episode end to files closed and committed, ms (the last one). */
  lastCloseMs: number | null;
  /** Store and forward to object storage. */
  upload: UploadStatus;
}

export class Recorder implements Part {
  readonly name = 'recorder';
  private dataset: Dataset | null = null;
  private reader: TickReader | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly layout: RowLayout;
  private readonly row: Float64Array;
  private readonly feeds: FrameFeed[];
  private readonly decimation: number;
  private readonly tools: Tools;
  private readonly shape: DatasetShape;
  private armed = false;
  private task: string | null = null;
  /** The instruction the policy is given (VLA bundles), when the technician named no task. */
  private policyTask: string | null = null;
  private episode: LiveEpisode | null = null;
  private due = 0;
  private startedMs = 0;
  private seq = 0;
  private lostSeen = 0;
  private unavailable: string | null = null;
  private paused: string | null = null;
  private starting = true;
  /** Episodes finishing, one after another (their index is given at commit). */
  private finishing: Promise<void> = Promise.resolve();
  private pendingCloses = 0;
  private lastDiskCheckMs = 0;
  private freeMb: number | null = null;
  private readonly counts = { recovered: 0, discarded: 0, dropped: 0, repeated: 0, lost: 0 };
  private lastDrop: string | null = null;
  /** After a drop, no new episode before this (monoMs): a recorder that cannot keep up does not thrash. */
  private resumeAtMs = 0;
  private lastCloseMs: number | null = null;
  private evicting = false;
  private readonly ring: HighlightRing | null;
  private ringDue = 0;
  /** After a highlight is saved, the next waits for the ring to fill again (a clamp that keeps firing saves one per highlightS). */
  private ringCooldown = false;
  private lastMode = -1;
  private highlightsSaved = 0;
  /** Saved episodes deleted for the disk bounds (of them flagged ones, and ones never uploaded), and the last reason. */
  private readonly evicted = { episodes: 0, flagged: 0, unsent: 0, last: null as string | null };
  private uploads: () => UploadStatus = () => UPLOADS_DISABLED('record.upload.origins is empty');

  constructor(
    private readonly o: RecorderOptions,
    private readonly ticks: TickRing,
    private readonly activePolicy: () => { name: string; version: string } | null,
    private readonly log: Logger,
  ) {
    if (!Number.isInteger(o.rateHz / o.fps)) throw new ReflexError('CONFIG_INVALID', `record.fps ${o.fps} must divide the loop's rate ${o.rateHz}`);
    this.decimation = o.rateHz / o.fps;
    this.layout = rowLayout(o.joints.length, o.cameras.length);
    this.row = new Float64Array(this.layout.length);
    this.feeds = o.cameras.map((c) => new FrameFeed(c, o.poolFrames ?? 32));
    this.tools = o.tools ?? { ffmpeg: 'ffmpeg', ffprobe: 'ffprobe' };
    const keep = Math.round((o.highlightS ?? 0) * o.fps);
    this.ring = keep > 0 ? new HighlightRing(keep, this.layout, o.cameras) : null;
    this.shape = { fps: o.fps, robotType: o.robotType, joints: o.joints, cameras: o.cameras.map((c) => ({ name: c.name, width: c.width, height: c.height })) };
  }

  /** The dataset's directory. */
  get dir(): string {
    return this.o.dir;
  }

  /** Opens the dataset and starts reading ticks; crash leftovers are finished in the background. */
  async start(): Promise<void> {
    if (this.o.disabled != null) {
      this.unavailable = this.o.disabled;
      this.starting = false;
      return;
    }
    try {
      this.dataset = Dataset.open(this.o.dir, this.shape);
    } catch (err) {
      this.unavailable = errorMessage(err);
      this.log.error({ dir: this.o.dir, err: this.unavailable }, 'recording unavailable');
    }
    const noEncoder = this.o.cameras.length > 0 ? await checkEncoder(this.tools.ffmpeg) : null;
    if (noEncoder !== null) {
      this.unavailable ??= `no video encoder: ${noEncoder}`;
      this.log.error({ err: noEncoder }, 'recording unavailable: no video encoder');
    }
    this.reader = this.ticks.reader();
    this.timer = setInterval(() => this.pump(), this.o.pumpMs ?? 10);
    this.wantFrames(false);
    const ds = this.dataset;
    if (ds !== null && this.unavailable === null) {
      this.finishing = this.recover(ds).finally(() => (this.starting = false));
      this.loadArmed();
    }
    else this.starting = false;
  }

  async stop(): Promise<void> {
    this.armed = false;
    this.pump();
    this.endEpisode(null);
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.wantFrames(false);
    await this.finishing;
  }

  /** Finishes what a crash left in staging: up to the last complete frame, or discarded. */
  private async recover(ds: Dataset): Promise<void> {
    for (const dir of stagedEpisodes(this.o.dir)) {
      try {
        const r = await finishStaged(dir, ds, this.layout, this.tools, true);
        if (r.entry !== null) {
          this.counts.recovered++;
          this.log.warn({ episode: r.entry.episodeIndex, rows: r.kept, journalled: r.journalled }, 'recovered an episode a crash interrupted');
        } else {
          this.counts.discarded++;
          this.log.warn({ dir }, 'discarded an interrupted episode with no complete frame');
        }
      } catch (err) {
        this.counts.discarded++;
        this.log.error({ dir, err: errorMessage(err) }, 'could not recover an interrupted episode; discarded');
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }

  // --- The tick side: runs every pumpMs on the main thread. ---

  private pump(): void {
    const r = this.reader;
    if (r === null) return;
    while (r.next()) {
      if (r.lost !== this.lostSeen) {
        const lost = r.lost - this.lostSeen;
        this.lostSeen = r.lost;
        this.counts.lost += lost;
        if (this.episode !== null) this.drop(`the recorder fell behind the loop: ${lost} ticks lost`);
      }
      this.onTick(r.record);
    }
    const ep = this.episode;
    if (ep === null) return;
    try {
      ep.flush();
    } catch (err) {
      this.drop(`the journal could not be written: ${errorMessage(err)}`);
      return;
    }
    const failure = ep.failure;
    if (failure !== null) this.drop(failure);
    else this.checkDisk(false);
  }

  private onTick(t: TickRecord): void {
    const prevMode = this.lastMode;
    this.lastMode = t.mode;
    const recording = this.episode !== null;
    let ep = this.episode;
    if (ep !== null) {
      if (t.mode !== POLICY) {
        this.endEpisode(t.mode === ESTOP ? 'estop' : t.mode === FAULT ? 'fault' : null);
        ep = null;
      } else if (t.generation >= 0 && ep.generation >= 0 && t.generation !== ep.generation) {
        this.endEpisode(null); // another policy: its own episode
        ep = null;
      }
    }
    if (ep === null) {
      if (this.armed && t.mode === POLICY && this.paused === null) ep = this.openEpisode(t);
      if (ep === null) {
        // An episode that ended on this tick was flagged already: no highlight of it.
        if (!recording) this.onIdleTick(t, prevMode);
        return;
      }
    }
    if ((t.interventions & Intervention.STARVED) !== 0) addFlag(ep.info.flags, 'starvation', ep);
    if ((t.interventions & CLAMPS) !== 0) addFlag(ep.info.flags, 'safety_clamp', ep);
    while (t.tick >= this.due && this.episode !== null) {
      this.emitRow(t, ep);
      this.due += this.decimation;
    }
  }

  private emitRow(t: TickRecord, ep: LiveEpisode): void {
    this.fillRow(t, ep.interventionMarked);
    const row = this.row;
    const L = this.layout;
    const frames: Uint8Array[] = [];
    for (let c = 0; c < this.feeds.length; c++) {
      const frame = this.feeds[c]!.next(row, L.camera(c));
      if (frame === null) {
        for (const [i, f] of frames.entries()) this.feeds[i]!.release(f);
        this.drop(`the video encoder of camera ${this.feeds[c]!.name} is not keeping up (${ep.backlog} frames queued)`);
        return;
      }
      if (row[L.camera(c)] === 1) this.counts.repeated++;
      frames.push(frame);
    }
    ep.append(row, frames);
  }

  /** The row's tick part (everything but the cameras) from `t`. */
  private fillRow(t: TickRecord, interventionMarked: boolean): void {
    const row = this.row;
    const L = this.layout;
    const J = L.joints;
    const hasAction = Number.isFinite(t.action[0] ?? Number.NaN) ? 1 : 0;
    row[ROW.tick] = t.tick;
    row[ROW.timeMs] = t.timeMs;
    row[ROW.mode] = t.mode;
    row[ROW.safety] = t.interventions;
    row[ROW.faults] = t.faults;
    row[ROW.hasAction] = hasAction;
    const overridden = t.mode !== POLICY || hasAction === 0 || (t.interventions & (CLAMPS | Intervention.STARVED)) !== 0 || interventionMarked;
    row[ROW.intervention] = overridden ? 1 : 0;
    for (let j = 0; j < J; j++) {
      row[L.q + j] = t.q[j]!;
      row[L.command + j] = t.command[j]!;
      row[L.action + j] = t.action[j]!;
    }
  }

  /**
   * A tick while no episode is recorded: kept in the highlight ring (at the dataset rate), and
   * when something goes wrong (the loop faults or e-stops, or the policy starves or is clamped),
   * the ring is saved as an episode flagged `highlight` and why.
   */
  private onIdleTick(t: TickRecord, prevMode: number): void {
    const ring = this.ring;
    if (ring === null || ring.frozen) return;
    if (t.tick >= this.ringDue) {
      this.fillRow(t, false);
      ring.push(this.row);
      while (this.ringDue <= t.tick) this.ringDue += this.decimation;
      if (ring.full) this.ringCooldown = false;
    }
    let why: EpisodeFlag | null = null;
    if (t.mode !== prevMode && t.mode === ESTOP) why = 'estop';
    else if (t.mode !== prevMode && t.mode === FAULT) why = 'fault';
    else if (t.mode === POLICY && (t.interventions & Intervention.STARVED) !== 0) why = 'starvation';
    else if (t.mode === POLICY && (t.interventions & CLAMPS) !== 0) why = 'safety_clamp';
    if (why !== null && !this.ringCooldown && ring.size > 0) this.saveHighlight(ring, why);
  }

  private saveHighlight(ring: HighlightRing, why: EpisodeFlag): void {
    const ds = this.dataset;
    if (ds === null || this.unavailable !== null || this.starting || !this.checkDisk(true)) return;
    ring.frozen = true;
    this.ringCooldown = true;
    const { rows, frames } = ring.snapshot();
    const L = this.layout;
    this.seq++;
    const seq = `${Date.now().toString().padStart(15, '0')}-${String(this.seq).padStart(6, '0')}`;
    let ep: LiveEpisode;
    try {
      const startedAt = new Date(Date.now() - (rows.length / this.o.fps) * 1000).toISOString();
      ep = new LiveEpisode(this.o.dir, seq, L, this.feeds, { task: this.currentTask(), policy: this.activePolicy(), startedAt, flags: ['highlight', why], outcome: null }, -1, this.tools, this.o.fps);
      rows.forEach((row, k) => {
        for (let c = 0; c < L.cameras; c++) if (row[L.camera(c) + CAM.repeated] === 0) sampleStats(frames[k]![c]!, row, L.camera(c));
        ep.append(row, frames[k]!);
      });
    } catch (err) {
      this.log.error({ err: errorMessage(err) }, 'could not save a highlight');
      ring.clear();
      ring.frozen = false;
      return;
    }
    this.log.warn({ flag: why, frames: rows.length }, 'saving a highlight: the seconds before something was flagged');
    this.pendingCloses++;
    this.finishing = this.finishing.then(async () => {
      try {
        const r = await this.saveStaged(ep, ds, 'highlight');
        if (r?.entry) {
          this.highlightsSaved++;
          this.log.info({ episode: r.entry.episodeIndex, frames: r.entry.length, flags: r.entry.flags }, 'highlight saved');
        }
      } finally {
        ring.clear();
        ring.frozen = false;
        this.pendingCloses--;
      }
    });
  }

  private openEpisode(t: TickRecord): LiveEpisode | null {
    if (this.dataset === null || this.unavailable !== null || this.starting || monoMs() < this.resumeAtMs) return null;
    if (!this.checkDisk(true)) return null;
    for (const f of this.feeds) f.reset();
    if (this.ring !== null && !this.ring.frozen) this.ring.clear();
    this.seq++;
    const seq = `${Date.now().toString().padStart(15, '0')}-${String(this.seq).padStart(6, '0')}`;
    try {
      this.episode = new LiveEpisode(
        this.o.dir,
        seq,
        this.layout,
        this.feeds,
        { task: this.currentTask(), policy: this.activePolicy(), startedAt: new Date().toISOString(), flags: [], outcome: null },
        t.generation,
        this.tools,
        this.o.fps,
      );
    } catch (err) {
      this.paused = `cannot start an episode: ${errorMessage(err)}`;
      this.log.error({ err: errorMessage(err) }, 'recording paused');
      return null;
    }
    this.due = t.tick;
    this.startedMs = monoMs();
    this.log.info({ task: this.episode.info.task, policy: this.episode.info.policy }, 'episode started');
    return this.episode;
  }

  /** Closes the open episode (flagged `flag`), and finishes it in the background. */
  /**
   * Closes an episode's files and adds it to the dataset. A failure drops it whole: counted,
   * said, its files removed; null then, never a throw.
   */
  private async saveStaged(ep: LiveEpisode, ds: Dataset, what: 'episode' | 'highlight'): Promise<FinishResult | null> {
    try {
      ep.saveInfo();
      await ep.close(this.o.finishTimeoutMs ?? 60_000);
      return await finishStaged(ep.dir, ds, this.layout, this.tools, false, ep.rows);
    } catch (err) {
      this.counts.dropped++;
      this.lastDrop = `${what === 'episode' ? 'the episode' : 'a highlight'} could not be saved: ${errorMessage(err)}`;
      this.log.error({ err: errorMessage(err) }, `${what} dropped`);
      await ep.abort().catch(() => undefined);
      return null;
    }
  }

  private endEpisode(flag: EpisodeFlag | null, outcome: Outcome | null = null): void {
    const ep = this.episode;
    if (ep === null) return;
    this.episode = null;
    if (flag !== null && !ep.info.flags.includes(flag)) ep.info.flags.push(flag);
    if (outcome !== null) ep.info.outcome = outcome;
    ep.info.policy ??= this.activePolicy();
    const endedMs = monoMs();
    this.pendingCloses++;
    this.finishing = this.finishing.then(async () => {
      try {
        const r = await this.saveStaged(ep, this.dataset!, 'episode');
        if (r === null) return;
        this.lastCloseMs = Math.round(monoMs() - endedMs);
        if (r.entry === null) this.log.warn({ rows: r.journalled }, 'an episode ended with no complete frame; nothing kept');
        else this.log.info({ episode: r.entry.episodeIndex, frames: r.entry.length, flags: r.entry.flags, outcome: r.entry.outcome, closeMs: this.lastCloseMs }, 'episode saved');
      } finally {
        this.pendingCloses--;
      }
    });
  }

  /** Drops the open episode whole (it could not be recorded completely), counting it. */
  private drop(reason: string): void {
    const ep = this.episode;
    if (ep === null) return;
    this.episode = null;
    this.counts.dropped++;
    this.lastDrop = reason;
    this.resumeAtMs = monoMs() + DROP_BACKOFF_MS;
    this.log.error({ reason, frames: ep.rows, nextInMs: DROP_BACKOFF_MS }, 'episode dropped');
    this.finishing = this.finishing.then(() => ep.abort()).catch(() => undefined);
  }

  /**
   * The disk bounds: when the next episode (sized as the average saved one) would pass
   * record.maxDiskMb or go below record.minFreeMb, the oldest saved episodes are deleted first,
   * unflagged ones before flagged ones (see `evict`), in the background between commits. Only when
   * nothing is left to delete (or the free space cannot be read) does recording pause: no new
   * episode starts and an open one is closed, keeping what it has. Checked at most once a second
   * unless `now`.
   */
  private checkDisk(now: boolean): boolean {
    if (!now && monoMs() - this.lastDiskCheckMs < 1000) return this.paused === null;
    this.lastDiskCheckMs = monoMs();
    const need = this.diskNeed();
    const why = need.reason;
    let reason = why;
    if (need.bytes > 0 && !this.evicting) {
      const drop = this.evictable(need.bytes);
      if (drop.size > 0) {
        this.evicting = true;
        this.finishing = this.finishing.then(() => this.evict(drop, why!)).finally(() => (this.evicting = false));
      }
    }
    if (this.evicting) reason = null; // space is being made: recording goes on
    if (reason !== this.paused) {
      if (reason !== null) this.log.warn({ reason }, 'recording paused');
      else this.log.info('recording resumed: disk bounds met');
    }
    this.paused = reason;
    if (reason !== null && this.episode !== null) this.endEpisode(null);
    return reason === null;
  }

  /** How many bytes must go for the next episode to fit the bounds, and why (or why recording cannot go on at all). */
  private diskNeed(): { bytes: number; reason: string | null } {
    const MB = 1024 ** 2;
    const ds = this.dataset;
    const used = ds?.bytes ?? 0;
    const next = ds !== null && ds.episodes.length > 0 ? used / ds.episodes.length : 0;
    let free: number;
    try {
      const fs = statfsSync(this.o.dir);
      free = fs.bavail * fs.bsize;
      this.freeMb = Math.floor(free / MB);
    } catch (err) {
      return { bytes: 0, reason: `cannot read the free space of ${this.o.dir}: ${errorMessage(err)}` };
    }
    const overFloor = this.o.minFreeMb * MB - (free - next);
    const overBound = used + next - this.o.maxDiskMb * MB;
    if (overFloor > 0) return { bytes: overFloor, reason: `free space ${this.freeMb} MB is below record.minFreeMb ${this.o.minFreeMb} MB` };
    if (overBound > 0) return { bytes: overBound, reason: `the dataset holds ${Math.round(used / MB)} MB, record.maxDiskMb is ${this.o.maxDiskMb} MB` };
    return { bytes: 0, reason: null };
  }

  /**
   * Which saved episodes to delete to free `bytes`: the oldest unflagged ones first; flagged
   * ones (faults, e-stops, interventions, failures, starvation, clamps...) only once no
   * unflagged one is left. Nothing when even all of them would not free enough.
   */
  private evictable(bytes: number): Set<number> {
    const eps = this.dataset?.episodes ?? [];
    // Uploaded episodes are safe at home: they go first, whatever their flags.
    const sent = (e: EpisodeEntry) => e.uploaded !== null;
    const order = [...eps.filter(sent), ...eps.filter((e) => !sent(e) && !isFlagged(e)), ...eps.filter((e) => !sent(e) && isFlagged(e))];
    const drop = new Set<number>();
    let freed = 0;
    for (const e of order) {
      if (freed >= bytes) break;
      drop.add(e.episodeIndex);
      freed += e.bytes;
    }
    return freed >= bytes ? drop : new Set();
  }

  private evict(drop: ReadonlySet<number>, reason: string): void {
    const ds = this.dataset;
    if (ds === null) return;
    try {
      const gone = ds.evict(drop);
      this.evicted.episodes += gone.length;
      this.evicted.flagged += gone.filter(isFlagged).length;
      const unsent = gone.filter((e) => e.uploaded === null);
      this.evicted.unsent += unsent.length;
      this.evicted.last = reason;
      this.log.warn({ reason, episodes: gone.length, neverUploaded: unsent.length, startedAt: gone.map((e) => e.startedAt), flags: [...new Set(gone.flatMap((e) => e.flags))] }, 'deleted the oldest episodes to make room');
    } catch (err) {
      this.log.error({ err: errorMessage(err) }, 'could not delete old episodes; the dataset is finished at the next start');
    }
    this.lastDiskCheckMs = 0;
  }

  /** Raw frames from the vision worker: while recording, and while running at all when the highlight ring keeps frames. */
  private wantFrames(on: boolean): void {
    const want = on || (this.ring !== null && this.timer !== null);
    if (this.o.rawWanted !== null) Atomics.store(this.o.rawWanted, 0, want ? 1 : 0);
  }

  // --- Commands ---

  /** Recording on (with `task`); a different task ends the open episode and starts the next with it. */
  startRecording(task?: string): RecordStatus {
    if (this.unavailable !== null) throw new ReflexError('REFUSED', `recording is unavailable: ${this.unavailable}`);
    const before = this.currentTask();
    if (task !== undefined) this.task = task;
    if (this.armed && this.currentTask() !== before) this.endEpisode(null);
    this.armed = true;
    this.wantFrames(true);
    this.saveArmed();
    return this.status();
  }

  /**
   * The policy's task instruction changed (VLA bundles: config policy.task, the policy.task
   * command): episodes are recorded under it unless record.start named a task of its own, and
   * a change ends the open episode, so that each episode has one task.
   */
  followPolicyTask(text: string): void {
    const before = this.currentTask();
    this.policyTask = text.length > 0 ? text : null;
    if (this.armed && this.currentTask() !== before) this.endEpisode(null);
  }

  private currentTask(): string {
    return this.task ?? this.policyTask ?? this.o.task;
  }

  stopRecording(): RecordStatus {
    this.armed = false;
    this.endEpisode(null);
    this.wantFrames(false);
    this.saveArmed();
    return this.status();
  }

  /**
   * Whether recording is on (and its task) is kept on disk, so that a daemon restarted after a
   * crash or a power cut goes on recording as the technician left it. A write that fails is
   * logged: recording goes on, only the restart would not resume it.
   */
  private saveArmed(): void {
    try {
      writeFileAtomic(join(this.o.dir, ARMED_FILE), JSON.stringify({ armed: this.armed, task: this.task }));
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, 'could not save whether recording is on');
    }
  }

  private loadArmed(): void {
    try {
      const s = JSON.parse(readFileSync(join(this.o.dir, ARMED_FILE), 'utf8')) as { armed?: unknown; task?: unknown };
      if (s.armed !== true) return;
      this.task = typeof s.task === 'string' && s.task.length > 0 && s.task.length <= 1000 ? s.task : null;
      this.armed = true;
      this.wantFrames(true);
      this.log.info({ task: this.currentTask() }, 'recording resumed (it was on when reflex stopped)');
    } catch {
      // never recorded here, or unreadable: recording stays off until record.start
    }
  }

  /**
   * A technician's mark: success or failure ends the open episode with that outcome (the next
   * one starts while the policy keeps running); intervention flags it and marks its rows from
   * now on. With no episode open, the mark goes to the last one saved.
   */
  async mark(label: Outcome | 'intervention'): Promise<RecordStatus> {
    const ep = this.episode;
    if (ep !== null) {
      if (label === 'intervention') {
        ep.interventionMarked = true;
        addFlag(ep.info.flags, 'intervention', ep);
      } else this.endEpisode(null, label);
      return this.status();
    }
    await this.finishing;
    const ds = this.dataset;
    if (ds === null || ds.episodes.length === 0) throw new ReflexError('REFUSED', 'no episode to mark: none is being recorded and none was saved');
    ds.mark(ds.episodes.length - 1, label === 'intervention' ? { flag: 'intervention' } : { outcome: label });
    return this.status();
  }

  status(): RecordStatus {
    const ds = this.dataset;
    const ep = this.episode;
    const state: RecordState = this.unavailable !== null ? 'unavailable' : this.starting ? 'starting' : ep !== null ? 'recording' : this.armed ? 'armed' : 'idle';
    return {
      state,
      reason: this.unavailable ?? this.paused,
      dir: this.o.dir,
      fps: this.o.fps,
      task: this.armed ? this.currentTask() : null,
      episode: ep === null ? null : { frames: ep.rows, seconds: Math.round((monoMs() - this.startedMs) / 100) / 10, flags: [...ep.info.flags], outcome: ep.info.outcome, task: ep.info.task },
      episodes: ds?.episodes.length ?? 0,
      saving: this.pendingCloses,
      frames: ds?.totalFrames ?? 0,
      recovered: this.counts.recovered,
      discarded: this.counts.discarded,
      dropped: { episodes: this.counts.dropped, last: this.lastDrop },
      evicted: { ...this.evicted },
      highlights: this.highlightsSaved,
      highlightS: (this.ring?.size ?? 0) / this.o.fps,
      repeatedFrames: this.counts.repeated,
      lostTicks: this.counts.lost,
      diskMb: Math.round(((ds?.bytes ?? 0) / 1024 ** 2) * 10) / 10,
      freeMb: this.freeMb,
      lastCloseMs: this.lastCloseMs,
      upload: this.uploads(),
    };
  }

  /** The dataset as the uploader sees it (store and forward), and where its status comes from. */
  uploadSource(status: () => UploadStatus): UploadSource {
    this.uploads = status;
    return {
      episodes: () => this.dataset?.episodes ?? [],
      files: (e) => this.dataset?.files(e) ?? [],
      describe: () => (this.dataset === null ? null : { codebase_version: CODEBASE_VERSION, fps: this.shape.fps, robot_type: this.shape.robotType, features: featuresOf(this.shape) }),
      markUploaded: (id, meta, at) => void this.dataset?.setUploaded(id, meta, at),
    };
  }

  /** Resolves once every ended episode is saved (or dropped): for tests and a clean stop. */
  async settled(): Promise<void> {
    while (this.pendingCloses > 0) await this.finishing;
    await this.finishing;
  }

  faults(): string[] {
    const out: string[] = [];
    if (this.unavailable !== null) out.push(`recording unavailable: ${this.unavailable}`);
    else if (this.paused !== null && this.armed) out.push(`recording paused: ${this.paused}`);
    return out;
  }

  headline(): string {
    const s = this.status();
    return s.state === 'recording' ? `recording ep ${s.episodes}` : s.state === 'unavailable' ? 'recording unavailable' : `${s.episodes} episodes recorded`;
  }

  telemetry(): Record<string, unknown> {
    const s = this.status();
    return { record: { state: s.state, episodes: s.episodes, dropped: s.dropped.episodes, diskMb: s.diskMb, uploadWaiting: s.upload.waiting, uploadState: s.upload.state } };
  }

  api(): DaemonHandlers {
    return {
      'record.start': ({ task }) => this.startRecording(task),
      'record.stop': () => this.stopRecording(),
      'record.mark': ({ label }) => this.mark(label),
      'record.status': () => this.status(),
    };
  }
}


function addFlag(flags: EpisodeFlag[], flag: EpisodeFlag, ep: LiveEpisode): void {
  if (flags.includes(flag)) return;
  flags.push(flag);
  ep.saveInfo();
}

/** Where a recording goes by default: under the state directory. */
export function defaultRecordDir(stateDir: string): string {
  return join(stateDir, 'recordings', 'dataset');
}
