import { z } from 'zod';
import { LOG_LEVELS } from '../core/index.js';
import { defaultRegistry, type MotorFamily, type MotorRegistry } from '../hardware/index.js';
import { otaSettingsSchema } from '../ota/index.js';

// The one schema of the agent's config: the TypeScript types, the defaults and the validation
// all come from here. Every object is strict, so a misspelt key is an error rather than a
// setting silently ignored on a robot.

const name = z
  .string()
  .regex(/^[a-z][a-z0-9_]{0,31}$/, 'a lower-case name of letters, digits and _ (at most 32), starting with a letter');

/** A joint's own keys; each motor family adds its block (`can: { kp }`) where it has one. */
const jointBase = z.object({
  name,
  /** Name of an entry in `buses`. */
  bus: name,
  /** Motor id on that bus. */
  id: z.number().int().min(0).max(252),
  /** Motor model, e.g. xm430-w350 or ak80-9; its bus's family says which it drives. */
  model: z.string().min(1),
  /** Position limits in radians, in the joint's calibrated frame. */
  limits: z.object({ min: z.number().finite(), max: z.number().finite() }).strict(),
  /** Fastest the safety filter lets the joint move, rad/s. */
  maxVelocity: z.number().positive().finite().default(2),
  calibration: z
    .object({
      /** Added to the motor's angle to give the joint's angle, radians. */
      offset: z.number().finite().default(0),
      /** -1 where the motor turns opposite to the joint's positive direction. */
      direction: z.union([z.literal(1), z.literal(-1)]).default(1),
    })
    .strict()
    .default({}),
});

/** A bus entry: its name, its kind (a registered motor family) and that family's keys. */
export interface BusConfig {
  readonly name: string;
  readonly kind: string;
  readonly [key: string]: unknown;
}

/** A joint entry: its own keys, and each family's block (`can`) by the family's kind. */
export type JointConfig = z.output<typeof jointBase> & { readonly [family: string]: unknown };

/** The bus entries the registered families accept, told apart by `kind`. */
function busSchema(families: readonly MotorFamily[]): z.ZodType<BusConfig, z.ZodTypeDef, unknown> {
  const options = families.map((f) => z.object({ name, kind: z.literal(f.kind) }).merge(f.busSchema).strict() as z.ZodDiscriminatedUnionOption<'kind'>);
  const [first, ...rest] = options;
  if (first === undefined) return z.never();
  return typed<BusConfig>(z.discriminatedUnion('kind', [first, ...rest]));
}

function jointSchema(families: readonly MotorFamily[]): z.ZodType<JointConfig, z.ZodTypeDef, unknown> {
  const blocks: Record<string, z.ZodTypeAny> = {};
  for (const f of families) if (f.jointSchema) blocks[f.kind] = f.jointSchema.strict().default({});
  return typed<JointConfig>(jointBase.extend(blocks).strict());
}

/** A schema composed at run time, typed as what its output has in every composition. */
function typed<T>(schema: z.ZodTypeAny): z.ZodType<T, z.ZodTypeDef, unknown> {
  return schema.transform((v: unknown) => v as T);
}

const camera = z
  .object({
    name,
    /** /dev/videoN, a /dev/v4l/by-id path, a device index, a GStreamer pipeline or a file. */
    source: z.union([z.string().min(1), z.number().int().min(0)]),
    width: z.number().int().positive().default(640),
    height: z.number().int().positive().default(480),
    fps: z.number().positive().max(240).default(30),
    format: z.enum(['MJPG', 'YUYV']).default('MJPG'),
    /** Older frames are stale: the policy path holds instead of acting on them. */
    maxAgeMs: z.number().positive().default(100),
  })
  .strict();

const policy = z
  .object({
    /** Directory of the policy bundle (policy.json + model.onnx); null runs the loop in hold. */
    bundle: z.string().min(1).nullable().default(null),
    /** Execution providers in the order tried; the first that loads is used. */
    providers: z.array(z.enum(['tensorrt', 'cuda', 'cpu'])).nonempty().default(['cpu']),
    /** onnxruntime build to load instead of the npm package (the Jetson's TensorRT build). */
    onnxruntimePath: z.string().min(1).nullable().default(null),
    /** Start acting on the policy (soft start from hold) as soon as it is loaded and warmed up. */
    autostart: z.boolean().default(true),
    /** The task instruction VLA policies are given at start (`reflex policy task` changes it). */
    task: z.string().max(2000).default(''),
    /** The seed of VLA policies' initial noise; null: a random one (reported in status, to replay a run). */
    seed: z.number().int().min(0).max(2 ** 32 - 1).nullable().default(null),
  })
  .strict();

const fleet = z
  .object({
    enabled: z.boolean().default(false),
    /** mqtt://host:1883 or mqtts://host:8883 */
    url: z
      .string()
      .regex(/^(mqtts?|wss?):\/\/[^\s]+$/, 'a URL starting mqtt://, mqtts://, ws:// or wss://')
      .nullable()
      .default(null),
    username: z.string().nullable().default(null),
    /** File that holds the password, so the secret is not in the config itself. */
    passwordFile: z.string().nullable().default(null),
    caFile: z.string().nullable().default(null),
    certFile: z.string().nullable().default(null),
    keyFile: z.string().nullable().default(null),
    telemetryHz: z.number().positive().max(50).default(1),
    /** Events and logs kept on disk while the broker is unreachable; the oldest go first past this. */
    outboxMax: z.number().int().min(10).max(10_000_000).default(100_000),
    /** ... and bytes on disk (segment files; past it the oldest segment is dropped whole, counted). */
    outboxMaxBytes: z.number().int().min(65_536).max(64 * 1024 ** 3).default(64 * 1024 ** 2),
    /** How fast a backlog drains after a reconnect. */
    drainPerSecond: z.number().int().min(1).max(100_000).default(500),
    /** Log records at this level and above are shipped to the fleet (through the outbox). */
    shipLogLevel: z.enum(['warn', 'error', 'fatal']).default('warn'),
  })
  .strict();

/** The flywheel recorder (src/record/): where, how often, which cameras, and the disk bounds. */
const record = z
  .object({
    /** false: no recorder at all (record.* commands answer that recording is unavailable). */
    enabled: z.boolean().default(true),
    /** The dataset's directory; null: <paths.stateDir>/recordings/dataset. */
    dir: z.string().min(1).nullable().default(null),
    /** Dataset rows (and video frames) per second; null: the loop's rate (the policy's fps). Must divide control.rateHz. */
    fps: z.number().int().min(1).max(1000).nullable().default(null),
    /** Cameras recorded, by name; null: every camera. */
    cameras: z.array(name).nullable().default(null),
    /** Task of the episodes when record.start names none. */
    task: z.string().min(1).max(1000).default('unspecified'),
    /** The dataset stops growing (no new episode) past this many MB... */
    maxDiskMb: z.number().int().min(1).default(20_000),
    /** ... or when the disk has less free than this. */
    minFreeMb: z.number().int().min(0).default(1024),
    /** Seconds kept in memory while not recording (0: off), saved as an episode flagged `highlight` on a fault, e-stop, starvation or clamp. Memory: seconds x fps x each camera's frame (640x480: 0.9 MB). */
    highlightS: z.number().min(0).max(60).default(0),
    /** Store and forward to object storage, through presigned URLs the fleet grants (needs the fleet link). */
    upload: z
      .object({
        /** URL prefixes uploads may go to, e.g. "https://my-bucket.s3.eu-west-1.amazonaws.com/robots/"; empty: no uploads. A grant naming anything else is refused. */
        origins: z.array(z.string().url().regex(/^https?:\/\//, 'an http:// or https:// URL')).default([]),
        /** The uplink share uploads may take, KiB/s (0: no cap). */
        maxKBps: z.number().int().min(0).default(1024),
      })
      .strict()
      .default({}),
  })
  .strict();

const octalMode = z
  .string()
  .regex(/^0?[0-7]{3}$/, 'an octal file mode such as "0660"');

/** The schema of the agent's config, with the bus kinds and joint blocks of `registry`'s motor families. */
export function configSchemaFor(registry: MotorRegistry) {
  const families = registry.list();
  return z
    .object({
      /** Unique per robot; the fleet link's topics are reflex/v1/<deviceId>/... */
      deviceId: z
        .string()
        .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'letters, digits, _ . - (at most 64), no / + # or spaces'),
      log: z
        .object({
          level: z.enum(LOG_LEVELS).default('info'),
          pretty: z.union([z.boolean(), z.literal('auto')]).default('auto'),
        })
        .strict()
        .default({}),
      control: z
        .object({
          rateHz: z.number().int().min(1).max(1000).default(50),
          /** The loop sleeps until this long before each deadline, then spins. */
          spinUs: z.number().int().min(0).max(10_000).default(1500),
          /** The loop is unhealthy (no systemd watchdog ping) when it has not ticked for this long. */
          stallMs: z.number().int().min(20).max(60_000).default(500),
          /**
           * Group whose members may send the control socket commands that can move the robot
           * (policy start, reset, jog...); root and the daemon's own user always may, anyone who
           * can connect may read and e-stop. A group that does not exist admits nobody else.
           */
          operatorGroup: z.string().min(1).nullable().default('reflex-op'),
          /** What e-stop, a fault and shutdown do: hold position with torque on, or torque off. */
          estop: z.enum(['hold', 'torque_off']).default('hold'),
          /** Ramp from the measured pose into the policy over this long, at every policy start and after a reset. */
          softStartS: z.number().min(0).max(30).default(1),
          /** Running out of actions for this long while a policy runs is a fault. */
          starvationLimitMs: z.number().int().min(20).max(10_000).default(500),
          /** A started policy's first chunk may take this long (cameras warming up, first inference). */
          firstChunkMs: z.number().int().min(20).max(60_000).default(3000),
          chunk: z
            .object({
              /**
               * How a new chunk joins the running one: crossfade, ACT's temporal ensembling, or rtc
               * (real-time chunking: the policy gets the committed prefix and the delay, its chunk is
               * spliced in after the prefix; for bundles that declare rtc inputs).
               */
              blend: z.enum(['crossfade', 'ensemble', 'rtc']).default('crossfade'),
              overlapTicks: z.number().int().min(0).max(200).default(10),
              ensembleDecay: z.number().min(0).max(10).default(0.01),
              /** Ask the policy for the next chunk when this many actions are left. */
              refillTicks: z.number().int().min(1).max(400).default(20),
            })
            .strict()
            .default({}),
          realtime: z
            .object({
              /** SCHED_FIFO priority of the control thread alone; 0 leaves it an ordinary thread. */
              priority: z.number().int().min(0).max(99).default(80),
              /** CPU to pin the control thread to, with every other thread of reflex and its children kept off it; null leaves it free. */
              cpu: z.number().int().min(0).max(255).nullable().default(null),
              /** mlockall (only when RLIMIT_MEMLOCK is unlimited: LimitMEMLOCK=infinity). */
              lockMemory: z.boolean().default(true),
            })
            .strict()
            .default({}),
          bus: z
            .object({
              /** Retries of a failed read within one tick. */
              retries: z.number().int().min(0).max(5).default(1),
              /** Reads may fail for this long before the bus faults. */
              errorBudgetMs: z.number().int().min(10).max(10_000).default(100),
              /** The motors stop by themselves when reflex has been silent this long (0: off). */
              watchdogMs: z.number().int().min(0).max(2540).default(100),
            })
            .strict()
            .default({}),
        })
        .strict()
        .default({}),
      robot: z
        .object({
          name: z.string().min(1).default('robot'),
          joints: z.array(jointSchema(families)).default([]),
        })
        .strict()
        .default({}),
      buses: z.array(busSchema(families)).default([]),
      cameras: z.array(camera).default([]),
      policy: policy.default({}),
      fleet: fleet.default({}),
      record: record.default({}),
      /** Over-the-air policy updates (src/ota/settings.ts). */
      ota: otaSettingsSchema.default({}),
      paths: z
        .object({
          /** Persistent state: outbox, policies, engine caches, recordings. */
          stateDir: z.string().min(1).default('/var/lib/reflex'),
        })
        .strict()
        .default({}),
      socket: z
        .object({
          path: z.string().min(1).default('/run/reflex/control.sock'),
          mode: octalMode.default('0660'),
          /** Group that may use the socket (technicians); null keeps the daemon's own group. */
          group: z.string().min(1).nullable().default(null),
          /** Clients at once; beyond them a connection may still send `estop` (README, control socket). */
          maxClients: z.number().int().min(1).max(1024).default(16),
          /** A client that sends no request for this long is disconnected. */
          idleTimeoutMs: z.number().int().min(100).max(86_400_000).default(60_000),
        })
        .strict()
        .default({}),
      debug: z
        .object({
          /** Enables control-socket commands that inject faults (tests, never production). */
          faultInjection: z.boolean().default(false),
        })
        .strict()
        .default({}),
    })
    .strict()
    .superRefine((c, ctx) => {
      const dupes = (items: readonly { name: string }[], path: string) => {
        const seen = new Set<string>();
        items.forEach((it, i) => {
          if (seen.has(it.name)) {
            ctx.addIssue({ code: 'custom', path: [path, i, 'name'], message: `a name not used by another entry of ${path}` });
          }
          seen.add(it.name);
        });
      };
      dupes(c.buses, 'buses');
      dupes(c.cameras, 'cameras');
      dupes(c.robot.joints, 'robot.joints');

      const buses = new Map(c.buses.map((b) => [b.name, b]));
      const ids = new Set<string>();
      c.robot.joints.forEach((j, i) => {
        const at = ['robot', 'joints', i];
        if (!buses.has(j.bus)) {
          const known = [...buses.keys()];
          ctx.addIssue({ code: 'custom', path: [...at, 'bus'], message: `the name of a bus in buses (${known.length ? known.join(', ') : 'none defined'})` });
        }
        if (j.limits.min >= j.limits.max) {
          ctx.addIssue({ code: 'custom', path: [...at, 'limits'], message: 'limits.min less than limits.max' });
        }
        const key = `${j.bus}/${j.id}`;
        if (ids.has(key)) ctx.addIssue({ code: 'custom', path: [...at, 'id'], message: `an id not used by another joint on bus ${j.bus}` });
        ids.add(key);
      });
      c.buses.forEach((b, i) => {
        const family = registry.get(b.kind);
        if (family !== undefined) checkFamily(family, b, i, c.robot.joints, ctx);
      });
      if (c.record.fps !== null && c.control.rateHz % c.record.fps !== 0) {
        ctx.addIssue({ code: 'custom', path: ['record', 'fps'], message: `a rate that divides control.rateHz (${c.control.rateHz})` });
      }
      for (const [i, cam] of (c.record.cameras ?? []).entries()) {
        if (!c.cameras.some((x) => x.name === cam)) ctx.addIssue({ code: 'custom', path: ['record', 'cameras', i], message: `the name of a camera in cameras (${c.cameras.map((x) => x.name).join(', ') || 'none defined'})` });
      }
      if (c.fleet.enabled && c.fleet.url === null) {
        ctx.addIssue({ code: 'custom', path: ['fleet', 'url'], message: 'a broker URL when fleet.enabled is true' });
      }
      if (c.record.upload.origins.length > 0 && !c.fleet.enabled) {
        ctx.addIssue({ code: 'custom', path: ['record', 'upload', 'origins'], message: 'uploads are granted over the fleet link: set fleet.enabled, or leave origins empty' });
      }
    });
}

/** A bus's joints as its family checks them: each joint's model, then the family's own checks. */
function checkFamily(family: MotorFamily, bus: BusConfig, busIndex: number, all: readonly JointConfig[], ctx: z.RefinementCtx): void {
  const at: number[] = [];
  all.forEach((j, i) => {
    if (j.bus === bus.name) at.push(i);
  });
  for (const i of at) {
    const want = family.checkModel?.(all[i]!.model);
    if (want) ctx.addIssue({ code: 'custom', path: ['robot', 'joints', i, 'model'], message: want });
  }
  const joints = at.map((i) => {
    const j = all[i]!;
    return { id: j.id, model: j.model, maxVelocity: j.maxVelocity, options: (j[family.kind] ?? {}) as Record<string, unknown> };
  });
  family.validate?.(bus, joints, {
    bus: (key, message) => ctx.addIssue({ code: 'custom', path: ['buses', busIndex, key], message }),
    joint: (index, key, message) => ctx.addIssue({ code: 'custom', path: ['robot', 'joints', at[index]!, key], message }),
  });
}

/** The schema of the agent's config with the built-in motor families. */
export const configSchema = configSchemaFor(defaultRegistry());

export type ConfigInput = z.input<typeof configSchema>;
export type Config = z.output<typeof configSchema>;
export type CameraConfig = Config['cameras'][number];
