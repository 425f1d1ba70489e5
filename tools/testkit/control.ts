import type { ControlConfig, JointSpec } from '../../src/control/index.js';
import { dynamixelFamily, type BusSpec, type MotorFamily } from '../../src/hardware/index.js';

/** A motor on a bus of a control config: options are its family's joint block (defaults filled). */
export interface SpecMotor {
  id: number;
  model: string;
  maxVelocity?: number;
  options?: Record<string, unknown>;
}

/**
 * One bus of a control config, as controlConfigFrom would make it: `bus` holds the entry's own
 * keys (its family's schema fills the defaults), and the loop's bus settings are the tests'.
 */
export function busSpec(family: MotorFamily, name: string, bus: Record<string, unknown>, motors: SpecMotor[], over: Partial<BusSpec> = {}): BusSpec {
  return {
    kind: family.kind,
    name,
    module: family.module,
    bus: family.busSchema.parse(bus),
    joints: motors.map((m) => ({ id: m.id, model: m.model, maxVelocity: m.maxVelocity ?? 3, options: family.jointSchema?.parse(m.options ?? {}) ?? {} })),
    retries: 1,
    errorBudgetMs: 200,
    watchdogMs: 200,
    ...over,
  };
}

/**
 * A control-worker config for one Dynamixel bus of XM430s at `port`, joint i on servo i + 1.
 * Without `joints`, three joints (base, shoulder, elbow) with limits of +-1.5 rad.
 */
export function armConfig(port: string, over: Partial<ControlConfig> = {}, joints?: JointSpec[]): ControlConfig {
  const js = joints ?? ['base', 'shoulder', 'elbow'].map((name, i) => ({ name, bus: 'arm', id: i + 1, min: -1.5, max: 1.5, maxVelocity: 3, offset: 0, direction: 1 as const }));
  return {
    rateHz: 50,
    spinUs: 1500,
    estop: 'hold',
    softStartTicks: 10,
    starvationLimitTicks: 25,
    firstChunkTicks: 25,
    chunk: { blend: 'crossfade', overlapTicks: 5, ensembleDecay: 0.01, refillTicks: 20 },
    realtime: { priority: 0, cpu: null, lockMemory: false },
    joints: js,
    buses: [busSpec(dynamixelFamily, 'arm', { port, baud: 1_000_000, zeroReturnDelay: true }, js.map((j) => ({ id: j.id, model: 'xm430-w350' })))],
    ...over,
  };
}
