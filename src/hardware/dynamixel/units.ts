// Every conversion between raw register values and SI units, in one place.
import type { ServoModel } from './tables.js';

const TICKS_PER_REV = 4096;
/** Position 2048 is the middle of the servo's single-turn range; we call it 0 rad. */
export const CENTER_TICKS = 2048;
const RPM_PER_UNIT = 0.229;
/** The factors of ticksToRad and velocityToRadS, for the tick's inline conversions. */
export const RAD_PER_TICK = (2 * Math.PI) / TICKS_PER_REV;
export const RAD_S_PER_UNIT = (RPM_PER_UNIT * 2 * Math.PI) / 60;

export function ticksToRad(ticks: number): number {
  return ((ticks - CENTER_TICKS) * 2 * Math.PI) / TICKS_PER_REV;
}

export function radToTicks(rad: number): number {
  return Math.round((rad * TICKS_PER_REV) / (2 * Math.PI)) + CENTER_TICKS;
}

export function velocityToRadS(raw: number): number {
  return (raw * RPM_PER_UNIT * 2 * Math.PI) / 60;
}

export function radSToVelocity(radS: number): number {
  return Math.round((radS * 60) / (2 * Math.PI * RPM_PER_UNIT));
}

/** Amperes from Present Current; NaN for models that report load instead of current. */
export function currentToAmps(raw: number, model: ServoModel): number {
  return model.currentUnitMa === null ? NaN : (raw * model.currentUnitMa) / 1000;
}

export function ampsToCurrent(amps: number, model: ServoModel): number {
  if (model.currentUnitMa === null) throw new RangeError(`${model.name} has no current control`);
  return Math.round((amps * 1000) / model.currentUnitMa);
}

/**
 * Torque estimated from current, linear through the stall point (N m). Good to tens of percent
 * away from stall; the servos have no torque sensor.
 */
export function currentToTorqueNm(raw: number, model: ServoModel): number {
  return currentToAmps(raw, model) * (model.stallTorqueNm / model.stallCurrentA);
}

/** Sign-extends a raw little-endian value of `size` bytes. */
export function signed(raw: number, size: 1 | 2 | 4): number {
  const bits = 8 * size;
  const half = 2 ** (bits - 1);
  return raw >= half ? raw - 2 ** bits : raw;
}
