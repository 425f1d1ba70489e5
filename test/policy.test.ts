import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { loadBundle, loadOrt, openSession, ioMismatches, mismatches, PolicyRunner, PolicyRuntime, type SessionOptions } from '../src/policy/index.js';
import { writeBundle, offsetModel } from '../tools/models/index.js';
import { ControlLoop, type ControlConfig } from '../src/control/index.js';
import { SimHandle } from './helpers/sim.js';
import { tempDir } from '../tools/testkit/daemon.js';
import { armConfig } from '../tools/testkit/control.js';

const silent = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ort = loadOrt(null);
const JOINTS = ['base', 'shoulder', 'elbow'] as [string, ...string[]];
const robot = { rateHz: 50, joints: JOINTS, cameras: [] };
const cpu: SessionOptions = { providers: ['cpu'], intraOpThreads: 1, deviceId: 0, tensorrt: { fp16: true, engineCacheDir: '/tmp', timingCacheDir: '/tmp', workspaceMb: 64 } };

/** A bundle around offsetModel: normalized action i = normalized state + (i + 1) * step. */
function bundle(over: { step?: number; horizon?: number; nan?: boolean; inputName?: string; joints?: string[]; budgetMs?: number; name?: string } = {}): string {
  const dir = tempDir('reflex-policy-');
  const joints = (over.joints ?? JOINTS) as [string, ...string[]];
  const horizon = over.horizon ?? 20;
  const d = joints.length;
  writeBundle(
    dir,
    {
      name: over.name ?? 'offset',
      version: '1',
      fps: 50,
      joints,
      features: { 'observation.state': { shape: [d], normalization: 'mean_std' }, action: { shape: [horizon, d], normalization: 'min_max' } },
      stats: {
        'observation.state': { mean: [0.1, -0.2, 0.3].slice(0, d), std: [2, 4, 0.5].slice(0, d) },
        action: { min: [-1, -2, 0].slice(0, d), max: [1, 2, 1].slice(0, d) },
      },
      runtime: { budgetMs: over.budgetMs ?? 500, intraOpThreads: 1 },
    },
    offsetModel({ joints, horizon, step: over.step ?? 0.01, nan: over.nan ?? false, ...(over.inputName ? { inputName: over.inputName } : {}) }),
  );
  return dir;
}

test('normalization: inputs are normalized with the state stats and outputs mapped back with the action stats', async () => {
  const b = loadBundle(bundle({ step: 0.1, horizon: 4 }));
  const opened = await openSession(ort, b.modelPath, cpu);
  const r = new PolicyRunner(ort, b, opened);
  const out = new Float64Array(4 * 3);
  await r.run(Float64Array.from([1.1, 1.8, 0.55]), out);
  // normalized state: (1.1-0.1)/2 = 0.5, (1.8+0.2)/4 = 0.5, (0.55-0.3)/0.5 = 0.5
  // action i (normalized) = 0.5 + 0.1 (i+1); min_max back: x * (max-min)/2 + (max+min)/2
  const expect = [0, 1, 2, 3].flatMap((i) => {
    const n = 0.5 + 0.1 * (i + 1);
    return [n * 1 + 0, n * 2 + 0, n * 0.5 + 0.5];
  });
  out.forEach((v, i) => assert.ok(Math.abs(v - expect[i]!) < 1e-5, `action value ${i}: ${v} vs ${expect[i]}`));
  await r.release();
});

test('providers are tried in order and fall back to the CPU, saying why the others failed', async () => {
  const b = loadBundle(bundle());
  const opened = await openSession(ort, b.modelPath, { ...cpu, providers: ['tensorrt', 'cuda', 'cpu'] });
  assert.equal(opened.provider, 'cpu');
  assert.deepEqual(opened.fallbacks.map((f) => f.provider), ['tensorrt', 'cuda']);
  for (const f of opened.fallbacks) assert.ok(f.error.length > 0);
  await opened.session.release();
});

test('a model whose inputs or outputs differ from the bundle is named precisely', async () => {
  const wrongName = loadBundle(bundle({ inputName: 'obs' }));
  const s1 = await openSession(ort, wrongName.modelPath, cpu);
  assert.deepEqual(ioMismatches(s1.session, wrongName), [
    'the model has no input observation.state (it has obs)',
    'the model wants an input obs the bundle does not provide',
  ]);
  // The bundle says 3 joints; swap in a model made for 2.
  const dir = bundle();
  writeFileSync(join(dir, 'model.onnx'), offsetModel({ joints: ['a', 'b'], horizon: 20, step: 0.01 }));
  const b = loadBundle(dir);
  const s2 = await openSession(ort, b.modelPath, cpu);
  assert.deepEqual(ioMismatches(s2.session, b), [
    'input observation.state has shape [batch, 2], the bundle says [1, 3]',
    'output action has shape [batch, 20, 2], the bundle says [1, 20, 3]',
  ]);
});

test('a corrupt or truncated ONNX file is a clear error, not a crash', async () => {
  const dir = bundle();
  const good = readFileSync(join(dir, 'model.onnx'));
  writeFileSync(join(dir, 'model.onnx'), good.subarray(0, Math.floor(good.length / 2)));
  await assert.rejects(openSession(ort, join(dir, 'model.onnx'), cpu), /no execution provider could open the model: cpu: /);
  writeFileSync(join(dir, 'model.onnx'), Buffer.from('this is not a model at all'));
  await assert.rejects(openSession(ort, join(dir, 'model.onnx'), cpu), /no execution provider could open the model: cpu: /);
});

test('NaN in the outputs is refused, naming the action and the joint', async () => {
  const b = loadBundle(bundle({ nan: true }));
  const r = new PolicyRunner(ort, b, await openSession(ort, b.modelPath, cpu));
  await assert.rejects(r.run(new Float64Array(3), new Float64Array(60)), /offset: the model returned NaN at action 1, joint shoulder/);
});

test('a bundle that does not fit the robot says what differs', () => {
  const b = loadBundle(bundle({ joints: ['base', 'elbow', 'shoulder'] }));
  assert.deepEqual(mismatches(b, { rateHz: 30, joints: JOINTS, cameras: [] }), [
    'joints: the policy wants [base, elbow, shoulder], the robot has [base, shoulder, elbow]',
    'rate: the policy was trained at 50 Hz, the loop runs at 30 Hz',
  ]);
  const dir = bundle();
  writeFileSync(join(dir, 'policy.json'), '{"format": "reflex.policy/1", "name": "x"}');
  assert.throws(() => loadBundle(dir), /policy.json version: Required/);
});

function loopConfig(port: string): ControlConfig {
  return armConfig(port, { chunk: { blend: 'crossfade', overlapTicks: 5, ensembleDecay: 0.01, refillTicks: 10 } });
}

/** The simulated servos, a running loop in hold, and the inference worker with no policy yet. */
async function rig() {
  const sim = await SimHandle.start({ servos: [1, 2, 3].map((id) => ({ id, model: 'xm430-w350' })) });
  const loop = new ControlLoop(loopConfig(sim.path), { stallMs: 500 }, silent);
  await loop.start(new AbortController().signal);
  const policy = new PolicyRuntime({ bundle: null, onnxruntimePath: null, providers: ['cpu'], stateDir: tempDir(), robot }, loop.buffers, silent);
  await policy.start();
  return { sim, loop, policy };
}

test('the inference worker drives the loop, refuses broken policies while the good one keeps serving, and hot-swaps with no tick left without an action', async () => {
  const { sim, loop, policy } = await rig();
  try {
    const a = await policy.activate(bundle({ step: 0.002, name: 'a' }));
    assert.equal(a.provider, 'cpu');
    await loop.startPolicy();
    await sleep(1500);
    let s = loop.status();
    assert.equal(s.mode, 'policy');
    assert.ok(s.chunks.received >= 5, `chunks ${s.chunks.received}`);
    assert.ok(policy.status().inference.count >= 5);

    // Broken bundles are refused and the running policy is not disturbed.
    await assert.rejects(policy.activate(bundle({ inputName: 'obs' })), /the model has no input observation.state/);
    await assert.rejects(policy.activate(bundle({ joints: ['x', 'y', 'z'] })), /does not fit this robot: joints/);
    assert.equal(policy.status().active?.name, 'a');

    const before = loop.status();
    const b = await policy.activate(bundle({ step: -0.002, name: 'b' }));
    assert.equal(b.generation, a.generation + 1);
    await sleep(1500);
    s = loop.status();
    assert.equal(s.mode, 'policy');
    // Whether a tick woke late during the swap is the machine's timing, measured by bench/ota
    // (missed_deadlines_during_swap); what the swap itself guarantees is that no tick went
    // without an action.
    assert.equal(s.starvedTicks - before.starvedTicks, 0, 'no starved tick during the swap');
    assert.equal(policy.status().active?.name, 'b');
    assert.equal(policy.status().previous?.name, 'a');

    const back = await policy.rollback();
    assert.equal(back.name, 'a');
    await sleep(500);
    assert.equal(loop.status().starvedTicks - before.starvedTicks, 0);
  } finally {
    await policy.stop();
    await loop.stop();
    await sim.close();
  }
});

test('an inference over its budget is dropped: the loop holds, it never acts on a late plan', async () => {
  const { sim, loop, policy } = await rig();
  try {
    await policy.activate(bundle({ budgetMs: 0.001 }));
    await loop.startPolicy();
    await sleep(1000);
    assert.ok(policy.status().inference.overBudget >= 1);
    assert.equal(loop.status().chunks.received, 0);
    assert.equal(loop.mode, 'fault', 'no first chunk within the limit: a fault, the arm held');
  } finally {
    await policy.stop();
    await loop.stop();
    await sim.close();
  }
});

test('TensorRT plumbing: the options reflex needs go into the provider entry, and a configured onnxruntime build is the one loaded', async () => {
  const { providerEntry } = await import('../src/policy/index.js');
  const o: SessionOptions = { ...cpu, providers: ['tensorrt'], deviceId: 1, tensorrt: { fp16: true, engineCacheDir: '/var/lib/reflex/trt/engines', timingCacheDir: '/var/lib/reflex/trt/timing', workspaceMb: 2048 } };
  assert.deepEqual(providerEntry('tensorrt', o), {
    name: 'tensorrt',
    deviceId: 1,
    fp16: true,
    engineCachePath: '/var/lib/reflex/trt/engines',
    timingCachePath: '/var/lib/reflex/trt/timing',
    workspaceSize: 2048 * 1024 * 1024,
  });
  assert.deepEqual(providerEntry('cuda', o), { name: 'cuda', deviceId: 1 });
  // A stand-in for /opt/reflex/onnxruntime-node: the path in config is what gets loaded.
  const dir = tempDir('reflex-ort-');
  const { createRequire } = await import('node:module');
  const real = createRequire(import.meta.url).resolve('onnxruntime-node');
  writeFileSync(join(dir, 'package.json'), '{"name":"onnxruntime-node","main":"index.js"}');
  writeFileSync(join(dir, 'index.js'), `module.exports = { ...require(${JSON.stringify(real)}), builtFor: 'jetson' };`);
  const custom = loadOrt(dir) as unknown as { builtFor?: string };
  assert.equal(custom.builtFor, 'jetson');
  assert.throws(() => loadOrt(join(dir, 'missing')), /cannot load onnxruntime from .*missing/);
});
