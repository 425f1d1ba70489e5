// The update's persisted record: the job in progress (or the last one), the committed active
// and previous policy, the version floor per policy name, and the jobs already finished. It is
// written at every transition, so a power cut at any instant leaves a record that says where
// the update was. Two slots, each written as temp + fsync + rename + fsync of the directory,
// each carrying its own sequence number and checksum: a torn or truncated slot (a disk that
// lied about fsync, a card pulled) is detected and the other, older, slot is used.
import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { ReflexError, errorMessage, readRegularFile } from '../core/index.js';
import { JOB_STATES, STEPS, TERMINAL_STATES, type JobState, type Step } from './protocol.js';

/** Mender's state-loop cap: a job that moves this often is stuck in a loop and is failed. */
export const MAX_TRANSITIONS = 64;
/** Finished job ids kept, so a retained desired document seen again is not run again. */
export const DONE_KEPT = 64;
const SLOT_MAX_BYTES = 256 * 1024;
const SLOTS = ['update.a.json', 'update.b.json'] as const;

const policyRef = z.object({ dir: z.string(), name: z.string(), version: z.string() }).strict();
export type PolicyRef = z.infer<typeof policyRef>;

const jobSchema = z
  .object({
    jobId: z.string(),
    /** fleet: a desired-policy document; socket: a technician's policy.activate. */
    origin: z.enum(['fleet', 'socket']),
    bundle: z.object({ name: z.string(), version: z.string(), url: z.string().nullable(), sha256: z.string().nullable(), size: z.number().nullable() }).strict(),
    state: z.enum(JOB_STATES),
    step: z.enum(STEPS).nullable(),
    transitions: z.number().int(),
    createdAt: z.number(),
    updatedAt: z.number(),
    reason: z.string().nullable(),
    /** The bundle being installed, once it is a directory (verified, or the technician's). */
    stagedDir: z.string().nullable(),
  })
  .strict();
export type JobRecord = z.infer<typeof jobSchema>;

const recordSchema = z
  .object({
    seq: z.number().int().min(0),
    job: jobSchema.nullable(),
    active: policyRef.nullable(),
    previous: policyRef.nullable(),
    floors: z.record(z.string()),
    done: z.array(z.string()),
  })
  .strict();
export type UpdateRecord = z.infer<typeof recordSchema>;

const slotSchema = z.object({ sha256: z.string(), body: z.string() }).strict();

export function emptyRecord(): UpdateRecord {
  return { seq: 0, job: null, active: null, previous: null, floors: {}, done: [] };
}

export interface StoreOpenReport {
  /** Slots that could not be used (torn, truncated, checksum wrong), in words. */
  damaged: string[];
}

/** Files written by the store, so a test can tear them. */
export const STORE_FILES = SLOTS;

export class UpdateStore {
  private rec: UpdateRecord;
  readonly opened: StoreOpenReport;

  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true });
    const { rec, damaged } = this.read();
    this.rec = rec;
    this.opened = { damaged };
  }

  get record(): Readonly<UpdateRecord> {
    return this.rec;
  }

  /** Reads both slots; the valid one with the higher sequence wins. Leftover temp files are removed. */
  private read(): { rec: UpdateRecord; damaged: string[] } {
    for (const f of readdirSync(this.dir)) if (f.endsWith('.tmp')) rmSync(join(this.dir, f), { force: true });
    let best: UpdateRecord | null = null;
    const damaged: string[] = [];
    for (const name of SLOTS) {
      const path = join(this.dir, name);
      let text: string;
      try {
        text = readRegularFile(path, SLOT_MAX_BYTES).toString('utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') damaged.push(`${name}: ${errorMessage(err)}`);
        continue;
      }
      try {
        const slot = slotSchema.parse(JSON.parse(text));
        if (sha256(slot.body) !== slot.sha256) throw new Error('checksum does not match (torn write)');
        const rec = recordSchema.parse(JSON.parse(slot.body));
        if (best === null || rec.seq > best.seq) best = rec;
      } catch (err) {
        damaged.push(`${name}: ${err instanceof z.ZodError ? 'not a valid update record' : errorMessage(err)}`);
      }
    }
    return { rec: best ?? emptyRecord(), damaged };
  }

  /**
   * Persists `next` (a new record, not the current one mutated) into the older slot. Throws
   * ReflexError('COMMAND_FAILED') when it cannot: the caller must not act as if it had been stored.
   */
  save(next: Omit<UpdateRecord, 'seq'>): UpdateRecord {
    const rec: UpdateRecord = { ...next, seq: this.rec.seq + 1, done: next.done.slice(-DONE_KEPT) };
    const body = JSON.stringify(rec);
    const data = `${JSON.stringify({ sha256: sha256(body), body })}\n`;
    const name = SLOTS[rec.seq % 2]!;
    const tmp = join(this.dir, `${name}.tmp`);
    try {
      const fd = openSync(tmp, 'w', 0o600);
      try {
        writeSync(fd, data);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, join(this.dir, name));
      const d = openSync(this.dir, 'r');
      try {
        fsyncSync(d);
      } finally {
        closeSync(d);
      }
    } catch (err) {
      rmSync(tmp, { force: true });
      throw new ReflexError('COMMAND_FAILED', `cannot persist the update record in ${this.dir}: ${errorMessage(err)}`);
    }
    this.rec = rec;
    return rec;
  }

  /**
   * Moves the job to `state`/`step` and persists it. Past MAX_TRANSITIONS the job is failed
   * instead (a loop between states, as after repeated restarts mid-update).
   */
  transition(state: JobState, step: Step | null, reason: string | null = null, patch: Partial<Pick<JobRecord, 'stagedDir'>> = {}, rest: Partial<Omit<UpdateRecord, 'seq' | 'job'>> = {}): JobRecord {
    const job = this.rec.job;
    if (job === null) throw new ReflexError('COMMAND_FAILED', 'no update job to move');
    const looped = job.transitions + 1 > MAX_TRANSITIONS && !TERMINAL_STATES.includes(state);
    const next: JobRecord = {
      ...job,
      ...patch,
      state: looped ? 'FAILED' : state,
      step,
      reason: looped ? `more than ${MAX_TRANSITIONS} state transitions (a loop): stopped` : reason,
      transitions: job.transitions + 1,
      updatedAt: Date.now(),
    };
    const done = TERMINAL_STATES.includes(next.state) && !this.rec.done.includes(job.jobId) ? [...this.rec.done, job.jobId] : this.rec.done;
    this.save({ ...this.rec, ...rest, job: next, done });
    return next;
  }
}

function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}
