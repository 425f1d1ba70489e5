// Camera frames for VLA policies: resized with padding (the aspect ratio kept, black bars) and
// pixels in [-1, 1], as π0 and SmolVLA take them; the policy's bundle says so (images.resize,
// images.pixels) and the vision worker's OpenCV pre-processing does it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadOpenCv, preprocess } from '../src/hardware/camera/index.js';
import { imageSpecs, loadBundle } from '../src/policy/index.js';
import { writeVlaBundle } from '../tools/models/index.js';
import { tempDir } from '../tools/testkit/daemon.js';
import { ARM } from './helpers/policy.js';

test('a 2:1 white frame padded into a square: a white band in the middle at +1, black bars at -1', () => {
  const dir = tempDir('reflex-vla-img-');
  writeVlaBundle(dir, { joints: ARM, horizon: 10, maxLength: 8, home: 0, tokenWeight: 0, noiseWeight: 0, imageSize: 64, imageWeight: 0 });
  const spec = imageSpecs(loadBundle(dir)).get('top')!;
  assert.equal(spec.pad, true);
  const cv = loadOpenCv();
  const frame = new cv.Mat(100, 200, cv.CV_8UC3, [255, 255, 255]);
  const out = new Float32Array(3 * 64 * 64);
  preprocess(cv, frame, spec, out);
  const at = (c: number, y: number, x: number) => out[c * 64 * 64 + y * 64 + x]!;
  for (let c = 0; c < 3; c++) {
    // 200x100 into 64x64: 64x32, centred: rows 16..47 are the picture.
    assert.ok(Math.abs(at(c, 32, 32) - 1) < 1e-5, `picture ${at(c, 32, 32)}`);
    assert.ok(Math.abs(at(c, 16, 0) - 1) < 1e-5, `first picture row ${at(c, 16, 0)}`);
    assert.ok(Math.abs(at(c, 47, 63) - 1) < 1e-5, `last picture row ${at(c, 47, 63)}`);
    assert.ok(Math.abs(at(c, 15, 10) + 1) < 1e-5, `bar above ${at(c, 15, 10)}`);
    assert.ok(Math.abs(at(c, 48, 10) + 1) < 1e-5, `bar below ${at(c, 48, 10)}`);
    assert.ok(Math.abs(at(c, 0, 0) + 1) < 1e-5);
  }
  // Stretched (the default), the same frame fills the square.
  const stretched = new Float32Array(3 * 64 * 64);
  preprocess(cv, frame, { ...spec, pad: false }, stretched);
  assert.ok(Math.abs(stretched[0]! - 1) < 1e-5);
});
