// Signed bundles on the wire: made and signed with the operator's CLI (or with openssl alone),
// accepted by a robot that trusts the key; every bad bundle and hostile archive refused with
// its reason, with nothing written outside the robot's own scratch folder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { BundleRefused, compareVersions, unpackBundle, verifyBundleDir, type RefusalCode, type Trust } from '../src/ota/index.js';
import { loadBundle } from '../src/policy/index.js';
import { runReflex, tempDir, testConfig, writeConfig } from '../tools/testkit/daemon.js';
import { holdBundle } from './helpers/policy.js';
import { filesOf, manifestFor, newKey, sha256, signedTar, smallDisk, tarOf, trustOf, type Entry } from './helpers/ota-bundles.js';

const release = newKey('release');
const files = filesOf(holdBundle('arm-hold', { version: '1.2.0' }));

/** Writes `bytes` as an archive and unpacks it under a fresh folder; returns the refusal. */
async function refusal(bytes: Buffer, trust: Trust = trustOf([release]), limits?: { maxBytes?: number; maxFiles?: number }): Promise<{ code: RefusalCode; message: string; into: string }> {
  const dir = tempDir('reflex-ota-');
  const archive = join(dir, 'bundle.tar');
  writeFileSync(archive, bytes);
  const into = join(dir, 'bundles');
  try {
    await unpackBundle(archive, into, trust, limits);
  } catch (err) {
    if (!(err instanceof BundleRefused)) throw err;
    // Refused: nothing is left behind, not even the scratch folder.
    assert.deepEqual(readdirSync(into), [], `left in ${into}`);
    return { code: err.code, message: err.message, into };
  }
  assert.fail('the bundle was accepted');
}

async function refused(bytes: Buffer, code: RefusalCode, why: RegExp, trust?: Trust, limits?: { maxBytes?: number; maxFiles?: number }): Promise<void> {
  const r = await refusal(bytes, trust, limits);
  assert.equal(r.code, code, r.message);
  assert.match(r.message, why);
}

test('reflex keys generate, bundle create, sign, verify: a robot that trusts the key unpacks it and can load it', async () => {
  const dir = tempDir('reflex-ota-cli-');
  const keys = join(dir, 'keys');
  const gen = await runReflex(['keys', 'generate', '--out', keys, '--id', 'fleet-2026']);
  assert.equal(gen.code, 0, gen.stderr);
  assert.equal(statSync(join(keys, 'fleet-2026.key')).mode & 0o777, 0o600);
  assert.equal((await runReflex(['keys', 'generate', '--out', keys, '--id', 'fleet-2026'])).code, 1, 'a key is never overwritten');

  const policy = holdBundle('arm-cli', { version: '0.9.0' });
  const tar = join(dir, 'arm.tar');
  const created = await runReflex(['bundle', 'create', '--policy', policy, '--version', '1.0.0', '--robot', 'arm3', '--min-reflex', '0.1.0', '--out', tar]);
  assert.equal(created.code, 0, created.stderr);
  const pub = ['--pubkey', join(keys, 'fleet-2026.pub')];
  const unsigned = await runReflex(['bundle', 'verify', tar, ...pub]);
  assert.equal(unsigned.code, 65);
  assert.match(unsigned.stderr, /refused: unsigned: /);

  const signed = await runReflex(['bundle', 'sign', tar, '--key', join(keys, 'fleet-2026.key')]);
  assert.equal(signed.code, 0, signed.stderr);
  const ok = await runReflex(['bundle', 'verify', tar, ...pub, '--robot', 'arm3']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /ok: arm-cli 1\.0\.0 for arm3 .*signed by fleet-2026/);
  const otherRobot = await runReflex(['bundle', 'verify', tar, ...pub, '--robot', 'biped']);
  assert.equal(otherRobot.code, 65);
  assert.match(otherRobot.stderr, /wrong-robot: arm-cli 1\.0\.0 is for robot "arm3", this one is "biped"/);

  const trust = trustOf([], { keys: [{ id: 'fleet-2026', publicKey: readFileSync(join(keys, 'fleet-2026.pub'), 'utf8') }] });
  const into = join(dir, 'robot');
  const v = await unpackBundle(tar, into, trust);
  assert.equal(v.keyId, 'fleet-2026');
  assert.equal(v.manifest.version, '1.0.0');
  assert.equal(v.manifestSha256, sha256(readFileSync(join(v.dir, 'manifest.json'))));
  // --version rewrote the version the runtime reports too.
  assert.equal(loadBundle(v.dir).spec.version, '1.0.0');
  assert.deepEqual(readdirSync(into), [v.dir.slice(into.length + 1)]);
  assert.equal((await verifyBundleDir(v.dir, trust)).manifestSha256, v.manifestSha256);

  // The signature is standard: openssl checks it with the public key alone.
  const x = join(dir, 'x');
  mkdirSync(x);
  execFileSync('tar', ['xf', tar, '-C', x]);
  execFileSync('openssl', ['pkeyutl', '-verify', '-pubin', '-inkey', join(keys, 'fleet-2026.pub'), '-rawin', '-in', join(x, 'manifest.json'), '-sigfile', join(x, 'manifest.sig')]);

  // Changed on disk after unpacking: the check just before loading refuses it.
  writeFileSync(join(v.dir, 'model.onnx'), Buffer.concat([readFileSync(join(v.dir, 'model.onnx')).subarray(1), Buffer.from([0])]));
  await assert.rejects(verifyBundleDir(v.dir, trust), (e: BundleRefused) => e.code === 'tampered' && /model\.onnx is not the file that was signed/.test(e.message));
  writeFileSync(join(v.dir, 'model.onnx'), readFileSync(join(x, 'model.onnx')));
  writeFileSync(join(v.dir, 'notes.txt'), 'hi');
  await assert.rejects(verifyBundleDir(v.dir, trust), (e: BundleRefused) => e.code === 'extra-file');
});

test('the operator tools refuse what a robot would: a policy folder with a link, a bundle whose files are not its manifest\'s', async () => {
  const dir = tempDir('reflex-ota-cli-bad-');
  const key = join(dir, 'k.key');
  writeFileSync(key, release.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  const linked = holdBundle('arm-linked');
  symlinkSync('/etc/passwd', join(linked, 'notes.txt'));
  const r = await runReflex(['bundle', 'create', '--policy', linked, '--robot', 'arm3', '--out', join(dir, 'l.tar')]);
  assert.equal(r.code, 65);
  assert.match(r.stderr, /notes\.txt is a symbolic link: a bundle holds only regular files/);
  assert.equal(existsSync(join(dir, 'l.tar')), false);

  const model = Buffer.from(files['model.onnx']!);
  model[10]! ^= 1;
  const tampered = join(dir, 't.tar');
  writeFileSync(tampered, signedTar(files, { key: null, archiveFiles: { ...files, 'model.onnx': model } }));
  const before = readFileSync(tampered);
  const s = await runReflex(['bundle', 'sign', tampered, '--key', key]);
  assert.equal(s.code, 65);
  assert.match(s.stderr, /not signed: tampered: model\.onnx is not the file that was signed/);
  assert.deepEqual(readFileSync(tampered), before, 'the archive is left as it was');
  assert.deepEqual(readdirSync(dir).sort(), ['k.key', 't.tar']);
});

test('reflex bundle verify --config trusts what the robot config trusts, less its revoked keys', async () => {
  const dir = tempDir('reflex-ota-config-');
  mkdirSync(join(dir, 'keys'));
  writeFileSync(join(dir, 'keys', 'fleet.pub'), release.pem);
  const tar = join(dir, 'b.tar');
  writeFileSync(tar, signedTar(files, { key: release }));
  const config = (ota: Record<string, unknown>, robot = 'arm3') => writeConfig(dir, testConfig(dir, { robot: { name: robot }, ota }), `${robot}-${Object.keys(ota).length}.yaml`);
  const trusted = { trustedKeys: [{ id: 'fleet', publicKeyFile: 'keys/fleet.pub' }] };
  // Its scratch folder, accepted or refused, is gone when it exits.
  const scratch = join(dir, 'tmp');
  mkdirSync(scratch);
  const env = { TMPDIR: scratch };
  const ok = await runReflex(['bundle', 'verify', tar, '--config', config(trusted)], env);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /ok: arm-hold 1\.2\.0 for arm3 .*signed by fleet/);
  const revoked = await runReflex(['bundle', 'verify', tar, '--json', '--config', config({ ...trusted, revokedKeys: ['fleet'] })], env);
  assert.equal(revoked.code, 65);
  assert.deepEqual(JSON.parse(revoked.stdout), { ok: false, code: 'revoked-key', reason: 'signed by key fleet, which is revoked' });
  const biped = await runReflex(['bundle', 'verify', tar, '--config', config(trusted, 'biped')], env);
  assert.equal(biped.code, 65);
  assert.match(biped.stderr, /wrong-robot/);
  assert.deepEqual(readdirSync(scratch), []);
  const noKeys = await runReflex(['bundle', 'verify', tar, '--config', config({})]);
  assert.equal(noKeys.code, 64);
  assert.match(noKeys.stderr, /no key to verify with/);
});

test('a bundle signed with the openssl command line and packed with GNU tar is accepted', async () => {
  const dir = tempDir('reflex-ota-openssl-');
  const key = join(dir, 'k.pem');
  const pub = join(dir, 'k.pub');
  execFileSync('openssl', ['genpkey', '-algorithm', 'ed25519', '-out', key]);
  execFileSync('openssl', ['pkey', '-in', key, '-pubout', '-out', pub]);
  const src = join(dir, 'src');
  mkdirSync(src);
  for (const [n, b] of Object.entries(files)) writeFileSync(join(src, n), b);
  writeFileSync(join(src, 'manifest.json'), manifestFor(files));
  execFileSync('openssl', ['pkeyutl', '-sign', '-inkey', key, '-rawin', '-in', join(src, 'manifest.json'), '-out', join(src, 'manifest.sig')]);
  const tar = join(dir, 'b.tar');
  execFileSync('tar', ['cf', tar, '-C', src, '.']);
  const v = await unpackBundle(tar, join(dir, 'into'), trustOf([], { keys: [{ id: 'ops', publicKey: readFileSync(pub, 'utf8') }] }));
  assert.equal(v.keyId, 'ops');
  assert.equal(v.manifest.name, 'arm-hold');
  // And with gzip on top.
  execFileSync('tar', ['czf', `${tar}.gz`, '-C', src, '.']);
  assert.equal((await unpackBundle(`${tar}.gz`, join(dir, 'into'), trustOf([], { keys: [{ id: 'ops', publicKey: readFileSync(pub, 'utf8') }] }))).keyId, 'ops');
});

test('who signed it: unsigned, unknown key, revoked key, bad signature', async () => {
  await refused(signedTar(files, { key: null }), 'unsigned', /nobody signed it/);
  const stranger = newKey('stranger');
  await refused(signedTar(files, { key: stranger }), 'unknown-key', /not among the trusted keys \(release\)/);
  // Without the signer's key beside it, all that can be said is that no trusted key verifies it.
  await refused(signedTar(files, { key: stranger, hint: false }), 'bad-signature', /no trusted key \(release\) verifies/);
  await refused(signedTar(files, { key: release }), 'revoked-key', /key release, which is revoked/, trustOf([release], { revoked: ['release'] }));
  // Revoked by fingerprint, the key no longer even listed.
  const fp = sha256(release.publicKey.export({ type: 'spki', format: 'der' }));
  await refused(signedTar(files, { key: release }), 'revoked-key', /revoked/, trustOf([newKey('next')], { revoked: [fp.slice(0, 16)] }));
  // Rotation: either of two trusted keys is accepted.
  const dir = tempDir('reflex-ota-rot-');
  writeFileSync(join(dir, 'b.tar'), signedTar(files, { key: release }));
  // (and the scratch folder of an unpack that a crash cut short is cleared away first)
  mkdirSync(join(dir, 'in', '.unpack-cut-short'), { recursive: true });
  writeFileSync(join(dir, 'in', '.unpack-cut-short', 'model.onnx'), Buffer.alloc(1000));
  const v = await unpackBundle(join(dir, 'b.tar'), join(dir, 'in'), trustOf([newKey('next'), release]));
  assert.equal(v.keyId, 'release');
  assert.deepEqual(readdirSync(join(dir, 'in')), [v.dir.slice(join(dir, 'in').length + 1)]);
  // The manifest changed after signing (the robot type edited in).
  const m = manifestFor(files);
  const good = signedTar(files, { key: release, manifest: m });
  const edited = Buffer.from(good.toString('latin1').replace('"robot": "arm3"', '"robot": "arm9"'), 'latin1');
  await refused(edited, 'bad-signature', /does not verify with key release: the manifest changed after it was signed/);
  await refused(signedTar(files, { key: release, manifest: Buffer.from('{"format": "reflex.manifest/1"') }), 'bad-manifest', /manifest\.json is not JSON/);
});

test('what it fits: wrong robot, reflex too old, below the version floor', async () => {
  await refused(signedTar(files, { key: release }, { robot: 'biped' }), 'wrong-robot', /is for robot "biped", this one is "arm3"/);
  await refused(signedTar(files, { key: release }, { minReflexVersion: '0.2.0' }), 'reflex-too-old', /needs reflex 0\.2\.0 or newer, this is 0\.1\.0/);
  await refused(signedTar(files, { key: release }), 'below-floor', /arm-hold 1\.2\.0 is older than 1\.10\.0/, trustOf([release], { floors: { 'arm-hold': '1.10.0' } }));
  // The floor itself is accepted (re-installing the committed version).
  const dir = tempDir('reflex-ota-floor-');
  writeFileSync(join(dir, 'b.tar'), signedTar(files, { key: release }));
  await unpackBundle(join(dir, 'b.tar'), join(dir, 'in'), trustOf([release], { floors: { 'arm-hold': '1.2.0' } }));
});

test('the files: tampered, mixed from two signed releases, missing, extra, policy.json not the manifest\'s', async () => {
  const model = files['model.onnx']!;
  const flipped = Buffer.from(model);
  flipped[flipped.length - 1]! ^= 1;
  await refused(signedTar(files, { key: release, archiveFiles: { ...files, 'model.onnx': flipped } }), 'tampered', /model\.onnx is not the file that was signed/);
  // Release B's model (another size) inside release A's signed bundle.
  const b = filesOf(holdBundle('arm-hold', { version: '1.3.0', horizon: 30 }));
  await refused(signedTar(files, { key: release, archiveFiles: { ...files, 'model.onnx': b['model.onnx']! } }), 'tampered', /model\.onnx is \d+ bytes, the signed manifest says \d+/);
  // Release B's policy.json (same size, other bytes) too.
  const a2 = { ...files, 'policy.json': Buffer.from(files['policy.json']!.toString().replace('1.2.0', '1.3.0')) };
  await refused(signedTar(files, { key: release, archiveFiles: a2 }), 'tampered', /policy\.json is not the file that was signed/);
  const { 'model.onnx': _m, ...noModel } = files;
  await refused(signedTar(files, { key: release, archiveFiles: noModel }), 'missing-file', /model\.onnx is in the signed manifest but not in the bundle/);
  await refused(signedTar(files, { key: release, archiveFiles: { ...files, 'run.sh': Buffer.from('#!/bin/sh\n') } }), 'extra-file', /run\.sh is not in the signed manifest/);
  // Signed, but the manifest's name is not policy.json's.
  await refused(signedTar(files, { key: release }, { name: 'other' }), 'bad-manifest', /policy\.json is arm-hold 1\.2\.0, the manifest says other 1\.2\.0/);
});

test('hostile archives are refused while streaming, and nothing lands outside the scratch folder', async () => {
  const outside = tempDir('reflex-ota-outside-');
  const withEntry = (e: Entry) => tarOf([e, { name: 'manifest.json', data: manifestFor(files) }]);
  const cases: [Entry, RegExp][] = [
    [{ name: join(outside, 'abs'), data: Buffer.from('x') }, /is an absolute path/],
    [{ name: '../../escape', data: Buffer.from('x') }, /climbs out of the bundle/],
    [{ name: 'ok/../../escape', data: Buffer.from('x') }, /climbs out of the bundle/],
    [{ name: 'model.onnx', type: '2', linkname: join(outside, 'target') }, /is a symbolic link to/],
    [{ name: 'policy.json', type: '1', linkname: '/etc/passwd' }, /is a hard link to "\/etc\/passwd"/],
    [{ name: 'tty', type: '3' }, /is a character device/],
    [{ name: 'disk', type: '4' }, /is a block device/],
    [{ name: 'pipe', type: '6' }, /is a FIFO/],
    [{ name: 'we\\ird', data: Buffer.from('x') }, /not a safe file name/],
  ];
  for (const [e, why] of cases) await refused(withEntry(e), 'unsafe-archive', why);
  // An innocent ustar name, and a pax record that renames it.
  const pax = (key: string, value: string) => {
    const body = ` ${key}=${value}\n`;
    let len = body.length + 2;
    if (`${len}${body}`.length !== len) len += 1;
    return Buffer.from(`${len}${body}`);
  };
  await refused(tarOf([{ name: 'PaxHeader/innocent', type: 'x', data: pax('path', '../../escape') }, { name: 'innocent', data: Buffer.from('x') }]), 'unsafe-archive', /"\.\.\/\.\.\/escape" climbs out/);
  await refused(tarOf([{ name: 'PaxHeader/innocent', type: 'x', data: pax('path', join(outside, 'abs')) }, { name: 'innocent', data: Buffer.from('x') }]), 'unsafe-archive', /is an absolute path/);
  assert.deepEqual(readdirSync(outside), []);
  assert.equal(existsSync(join(outside, '..', 'escape')), false);

  await refused(tarOf([{ name: 'manifest.json', data: manifestFor(files) }, { name: 'policy.json', data: files['policy.json']! }, { name: './policy.json', data: files['policy.json']! }]), 'unsafe-archive', /"\.\/policy\.json" appears twice/);
  await refused(tarOf([{ name: 'tokenizer', data: Buffer.from('x') }, { name: 'tokenizer/vocab.json', data: Buffer.from('{}') }]), 'unsafe-archive', /is both a file and a folder/);
  // Size bombs: a declared size past the limit (refused from the header, no data needed) ...
  await refused(tarOf([{ name: 'model.onnx', size: 8 * 1024 ** 3 - 1 }], false), 'too-large', /model\.onnx declares 8589934591 bytes, more than the 1048576 allowed/, undefined, { maxBytes: 1024 ** 2 });
  // ... files that add up past it ...
  const mib = Buffer.alloc(600 * 1024, 1);
  await refused(tarOf([{ name: 'a', data: mib }, { name: 'b', data: mib }]), 'too-large', /add up to more than the 1048576 bytes/, undefined, { maxBytes: 1024 ** 2 });
  // ... too many files, a huge manifest, and a gzip bomb (a small .gz that inflates far past the cap).
  await refused(tarOf(Array.from({ length: 20 }, (_, i) => ({ name: `f${i}`, data: Buffer.from('x') }))), 'too-large', /more than 8 files/, undefined, { maxFiles: 8 });
  await refused(tarOf([{ name: 'manifest.json', data: Buffer.alloc(2 * 1024 ** 2, 32) }]), 'too-large', /manifest\.json declares/);
  // Every header in it is small: 64 MiB of zero blocks after the end of the archive.
  const bomb = gzipSync(Buffer.concat([tarOf([{ name: 'manifest.json', data: manifestFor(files) }]), Buffer.alloc(64 * 1024 ** 2)]));
  assert.ok(bomb.length < 1024 ** 2);
  await refused(bomb, 'too-large', /the archive unpacks to more than \d+ bytes of tar/, undefined, { maxBytes: 1024 ** 2 });

  // Ends early: in the middle of a file, or cut at an entry's edge (no end marker).
  const whole = signedTar(files, { key: release });
  await refused(whole.subarray(0, whole.length - 1024 - 700), 'unsafe-archive', /ends early/);
  await refused(whole.subarray(0, whole.length - 1024), 'unsafe-archive', /ends early: no end-of-archive marker/);
  await refused(Buffer.from('this is not a tar archive at all, just some text'.repeat(20)), 'unsafe-archive', /not a tar archive/);
});

test('a disk that fills while unpacking: the I/O error as it is, and nothing left behind', async (t) => {
  const disk = smallDisk(t, 1024 * 1024);
  if (!disk) return;
  const big = { ...files, 'weights.bin': Buffer.alloc(2 * 1024 * 1024, 7) };
  const dir = tempDir('reflex-ota-full-');
  writeFileSync(join(dir, 'b.tar'), signedTar(big, { key: release }));
  const into = join(disk.dir, 'bundles');
  await assert.rejects(unpackBundle(join(dir, 'b.tar'), into, trustOf([release])), (e: NodeJS.ErrnoException) => !(e instanceof BundleRefused) && e.code === 'ENOSPC');
  assert.deepEqual(readdirSync(into), []);
  disk.grow(8 * 1024 * 1024);
  const v = await unpackBundle(join(dir, 'b.tar'), into, trustOf([release]));
  assert.equal(statSync(join(v.dir, 'weights.bin')).size, 2 * 1024 * 1024);
});

test('compareVersions: numeric parts, missing parts are 0, pre-releases below the release, build ignored', () => {
  assert.ok(compareVersions('1.10.0', '1.9.3') > 0);
  assert.equal(compareVersions('1.2', '1.2.0'), 0);
  assert.ok(compareVersions('1.0.0-rc.1', '1.0.0') < 0);
  assert.ok(compareVersions('1.0.0-rc.2', '1.0.0-rc.10') < 0);
  assert.ok(compareVersions('1.0.0-alpha', '1.0.0-1') > 0);
  assert.equal(compareVersions('2.0.0+build.7', '2.0.0'), 0);
  assert.throws(() => compareVersions('latest', '1.0.0'), /not a version: "latest"/);
});
