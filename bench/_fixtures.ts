// Models the benchmarks share, made on first use.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { writeActBundle } from '../tools/models/index.js';
import { REPO } from '../tools/testkit/paths.js';
import { progress } from './_util.js';

/** models/act-bench: ACT-like, two 224x224 cameras (top, wrist), a chunk of 50 x 14 joints. */
export function ensureActBundle(): string {
  const act = join(REPO, 'models', 'act-bench');
  if (!existsSync(join(act, 'model.onnx'))) {
    progress('making models/act-bench (ACT-like, 2 x 224x224 cameras, chunk 50 x 14)...');
    writeActBundle(act);
  }
  return act;
}
