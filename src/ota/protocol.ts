// What the fleet and a robot say to each other about policy updates, defined once: the desired
// policy a backend (or `reflex fleet deploy`) publishes, retained, per device or per group; and
// the job reports the robot publishes, retained, one topic per job, in the states of AWS IoT
// Jobs so that a fleet backend reads them without a translation table.
import { z } from 'zod';

/** Job ids and group names: a plain topic level (no / + # or spaces). */
const ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const idString = z.string().regex(ID, 'letters, digits, _ . - (at most 64), no / + # or spaces');

/** A desired-policy document is small: anything bigger is refused before it is parsed. */
export const DESIRED_MAX_BYTES = 4096;
/** Largest bundle archive a job may name (the download never takes more than `size`). */
export const BUNDLE_MAX_BYTES = 4 * 1024 ** 3;

export const bundleRefSchema = z
  .object({
    name: z.string().min(1).max(128),
    version: z.string().min(1).max(64),
    /** Where the archive is served: plain HTTP(S) (a static file server, a presigned S3 URL). */
    url: z.string().max(2048).regex(/^https?:\/\/[^\s]+$/, 'an http:// or https:// URL'),
    sha256: z.string().regex(/^[0-9a-f]{64}$/, '64 lowercase hex digits'),
    size: z.number().int().min(1).max(BUNDLE_MAX_BYTES),
  })
  .strict();
export type BundleRef = z.infer<typeof bundleRefSchema>;

/** `reflex/v1/<id>/desired/policy` or `reflex/v1/group/<g>/desired/policy`, retained. */
export const desiredPolicySchema = z.union([
  z.object({ jobId: idString, bundle: bundleRefSchema }).strict(),
  z.object({ jobId: idString, cancel: z.literal(true) }).strict(),
]);
export type DesiredPolicy = z.infer<typeof desiredPolicySchema>;

/** AWS IoT Jobs' execution states (TIMED_OUT and REMOVED are the backend's, not the robot's). */
export const JOB_STATES = ['QUEUED', 'IN_PROGRESS', 'SUCCEEDED', 'FAILED', 'REJECTED', 'CANCELED'] as const;
export type JobState = (typeof JOB_STATES)[number];
export const TERMINAL_STATES: readonly JobState[] = ['SUCCEEDED', 'FAILED', 'REJECTED', 'CANCELED'];

/** The update's steps, in order (rollback only after a failed trial or a technician's rollback). */
export const STEPS = ['validate', 'download', 'verify', 'preload', 'wait-safe', 'activate', 'trial', 'commit', 'rollback'] as const;
export type Step = (typeof STEPS)[number];

/** `reflex/v1/<id>/jobs/<jobId>`, retained, QoS 1: the newest state of one job on one robot. */
export const jobReportSchema = z
  .object({
    jobId: idString,
    deviceId: z.string(),
    state: z.enum(JOB_STATES),
    /** The step the job is at (IN_PROGRESS) or ended in. */
    step: z.enum(STEPS).nullable(),
    /** Download progress, or trial seconds done, while the step has a measure. */
    progress: z.object({ done: z.number(), total: z.number(), unit: z.enum(['bytes', 's']) }).nullable(),
    /** Why it failed, was refused or canceled; what it waits for while it waits. */
    reason: z.string().nullable(),
    bundle: z.object({ name: z.string(), version: z.string() }).nullable(),
    /** Milliseconds since the epoch. */
    ts: z.number(),
  })
  .strict();
export type JobReport = z.infer<typeof jobReportSchema>;

export const topics = {
  desired: (deviceId: string) => `reflex/v1/${deviceId}/desired/policy`,
  groupDesired: (group: string) => `reflex/v1/group/${group}/desired/policy`,
  job: (deviceId: string, jobId: string) => `reflex/v1/${deviceId}/jobs/${jobId}`,
  /** Every job of every device (for `reflex fleet status`). */
  allJobs: 'reflex/v1/+/jobs/+',
  allStates: 'reflex/v1/+/state',
} as const;

export function isId(s: string): boolean {
  return ID.test(s);
}

/** Parses a desired-policy payload; says what is wrong in words (never throws). */
export function parseDesired(payload: Buffer): { ok: true; doc: DesiredPolicy } | { ok: false; reason: string } {
  if (payload.length > DESIRED_MAX_BYTES) return { ok: false, reason: `desired policy document of ${payload.length} bytes (at most ${DESIRED_MAX_BYTES})` };
  let v: unknown;
  try {
    v = JSON.parse(payload.toString('utf8'));
  } catch {
    return { ok: false, reason: 'desired policy document is not JSON' };
  }
  const r = desiredPolicySchema.safeParse(v);
  if (!r.success) {
    const i = r.error.issues[0];
    return { ok: false, reason: `desired policy document: ${i ? `${i.path.join('.') || '(root)'}: ${i.message}` : 'invalid'}` };
  }
  return { ok: true, doc: r.data };
}
