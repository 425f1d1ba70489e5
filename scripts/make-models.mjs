#!/usr/bin/env node
// Makes the policies in models/, reproducibly and offline (needs the TypeScript build):
//   node scripts/make-models.mjs            the small default policy, committed to the repo
//   node scripts/make-models.mjs act-bench  the ACT-like benchmark model (18 MB, not committed)
import { join } from 'node:path';

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
const { writeHomeBundle, writeActBundle, writeReachBundle } = await import(join(root, 'dist', 'tools', 'models', 'index.js'));
const { ARM } = await import(join(root, 'dist', 'src', 'sim', 'index.js'));
const what = process.argv[2] ?? 'default';
if (what === 'default') {
  // The development arm (config/dev.yaml): base, shoulder, elbow, to a pose clear of the limits.
  writeHomeBundle(join(root, 'models', 'home'), ['base', 'shoulder', 'elbow'], [0.3, -0.4, 0.8]);
  // The simulated camera: 640x480 over 1.2 m, base at the centre; pre-processed to 128x96.
  writeReachBundle(join(root, 'models', 'reach'), { camera: 'top', height: 96, width: 128, pxPerM: 128 / 1.2, upperM: ARM.upperM, foreM: ARM.foreM, horizon: 50 });
  process.stderr.write('models/home and models/reach written\n');
} else if (what === 'act-bench') {
  writeActBundle(join(root, 'models', 'act-bench'));
  process.stderr.write('models/act-bench written\n');
} else {
  process.stderr.write('usage: node scripts/make-models.mjs [default|act-bench]\n');
  process.exit(64);
}
