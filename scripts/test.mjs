#!/usr/bin/env node
// Runs the compiled test files with node's test runner. Files are listed explicitly because
// node 20, 22 and 24 differ in how they expand directories and globs.
// `node scripts/test.mjs socket config` runs only the files whose names contain those words.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pinnedNode } from './node-pin.mjs';
import { scratch } from './scratch.mjs';

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
const filters = process.argv.slice(2);

function find(dir) {
  const out = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...find(p));
    else if (e.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const files = find(join(root, 'dist', 'test'))
  .filter((f) => filters.length === 0 || filters.some((w) => relative(root, f).includes(w)))
  .sort();
if (files.length === 0) {
  process.stderr.write(`no test files match ${filters.join(' ')}\n`);
  process.exit(1);
}
// On the pinned Node, whatever Node runs npm: the suite tests the runtime the robot runs.
let node;
try {
  node = pinnedNode();
} catch (err) {
  process.stderr.write(`${err.message}\n`);
  process.exit(1);
}
process.stderr.write(`tests on Node ${node === process.execPath ? process.versions.node : node}\n`);
const tmp = scratch('reflex-suite-');
const r = spawnSync(node, ['--test', '--test-reporter=spec', ...files], { stdio: 'inherit', cwd: root, env: tmp.env });
tmp.finish(r.status === 0);
process.exit(r.status ?? 1);
