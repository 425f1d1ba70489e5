// The update engine: one job at a time through validate, download, verify, preload (with a
// shadow run), wait-until-safe, activate, trial, then commit or roll back; every transition
// persisted (store.ts) before it takes effect, so a restart at any instant resumes right:
// before activation the job is discarded; during activation or trial the committed policy is
// what boots (a rollback); after commit the commit is finished. Job states are reported as AWS
// IoT Jobs' to whoever publishes them (the fleet link).
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statfsSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ReflexError, errorMessage, readRegularFile, type Logger, type Part } from '../core/index.js';
import type { LoopStatus } from '../control/index.js';
import type { PolicyInfo, PolicyRuntime, PolicyStatus, Preloaded } from '../policy/index.js';
import { download, DownloadFailed } from './download.js';
import { BundleRefused, compareVersions, unpackBundle, verifyBundleDir, type Trust, type TrustedKey } from './verify.js';
import { resolveTrustedKeys } from './config.js';
import { TERMINAL_STATES, topics, type BundleRef, type DesiredPolicy, type JobReport, type JobState, type Step } from './protocol.js';
import { UpdateStore, type JobRecord, type PolicyRef } from './store.js';
import { countsOf, verdict, type TrialCounts } from './trial.js';
import type { OtaSettings } from './settings.js';

export interface UpdaterOptions {
  deviceId: string;
  /** The state directory (ota.dir is under it unless absolute). */
  stateDir: string;
  settings: OtaSettings;
  /** This robot's type (config robot.name) and reflex's version (default package.json's), for the manifest. */
  robotType: string;
  reflexVersion?: string;
  /** Joint limits, in the robot's joint order (the shadow run's check). */
  limits: { min: number; max: number }[];
  /** How often the trial and the safe-state wait look (default 100 ms). */
  pollMs?: number;
  /** Key files named relative to it (the config's folder; default the working directory). */
  configDir?: string;
}

/** What the engine drives: the policy runtime, the loop, and (when there is one) the fleet. */
export interface UpdaterPorts {
  runtime: Pick<PolicyRuntime, 'preload' | 'shadow' | 'swapIn' | 'discard' | 'rollback' | 'status'>;
  loop: { status(): LoopStatus; stopPolicy(): Promise<void> };
}

export interface UpdaterStatus {
  state: 'idle' | 'busy';
  job: JobReport | null;
  active: PolicyRef | null;
  previous: PolicyRef | null;
  floors: Record<string, string>;
  /** Damaged slots of the persisted record found at start, in words. */
  storeDamaged: string[];
  /** Trusted keys (ids); keysError says why none could be read. */
  keys: string[];
  keysError: string | null;
}

/** Steps before activation: a cancel is honoured, a restart discards the job. */
const BEFORE_ACTIVATION: readonly (Step | null)[] = [null, 'validate', 'download', 'verify', 'preload', 'wait-safe'];

class Canceled extends Error {}
/** Ends a job in `state` with `reason` (thrown from inside a step). */
class JobEnd extends Error {
  constructor(
    readonly state: JobState,
    message: string,
    /** The error behind it, handed as is to a technician who waits on the job. */
    readonly original: unknown = null,
  ) {
    super(message);
  }
}

/** How a trial ends early when asked: a technician's rollback, or a newer activation. */
type TrialEnd = { kind: 'rollback' | 'supersede'; reason: string };

export class Updater implements Part {
  readonly name = 'ota';
  readonly dir: string;
  private readonly store: UpdateStore;
  private readonly bundlesDir: string;
  private readonly downloadsDir: string;
  private readonly quarantineDir: string;
  private ports: UpdaterPorts | null = null;
  private readonly listeners: ((topic: string, report: JobReport) => void)[] = [];
  private running: { jobId: string; abort: AbortController; done: Promise<void> } | null = null;
  private progress: JobReport['progress'] = null;
  private waiting: string | null = null;
  /** A technician's rollback (or newer activation) during the trial, taken by its next poll. */
  private endTrial: TrialEnd | null = null;
  private stopped = false;
  private readonly pollMs: number;
  private readonly keys: TrustedKey[];
  /** Why the configured keys could not be read (then no bundle is trusted), else null. */
  private readonly keysError: string | null = null;

  constructor(
    private readonly opts: UpdaterOptions,
    private readonly log: Logger,
  ) {
    const d = opts.settings.dir;
    this.dir = isAbsolute(d) ? d : join(opts.stateDir, d);
    this.bundlesDir = join(this.dir, 'bundles');
    this.downloadsDir = join(this.dir, 'downloads');
    this.quarantineDir = join(this.dir, 'quarantine');
    for (const p of [this.bundlesDir, this.downloadsDir, this.quarantineDir]) mkdirSync(p, { recursive: true });
    this.store = new UpdateStore(join(this.dir, 'store'));
    for (const d of this.store.opened.damaged) log.error({ err: d }, 'a slot of the update record is damaged; using the other');
    this.pollMs = opts.pollMs ?? 100;
    try {
      this.keys = resolveTrustedKeys(opts.settings.trustedKeys, opts.configDir ?? process.cwd());
    } catch (err) {
      this.keys = [];
      this.keysError = errorMessage(err);
      log.error({ err: this.keysError }, 'the trusted keys cannot be read: every bundle will be refused');
    }
  }

  /**
   * The policies to load at boot: the committed active and previous ones, or the config's
   * bundle on a robot never updated. A job killed after its commit was decided boots on the
   * new policy (start() finishes the commit); one killed during activation or trial boots on
   * the committed policy, which is the rollback.
   */
  bootPolicies(configBundle: string | null): { bundle: string | null; previous: string | null } {
    const r = this.store.record;
    const job = r.job;
    if (job !== null && job.state === 'IN_PROGRESS' && job.step === 'commit' && job.stagedDir !== null && existsSync(job.stagedDir)) {
      return { bundle: job.stagedDir, previous: r.active?.dir ?? configBundle };
    }
    const active = r.active !== null && existsSync(r.active.dir) ? r.active.dir : null;
    const previous = r.previous !== null && existsSync(r.previous.dir) ? r.previous.dir : null;
    if (active !== null) return { bundle: active, previous };
    if (r.active !== null) this.log.error({ dir: r.active.dir }, 'the committed policy is gone; booting on the previous one or the config\'s');
    return { bundle: previous ?? configBundle, previous: null };
  }

  /** Called with every job report (topic, body); the fleet link publishes them retained. */
  onReport(fn: (topic: string, report: JobReport) => void): void {
    this.listeners.push(fn);
  }

  attach(ports: UpdaterPorts): void {
    this.ports = ports;
  }

  start(): Promise<void> {
    this.recover();
    this.sweep();
    const job = this.store.record.job;
    if (job !== null) this.report(job);
    return Promise.resolve();
  }

  /** What a restart means for the job it interrupted (see the file's head). */
  private recover(): void {
    const job = this.store.record.job;
    if (job === null || TERMINAL_STATES.includes(job.state)) return;
    const r = this.store.record;
    try {
      if (BEFORE_ACTIVATION.includes(job.step)) {
        this.dropStaged(job);
        this.store.transition('FAILED', job.step, 'interrupted: reflex restarted before activation; the update was discarded');
      } else if (job.step === 'commit' && job.stagedDir !== null && existsSync(job.stagedDir)) {
        this.commit(job, job.stagedDir, r.active);
      } else {
        this.quarantine(job);
        const why = job.step === 'rollback' && job.reason !== null ? job.reason : `rolled back: reflex restarted during ${job.step ?? 'the update'}`;
        this.store.transition('FAILED', job.step, why);
      }
    } catch (err) {
      this.log.error({ err: errorMessage(err), job: job.jobId }, 'could not record the recovery of the interrupted update');
    }
    this.log.warn({ job: job.jobId, step: job.step, state: this.store.record.job?.state, reason: this.store.record.job?.reason }, 'recovered an interrupted update');
  }

  /**
   * Bundles and downloads nothing refers to any more (a kill between unpacking and the next
   * persisted step leaves one) are removed, so they cannot fill the disk over many updates.
   */
  private sweep(): void {
    const r = this.store.record;
    const keep = new Set([r.active?.dir, r.previous?.dir, r.job?.stagedDir].filter((d): d is string => typeof d === 'string'));
    try {
      for (const e of readdirSync(this.bundlesDir)) {
        const p = join(this.bundlesDir, e);
        if (!keep.has(p)) rmSync(p, { recursive: true, force: true });
      }
      for (const e of readdirSync(this.downloadsDir)) rmSync(join(this.downloadsDir, e), { recursive: true, force: true });
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, 'could not clean the update directories');
    }
  }

  /** A desired-policy document from the fleet (the device's own or its group's). */
  desired(doc: DesiredPolicy): void {
    if (this.stopped) return;
    const r = this.store.record;
    if ('cancel' in doc) {
      if (this.running?.jobId === doc.jobId) {
        const job = r.job;
        if (job !== null && BEFORE_ACTIVATION.includes(job.step)) this.running.abort.abort(new Canceled('canceled by the fleet'));
        else this.log.warn({ job: doc.jobId }, 'cancel refused: the update is past activation');
      } else if (!r.done.includes(doc.jobId)) {
        this.foreign(doc.jobId, 'CANCELED', 'canceled before it started', null);
      }
      return;
    }
    // A retained document comes again at every connect: a job seen before is not run again.
    if (r.done.includes(doc.jobId) || r.job?.jobId === doc.jobId) return;
    if (this.running !== null) {
      this.foreign(doc.jobId, 'REJECTED', `busy: update ${this.running.jobId} is in progress`, doc.bundle);
      return;
    }
    this.begin(doc.jobId, 'fleet', doc.bundle);
  }

  /**
   * A technician's policy.activate: the same preload, shadow run, trial and rollback, without
   * download or signature (the technician names a directory on the robot). Resolves once the
   * new policy is active; the trial goes on after.
   */
  async activateLocal(dir: string): Promise<PolicyInfo> {
    const job = this.store.record.job;
    // A technician's activation on trial gives way to the next one (the committed policy stays
    // what a reboot comes back to until one passes its trial).
    if (this.running !== null && job?.origin === 'socket' && job.step === 'trial') {
      this.endTrial = { kind: 'supersede', reason: `superseded by policy.activate ${dir}` };
      await this.running.done;
    }
    if (this.running !== null) throw new ReflexError('BUSY', `update ${this.running.jobId} is in progress (ota.cancel, or wait)`);
    return new Promise<PolicyInfo>((resolve, reject) => {
      this.begin(`local-${Date.now()}`, 'socket', { name: dir, version: '', url: null, sha256: null, size: null }, dir, { resolve, reject });
    });
  }

  /**
   * A technician's policy.rollback: during a trial it fails the trial (the engine rolls back);
   * otherwise it swaps back to the previous policy and records that as the committed one.
   */
  async rollback(): Promise<PolicyInfo> {
    const ports = this.need();
    const job = this.store.record.job;
    if (this.running !== null && job?.step === 'trial') {
      this.endTrial = { kind: 'rollback', reason: 'rolled back by the technician' };
      await this.running.done;
      const active = ports.runtime.status().active;
      if (active === null) throw new ReflexError('COMMAND_FAILED', 'rolled back; no policy is active');
      return active;
    }
    if (this.running !== null) throw new ReflexError('BUSY', `update ${this.running.jobId} is in progress`);
    const info = await ports.runtime.rollback();
    const r = this.store.record;
    const to = r.previous ?? { dir: info.dir, name: info.name, version: info.version };
    this.store.save({ ...r, active: to, previous: null });
    return info;
  }

  cancel(jobId: string | undefined): JobReport | null {
    const job = this.store.record.job;
    if (this.running === null || job === null) throw new ReflexError('REFUSED', 'no update is in progress');
    if (jobId !== undefined && jobId !== job.jobId) throw new ReflexError('REFUSED', `update ${job.jobId} is in progress, not ${jobId}`);
    if (!BEFORE_ACTIVATION.includes(job.step)) throw new ReflexError('REFUSED', `update ${job.jobId} is past activation (${job.step}): it is judged by its trial`);
    this.running.abort.abort(new Canceled('canceled by the technician'));
    return this.reportOf(job);
  }

  private need(): UpdaterPorts {
    if (this.ports === null) throw new ReflexError('COMMAND_FAILED', 'the update engine is not attached');
    return this.ports;
  }

  /** A job that never becomes the current one (busy, canceled before it began): reported, remembered. */
  private foreign(jobId: string, state: JobState, reason: string, bundle: BundleRef | null): void {
    try {
      const r = this.store.record;
      this.store.save({ ...r, done: [...r.done, jobId] });
    } catch (err) {
      this.log.error({ err: errorMessage(err) }, 'could not record a refused job');
    }
    this.emit({ jobId, deviceId: this.opts.deviceId, state, step: null, progress: null, reason, bundle: bundle ? { name: bundle.name, version: bundle.version } : null, ts: Date.now() });
  }

  private begin(
    jobId: string,
    origin: JobRecord['origin'],
    bundle: Pick<BundleRef, 'name' | 'version'> & { url: string | null; sha256: string | null; size: number | null },
    localDir: string | null = null,
    waiter: { resolve(i: PolicyInfo): void; reject(e: unknown): void } | null = null,
  ): void {
    const now = Date.now();
    const job: JobRecord = { jobId, origin, bundle, state: 'QUEUED', step: null, transitions: 0, createdAt: now, updatedAt: now, reason: null, stagedDir: localDir };
    try {
      this.store.save({ ...this.store.record, job });
    } catch (err) {
      waiter?.reject(err);
      this.emit({ jobId, deviceId: this.opts.deviceId, state: 'FAILED', step: null, progress: null, reason: errorMessage(err), bundle: { name: bundle.name, version: bundle.version }, ts: now });
      return;
    }
    this.report(job);
    const abort = new AbortController();
    const done = this.run(abort.signal, waiter).finally(() => {
      this.running = null;
      this.progress = null;
      this.waiting = null;
      this.endTrial = null;
    });
    this.running = { jobId, abort, done };
  }

  /** Persists and reports a transition of the current job. */
  private move(state: JobState, step: Step | null, reason: string | null = null, patch: Partial<Pick<JobRecord, 'stagedDir'>> = {}): JobRecord {
    const job = this.store.transition(state, step, reason, patch);
    this.progress = null;
    this.report(job);
    if (job.state === 'FAILED' && state !== 'FAILED') throw new JobEnd('FAILED', job.reason ?? 'failed');
    return job;
  }

  private async run(signal: AbortSignal, waiter: { resolve(i: PolicyInfo): void; reject(e: unknown): void } | null): Promise<void> {
    let preloaded: Preloaded | null = null;
    let activated = false;
    const ports = this.need();
    try {
      let job = this.move('IN_PROGRESS', 'validate');
      let dir = job.stagedDir;
      if (job.origin === 'fleet') dir = await this.fetchAndVerify(job, signal);
      this.check(signal);
      job = this.move('IN_PROGRESS', 'preload', null, { stagedDir: dir });
      if (dir === null) throw new JobEnd('FAILED', 'no bundle directory');
      if (job.origin === 'fleet') await this.verifyAgain(dir);
      try {
        preloaded = await ports.runtime.preload(dir);
      } catch (err) {
        throw new JobEnd(err instanceof ReflexError && err.code === 'BAD_REQUEST' ? 'REJECTED' : 'FAILED', `preload: ${errorMessage(err)}`, err);
      }
      this.check(signal);
      if (this.opts.settings.shadowRuns > 0) {
        const s = await ports.runtime.shadow(preloaded, this.opts.settings.shadowRuns, this.opts.limits);
        if (s.problem !== null) throw new JobEnd('REJECTED', `shadow run: ${s.problem}`);
        this.log.info({ job: job.jobId, runs: s.runs, meanMs: round(s.meanMs), maxMs: round(s.maxMs), budgetMs: s.budgetMs }, 'shadow run passed');
      }
      // The technician asked for this swap now; a fleet job waits until the robot is safe.
      if (job.origin === 'fleet') {
        this.move('IN_PROGRESS', 'wait-safe');
        await this.untilSafe(signal);
      }
      this.check(signal);
      job = this.move('IN_PROGRESS', 'activate');
      const from = ports.runtime.status().active;
      activated = true;
      const base = countsOf(ports.loop.status(), ports.runtime.status());
      const info = await ports.runtime.swapIn(preloaded);
      preloaded = null;
      this.log.info({ job: job.jobId, policy: info.name, version: info.version }, 'update activated; trial begins');
      waiter?.resolve(info);
      waiter = null;
      this.move('IN_PROGRESS', 'trial');
      const end = await this.trial(base, info.dir, signal);
      if (end?.kind === 'supersede') {
        this.move('CANCELED', 'trial', end.reason);
        return;
      }
      if (end !== null) {
        await this.rollBack(end.reason, from !== null);
        return;
      }
      const cur = this.store.transition('IN_PROGRESS', 'commit');
      this.report(cur);
      // The rollback slot is what ran before (the committed policy, or the config's at first).
      this.commit(cur, info.dir, from !== null ? { dir: from.dir, name: from.name, version: from.version } : this.store.record.active);
    } catch (err) {
      const canceled = signal.aborted && !activated;
      const state: JobState = canceled ? 'CANCELED' : err instanceof JobEnd ? err.state : 'FAILED';
      const reason = canceled ? errorMessage(signal.reason) : errorMessage(err);
      const original = err instanceof JobEnd ? err.original : null;
      try {
        await this.end(state, reason, preloaded, activated, canceled);
      } finally {
        // The technician hears of it once the job's end is recorded (ota.status agrees).
        waiter?.reject(original instanceof ReflexError ? original : new ReflexError('COMMAND_FAILED', reason));
      }
    }
  }

  /** Records how a job ended early; rolls back one already activated. */
  private async end(state: JobState, reason: string, preloaded: Preloaded | null, activated: boolean, canceled: boolean): Promise<void> {
    if (preloaded !== null) await this.need().runtime.discard(preloaded).catch(() => undefined);
    if (this.stopped && !canceled) return; // a stop mid-update: the next start recovers it
    const job = this.store.record.job;
    if (job === null || TERMINAL_STATES.includes(job.state)) return;
    if (activated) {
      await this.rollBack(reason, true).catch((e: unknown) => this.log.error({ err: errorMessage(e) }, 'rollback failed'));
      return;
    }
    if (state === 'FAILED' || state === 'REJECTED') this.quarantine(job);
    else this.dropStaged(job);
    this.log.warn({ job: job.jobId, state, reason }, 'update ended');
    try {
      this.move(state, job.step, reason);
    } catch (e) {
      this.log.error({ err: errorMessage(e) }, 'could not record the end of the update');
    }
  }

  private check(signal: AbortSignal): void {
    if (signal.aborted) throw signal.reason;
    if (this.stopped) throw new Error('reflex is stopping');
  }

  private async fetchAndVerify(job: JobRecord, signal: AbortSignal): Promise<string> {
    const b = job.bundle;
    const floor = this.store.record.floors[b.name];
    if (floor !== undefined && compareVersions(b.version, floor) < 0) throw new JobEnd('REJECTED', `below-floor: ${b.name} ${b.version} is older than the committed floor ${floor}`);
    const size = b.size ?? 0;
    const free = freeBytes(this.dir);
    if (free !== null && free < size * 3) throw new JobEnd('REJECTED', `not enough disk: ${size} bytes to download and unpack, ${free} free`);
    this.move('IN_PROGRESS', 'download');
    const archive = join(this.downloadsDir, `${job.jobId}.tar`);
    let last = 0;
    try {
      await download(b.url!, archive, {
        sha256: b.sha256!,
        size,
        signal,
        onProgress: (done, total) => {
          this.progress = { done, total, unit: 'bytes' };
          // Reported at most once a second (and at the end), never persisted: a restart discards.
          if (Date.now() - last >= 1000 || done === total) {
            last = Date.now();
            this.report(this.store.record.job!);
          }
        },
      });
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      throw new JobEnd('FAILED', `download: ${err instanceof DownloadFailed ? `${err.code}: ${err.message}` : errorMessage(err)}`);
    }
    this.check(signal);
    this.move('IN_PROGRESS', 'verify');
    try {
      const v = await unpackBundle(archive, this.bundlesDir, this.trust(), { maxBytes: this.opts.settings.maxBundleBytes });
      if (v.manifest.name !== b.name || v.manifest.version !== b.version) {
        rmSync(v.dir, { recursive: true, force: true });
        throw new BundleRefused('tampered', `the bundle is ${v.manifest.name} ${v.manifest.version}; the job names ${b.name} ${b.version}`);
      }
      return v.dir;
    } catch (err) {
      if (err instanceof BundleRefused) throw new JobEnd('REJECTED', `${err.code}: ${err.message}`);
      throw new JobEnd('FAILED', `verify: ${errorMessage(err)}`);
    } finally {
      rmSync(archive, { force: true });
    }
  }

  /** Just before loading: the files on disk are still the ones the signer hashed. */
  private async verifyAgain(dir: string): Promise<void> {
    try {
      await verifyBundleDir(dir, this.trust());
    } catch (err) {
      throw new JobEnd('REJECTED', err instanceof BundleRefused ? `${err.code}: ${err.message}` : `verify: ${errorMessage(err)}`);
    }
  }

  private trust(): Trust {
    const s = this.opts.settings;
    const floors = this.store.record.floors;
    return {
      keys: this.keys,
      revoked: s.revokedKeys,
      robotType: this.opts.robotType,
      reflexVersion: this.opts.reflexVersion ?? packageVersion(),
      floor: (name) => floors[name] ?? null,
    };
  }

  /** Why the robot is not safe to swap now, or null when it is. */
  private unsafe(s: LoopStatus): string | null {
    if (s.mode === 'estop' || s.mode === 'fault') return `the loop is in ${s.mode}`;
    if (!s.healthy) return 'the loop is not ticking';
    if (s.mode === 'hold') return null;
    if (this.opts.settings.safeWhen === 'stopped') return 'a policy is running (ota.safeWhen: stopped waits for policy.stop)';
    const v = this.opts.settings.stillVelocity;
    const moving = s.lastTick?.joints.find((j) => Math.abs(j.velocity) >= v);
    if (s.lastTick === null) return 'no tick yet';
    return moving ? `joint ${moving.name} moves at ${Math.abs(moving.velocity).toFixed(3)} (still below ${v})` : null;
  }

  /** Waits, however long, until the robot is safe to swap; says what it waits for. Never gives up. */
  private async untilSafe(signal: AbortSignal): Promise<void> {
    const ports = this.need();
    for (;;) {
      this.check(signal);
      const why = this.unsafe(ports.loop.status());
      if (why === null) return;
      if (why !== this.waiting) {
        this.waiting = why;
        this.report(this.store.record.job!);
      }
      await sleep(this.pollMs, signal);
    }
  }

  /** The probation window; the reason it failed, or null when the policy passed. */
  private async trial(base: TrialCounts, dir: string, signal: AbortSignal): Promise<TrialEnd | null> {
    const ports = this.need();
    const s = this.opts.settings;
    let ranMs = 0;
    let last = performance.now();
    let lastReport = 0;
    for (;;) {
      if (this.stopped) throw new Error('reflex is stopping');
      if (this.endTrial !== null) return this.endTrial;
      const loop = ports.loop.status();
      const policy: PolicyStatus = ports.runtime.status();
      const why = verdict(base, loop, policy, dir, s.thresholds);
      if (why !== null) return { kind: 'rollback', reason: why };
      const now = performance.now();
      if (loop.mode === 'policy') ranMs += now - last;
      last = now;
      if (ranMs >= s.trialS * 1000) return null;
      this.waiting = loop.mode === 'policy' ? null : 'the trial counts only while the policy runs (policy.start)';
      if (now - lastReport >= 1000) {
        lastReport = now;
        this.progress = { done: Math.floor(ranMs / 100) / 10, total: s.trialS, unit: 's' };
        this.report(this.store.record.job!);
      }
      await sleep(this.pollMs, signal).catch(() => undefined);
    }
  }

  private async rollBack(why: string, hadPrevious: boolean): Promise<void> {
    const ports = this.need();
    const job = this.move('IN_PROGRESS', 'rollback', `rolled back: ${why}`);
    this.log.error({ job: job.jobId, reason: why }, 'the new policy failed its trial; rolling back');
    try {
      if (hadPrevious) await ports.runtime.rollback();
      else await ports.loop.stopPolicy();
    } catch (err) {
      // Nothing to go back to (its worker ended): the arm holds rather than run the bad policy.
      this.log.error({ err: errorMessage(err) }, 'no previous policy to roll back to; holding');
      await ports.loop.stopPolicy().catch(() => undefined);
    }
    this.quarantine(job);
    this.move('FAILED', 'rollback', `rolled back: ${why}`);
  }

  /** The commit, in one persisted write: active, previous, floor, SUCCEEDED. */
  private commit(job: JobRecord, dir: string, was: PolicyRef | null): void {
    const r = this.store.record;
    const name = job.origin === 'fleet' ? job.bundle.name : (this.need().runtime.status().active?.name ?? job.bundle.name);
    const version = job.origin === 'fleet' ? job.bundle.version : (this.need().runtime.status().active?.version ?? job.bundle.version);
    const floors = { ...r.floors };
    if (job.origin === 'fleet' && (floors[name] === undefined || compareVersions(version, floors[name]) > 0)) floors[name] = version;
    const dropped = r.previous;
    const active: PolicyRef = { dir, name, version };
    const next = this.store.transition('SUCCEEDED', 'commit', null, {}, { active, previous: was, floors });
    this.report(next);
    this.log.info({ job: job.jobId, policy: name, version }, 'update committed');
    // The rollback slot moved on: the bundle before it is no longer needed (only ours are deleted).
    if (dropped !== null && dropped.dir !== dir && dropped.dir !== was?.dir && this.ours(dropped.dir)) rmSync(dropped.dir, { recursive: true, force: true });
  }

  private ours(dir: string): boolean {
    const rel = relative(this.bundlesDir, dir);
    return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) && !rel.includes(`..${sep}`);
  }

  /** A bad bundle is kept aside for whoever looks into it, never loaded again. */
  private quarantine(job: JobRecord): void {
    const dir = job.stagedDir;
    if (dir === null || !this.ours(dir) || !existsSync(dir)) return;
    const r = this.store.record;
    if (r.active?.dir === dir || r.previous?.dir === dir) return;
    try {
      const to = join(this.quarantineDir, job.jobId);
      rmSync(to, { recursive: true, force: true });
      renameSync(dir, to);
    } catch (err) {
      this.log.error({ err: errorMessage(err), dir }, 'could not quarantine a bad bundle; deleting it');
      rmSync(dir, { recursive: true, force: true });
    }
  }

  private dropStaged(job: JobRecord): void {
    const r = this.store.record;
    if (job.stagedDir !== null && this.ours(job.stagedDir) && r.active?.dir !== job.stagedDir && r.previous?.dir !== job.stagedDir) rmSync(job.stagedDir, { recursive: true, force: true });
    rmSync(join(this.downloadsDir, `${job.jobId}.tar`), { force: true });
    rmSync(join(this.downloadsDir, `${job.jobId}.tar.part`), { force: true });
  }

  private reportOf(job: JobRecord): JobReport {
    const live = job.state === 'IN_PROGRESS';
    return {
      jobId: job.jobId,
      deviceId: this.opts.deviceId,
      state: job.state,
      step: job.step,
      progress: live ? this.progress : null,
      reason: live ? (this.waiting ?? job.reason) : job.reason,
      bundle: { name: job.bundle.name, version: job.bundle.version },
      ts: Date.now(),
    };
  }

  private report(job: JobRecord): void {
    this.emit(this.reportOf(job));
  }

  private emit(r: JobReport): void {
    for (const fn of this.listeners) {
      try {
        fn(topics.job(this.opts.deviceId, r.jobId), r);
      } catch (err) {
        this.log.error({ err: errorMessage(err) }, 'a job report listener failed');
      }
    }
  }

  status(): UpdaterStatus {
    const r = this.store.record;
    return {
      state: this.running !== null ? 'busy' : 'idle',
      job: r.job ? this.reportOf(r.job) : null,
      active: r.active,
      previous: r.previous,
      floors: r.floors,
      storeDamaged: this.store.opened.damaged,
      keys: this.keys.map((k) => k.id),
      keysError: this.keysError,
    };
  }

  telemetry(): { ota: object } {
    const j = this.store.record.job;
    return { ota: { job: j ? { jobId: j.jobId, state: j.state, step: j.step } : null, active: this.store.record.active } };
  }

  /** A job in progress is left where its record says: the next start recovers it. */
  async stop(): Promise<void> {
    this.stopped = true;
    const r = this.running;
    if (r === null) return;
    r.abort.abort(new Error('reflex is stopping'));
    await Promise.race([r.done, sleep(2000)]).catch(() => undefined);
  }
}

/** reflex's version, from the package root (dist/src/ota/ -> ../../..), in a checkout and a release. */
function packageVersion(): string {
  try {
    const file = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'package.json');
    const v = (JSON.parse(readRegularFile(file, 1024 * 1024).toString('utf8')) as { version?: unknown }).version;
    return typeof v === 'string' ? v : '0.0.0';
  } catch {
    return '0.0.0';
  }
}

function freeBytes(dir: string): number | null {
  try {
    const s = statfsSync(dir);
    return s.bavail * s.bsize;
  } catch {
    return null;
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason as Error);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function round(v: number): number {
  return Math.round(v * 10) / 10;
}
