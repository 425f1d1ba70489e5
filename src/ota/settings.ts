// The `ota:` section of the config: where updates live, how a new policy is judged, when it may
// be swapped in, and whom to trust. Composed into the config schema (src/config/schema.ts).
import { z } from 'zod';
import { checkRevocations, trustSchema } from './config.js';

/** Counts a trial may see before the new policy is rolled back (exceeding one is a failure). */
const thresholds = z
  .object({
    missedDeadlines: z.number().int().min(0).default(5),
    starvedTicks: z.number().int().min(0).default(10),
    limitClamps: z.number().int().min(0).default(0),
    deltaClamps: z.number().int().min(0).default(1_000_000),
    nonFinite: z.number().int().min(0).default(0),
    inferenceErrors: z.number().int().min(0).default(0),
    overBudget: z.number().int().min(0).default(5),
  })
  .strict();
export type TrialThresholds = z.output<typeof thresholds>;

export const otaSettingsSchema = z
  .object({
    /** Off: no update engine; policy.activate swaps at once, as before. */
    enabled: z.boolean().default(true),
    /** Under paths.stateDir unless absolute: the record, downloads, bundles, quarantine. */
    dir: z.string().min(1).default('ota'),
    /** The probation window: this many seconds of the new policy driving the arm. */
    trialS: z.number().min(0).max(3600).default(30),
    thresholds: thresholds.default({}),
    /**
     * When the swap may happen: `stopped`, only while the loop holds (no policy running);
     * `still`, also while a policy runs but every joint moves slower than stillVelocity.
     * Never during an e-stop or a fault, and never on a timeout: the job waits and says so.
     */
    safeWhen: z.enum(['stopped', 'still']).default('still'),
    /** rad/s (or m/s): below it on every joint the arm counts as still. */
    stillVelocity: z.number().positive().max(10).default(0.05),
    /** Inferences of the shadow run before a new policy is swapped in (0: none). */
    shadowRuns: z.number().int().min(0).max(100).default(5),
    /** The group whose desired policy this robot follows as well as its own (fleet deploys). */
    group: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'letters, digits, _ . - (at most 64)')
      .nullable()
      .default(null),
    /** trustedKeys (Ed25519, several for rotation) and revokedKeys (never accepted): config.ts. */
    ...trustSchema.shape,
    /** Largest unpacked bundle, bytes. */
    maxBundleBytes: z.number().int().min(1024).max(16 * 1024 ** 3).default(4 * 1024 ** 3),
  })
  .strict()
  .superRefine(checkRevocations);

export type OtaSettings = z.output<typeof otaSettingsSchema>;
