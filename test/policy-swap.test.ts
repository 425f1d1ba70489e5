// Hot swap and rollback in the policy runtime, against the simulated arm and a running loop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { PolicyRuntime } from '../src/policy/index.js';
import { ControlLoop } from '../src/control/index.js';
import { SimHandle } from './helpers/sim.js';
import { tempDir } from '../tools/testkit/daemon.js';
import { armConfig } from '../tools/testkit/control.js';
import { until } from '../tools/testkit/mosquitto.js';
import { ARM, holdBundle } from './helpers/policy.js';

/** A logger whose records the test reads. */
function capture(): { log: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: 'info' }, stream), lines };
}

/** The simulated arm, a loop in hold, and the policy runtime with no policy yet. */
async function rig(log: pino.Logger = pino({ level: 'silent' })) {
  const sim = await SimHandle.start({ servos: [1, 2, 3].map((id) => ({ id, model: 'xm430-w350' })) });
  const loop = new ControlLoop(armConfig(sim.path), { stallMs: 500 }, pino({ level: 'silent' }));
  await loop.start(new AbortController().signal);
  const policy = new PolicyRuntime({ bundle: null, onnxruntimePath: null, providers: ['cpu'], stateDir: tempDir(), robot: { rateHz: 50, joints: ARM, cameras: [] } }, loop.buffers, log);
  await policy.start();
  const chunk = new Float64Array(loop.shared.chunk.length);
  /** The generation of the newest chunk the loop can read. */
  const chunkGeneration = () => (loop.shared.chunk.read(chunk) > 0 ? chunk[2]! : -1);
  const close = async () => {
    await policy.stop();
    await loop.stop();
    await sim.close();
  };
  return { loop, policy, chunkGeneration, close };
}

test('a policy that blocks its thread for seconds while loading is loaded beside the running one: no starved tick, then it takes over', { timeout: 30_000 }, async () => {
  const { loop, policy, chunkGeneration, close } = await rig();
  try {
    const a = await policy.activate(holdBundle('a'));
    await loop.startPolicy();
    await until('policy a feeds the loop', () => loop.status().chunks.received >= 3, 5000);
    const before = loop.status();
    const served = policy.status().inference.count;

    // As a 400 MB model or a TensorRT engine build would: the loading thread is blocked.
    policy.slowNextLoad(2500);
    const swap = policy.activate(holdBundle('b'));
    await until('b is loading', () => policy.status().loading !== null, 5000);
    await until('a keeps serving while b loads', () => policy.status().inference.count >= served + 10, 5000);
    assert.notEqual(policy.status().loading, null, 'a served while b was still loading');
    assert.equal(chunkGeneration(), a.generation);

    const b = await swap;
    assert.equal(b.name, 'b');
    assert.ok(b.generation > a.generation);
    await until("b's chunks reach the loop", () => chunkGeneration() === b.generation, 3000);
    // From then on only b writes: a chunk a was computing at the swap is dropped, never played.
    const end = Date.now() + 500;
    while (Date.now() < end) {
      assert.equal(chunkGeneration(), b.generation, 'a chunk of the policy swapped out reached the loop after the swap');
      await new Promise((r) => setTimeout(r, 5));
    }
    const after = loop.status();
    assert.equal(after.mode, 'policy');
    assert.equal(after.starvedTicks - before.starvedTicks, 0, 'no starved tick over the load and the swap');
    assert.equal(after.safety.faults, 0);
    assert.equal(policy.status().active?.name, 'b');
    assert.equal(policy.status().previous?.name, 'a');
    assert.equal(policy.status().loading, null);
  } finally {
    await close();
  }
});

test('rollback goes back once: the policy rolled back from is released, a second rollback is refused, and the log says what went to what', { timeout: 30_000 }, async () => {
  const { log, lines } = capture();
  const { loop, policy, chunkGeneration, close } = await rig(log);
  try {
    await policy.activate(holdBundle('a', { version: '1.0' }));
    await loop.startPolicy();
    await policy.activate(holdBundle('b', { version: '2.0' }));
    const before = loop.status();

    const back = await policy.rollback();
    assert.equal(back.name, 'a');
    assert.equal(policy.status().active?.name, 'a');
    assert.equal(policy.status().previous, null, 'b is not kept as a rollback target');
    const rolled = lines.filter((l) => l.msg === 'policy rolled back');
    assert.equal(rolled.length, 1);
    assert.deepEqual(rolled[0]!.from, { name: 'b', version: '2.0', generation: back.generation - 1 });
    assert.deepEqual(rolled[0]!.to, { name: 'a', version: '1.0', generation: back.generation });
    assert.equal(lines.filter((l) => l.msg === 'policy ready').length, 2, 'a rollback is not logged as a policy becoming ready');
    await until("a's chunks reach the loop again", () => chunkGeneration() === back.generation, 3000);

    // The second rollback does not bring b back.
    await assert.rejects(policy.rollback(), /there is no previous policy to go back to/);
    assert.equal(policy.status().active?.name, 'a');
    assert.equal(chunkGeneration(), back.generation);
    const after = loop.status();
    assert.equal(after.mode, 'policy');
    assert.equal(after.starvedTicks - before.starvedTicks, 0);

    // A new activation makes a the previous policy again: rollback works from there.
    await policy.activate(holdBundle('c'));
    assert.equal((await policy.rollback()).name, 'a');
  } finally {
    await close();
  }
});
