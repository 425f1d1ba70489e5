// The layout is the architecture (DESIGN.md, "Source layout"): a folder of src/ is a room, and a
// module reaches into another room only through that room's index.ts; the technician's client
// (src/cli) is imported by nothing but bin/; fixtures and test kits never ship in src/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { REPO } from '../tools/testkit/paths.js';

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (e.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** Relative specifiers of every static import, re-export and dynamic import in a file. */
function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const found: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'";]*?from\s*'(\.[^']+)'|import\(\s*'(\.[^']+)'\s*\)/g)) found.push((m[1] ?? m[2])!);
  return found;
}

/** The room of a path under src/: its top folder, and for hardware its family folder. */
function room(srcRel: string): string {
  const parts = srcRel.split(sep);
  if (parts.length === 1) return '.';
  if (parts[0] === 'hardware' && parts.length > 2) return `hardware/${parts[1]}`;
  return parts[0]!;
}

const SRC = join(REPO, 'src');

/**
 * Entries besides a room's index.ts, each with its reason. api/wire.ts: the client side of the
 * control socket without the server side (the catalog's zod schemas, the socket server), which
 * the barrel loads; the technician's `reflex status` must answer in under 200 ms and that load
 * was a large share of its start-up (issue 18).
 */
const SECOND_ENTRIES: ReadonlySet<string> = new Set(['api/wire.ts']);

test('every import between rooms of src/ goes through the room index.ts', () => {
  const bad: string[] = [];
  for (const file of sources(SRC)) {
    const from = relative(SRC, file);
    for (const spec of imports(file)) {
      const target = resolve(dirname(file), spec).replace(/\.js$/, '.ts');
      const to = relative(SRC, target);
      if (to.startsWith('..')) {
        bad.push(`${from} imports ${spec}: outside src/`);
        continue;
      }
      const a = room(from);
      const b = room(to);
      if (a === b || b === '.') continue;
      // A family folder may use what hardware/ shares (the MotorBus interface, the registry).
      if (a.startsWith('hardware/') && b === 'hardware') continue;
      const entry = b.includes('/') ? `${b}/index.ts` : `${b}/index.ts`;
      const reached = to.split(sep).join('/');
      if (reached !== entry && !SECOND_ENTRIES.has(reached)) bad.push(`${from} imports ${spec}: reach ${b} through ${entry}`);
    }
  }
  assert.deepEqual(bad, []);
});

test('nothing but bin/ imports the technician client in src/cli', () => {
  const bad: string[] = [];
  for (const top of ['src', 'test', 'bench', 'tools']) {
    for (const file of sources(join(REPO, top))) {
      if (file.startsWith(join(SRC, 'cli') + sep)) continue;
      for (const spec of imports(file)) {
        const to = relative(SRC, resolve(dirname(file), spec));
        if (to.split(sep)[0] === 'cli') bad.push(`${relative(REPO, file)} imports ${spec}`);
      }
    }
  }
  assert.deepEqual(bad, []);
  assert.match(readFileSync(join(REPO, 'bin', 'reflex.js'), 'utf8'), /src\/cli\/main\.js/);
});
