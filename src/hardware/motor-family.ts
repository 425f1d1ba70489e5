import type { z } from 'zod';
import type { MotorBus } from './motor-bus.js';

/**
 * A family of motors (Dynamixel servos, CAN motors, a simulated or fake one): what its bus and
 * joint entries in the config may say, how its joints are checked, and how one of its buses is
 * opened. Each family lives in its own folder and is registered in one line (registry.ts).
 *
 * `open` runs in the control worker, a thread with its own module instances: the family object
 * a test or the daemon registered in the main thread is not there. So a family names the module
 * that defines it (`module: import.meta.url` in that module, which exports the family): the
 * worker imports that module in its own thread and takes the family from its exports. The
 * config file never names a module; only code does, through the registry (see registry.ts).
 */
export interface MotorFamily<B extends z.AnyZodObject = z.AnyZodObject, J extends z.AnyZodObject = z.AnyZodObject> {
  /** The `kind` of a bus entry in the config (`buses[].kind`); also the key of the family's joint block. */
  readonly kind: string;
  /** URL of the module that exports this family (its own `import.meta.url`), imported by the control worker. */
  readonly module: string;
  /** The bus entry's own keys (besides name and kind), with their defaults; made strict when composed. */
  readonly busSchema: B;
  /**
   * Keys a joint on this family's bus may set in a block named after the kind (`can: { kp }`),
   * with defaults; every joint gets the block's defaults, as the config always gave them.
   */
  readonly jointSchema?: J;
  /** Checks a joint's `model`: null when this family drives it, else what a model must be (the config problem's "want"). */
  checkModel?(model: string): string | null;
  /**
   * Checks across one bus and its joints, after each passed its schema and checkModel (a CAN
   * bus speaks one protocol); reports each problem at a key of the bus or of one of the joints.
   */
  validate?(bus: BusOf<B> & { name: string }, joints: readonly FamilyJoint<JointOf<J>>[], report: ProblemReport): void;
  /**
   * Opens one bus and brings its motors up (checked, holding where they stand); throws or
   * rejects with the reason when it cannot. Runs in the control worker before the loop starts.
   */
  open(bus: OpenBus<BusOf<B>, JointOf<J>>): MotorBus | Promise<MotorBus>;
  /**
   * Makes every motor of one bus safe without a running loop and without enabling anything
   * first (torque off, motor mode exited, axis idle): what `reflex motors safe` does once the
   * daemon has died for good. Resolves with what became of each motor; rejects when the bus
   * cannot be reached. A family without it is reported as not made safe.
   */
  makeSafe?(bus: OpenBus<BusOf<B>, JointOf<J>>): Promise<MotorMadeSafe[]>;
}

/** One motor after makeSafe: `ok` when it was commanded safe, else why not. */
export interface MotorMadeSafe {
  id: number;
  ok: boolean;
  detail: string;
}

export type BusOf<B extends z.AnyZodObject> = z.output<B>;
export type JointOf<J extends z.AnyZodObject> = z.output<J>;

/** A joint as its family sees it: the motor, and the family's own block (its jointSchema's output). */
export interface FamilyJoint<J> {
  /** Motor id on the bus. */
  id: number;
  model: string;
  /** rad/s: the fastest the safety filter lets the joint move (a drive's own velocity limit). */
  maxVelocity: number;
  options: J;
}

export interface ProblemReport {
  /** A problem at a key of the bus entry (`interface`). */
  bus(key: string, want: string): void;
  /** A problem at a key of joint `index` (in the `joints` passed to validate). */
  joint(index: number, key: string, want: string): void;
}

/** What opening a bus gets: its entry's keys, its joints in order, and the loop's bus settings. */
export interface OpenBus<B, J> {
  name: string;
  bus: B;
  joints: readonly FamilyJoint<J>[];
  /** Retries of a failed read within one tick. */
  retries: number;
  /** Reads may fail for this long before the bus faults. */
  errorBudgetMs: number;
  /** The motors stop by themselves when reflex has been silent this long (0: off). */
  watchdogMs: number;
}

/**
 * One bus as the control worker gets it: plain data (it crosses to the worker thread by
 * structured clone), with the module of its family. The worker re-parses `bus` and each joint's
 * `options` with the family's own schemas, so the family's open() gets typed values.
 */
export interface BusSpec extends OpenBus<Readonly<Record<string, unknown>>, Readonly<Record<string, unknown>>> {
  kind: string;
  module: string;
}

/** Identity, for inference: `export const family = defineMotorFamily({ ... })` gets its schemas' types. */
export function defineMotorFamily<B extends z.AnyZodObject, J extends z.AnyZodObject = z.AnyZodObject>(f: MotorFamily<B, J>): MotorFamily<B, J> {
  return f;
}

/** Whether a module's export is a motor family (the worker looks for one among a module's exports). */
export function isMotorFamily(v: unknown): v is MotorFamily {
  if (v === null || typeof v !== 'object') return false;
  const f = v as Partial<Record<keyof MotorFamily, unknown>>;
  return typeof f.kind === 'string' && typeof f.module === 'string' && typeof f.open === 'function' && typeof f.busSchema === 'object';
}
