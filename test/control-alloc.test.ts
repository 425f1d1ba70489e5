// The control core's tick allocates nothing while it counts per joint: failed reads, clamps.
// In a file of its own: a process where the core has met only this robot, as the control
// worker's thread has (other shapes met earlier would make its code polymorphic).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { JointSpec } from '../src/control/index.js';
import { ControlCore } from '../src/control/core.js';
import { allocShared, viewShared } from '../src/control/shared.js';
import { MAX_HORIZON } from '../src/rt/index.js';
import { armConfig } from '../tools/testkit/control.js';
import { sampledAllocationPerTick } from '../bench/_util.js';
import { ScriptedBus } from './helpers/scripted-bus.js';

test('counting per joint allocates nothing in the tick: failed reads and clamps every tick', async () => {
  const joints: JointSpec[] = [
    { name: 'base', bus: 'a', id: 1, min: -1, max: 1, maxVelocity: 100, offset: 0, direction: 1 },
    { name: 'shoulder', bus: 'a', id: 2, min: -0.5, max: 0.5, maxVelocity: 1, offset: 0, direction: 1 },
  ];
  const cfg = { ...armConfig('unused', { softStartTicks: 0, chunk: { blend: 'crossfade', overlapTicks: 5, ensembleDecay: 0.01, refillTicks: 5 } }, joints), buses: [] };
  const a = new ScriptedBus('a', [1, 2]);
  const shared = viewShared(allocShared(2, 64, 1));
  const core = new ControlCore(cfg, [a], shared, { fault: () => undefined, warning: () => undefined, lost: () => undefined });
  const rec = shared.link.chunkRecord();
  rec.horizon = MAX_HORIZON;
  rec.generation = 0;
  // The shoulder swings past both its limits, faster than its velocity limit, every tick.
  for (let i = 0; i < MAX_HORIZON; i++) rec.actions.set([0.2, i % 2 === 0 ? 0.9 : -0.9], i * 2);
  core.startPolicy();
  let k = 0;
  const tick = () => {
    a.silent[1] = k % 2;
    a.errors.retries += k % 2;
    core.tick(k, k * 20);
    k++;
  };
  /** A chunk taken in (outside what is measured: taking a chunk is the executor's, measured by bench/rtc). */
  const refill = () => {
    rec.obsTick = k;
    shared.chunk.write(rec.data);
    tick();
  };
  // Optimized before it is measured: V8's middle tier still boxes some numbers.
  for (let r = 0; r < 300; r++) {
    refill();
    for (let i = 0; i < 100; i++) tick();
  }
  // Windows between chunks; the test runner's own work may land in some, the tick's would be in all.
  const windows: number[] = [];
  for (let r = 0; r < 20; r++) {
    refill();
    windows.push(await sampledAllocationPerTick(100, tick));
  }
  const bytes = Math.min(...windows);
  assert.equal(shared.words.load('mode'), 1, 'still in policy: every tick took an action');
  assert.ok(shared.perJoint[1]!.get('failedReads') > 2000 && shared.perJoint[1]!.get('limitClamps') > 4000 && shared.perJoint[1]!.get('deltaClamps') > 4000, JSON.stringify(shared.perJoint[1]!.values));
  assert.equal(shared.perJoint[0]!.get('failedReads'), 0);
  // What the test runner itself allocates meanwhile, measured the same way.
  const idle: number[] = [];
  for (let r = 0; r < 20; r++) idle.push(await sampledAllocationPerTick(100, () => undefined));
  const own = bytes - Math.min(...idle);
  assert.ok(own < 4, `${own} bytes allocated per tick (windows: ${windows.join(', ')}; idle: ${idle.join(', ')})`);
});
