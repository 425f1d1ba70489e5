// The whole path from training code to a bundle, as far as it runs here: tools/export (Python,
// torch) exports an ACT-shaped network to ONNX and checks ONNX Runtime against PyTorch; the
// reference file it writes (by Python's own safetensors) is read by reflex's reader; `reflex
// policy import` makes a bundle of it with a LeRobot checkpoint; and ONNX Runtime in Node gives
// PyTorch's answer on the reference inputs. Needs a Python with torch, onnx and onnxruntime
// ($REFLEX_EXPORT_PYTHON, else .cache/h6-export/venv); skips saying so without one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadBundle, loadOrt, readSafetensors } from '../src/policy/index.js';
import { writeLeRobotCheckpoint } from '../tools/models/index.js';
import { REPO } from '../tools/testkit/paths.js';
import { runReflex, tempDir } from '../tools/testkit/daemon.js';
import { ARM } from './helpers/policy.js';

const python = process.env.REFLEX_EXPORT_PYTHON ?? join(REPO, '.cache', 'h6-export', 'venv', 'bin', 'python');
const usable = existsSync(python) && spawnSync(python, ['-c', 'import torch, onnx, onnxruntime, safetensors'], { stdio: 'ignore' }).status === 0;
const skip = usable ? false : `no Python with torch, onnx, onnxruntime and safetensors at ${python} (set REFLEX_EXPORT_PYTHON)`;
if (skip) process.stderr.write(`policy-import-export: skipped: ${skip}\n`);

test('tools/export -> reflex policy import -> the bundle answers as PyTorch did', { skip, timeout: 300_000 }, async () => {
  const out = tempDir('reflex-export-');
  // No __pycache__ left in the checkout.
  const r = spawnSync(python, [join(REPO, 'tools', 'export', 'selftest.py'), out], { encoding: 'utf8', timeout: 240_000, env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' } });
  assert.equal(r.status, 0, r.stderr);
  const check = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, { ok: boolean; max_rel_diff: number }>;
  assert.ok(check.act!.ok && check.diffusion!.ok, `ONNX Runtime against PyTorch: ${r.stdout}`);

  // The checkpoint the network came from (its features and statistics), in LeRobot's layout.
  const ckpt = join(out, 'pretrained_model');
  const stats = { mean: [0, 0, 0], std: [1, 1, 1], min: [-1, -1, -1], max: [1, 1, 1] };
  writeLeRobotCheckpoint(ckpt, join(out, 'info.json'), {
    type: 'act',
    joints: ARM,
    cameras: { top: [480, 640] },
    chunkSize: 20,
    fps: 50,
    stats: { 'observation.state': stats, action: stats, 'observation.images.top': stats },
  });
  const bundle = join(out, 'bundle');
  const imp = await runReflex(['policy', 'import', ckpt, '--onnx', join(out, 'act', 'model.onnx'), '--out', bundle, '--dataset-info', join(out, 'info.json')]);
  assert.equal(imp.code, 0, imp.stderr);
  const b = loadBundle(bundle);
  assert.deepEqual(b.images[0]!.shape, [3, 16, 16], 'the camera size the exported network takes');

  // Python's safetensors file, read by reflex's reader; Node's ONNX Runtime on its inputs.
  const ref = readSafetensors(join(out, 'act', 'reference.safetensors'));
  const ort = loadOrt(null);
  const session = await ort.InferenceSession.create(b.modelPath);
  const feed = (name: string) => {
    const t = ref.get(`input.${name}`)!;
    return new ort.Tensor('float32', Float32Array.from(t.data), t.shape);
  };
  const res = await session.run({ 'observation.state': feed('observation.state'), 'observation.images.top': feed('observation.images.top') });
  const got = res.action!.data as Float32Array;
  const want = ref.get('output.action')!;
  assert.deepEqual(want.shape, [1, 20, 3]);
  let worst = 0;
  for (let i = 0; i < want.data.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want.data[i]!));
  assert.ok(worst < 1e-4, `Node's ONNX Runtime differs from PyTorch by ${worst}`);
  await session.release();

  // The diffusion-shaped export: its noise input becomes the bundle's seeded noise.
  const dif = join(out, 'diffusion-ckpt');
  writeLeRobotCheckpoint(dif, join(out, 'info2.json'), { type: 'diffusion', joints: ARM, chunkSize: 20, fps: 50, stats: { 'observation.state': stats, action: stats } });
  const dimp = await runReflex(['policy', 'import', dif, '--onnx', join(out, 'diffusion', 'model.onnx'), '--out', join(out, 'bundle2'), '--dataset-info', join(out, 'info2.json')]);
  assert.equal(dimp.code, 0, dimp.stderr);
  assert.deepEqual(loadBundle(join(out, 'bundle2')).spec.noise, { input: 'noise', shape: [20, 3] });
});
