#!/usr/bin/env node
// Idempotent bootstrap, run by npm's prestart/pretest/prebench hooks: installs what is missing
// and rebuilds what is stale, and does nothing (in well under a second) when all is in place.
// Plain JavaScript with no dependencies, because it runs before node_modules exists.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensurePinnedNode, pinnedVersion } from './node-pin.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const quiet = process.argv.includes('--quiet');

// Debian packages the build and the test suite need, with why.
const DEBIAN_PACKAGES = [
  'g++', 'make', 'python3', // node-gyp builds the native addon; python3 also runs test helpers
  'rt-tests', // cyclictest: the OS's own timer latency, the floor `npm run bench -- loop` compares with
  'libopencv-dev', // @u4/opencv4nodejs is built against Debian's OpenCV (its own auto-build is off)
  'gstreamer1.0-plugins-base', 'gstreamer1.0-plugins-good', 'gstreamer1.0-tools', // camera sources; test videos
  'mosquitto', 'openssl', // the fleet link's tests run a real broker, with TLS certificates they make
  'shellcheck', // test/flash.test: flash.sh and the first-boot script it installs stay shellcheck-clean
  // `flash.sh release --arch arm64` cross-compiles reflex's native addon for the Jetson (test/flash)
  ...(process.arch === 'x64' ? ['g++-aarch64-linux-gnu'] : []),
  // test/arm64-emulation runs that arm64 release (the pinned Node for arm64) under qemu-user
  ...(process.arch === 'x64' ? ['qemu-user-static'] : []),
  'systemd', // systemd-analyze verify and systemd-sysusers check the files under systemd/ (test/systemd-units)
  'systemd-container', // systemd-nspawn boots Debian's systemd with reflex.service in it (test/systemd-boot)
  'openssh-server', 'openssh-client', // test/flash-ssh: `flash.sh ssh` installs into a container over a real sshd
  'ffmpeg', // the recorder encodes camera frames to MP4 (libx264); tests read videos back with ffprobe
  // SocketCAN tests boot Debian's kernel in QEMU where this kernel has no CAN (see ensureCanVmKernel)
  ...(process.arch === 'x64' ? ['qemu-system-x86', 'busybox-static'] : []),
];

const MULTIARCH = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu', arm: 'arm-linux-gnueabihf' }[process.arch] ?? `${process.arch}-linux-gnu`;

// ONNXRUNTIME_NODE_INSTALL=skip: onnxruntime-node's postinstall downloads CUDA binaries from
// outside npm and fails offline. OPENCV4NODEJS_*: build @u4/opencv4nodejs against Debian's
// libopencv-dev (about 5 minutes) instead of downloading and building OpenCV itself.
const NPM_ENV = {
  ...process.env,
  ONNXRUNTIME_NODE_INSTALL: 'skip',
  OPENCV4NODEJS_DISABLE_AUTOBUILD: '1',
  OPENCV_INCLUDE_DIR: '/usr/include/opencv4',
  OPENCV_LIB_DIR: `/usr/lib/${MULTIARCH}`,
  OPENCV_BIN_DIR: '/usr/bin',
};

// Everything below builds for, and runs on, the pinned Node (scripts/node-pin.mjs): npm and
// node-gyp run under it (first on PATH) and compile addons against its headers (nodedir).
let PINNED = null;
function pinnedEnv(env = process.env) {
  return { ...env, PATH: `${join(PINNED, 'bin')}:${env.PATH ?? ''}`, npm_config_nodedir: PINNED };
}

function say(msg) {
  if (!quiet) process.stderr.write(`bootstrap: ${msg}\n`);
}

function fail(msg) {
  process.stderr.write(`bootstrap: ${msg}\n`);
  process.exit(1);
}

function run(cmd, args, opts = {}) {
  say(`running: ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'], cwd: root, ...opts });
  if (r.error) fail(`${cmd} could not start: ${r.error.message}`);
  if (r.status !== 0) fail(`${cmd} ${args.join(' ')} exited with ${r.status ?? r.signal}`);
}

function checkNode() {
  const major = Number(process.versions.node.split('.')[0]);
  // Only the bootstrap itself runs on this machine's Node; reflex runs on the pinned one.
  if (major < 18) fail(`Node.js ${process.versions.node} cannot run the bootstrap: 18 or later fetches the pinned ${pinnedVersion()}`);
}

function ensureNode() {
  try {
    PINNED = ensurePinnedNode(say);
  } catch (err) {
    fail(err.message);
  }
}

function missingDebianPackages() {
  if (!existsSync('/usr/bin/dpkg-query')) return [];
  const r = spawnSync('dpkg-query', ['-W', '-f=${Package} ${db:Status-Abbrev}\\n', ...DEBIAN_PACKAGES], { encoding: 'utf8' });
  const installed = new Set(
    r.stdout.split('\n').filter((l) => /^\S+ ii/.test(l)).map((l) => l.split(/[ :]/)[0]),
  );
  return DEBIAN_PACKAGES.filter((p) => !installed.has(p));
}

function ensureDebianPackages() {
  if (!existsSync('/usr/bin/dpkg-query')) {
    say('not a Debian-based system: install the equivalents of ' + DEBIAN_PACKAGES.join(' ') + ' yourself');
    return;
  }
  const missing = missingDebianPackages();
  if (missing.length === 0) return;
  const cmd = `apt-get update && apt-get install -y --no-install-recommends ${missing.join(' ')}`;
  if (process.getuid?.() !== 0) fail(`missing Debian packages; run as root:\n  sudo sh -c '${cmd}'`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  run('sh', ['-c', cmd], { env });
}

function sha256(file) {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

function ensureNodeModules() {
  const stamp = join(root, 'node_modules', '.reflex-lock.sha256');
  const want = sha256(join(root, 'package-lock.json')) + ' node ' + pinnedVersion();
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === want) return;
  run('npm', ['ci', '--no-audit', '--no-fund'], { env: pinnedEnv(NPM_ENV) });
  writeFileSync(stamp, want);
}

function newestMtime(paths) {
  let newest = 0;
  const visit = (p) => {
    let st;
    try { st = statSync(p); } catch { return; }
    if (st.isDirectory()) for (const e of readdirSync(p)) visit(join(p, e));
    else newest = Math.max(newest, st.mtimeMs);
  };
  for (const p of paths) visit(join(root, p));
  return newest;
}

function stampIsFresh(stamp, inputs, extra = '') {
  if (!existsSync(stamp)) return false;
  if (readFileSync(stamp, 'utf8') !== extra) return false;
  return statSync(stamp).mtimeMs >= newestMtime(inputs);
}

function writeStamp(stamp, extra = '') {
  mkdirSync(dirname(stamp), { recursive: true });
  writeFileSync(stamp, extra);
}

function nodeGyp() {
  // npm puts its bundled node-gyp on PATH for lifecycle scripts; outside npm, find it beside npm.
  const onPath = spawnSync('node-gyp', ['--version'], { stdio: 'ignore' });
  if (!onPath.error && onPath.status === 0) return ['node-gyp', []];
  const npmCli = process.env.npm_execpath;
  const candidates = [
    npmCli && join(dirname(npmCli), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    '/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
    '/usr/local/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
  ].filter(Boolean);
  const found = candidates.find((c) => existsSync(c));
  if (!found) fail('node-gyp not found: run this through npm (npm start / npm test)');
  return [process.execPath, [found]];
}

function ensureNativeAddon() {
  const stamp = join(root, 'native', 'build', '.reflex-stamp');
  const abi = `node ${pinnedVersion()} ${process.arch}`;
  const addon = join(root, 'native', 'build', 'Release', 'reflex_native.node');
  if (existsSync(addon) && stampIsFresh(stamp, ['native/binding.gyp', 'native/src'], abi)) return;
  const [cmd, pre] = nodeGyp();
  // Against the pinned Node's own headers, so node-gyp never downloads any (there is no
  // network on a robot or here).
  run(cmd === process.execPath ? join(PINNED, 'bin', 'node') : cmd, [...pre, 'rebuild', '--directory', 'native', `--nodedir=${PINNED}`], { env: pinnedEnv() });
  writeStamp(stamp, abi);
}

function ensureTypeScriptBuild() {
  const stamp = join(root, 'dist', '.reflex-stamp');
  const inputs = ['src', 'test', 'bench', 'tsconfig.json', 'package-lock.json'];
  if (stampIsFresh(stamp, inputs)) return;
  run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json']);
  writeStamp(stamp);
}

/**
 * Debian's kernel for the CAN VM (test/helpers/can-vm.ts), unpacked into .cache/can-vm: taken
 * with `apt-get download`, never installed. Only where this kernel has no CAN of its own.
 */
function ensureCanVmKernel() {
  if (process.arch !== 'x64' || !existsSync('/usr/bin/apt-get') || existsSync('/proc/net/can')) return;
  const dir = join(root, '.cache', 'can-vm');
  if (existsSync(join(dir, 'root', 'boot'))) return;
  const dep = spawnSync('apt-cache', ['depends', 'linux-image-amd64'], { encoding: 'utf8' });
  const pkg = /Depends: (linux-image-[0-9][^\s]*)/.exec(dep.stdout ?? '')?.[1];
  if (!pkg) {
    say('no linux-image-amd64 in the package lists: the SocketCAN tests will say they cannot run');
    return;
  }
  mkdirSync(dir, { recursive: true });
  const cmd = `cd '${dir}' && rm -rf linux-image-*.deb root.tmp && apt-get download ${pkg} && dpkg-deb -x linux-image-*.deb root.tmp && rm -rf root && mv root.tmp root && rm -f linux-image-*.deb`;
  say(`running: ${cmd}`);
  // Not fatal: without it the SocketCAN tests say why they cannot run; everything else can.
  const r = spawnSync('sh', ['-c', cmd], { stdio: ['ignore', 'inherit', 'inherit'], cwd: root });
  if (r.status !== 0) say(`could not fetch ${pkg} for the CAN VM (exit ${r.status ?? r.signal}): the SocketCAN tests will say they cannot run`);
}

checkNode();
ensureDebianPackages();
ensureNode();
ensureCanVmKernel();
ensureNodeModules();
ensureNativeAddon();
ensureTypeScriptBuild();
