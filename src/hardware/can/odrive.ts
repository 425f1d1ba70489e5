// ODrive CANSimple: an 11-bit arbitration id of node id (6 bits) and command id (5 bits),
// little-endian payloads. Only what a control loop needs: set axis state, set input
// position/velocity/torque, the heartbeat, encoder estimates, errors.

export const OdriveCmd = {
  HEARTBEAT: 0x01,
  ESTOP: 0x02,
  GET_ERROR: 0x03,
  SET_AXIS_STATE: 0x07,
  GET_ENCODER_ESTIMATES: 0x09,
  SET_CONTROLLER_MODE: 0x0b,
  SET_INPUT_POS: 0x0c,
  SET_INPUT_VEL: 0x0d,
  SET_INPUT_TORQUE: 0x0e,
  CLEAR_ERRORS: 0x18,
} as const;

export const AxisState = { IDLE: 1, CLOSED_LOOP_CONTROL: 8 } as const;

export function arbitrationId(node: number, cmd: number): number {
  return ((node & 0x3f) << 5) | (cmd & 0x1f);
}

export function splitId(id: number): { node: number; cmd: number } {
  return { node: (id >> 5) & 0x3f, cmd: id & 0x1f };
}

// The encoders run every tick: they pack through one scratch DataView made once, so they
// allocate nothing (a DataView over `out` per call would).
const SCRATCH = new DataView(new ArrayBuffer(8));
const SCRATCH_BYTES = new Uint8Array(SCRATCH.buffer);

function put(out: Uint8Array, at: number, n: number): void {
  for (let i = 0; i < n; i++) out[at + i] = SCRATCH_BYTES[i]!;
}
function putU32(out: Uint8Array, at: number, v: number): void {
  SCRATCH.setUint32(0, v, true);
  put(out, at, 4);
}
function putF32(out: Uint8Array, at: number, v: number): void {
  SCRATCH.setFloat32(0, v, true);
  put(out, at, 4);
}
function putI16(out: Uint8Array, at: number, v: number): void {
  SCRATCH.setInt16(0, v, true);
  put(out, at, 2);
}

/** Little-endian float32 at `at` of a payload, through the scratch view (no allocation). */
export function f32At(data: Uint8Array, at: number): number {
  for (let i = 0; i < 4; i++) SCRATCH_BYTES[i] = data[at + i]!;
  return SCRATCH.getFloat32(0, true);
}

/** Little-endian uint32 at `at` of a payload. */
export function u32At(data: Uint8Array, at: number): number {
  return (data[at]! | (data[at + 1]! << 8) | (data[at + 2]! << 16) | (data[at + 3]! << 24)) >>> 0;
}

/** Each encoder writes into `out` (8 bytes) and returns the payload length. */
export function setAxisState(state: number, out: Uint8Array): number {
  putU32(out, 0, state);
  return 4;
}

/** Position in turns; feed-forwards in 0.001 units (rev/s, N m) as the protocol packs them. */
export function setInputPos(pos: number, velFf: number, torqueFf: number, out: Uint8Array): number {
  putF32(out, 0, pos);
  putI16(out, 4, clampI16(Math.round(velFf * 1000)));
  putI16(out, 6, clampI16(Math.round(torqueFf * 1000)));
  return 8;
}

export function setInputVel(vel: number, torqueFf: number, out: Uint8Array): number {
  putF32(out, 0, vel);
  putF32(out, 4, torqueFf);
  return 8;
}

export function setInputTorque(torque: number, out: Uint8Array): number {
  putF32(out, 0, torque);
  return 4;
}

function clampI16(v: number): number {
  return v < -32768 ? -32768 : v > 32767 ? 32767 : v;
}

export interface Heartbeat {
  axisError: number;
  axisState: number;
  procedureResult: number;
  trajectoryDone: boolean;
}

export function decodeHeartbeat(data: Uint8Array, length: number): Heartbeat | null {
  if (length < 7) return null;
  return { axisError: u32At(data, 0), axisState: data[4]!, procedureResult: data[5]!, trajectoryDone: data[6] !== 0 };
}

export function decodeEncoderEstimates(data: Uint8Array, length: number): { pos: number; vel: number } | null {
  if (length !== 8) return null;
  return { pos: f32At(data, 0), vel: f32At(data, 4) };
}

export function decodeError(data: Uint8Array, length: number): { activeErrors: number; disarmReason: number } | null {
  if (length !== 8) return null;
  return { activeErrors: u32At(data, 0), disarmReason: u32At(data, 4) };
}

export const OdriveCmdExtra = {
  SET_LIMITS: 0x0f,
  GET_TEMPERATURE: 0x15,
} as const;

export const ControlMode = { POSITION_CONTROL: 3 } as const;
export const InputMode = { PASSTHROUGH: 1 } as const;

/** Axis errors (firmware 0.5) the driver and the simulator name. */
export const OdriveAxisError = {
  MOTOR_FAILED: 0x40,
  WATCHDOG_TIMER_EXPIRED: 0x800,
} as const;

export function setControllerMode(control: number, input: number, out: Uint8Array): number {
  putU32(out, 0, control);
  putU32(out, 4, input);
  return 8;
}

/** Velocity limit (rev/s) and current limit (A). */
export function setLimits(velLimit: number, currentLimit: number, out: Uint8Array): number {
  putF32(out, 0, velLimit);
  putF32(out, 4, currentLimit);
  return 8;
}

export function decodeTemperature(data: Uint8Array, length: number): { fet: number; motor: number } | null {
  if (length !== 8) return null;
  return { fet: f32At(data, 0), motor: f32At(data, 4) };
}
