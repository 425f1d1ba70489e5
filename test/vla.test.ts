// VLA bundles: the inference worker feeds a task instruction tokenized on the robot from the
// bundle's tokenizer.json, the initial noise from a seeded generator (same seed, same chunk),
// and real-time chunking's committed prefix and delay. The test model's output is an exact
// function of each input (tools/models/vla.ts), so what it was fed can be read off its chunk.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from '../src/api/index.js';
import { ioMismatches, imageSpecs, loadBundle, loadOrt, openSession, PolicyRunner, type SessionOptions } from '../src/policy/index.js';
import { writeVlaBundle } from '../tools/models/index.js';
import { runReflex, spawnReflex, tempDir, testConfig, writeConfig } from '../tools/testkit/daemon.js';
import { SimHandle } from './helpers/sim.js';
import { ARM, armDaemonConfig } from './helpers/policy.js';

const ort = loadOrt(null);
const cpu: SessionOptions = { providers: ['cpu'], intraOpThreads: 1, deviceId: 0, tensorrt: { fp16: true, engineCacheDir: '/tmp', timingCacheDir: '/tmp', workspaceMb: 64 } };
const H = 10;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// Token ids: pick 1, up 2, the 3, red 4, cube 5, blue 6 ([UNK] 0).
const RED = 'Pick up the RED cube';
const BLUE = 'pick up the blue cube';

async function runner(over: { noiseWeight?: number; tokenWeight?: number } = {}, task = RED, seed = 7) {
  const dir = tempDir('reflex-vla-');
  writeVlaBundle(dir, { joints: ARM, horizon: H, maxLength: 16, home: 0.2, tokenWeight: over.tokenWeight ?? 0.01, noiseWeight: over.noiseWeight ?? 0.1, imageSize: 8, imageWeight: 0 });
  const b = loadBundle(dir);
  const opened = await openSession(ort, b.modelPath, cpu);
  return { dir, b, opened, r: new PolicyRunner(ort, b, opened, { task, seed }) };
}

const chunk = async (r: PolicyRunner, prefix: Float64Array | null = null, n = 0) => {
  const out = new Float64Array(H * 3);
  await r.run(new Float64Array(3), out, prefix, n, n);
  return out;
};

test('a VLA bundle declares its inputs; the model\'s inputs are checked against them, each one named', async () => {
  const { dir, b, opened, r } = await runner();
  try {
    assert.deepEqual(ioMismatches(opened.session, b), []);
    // Images padded and in [-1, 1]: the pixel range folds into the camera's pre-processing.
    assert.deepEqual(imageSpecs(b).get('top'), { height: 8, width: 8, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], pad: true });
    const spec = JSON.parse(readFileSync(join(dir, 'policy.json'), 'utf8')) as Record<string, unknown>;
    delete spec.task;
    writeFileSync(join(dir, 'policy.json'), JSON.stringify(spec));
    assert.deepEqual(ioMismatches(opened.session, loadBundle(dir)), [
      'the model wants an input observation.language.tokens the bundle does not provide',
      'the model wants an input observation.language.attention_mask the bundle does not provide',
    ]);
    spec.task = { input: 'observation.language.tokens', tokenizer: 'missing.json', maxLength: 16 };
    writeFileSync(join(dir, 'policy.json'), JSON.stringify(spec));
    assert.throws(() => loadBundle(dir), /missing\.json: ENOENT/);
  } finally {
    await r.release();
  }
});

test('the task is tokenized on the robot: a different instruction changes the tokens the model sees', async () => {
  const { r } = await runner({ noiseWeight: 0 });
  try {
    assert.equal(r.vla.tokenCount, 5);
    const red = await chunk(r);
    // home + 0.01 * (1 + 2 + 3 + 4 + 5): lower-cased by the tokenizer, then summed by the model.
    for (const v of red) assert.ok(Math.abs(v - (0.2 + 0.15)) < 1e-6, `${v}`);
    r.vla.setTask(BLUE);
    const blue = await chunk(r);
    for (const v of blue) assert.ok(Math.abs(v - (0.2 + 0.17)) < 1e-6, `${v}`);
    r.vla.setTask('pick up the green cube');
    assert.equal(r.vla.tokenCount, 5, 'an unknown word is one [UNK] token (id 0)');
    for (const v of await chunk(r)) assert.ok(Math.abs(v - (0.2 + 0.11)) < 1e-6, `${v}`);
    assert.throws(() => r.vla.setTask('x'.repeat(5000)), /at most 2000/);
  } finally {
    await r.release();
  }
});

test('the same seed gives the same chunk; another seed another one; the noise is Gaussian', async () => {
  const { r } = await runner();
  try {
    const a = await chunk(r);
    const next = await chunk(r);
    assert.notDeepEqual(next, a, 'each inference draws fresh noise');
    r.vla.setSeed(7);
    assert.deepEqual(await chunk(r), a, 'seed 7 again: the same chunk');
    r.vla.setSeed(8);
    const other = await chunk(r);
    assert.notDeepEqual(other, a);
    // The noise's own statistics (noiseWeight 0.1 around 0.35) over many draws.
    let sum = 0;
    let sq = 0;
    let n = 0;
    for (let k = 0; k < 40; k++) {
      for (const v of await chunk(r)) {
        const z = (v - 0.35) / 0.1;
        sum += z;
        sq += z * z;
        n++;
      }
    }
    assert.ok(Math.abs(sum / n) < 0.1, `mean ${sum / n}`);
    assert.ok(Math.abs(sq / n - 1) < 0.15, `variance ${sq / n}`);
  } finally {
    await r.release();
  }
});

test('real-time chunking: the committed prefix reaches the model normalized, with the delay in steps', async () => {
  const { r } = await runner({ noiseWeight: 0 });
  try {
    const prefix = new Float64Array(3 * 3);
    for (let i = 0; i < prefix.length; i++) prefix[i] = 0.5 + i / 100;
    const out = await chunk(r, prefix, 3);
    // The model copies the prefix for its first `delay` steps, then plans.
    for (let i = 0; i < 9; i++) assert.ok(Math.abs(out[i]! - prefix[i]!) < 1e-6, `prefix ${i}: ${out[i]}`);
    for (let i = 9; i < out.length; i++) assert.ok(Math.abs(out[i]! - 0.35) < 1e-6, `plan ${i}: ${out[i]}`);
    // No prefix: delay 0, the whole chunk is the plan.
    for (const v of await chunk(r)) assert.ok(Math.abs(v - 0.35) < 1e-6);
  } finally {
    await r.release();
  }
});

test('through the daemon: the task from config, then from the control socket, changes where the arm goes; the seed is reported', { timeout: 90_000 }, async () => {
  const bundle = tempDir('reflex-vla-');
  // Normalized = joint space (identity): the arm goes to 0.05 * (sum of the task's token ids).
  writeVlaBundle(bundle, { joints: ARM, horizon: 20, maxLength: 16, home: 0, tokenWeight: 0.05, noiseWeight: 0 });
  const sim = await SimHandle.start({ servos: [1, 2, 3].map((id) => ({ id, model: 'xm430-w350' })) });
  const dir = tempDir();
  const sock = join(dir, 'control.sock');
  const cfg = armDaemonConfig(sim.path);
  const config = testConfig(dir, { ...cfg, policy: { bundle, task: RED, seed: 42 }, control: { chunk: { blend: 'rtc' }, bus: { errorBudgetMs: 1000 } } });
  const d = spawnReflex(['run', '--config', writeConfig(dir, config)]);
  const reaches = async (what: string, target: number) => {
    const end = Date.now() + 30_000;
    for (;;) {
      const s = await request(sock, 'status');
      const q = s.loop.lastTick?.joints.map((j) => j.position) ?? [];
      if (s.loop.mode === 'policy' && q.length === 3 && q.every((v) => Math.abs(v - target) < 0.03)) return s;
      if (Date.now() > end) throw new Error(`${what}: the arm is at [${q.map((v) => v.toFixed(3)).join(', ')}], not ${target}; mode ${s.loop.mode} (${s.loop.fault ?? ''}), policy ${s.policy.state} ${s.policy.error ?? ''}`);
      await sleep(100);
    }
  };
  try {
    await d.waitForLog((l) => l.msg === 'reflex is running', 20_000);
    let s = await reaches('the config\'s task', 0.75);
    assert.equal(s.policy.task, RED);
    assert.equal(s.policy.seed, 42);
    assert.deepEqual(await request(sock, 'policy.task', { text: BLUE }), { task: BLUE, seed: 42 });
    s = await reaches('the new task', 0.85);
    assert.equal(s.policy.task, BLUE);
    // The technician's CLI: back to the red cube, and a seed to replay.
    const cli = await runReflex(['policy', 'task', RED, '--seed', '9', '--socket', sock]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.equal(cli.stdout, `task  ${JSON.stringify(RED)}\nseed  9\n`);
    s = await reaches('the task from the CLI', 0.75);
    assert.equal(s.policy.seed, 9);
    assert.equal(s.loop.safety.faults, 0);
  } finally {
    d.proc.kill('SIGTERM');
    const { code } = await d.exited;
    await sim.close();
    assert.equal(code, 0, 'the daemon stops cleanly');
  }
});
