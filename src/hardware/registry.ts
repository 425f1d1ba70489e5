// The driver registry: which motor families a robot's config may name, by bus kind. The config
// schema is composed from it (config/schema.ts), the control config names each bus's family
// module from it (control/config.ts), and the control worker opens each bus through it.
import { ReflexError } from '../core/index.js';
import type { MotorBus } from './motor-bus.js';
import { isMotorFamily, type BusSpec, type MotorFamily, type MotorMadeSafe } from './motor-family.js';
import { dynamixelFamily } from './dynamixel/index.js';
import { canFamily } from './can/index.js';

/** Keys of a joint entry that a family's joint block may not take (its block is named after its kind). */
const JOINT_KEYS = new Set(['name', 'bus', 'id', 'model', 'limits', 'maxVelocity', 'calibration']);

export class MotorRegistry {
  private readonly families = new Map<string, MotorFamily>();

  /** Adds a family; a kind already taken, or one that is not a name, is a programming error. */
  register(family: MotorFamily): this {
    if (!/^[a-z][a-z0-9_]{0,31}$/.test(family.kind) || JOINT_KEYS.has(family.kind)) {
      throw new ReflexError('BAD_REQUEST', `motor family kind "${family.kind}": want a lower-case name that is not a joint key`);
    }
    if (this.families.has(family.kind)) throw new ReflexError('BAD_REQUEST', `motor family "${family.kind}" is registered already`);
    this.families.set(family.kind, family);
    return this;
  }

  get(kind: string): MotorFamily | undefined {
    return this.families.get(kind);
  }

  /** Every family, in the order registered (the order the config's error messages list them). */
  list(): readonly MotorFamily[] {
    return [...this.families.values()];
  }
}

/** The built-in families: a new one is a folder under hardware/ plus one line here. */
export function defaultRegistry(): MotorRegistry {
  return new MotorRegistry()
    .register(dynamixelFamily)
    .register(canFamily);
}

/**
 * Opens one bus in this thread (the control worker): imports its family's module here (this
 * thread's own instance of it), re-parses what the main thread validated with the family's
 * schemas, and calls the family's open().
 */
export async function openBus(spec: BusSpec): Promise<MotorBus> {
  const family = await loadFamily(spec.module, spec.kind);
  const bus = family.busSchema.parse(spec.bus);
  const joints = spec.joints.map((j) => ({ ...j, options: family.jointSchema ? family.jointSchema.parse(j.options) : {} }));
  return family.open({ name: spec.name, bus, joints, retries: spec.retries, errorBudgetMs: spec.errorBudgetMs, watchdogMs: spec.watchdogMs });
}

/** Makes one bus's motors safe through its family (see MotorFamily.makeSafe); null when the family cannot. */
export async function safeBus(spec: BusSpec): Promise<MotorMadeSafe[] | null> {
  const family = await loadFamily(spec.module, spec.kind);
  if (family.makeSafe === undefined) return null;
  const bus = family.busSchema.parse(spec.bus);
  const joints = spec.joints.map((j) => ({ ...j, options: family.jointSchema ? family.jointSchema.parse(j.options) : {} }));
  return family.makeSafe({ name: spec.name, bus, joints, retries: spec.retries, errorBudgetMs: spec.errorBudgetMs, watchdogMs: spec.watchdogMs });
}

async function loadFamily(module: string, kind: string): Promise<MotorFamily> {
  const exports = (await import(module)) as Record<string, unknown>;
  const family = Object.values(exports).find((v): v is MotorFamily => isMotorFamily(v) && v.kind === kind);
  if (family === undefined) throw new ReflexError('START_FAILED', `motor family "${kind}": ${module} exports no such family`);
  return family;
}
