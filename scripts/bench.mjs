#!/usr/bin/env node
// `npm run bench -- NAME [args]` runs dist/bench/NAME.js. Each benchmark prints progress to
// stderr and one JSON object as the last line of stdout.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { pinnedNode } from './node-pin.mjs';
import { scratch } from './scratch.mjs';

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
const cmd = [pinnedNode(), ...flags, join(dir, `${name}.js`), ...args];
// As root, run with the memory-lock limit a deployed unit has (LimitMEMLOCK=infinity), so the
// control thread's mlockall is measured as it runs on a robot.
const prlimit = process.getuid?.() === 0 && spawnSync('prlimit', ['--memlock=unlimited:unlimited', 'true'], { stdio: 'ignore' }).status === 0;
const tmp = scratch(`reflex-bench-${name}-`);
const r = prlimit
  ? spawnSync('prlimit', ['--memlock=unlimited:unlimited', ...cmd], { stdio: 'inherit', cwd: root, env: tmp.env })
  : spawnSync(cmd[0], cmd.slice(1), { stdio: 'inherit', cwd: root, env: tmp.env });
tmp.finish(r.status === 0);
process.exit(r.status ?? 1);
