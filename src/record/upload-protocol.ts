// What a robot and the fleet say to each other about uploading recorded episodes, defined once.
// The robot holds no cloud credentials: it publishes, retained, the episodes waiting to go up
// (`pending`); whoever holds the bucket's keys (`reflex fleet uploads`, or a team's backend)
// answers, retained, with presigned S3 URLs for exactly those files (`grant`). A file up to one
// part goes up with one PUT; a bigger one as an S3 multipart upload, whose upload id the robot
// keeps so that a restart or a new grant resumes at the first part not yet stored.
import { z } from 'zod';

export const uploadTopics = {
  pending: (deviceId: string) => `reflex/v1/${deviceId}/uploads/pending`,
  grant: (deviceId: string) => `reflex/v1/${deviceId}/uploads/grant`,
  /** Every device's pending list (for the grant service). */
  allPending: 'reflex/v1/+/uploads/pending',
} as const;

/** A grant is a few URLs per file for a few episodes: anything bigger is refused before it is parsed. */
export const GRANT_MAX_BYTES = 512 * 1024;
/** Episodes offered at once: the oldest flagged ones first, then the oldest. */
export const OFFER_MAX = 4;
/** S3's own bounds on a multipart upload. */
export const MIN_PART_BYTES = 5 * 1024 ** 2;
export const MAX_PARTS = 10_000;

/** A file name inside an episode: data.parquet, observation.images.<camera>.mp4, episode.json. */
const fileName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/, 'a plain file name');
const episodeId = z.string().regex(/^[0-9a-f-]{36}$/, 'an episode id (a UUID)');

export const offeredFileSchema = z
  .object({
    name: fileName,
    bytes: z.number().int().min(0),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    /** A multipart upload the robot has begun with, to be continued rather than restarted. */
    uploadId: z.string().min(1).max(1024).optional(),
  })
  .strict();
export type OfferedFile = z.infer<typeof offeredFileSchema>;

export const pendingSchema = z
  .object({
    /** Grows with every new pending list of this device; a grant names the one it answers. */
    seq: z.number().int().min(0),
    episodes: z.array(z.object({ id: episodeId, files: z.array(offeredFileSchema).max(64) }).strict()).max(OFFER_MAX),
    /** All episodes waiting, not only those offered, and their bytes. */
    waiting: z.number().int().min(0),
    waitingBytes: z.number().int().min(0),
  })
  .strict();
export type PendingUploads = z.infer<typeof pendingSchema>;

const url = z.string().max(4096).regex(/^https?:\/\/[^\s]+$/, 'an http:// or https:// URL');

export const grantedFileSchema = z.union([
  z.object({ name: fileName, put: url }).strict(),
  z
    .object({
      name: fileName,
      multipart: z
        .object({
          uploadId: z.string().min(1).max(1024),
          partBytes: z.number().int().min(MIN_PART_BYTES).max(5 * 1024 ** 3),
          /** One URL per part, part 1 first. */
          parts: z.array(url).min(1).max(MAX_PARTS),
          complete: url,
        })
        .strict(),
    })
    .strict(),
]);
export type GrantedFile = z.infer<typeof grantedFileSchema>;

export const grantSchema = z
  .object({
    /** The pending list's seq this answers. */
    seq: z.number().int().min(0),
    episodes: z.array(z.object({ id: episodeId, files: z.array(grantedFileSchema).max(64) }).strict()).max(OFFER_MAX),
  })
  .strict()
  // An episode or a file named twice would go up twice, or to whichever URL came first.
  .superRefine((g, ctx) => {
    const twice = (names: string[]) => names.find((n, i) => names.indexOf(n) !== i);
    const ep = twice(g.episodes.map((e) => e.id));
    if (ep !== undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['episodes'], message: `episode ${ep} named twice` });
    g.episodes.forEach((e, i) => {
      const f = twice(e.files.map((x) => x.name));
      if (f !== undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['episodes', i, 'files'], message: `file ${f} named twice` });
    });
  });
export type UploadGrant = z.infer<typeof grantSchema>;

export function parseGrant(payload: Buffer): { ok: true; grant: UploadGrant } | { ok: false; reason: string } {
  if (payload.length > GRANT_MAX_BYTES) return { ok: false, reason: `${payload.length} bytes, more than ${GRANT_MAX_BYTES}` };
  let raw: unknown;
  try {
    raw = JSON.parse(payload.toString('utf8'));
  } catch {
    return { ok: false, reason: 'not JSON' };
  }
  const r = grantSchema.safeParse(raw);
  return r.success ? { ok: true, grant: r.data } : { ok: false, reason: r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') };
}

export function parsePending(payload: Buffer): PendingUploads | null {
  if (payload.length > GRANT_MAX_BYTES) return null;
  try {
    const r = pendingSchema.safeParse(JSON.parse(payload.toString('utf8')));
    return r.success ? r.data : null;
  } catch {
    return null;
  }
}
