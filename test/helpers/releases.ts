// Releases built by flash.sh for the tests that install them (test/flash, test/flash-ssh).
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO } from '../../tools/testkit/paths.js';

export const FLASH = join(REPO, 'flash.sh');
export const NODE_PIN = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { reflex: { node: string } }).reflex.node;
const run = promisify(execFile);

/** Fetch the pinned Node for arch into .cache/node as flash.sh does; why it cannot, or null. */
export function fetchNode(arch: 'x64' | 'arm64'): string | null {
  const cache = join(REPO, '.cache', 'node');
  if (existsSync(join(cache, `node-linux-${arch}-${NODE_PIN}.tgz`))) return null;
  mkdirSync(cache, { recursive: true });
  const r = spawnSync('npm', ['pack', '--loglevel', 'error', `node-linux-${arch}@${NODE_PIN}`], { cwd: cache, encoding: 'utf8', timeout: 180_000 });
  if (r.status === 0) return null;
  const why = (r.stderr ?? '').split('\n').find((l) => l.trim() !== '' && !l.includes('complete log')) || r.error?.message || `npm pack exited ${r.status ?? r.signal}`;
  return `cannot fetch node-linux-${arch}@${NODE_PIN} from the npm registry (offline?): ${why}`;
}

/** Versions of this checkout as x64 releases in out, built side by side. */
export async function buildReleases(out: string, versions: string[]): Promise<void> {
  await Promise.all(versions.map((v) => run(FLASH, ['release', '--arch', 'x64', '--version', v, out], { timeout: 300_000 })));
}

/** The folder buildReleases made for version v. */
export function releasePath(out: string, v: string): string {
  return join(out, `reflex-${v}-linux-x64`);
}
