// What the control worker needs from the agent's config, as plain data it can be sent.
import type { Config } from '../config/index.js';
import { ReflexError } from '../core/index.js';
import { defaultRegistry, type BusSpec, type MotorRegistry } from '../hardware/index.js';
import type { BlendMode } from './executor.js';

export interface JointSpec {
  name: string;
  bus: string;
  id: number;
  min: number;
  max: number;
  maxVelocity: number;
  offset: number;
  direction: 1 | -1;
}

export interface ControlConfig {
  rateHz: number;
  spinUs: number;
  estop: 'hold' | 'torque_off';
  softStartTicks: number;
  starvationLimitTicks: number;
  firstChunkTicks: number;
  chunk: { blend: BlendMode; overlapTicks: number; ensembleDecay: number; refillTicks: number };
  realtime: { priority: number; cpu: number | null; lockMemory: boolean };
  joints: JointSpec[];
  /** Each bus with its family's module: the worker opens it through the registry (hardware/registry.ts). */
  buses: BusSpec[];
}

/**
 * What the control worker needs, from a validated config: `registry` must be the one the
 * config was validated with (it names each bus kind's family module).
 */
export function controlConfigFrom(c: Config, registry: MotorRegistry = defaultRegistry()): ControlConfig {
  const ticks = (ms: number) => Math.max(1, Math.round((ms * c.control.rateHz) / 1000));
  const joints: JointSpec[] = c.robot.joints.map((j) => ({
    name: j.name,
    bus: j.bus,
    id: j.id,
    min: j.limits.min,
    max: j.limits.max,
    maxVelocity: j.maxVelocity,
    offset: j.calibration.offset,
    direction: j.calibration.direction,
  }));
  const buses: BusSpec[] = [];
  for (const { name, kind, ...bus } of c.buses) {
    const family = registry.get(kind);
    if (family === undefined) throw new ReflexError('CONFIG_INVALID', `bus ${name}: no motor family "${kind}" is registered`);
    const on = c.robot.joints.filter((j) => j.bus === name);
    // A bus without joints is not opened (nothing on it to drive).
    if (on.length === 0) continue;
    buses.push({
      kind,
      name,
      module: family.module,
      bus,
      joints: on.map((j) => ({ id: j.id, model: j.model, maxVelocity: j.maxVelocity, options: blockOf(j[kind]) })),
      retries: c.control.bus.retries,
      errorBudgetMs: c.control.bus.errorBudgetMs,
      watchdogMs: c.control.bus.watchdogMs,
    });
  }
  return {
    rateHz: c.control.rateHz,
    spinUs: c.control.spinUs,
    estop: c.control.estop,
    softStartTicks: ticks(c.control.softStartS * 1000),
    starvationLimitTicks: ticks(c.control.starvationLimitMs),
    firstChunkTicks: ticks(c.control.firstChunkMs),
    chunk: { ...c.control.chunk },
    realtime: { ...c.control.realtime },
    joints,
    buses,
  };
}

/** A joint's block for its family (`can: { kp }`), or none. */
function blockOf(v: unknown): Readonly<Record<string, unknown>> {
  return v !== null && typeof v === 'object' ? (v as Record<string, unknown>) : {};
}
