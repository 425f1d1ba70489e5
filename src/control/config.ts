// What the control worker needs from the agent's config, as plain data it can be sent.
import type { Config } from '../config/index.js';
import type { CanBusConfig, DynamixelBusConfig } from '../hardware/index.js';
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
  dynamixel: DynamixelBusConfig[];
  can: CanBusConfig[];
}

export function controlConfigFrom(c: Config): ControlConfig {
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
  const dynamixel: DynamixelBusConfig[] = [];
  const can: CanBusConfig[] = [];
  for (const b of c.buses) {
    if (b.kind === 'can') {
      const motors = c.robot.joints
        .filter((j) => j.bus === b.name)
        .map((j) => ({ id: j.id, model: j.model, kp: j.can.kp, kd: j.can.kd, effortLimit: j.can.effortLimit, maxVelocity: j.maxVelocity, gearRatio: j.can.gearRatio }));
      if (motors.length === 0) continue;
      can.push({
        name: b.name,
        interface: b.interface,
        transport: b.transport,
        bitrate: b.bitrate,
        motors,
        retries: c.control.bus.retries,
        errorBudgetMs: c.control.bus.errorBudgetMs,
        replyTimeoutUs: b.replyTimeoutUs,
        maxTemperatureC: b.maxTemperatureC,
        onStop: b.onStop,
        loadWarnPct: b.loadWarnPct,
      });
      continue;
    }
    const servos = c.robot.joints.filter((j) => j.bus === b.name).map((j) => ({ id: j.id, model: j.model }));
    if (servos.length === 0) continue;
    dynamixel.push({
      name: b.name,
      port: b.port,
      baud: b.baud,
      zeroReturnDelay: b.zeroReturnDelay,
      servos,
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
    dynamixel,
    can,
  };
}
