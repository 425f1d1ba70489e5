import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  encodeMit, decodeMit, MIT_MODELS, MIT_ENTER, MIT_EXIT, MIT_ZERO, toUint, type MitReply,
  arbitrationId, splitId, setInputVel, setInputPos, setAxisState, setInputTorque, decodeHeartbeat, decodeEncoderEstimates, OdriveCmd, AxisState,
} from '../src/hardware/can/index.js';

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
