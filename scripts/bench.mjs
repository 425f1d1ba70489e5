#!/usr/bin/env node
// `npm run bench -- NAME [args]` runs dist/bench/NAME.js. Each benchmark prints progress to
// stderr and one JSON object as the last line of stdout.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
const dir = join(root, 'dist', 'bench');
const [name, ...args] = process.argv.slice(2);
const known = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.js') && !f.startsWith('_')).map((f) => f.slice(0, -3)) : [];
if (!name || !known.includes(name)) {
  process.stderr.write(`usage: npm run bench -- NAME [args]; benchmarks: ${known.join(', ') || 'none yet'}\n`);
  process.exit(64);
}
// --expose-gc lets a benchmark start from a clean heap; a large young generation keeps
// scavenges out of short measurement windows, so heap growth per tick can be read directly.
const flags = ['--expose-gc', '--min-semi-space-size=64', '--max-semi-space-size=64'];
const r = spawnSync(process.execPath, [...flags, join(dir, `${name}.js`), ...args], { stdio: 'inherit', cwd: root });
process.exit(r.status ?? 1);
