import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  encodeMit, decodeMit, MIT_MODELS, MIT_ENTER, MIT_EXIT, MIT_ZERO, toUint, type MitReply,
  arbitrationId, splitId, setInputVel, setInputPos, setAxisState, setInputTorque, decodeHeartbeat, decodeEncoderEstimates, OdriveCmd, AxisState,
  decodeMitCommand, encodeMitReply, mitSpecial, setLimits, setControllerMode, decodeTemperature, ControlMode, InputMode, CanFlag, frameBits,
} from '../src/hardware/can/index.js';
import { MitProtocol, OdriveProtocol } from '../src/hardware/can/protocols.js';

const hex = (b: Uint8Array, n = b.length) => Buffer.from(b.subarray(0, n)).toString('hex').toUpperCase().replace(/(..)/g, '$1 ').trim();
const AK80 = MIT_MODELS['ak80-9']!;

test('MIT mode: the zero command packs to 7F FF 7F F0 00 00 07 FF', () => {
  const out = new Uint8Array(8);
  encodeMit({ p: 0, v: 0, kp: 0, kd: 0, t: 0 }, AK80, out);
  assert.equal(hex(out), '7F FF 7F F0 00 00 07 FF');
});

test('MIT mode: full-scale values, and values beyond the model range saturate', () => {
  const out = new Uint8Array(8);
  encodeMit({ p: 12.5, v: 50, kp: 500, kd: 5, t: 18 }, AK80, out);
  assert.equal(hex(out), 'FF FF FF FF FF FF FF FF');
  encodeMit({ p: 100, v: -900, kp: -3, kd: 99, t: -1e9 }, AK80, out);
  assert.equal(hex(out), 'FF FF 00 00 00 FF F0 00');
  assert.equal(toUint(0.5, 0, 1, 12), 2047);
});

test('MIT mode: enter, exit and set-zero frames', () => {
  assert.equal(hex(MIT_ENTER), 'FF FF FF FF FF FF FF FC');
  assert.equal(hex(MIT_EXIT), 'FF FF FF FF FF FF FF FD');
  assert.equal(hex(MIT_ZERO), 'FF FF FF FF FF FF FF FE');
});

test('MIT mode: replies decode for both dialects; a wrong length is refused', () => {
  const r: MitReply = { id: 0, p: 0, v: 0, t: 0, temperature: 0, error: 0 };
  assert.equal(decodeMit(Uint8Array.of(0x01, 0x7f, 0xff, 0x7f, 0xf7, 0xff, 0x28, 0x00), 8, AK80, 'cubemars', r), true);
  assert.equal(r.id, 1);
  assert.ok(Math.abs(r.p) < 1e-3 && Math.abs(r.v) < 0.02 && Math.abs(r.t) < 0.01);
  assert.equal(r.temperature, 40);
  assert.equal(r.error, 0);
  // Damiao: error code in the high nibble of byte 0 (0x8 = over-voltage in its table), id below.
  assert.equal(decodeMit(Uint8Array.of(0x83, 0xff, 0xff, 0x00, 0x0f, 0xff, 0x30, 0x2d), 8, MIT_MODELS['dm-j4310']!, 'damiao', r), true);
  assert.deepEqual([r.id, r.error, r.temperature], [3, 8, 45]);
  assert.ok(Math.abs(r.p - 12.5) < 1e-9 && Math.abs(r.v + 30) < 1e-9 && Math.abs(r.t - 10) < 1e-9);
  assert.equal(decodeMit(Uint8Array.of(1, 2, 3, 4, 5), 5, AK80, 'cubemars', r), false);
});

test('ODrive CANSimple: arbitration ids and a Set_Input_Vel of -2.5 rev/s with 0.25 N m feed-forward', () => {
  assert.equal(arbitrationId(1, OdriveCmd.SET_INPUT_VEL), 0x02d);
  assert.deepEqual(splitId(0x021), { node: 1, cmd: OdriveCmd.HEARTBEAT });
  const out = new Uint8Array(8);
  assert.equal(setInputVel(-2.5, 0.25, out), 8);
  assert.equal(hex(out), '00 00 20 C0 00 00 80 3E');
  assert.equal(setAxisState(AxisState.CLOSED_LOOP_CONTROL, out), 4);
  assert.equal(hex(out, 4), '08 00 00 00');
  assert.equal(setInputPos(1.5, 2, -0.5, out), 8);
  assert.equal(hex(out), '00 00 C0 3F D0 07 0C FE');
  assert.equal(setInputTorque(-1, out), 4);
  assert.equal(hex(out, 4), '00 00 80 BF');
});

test('ODrive CANSimple: heartbeat and encoder estimates decode; short frames are refused', () => {
  assert.deepEqual(decodeHeartbeat(Uint8Array.of(0x01, 0x00, 0x00, 0x80, 0x08, 0x00, 0x01, 0x00), 8), {
    axisError: 0x80000001,
    axisState: 8,
    procedureResult: 0,
    trajectoryDone: true,
  });
  const enc = new Uint8Array(8);
  new DataView(enc.buffer).setFloat32(0, 3.25, true);
  new DataView(enc.buffer).setFloat32(4, -0.5, true);
  assert.deepEqual(decodeEncoderEstimates(enc, 8), { pos: 3.25, vel: -0.5 });
  assert.equal(decodeHeartbeat(enc, 4), null);
  assert.equal(decodeEncoderEstimates(enc, 6), null);
});

test('MIT mode: the motor side decodes what the host encodes, and replies round-trip in both dialects', () => {
  const out = new Uint8Array(8);
  const back = { p: 0, v: 0, kp: 0, kd: 0, t: 0 };
  encodeMit({ p: 1.25, v: -3, kp: 40, kd: 1.5, t: 2 }, AK80, out);
  decodeMitCommand(out, AK80, back);
  assert.ok(Math.abs(back.p - 1.25) < 4e-4 && Math.abs(back.v + 3) < 0.03 && Math.abs(back.kp - 40) < 0.13 && Math.abs(back.kd - 1.5) < 2e-3 && Math.abs(back.t - 2) < 0.01);
  const r: MitReply = { id: 5, p: -0.7, v: 2, t: -4, temperature: 61, error: 0xb };
  const got: MitReply = { id: 0, p: 0, v: 0, t: 0, temperature: 0, error: 0 };
  const DM = MIT_MODELS['dm-j4310']!;
  encodeMitReply(r, DM, 'damiao', out);
  assert.equal(out[0], 0xb5, 'Damiao: status nibble over id');
  decodeMit(out, 8, DM, 'damiao', got);
  assert.deepEqual([got.id, got.error, got.temperature], [5, 0xb, 61]);
  encodeMitReply({ ...r, error: 1 }, AK80, 'cubemars', out);
  assert.deepEqual([out[0], out[6], out[7]], [5, 61, 1], 'CubeMars: id, temperature, error');
  assert.equal(mitSpecial(MIT_ENTER, 8), 0xfc);
  assert.equal(mitSpecial(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xfc), 8), 0, 'not special unless seven 0xFF');
});

test('ODrive CANSimple: Set_Limits, Set_Controller_Mode and Get_Temperature layouts', () => {
  const out = new Uint8Array(8);
  assert.equal(setLimits(2, 10, out), 8);
  assert.equal(hex(out), '00 00 00 40 00 00 20 41');
  assert.equal(setControllerMode(ControlMode.POSITION_CONTROL, InputMode.PASSTHROUGH, out), 8);
  assert.equal(hex(out), '03 00 00 00 01 00 00 00');
  assert.deepEqual(decodeTemperature(Uint8Array.of(0, 0, 0x0c, 0x42, 0, 0, 0x20, 0x42), 8), { fet: 35, motor: 40 });
  assert.equal(decodeTemperature(new Uint8Array(8), 4), null);
});

test('protocol decoders: unknown ids, wrong lengths and foreign frames are ignored; error reports are kept', () => {
  const state = () => ({
    position: new Float64Array(2), velocity: new Float64Array(2), current: new Float64Array(2), temperature: new Float64Array(2),
    voltage: new Float64Array(2), motorError: new Uint32Array(2), disarmed: new Uint8Array(2),
  });
  const spec = (id: number, model: string) => ({ id, model, kp: 10, kd: 1, effortLimit: 5, maxVelocity: 3, gearRatio: 1 });
  const mit = new MitProtocol([spec(1, 'ak80-9'), spec(2, 'ak80-9')]);
  const s = state();
  const reply = Uint8Array.of(0x09, 0x7f, 0xff, 0x7f, 0xf7, 0xff, 0x28, 0x00);
  assert.equal(mit.accept(0, reply, 8, 0, s), -1, 'motor 9 is not on this bus');
  assert.equal(mit.accept(0, reply, 5, 0, s), -1, 'wrong length');
  reply[0] = 2;
  reply[7] = 2;
  assert.equal(mit.accept(0, reply, 8, 0, s), 1);
  assert.equal(s.motorError[1], 2);
  assert.equal(mit.describe(1, s), 'over-current (code 0x2)');

  const od = new OdriveProtocol([spec(3, 'odrive'), spec(4, 'odrive')]);
  const o = state();
  const est = Uint8Array.of(0, 0, 0x80, 0x3f, 0, 0, 0, 0); // 1 turn, 0 rev/s
  assert.equal(od.accept(arbitrationId(5, OdriveCmd.GET_ENCODER_ESTIMATES), est, 8, 0, o), -1, 'node 5 is not on this bus');
  assert.equal(od.accept(arbitrationId(3, OdriveCmd.GET_ENCODER_ESTIMATES), est, 0, CanFlag.RTR, o), -1, 'a request is not a reply');
  assert.equal(od.accept(arbitrationId(3, OdriveCmd.GET_ENCODER_ESTIMATES), est, 4, 0, o), -1, 'short');
  assert.equal(od.accept(arbitrationId(4, OdriveCmd.GET_ENCODER_ESTIMATES), est, 8, 0, o), 1);
  assert.ok(Math.abs(o.position[1]! - 2 * Math.PI) < 1e-6);
  assert.equal(od.accept(arbitrationId(3, OdriveCmd.HEARTBEAT), Uint8Array.of(0x40, 0x08, 0, 0, 1, 0, 0, 0), 8, 0, o), -1);
  assert.equal(o.motorError[0], 0x840);
  assert.equal(od.describe(0, o), 'axis error 0x840 (MOTOR_FAILED, WATCHDOG_TIMER_EXPIRED)');
  assert.deepEqual(od.filters, [{ id: 3 << 5, mask: 0x7e0 }, { id: 4 << 5, mask: 0x7e0 }]);
});

test('Damiao status: 0 (disabled) and 1 (enabled) are states; every other code is a fault, named', () => {
  const s = {
    position: new Float64Array(1), velocity: new Float64Array(1), current: new Float64Array(1), temperature: new Float64Array(1),
    voltage: new Float64Array(1), motorError: new Uint32Array(1), disarmed: new Uint8Array(1),
  };
  const dm = new MitProtocol([{ id: 3, model: 'dm-j4310', kp: 10, kd: 1, effortLimit: 5, maxVelocity: 3, gearRatio: 1 }]);
  dm.enable(0, 0, () => undefined);
  const named: Record<number, string> = {
    8: 'over-voltage', 9: 'under-voltage', 0xa: 'over-current', 0xb: 'MOS over-temperature',
    0xc: 'coil over-temperature', 0xd: 'communication lost', 0xe: 'overload',
  };
  for (let code = 0; code < 16; code++) {
    assert.equal(dm.accept(0, Uint8Array.of((code << 4) | 3, 0x7f, 0xff, 0x7f, 0xf7, 0xff, 40, 41), 8, 0, s), 0);
    if (code <= 1) {
      assert.equal(s.motorError[0], 0, `status ${code} is not an error`);
      assert.equal(s.disarmed[0], code === 0 ? 1 : 0, 'disabled while it should hold is reported apart');
      continue;
    }
    assert.equal(s.motorError[0], code, `status 0x${code.toString(16)} is a fault`);
    assert.equal(dm.describe(0, s), `${named[code] ?? 'fault status not in the DM-J table'} (code 0x${code.toString(16)})`);
  }
});

test('bus load arithmetic: a worst-case stuffed 8-byte standard frame is 135 bits', () => {
  assert.equal(frameBits(8), 135);
  assert.equal(frameBits(0), 55);
  assert.equal(frameBits(8, true), 160);
});
