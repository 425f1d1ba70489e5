// flash.sh: a release, installed into a directory shaped like a minimal root filesystem.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from '../tools/testkit/paths.js';
import { tempDir } from '../tools/testkit/daemon.js';
import { buildReleases, fetchNode, FLASH, NODE_PIN, releasePath } from './helpers/releases.js';

function flash(...args: string[]): SpawnSyncReturns<string> {
  return spawnSync(FLASH, args, { encoding: 'utf8', timeout: 120_000 });
}

function ok(r: SpawnSyncReturns<string>): string {
  assert.equal(r.status, 0, `flash.sh exited ${r.status ?? r.signal}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** A minimal root filesystem: the accounts files, with the groups of a Jetson. */
function makeRootfs(): string {
  const dir = join(tempDir('reflex-rootfs-'), 'rootfs');
  mkdirSync(join(dir, 'etc'), { recursive: true });
  writeFileSync(join(dir, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/bash\nubuntu:x:1000:1000::/home/ubuntu:/bin/bash\n');
  writeFileSync(join(dir, 'etc', 'group'), 'root:x:0:\ndialout:x:20:\nvideo:x:44:ubuntu\nrender:x:105:\nubuntu:x:1000:\n');
  writeFileSync(join(dir, 'etc', 'shadow'), 'root:*:19000:0:99999:7:::\n');
  return dir;
}

/** Every path under dir with its type, mode, size, mtime and link target. */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const visit = (rel: string) => {
    const p = join(dir, rel);
    const st = lstatSync(p);
    const link = st.isSymbolicLink() ? readlinkSync(p) : '';
    out.set(rel, `${st.mode} ${st.size} ${st.mtimeMs} ${link}`);
    if (st.isDirectory()) for (const e of readdirSync(p)) visit(join(rel, e));
  };
  visit('.');
  return out;
}

describe('flash.sh', () => {
  const work = tempDir('reflex-flash-');
  const releases = join(work, 'releases');
  let skip: string | null = null;
  let rel1 = '';
  let rel2 = '';

  before(async () => {
    skip = fetchNode('x64');
    if (skip) return;
    // Two versions of the same tree, built side by side.
    await buildReleases(releases, ['1.0.0-test', '1.1.0-test']);
    rel1 = releasePath(releases, '1.0.0-test');
    rel2 = releasePath(releases, '1.1.0-test');
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  it('is clean under shellcheck, and so is the first-boot script it installs', (t) => {
    if (spawnSync('shellcheck', ['--version']).status !== 0) return t.skip('shellcheck is not installed (Debian: shellcheck)');
    const r = spawnSync('shellcheck', [FLASH, join(REPO, 'scripts', 'flash', 'reflex-firstboot.sh')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout);
  });

  it('builds a release with what runs and nothing that does not', (t) => {
    if (skip) return t.skip(skip);
    const info = readFileSync(join(rel1, 'RELEASE'), 'utf8');
    assert.match(info, /^version=1\.0\.0-test$/m);
    assert.match(info, new RegExp(`^node=${NODE_PIN.replaceAll('.', '\\.')}$`, 'm'));
    for (const p of ['bin/reflex.js', 'dist/src/cli/main.js', 'package.json', 'config/example.yaml',
      'models/reach/policy.json', 'node_modules/pino/package.json', 'flash/reflex-firstboot.sh', 'MANIFEST']) {
      assert.ok(existsSync(join(rel1, p)), `${p} in the release`);
    }
    for (const p of ['dist/test', 'dist/bench', 'node_modules/typescript', 'node_modules/eslint',
      'node_modules/onnxruntime-node/bin/napi-v6/win32', 'node_modules/onnxruntime-node/bin/napi-v6/linux/arm64']) {
      assert.ok(!existsSync(join(rel1, p)), `${p} not in the release`);
    }
    // Built again from the same tree: the same release, nothing to do.
    const r = flash('--check', 'release', '--arch', 'x64', '--version', '1.0.0-test', releases);
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  });

  it('builds an arm64 release with the native addon cross-compiled for aarch64', (t) => {
    if (skip) return t.skip(skip);
    if (spawnSync('aarch64-linux-gnu-g++', ['--version']).status !== 0) {
      return t.skip('aarch64-linux-gnu-g++ is not installed (Debian: g++-aarch64-linux-gnu)');
    }
    const offline = fetchNode('arm64'); // its headers: the addon is built against them
    if (offline) return t.skip(offline);
    ok(flash('release', '--arch', 'arm64', '--version', '1.0.0-test', releases));
    const rel = join(releases, 'reflex-1.0.0-test-linux-arm64');
    assert.match(readFileSync(join(rel, 'RELEASE'), 'utf8'), /^native=cross-compiled$/m);
    const elf = readFileSync(join(rel, 'native', 'build', 'Release', 'reflex_native.node'));
    assert.equal(elf.subarray(0, 4).toString('latin1'), '\x7fELF');
    assert.equal(elf.readUInt16LE(18), 183, 'e_machine is EM_AARCH64');
    for (const p of ['node_modules/onnxruntime-node/bin/napi-v6/linux/arm64', 'node_modules/@serialport/bindings-cpp/prebuilds/linux-arm64']) {
      assert.ok(existsSync(join(rel, p)), `${p} in the release`);
    }
    // Built here for the host's OpenCV, so left for the robot's first boot.
    assert.ok(!existsSync(join(rel, 'node_modules/@u4/opencv4nodejs/build')));
  });

  it('--dry-run into a fresh rootfs changes nothing, and --check says changes are pending', (t) => {
    if (skip) return t.skip(skip);
    const root = makeRootfs();
    const before = snapshot(root);
    const out = ok(flash('--dry-run', 'rootfs', root, '--release', rel1));
    assert.match(out, /would: install release 1\.0\.0-test/);
    assert.deepEqual(snapshot(root), before);
    const r = flash('--check', 'rootfs', root, '--release', rel1);
    assert.equal(r.status, 1, `${r.stdout}${r.stderr}`);
    assert.deepEqual(snapshot(root), before);
  });

  it('installs the release, the pinned Node, the user, the units and the rules; twice changes nothing', (t) => {
    if (skip) return t.skip(skip);
    const root = makeRootfs();
    ok(flash('rootfs', root, '--release', rel1));
    const opt = join(root, 'opt', 'reflex');
    assert.equal(readlinkSync(join(opt, 'current')), 'releases/1.0.0-test');
    assert.ok(existsSync(join(opt, 'current', 'bin', 'reflex.js')));
    const node = spawnSync(join(opt, 'node', 'bin', 'node'), ['--version'], { encoding: 'utf8' });
    assert.equal(node.stdout.trim(), `v${NODE_PIN}`);

    const etc = join(root, 'etc');
    assert.match(readFileSync(join(etc, 'passwd'), 'utf8'), /^reflex:x:(\d+):\d+:[^:]*:\/var\/lib\/reflex:\/usr\/sbin\/nologin$/m);
    const group = readFileSync(join(etc, 'group'), 'utf8');
    assert.match(group, /^reflex:x:\d+:$/m);
    assert.match(group, /^dialout:x:20:reflex$/m);
    assert.match(group, /^video:x:44:ubuntu,reflex$/m);
    assert.match(group, /^render:x:105:reflex$/m);
    assert.match(readFileSync(join(etc, 'shadow'), 'utf8'), /^reflex:!\*:/m);

    const units = join(etc, 'systemd', 'system');
    const wants = join(units, 'multi-user.target.wants');
    assert.equal(readlinkSync(join(wants, 'reflex-firstboot.service')), '/etc/systemd/system/reflex-firstboot.service');
    assert.ok(existsSync(join(units, 'reflex-firstboot.service')));
    // The units and rules of systemd/, whatever they are: each installed, each WantedBy enabled.
    const shipped = join(rel1, 'systemd');
    for (const f of existsSync(shipped) ? readdirSync(shipped, { recursive: true, encoding: 'utf8' }) : []) {
      const name = f.split('/').pop() ?? f;
      const src = join(shipped, f);
      if (!lstatSync(src).isFile()) continue;
      if (/\.(service|socket|timer|target|path)$/.test(name)) {
        assert.equal(readFileSync(join(units, name), 'utf8'), readFileSync(src, 'utf8'), name);
        const wantedBy = /^WantedBy=(\S+)/m.exec(readFileSync(src, 'utf8'))?.[1];
        if (wantedBy && !name.includes('@.')) {
          assert.equal(readlinkSync(join(units, `${wantedBy}.wants`, name)), `/etc/systemd/system/${name}`);
        }
      } else if (name.endsWith('.rules')) {
        assert.equal(readFileSync(join(etc, 'udev', 'rules.d', name), 'utf8'), readFileSync(src, 'utf8'), name);
      } else if (f.includes('modules-load') && name.endsWith('.conf')) {
        assert.equal(readFileSync(join(etc, 'modules-load.d', name), 'utf8'), readFileSync(src, 'utf8'), name);
      }
    }
    assert.equal(readFileSync(join(etc, 'reflex', 'reflex.yaml'), 'utf8'), readFileSync(join(REPO, 'config', 'example.yaml'), 'utf8'));

    const first = snapshot(root);
    const out = flash('rootfs', root, '--release', rel1);
    assert.equal(out.status, 0, out.stderr);
    assert.match(out.stderr, /up to date/);
    assert.deepEqual(snapshot(root), first);
    assert.equal(flash('--check', 'rootfs', root, '--release', rel1).status, 0);

    // A second release: current moves, the first is kept, the user's config survives.
    const config = join(etc, 'reflex', 'reflex.yaml');
    writeFileSync(config, 'deviceId: robot-7\n');
    assert.equal(flash('--check', 'rootfs', root, '--release', rel2).status, 1);
    ok(flash('rootfs', root, '--release', rel2));
    assert.equal(readlinkSync(join(opt, 'current')), 'releases/1.1.0-test');
    assert.deepEqual(readdirSync(join(opt, 'releases')).sort(), ['1.0.0-test', '1.1.0-test']);
    assert.equal(readFileSync(config, 'utf8'), 'deviceId: robot-7\n');
    assert.equal(readFileSync(join(etc, 'passwd'), 'utf8').match(/^reflex:/gm)?.length, 1);
    assert.equal(readFileSync(join(etc, 'group'), 'utf8').match(/reflex/g)?.length, 4);
    // Back to the first release (the agent's own rollback), then --force resets the config.
    ok(flash('rootfs', root, '--release', rel1));
    assert.equal(readlinkSync(join(opt, 'current')), 'releases/1.0.0-test');
    assert.equal(readFileSync(config, 'utf8'), 'deviceId: robot-7\n');
    ok(flash('--force', 'rootfs', root, '--release', rel1));
    assert.equal(readFileSync(config, 'utf8'), readFileSync(join(REPO, 'config', 'example.yaml'), 'utf8'));
    // Old releases past --keep go; the current one always stays.
    ok(flash('--keep', '0', 'rootfs', root, '--release', rel1));
    assert.deepEqual(readdirSync(join(opt, 'releases')), ['1.0.0-test']);
  });
});
