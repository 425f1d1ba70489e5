// OpenCV in this test's own thread: one test file, one thread that loads it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadOrt, loadBundle, openSession, PolicyRunner, ioMismatches } from '../src/policy/index.js';
import { loadOpenCv, preprocess } from '../src/hardware/camera/index.js';
import { render, endEffector } from '../src/sim/index.js';
import { REPO } from '../tools/testkit/paths.js';

test('the default policy (models/reach) finds the target in the rendered camera image and plans a reach to it', async () => {
  const ort = loadOrt(null);
  const b = loadBundle(join(REPO, 'models', 'reach'));
  const opened = await openSession(ort, b.modelPath, { providers: ['cpu'], intraOpThreads: 1, deviceId: 0, tensorrt: { fp16: false, engineCacheDir: '/tmp', timingCacheDir: '/tmp', workspaceMb: 1 } });
  assert.deepEqual(ioMismatches(opened.session, b), []);
  const runner = new PolicyRunner(ort, b, opened);
  const cv = loadOpenCv();
  const spec = { height: 96, width: 128, mean: [0, 0, 0] as [number, number, number], std: [1, 1, 1] as [number, number, number] };
  const out = new Float64Array(b.horizon * 3);
  for (const target of [{ x: 0.3, y: 0.1 }, { x: 0.22, y: -0.18 }, { x: 0.38, y: 0.05 }]) {
    for (const start of [[0, 0, 0], [0.5, -0.3, 0.6]]) {
      preprocess(cv, render(cv, { joints: start, target }), spec, runner.images.get('top')!);
      await runner.run(Float64Array.from(start), out);
      // The first action moves from where the arm is; the last is the reach.
      assert.ok(Math.abs(out[0]! - start[0]!) < 0.1, 'no jump at the start of the chunk');
      const goal = [out[out.length - 3]!, out[out.length - 2]!, out[out.length - 1]!];
      const ee = endEffector(goal);
      const err = Math.hypot(ee.x - target.x, ee.y - target.y);
      assert.ok(err < 0.015, `target ${JSON.stringify(target)} from ${JSON.stringify(start)}: reach ends ${(err * 100).toFixed(1)} cm away`);
    }
  }
  await runner.release();
});
