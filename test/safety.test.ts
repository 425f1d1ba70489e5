import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SafetyFilter } from '../src/control/safety.js';

const period = 0.02;
const limits = [
  { min: -1, max: 1, maxVelocity: 2 }, // 0.04 rad per tick
  { min: -2, max: 0.5, maxVelocity: 5 }, // 0.1 rad per tick
];

function run(f: SafetyFilter, desired: number[], prev: number[]): number[] {
  const out = new Float64Array(2);
  f.apply(Float64Array.from(desired), Float64Array.from(prev), out);
  return [...out].map((v) => Math.round(v * 1e9) / 1e9);
}

test('commands inside the limits and slower than the maximum pass unchanged', () => {
  const f = new SafetyFilter(limits, period, 0);
  assert.deepEqual(run(f, [0.51, -0.05], [0.5, 0]), [0.51, -0.05]);
  assert.deepEqual(f.stats, { limitClamps: 0, deltaClamps: 0, nonFinite: 0, softStarts: 0 });
});

test('position limits clamp, and each clamp is counted', () => {
  const f = new SafetyFilter(limits, period, 0);
  assert.deepEqual(run(f, [1.5, 0.7], [0.99, 0.45]), [1, 0.5]);
  assert.equal(f.stats.limitClamps, 2);
  assert.deepEqual(run(f, [-1.2, -2.5], [-0.99, -1.95]), [-1, -2]);
  assert.equal(f.stats.limitClamps, 4);
});

test('the per-tick delta is clamped to the maximum velocity', () => {
  const f = new SafetyFilter(limits, period, 0);
  assert.deepEqual(run(f, [0.9, -1], [0, 0]), [0.04, -0.1]);
  assert.equal(f.stats.deltaClamps, 2);
});

test('NaN and Inf are rejected: the previous command stands', () => {
  const f = new SafetyFilter(limits, period, 0);
  assert.deepEqual(run(f, [NaN, Infinity], [0.3, -0.2]), [0.3, -0.2]);
  assert.deepEqual(run(f, [-Infinity, 0], [0.3, -0.2]), [0.3, -0.1]);
  assert.equal(f.stats.nonFinite, 3);
});

test('soft start ramps from the measured pose to the policy over the configured ticks', () => {
  const f = new SafetyFilter([{ min: -10, max: 10, maxVelocity: 1000 }], period, 4);
  f.softStart(Float64Array.from([0]));
  const out = new Float64Array(1);
  const seen: number[] = [];
  let prev = Float64Array.from([0]);
  for (let k = 0; k < 6; k++) {
    f.apply(Float64Array.from([1]), prev, out);
    seen.push(out[0]!);
    prev = Float64Array.from(out);
  }
  assert.deepEqual(seen, [0.25, 0.5, 0.75, 1, 1, 1]);
  assert.equal(f.stats.softStarts, 1);
  assert.equal(f.rampingIn, false);
});

test('each intervention is also counted on the joint it changed', () => {
  const f = new SafetyFilter(limits, period, 0);
  run(f, [1.5, 0], [0.99, 0]); // joint 0 past its limit
  run(f, [0, 0.4], [0, 0]); // joint 1 too fast
  run(f, [NaN, 0], [0.3, 0]); // joint 0 NaN
  assert.deepEqual([...f.byJoint.limitClamps], [1, 0]);
  assert.deepEqual([...f.byJoint.deltaClamps], [0, 1]);
  assert.deepEqual([...f.byJoint.nonFinite], [1, 0]);
  assert.equal(f.stats.limitClamps + f.stats.deltaClamps + f.stats.nonFinite, 3);
});
