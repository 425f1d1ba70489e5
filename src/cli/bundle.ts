// The operator's side of signed bundles: `reflex keys generate`, `reflex bundle create|sign|verify`.
// These run on a laptop or a build machine, never need the daemon, and write what a robot
// verifies (src/ota): a tar with manifest.json, a detached raw Ed25519 signature over its exact
// bytes (manifest.sig), the signer's public key as a hint (signer.pub), and the bundle's files.
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { createReadStream, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { EXIT, checkRegularFile, errorMessage, readRegularFile } from '../core/index.js';
import { loadConfig, ConfigError } from '../config/index.js';
import { loadBundle, MODEL_MAX_BYTES, POLICY_JSON_MAX_BYTES } from '../policy/index.js';
import { BundleRefused, bundleTools, type Checks, type TrustedKey } from '../ota/index.js';

/** sysexits.h EX_DATAERR: the bundle was refused. */
export const EX_DATAERR = 65;

const KEY_MAX_BYTES = 16 * 1024;

function die(code: number, message: string): never {
  process.stderr.write(`reflex: ${message}\n`);
  process.exit(code);
}

/** This reflex's version, from the package it runs from. */
function reflexVersion(): string {
  try {
    const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
    const v = (JSON.parse(readRegularFile(join(root, 'package.json'), 1024 * 1024).toString('utf8')) as { version?: unknown }).version;
    return typeof v === 'string' && bundleTools.isVersion(v) ? v : '0.0.0';
  } catch {
    return '0.0.0';
  }
}

function keysGenerate(opts: { out: string; id?: string }): void {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const id = opts.id ?? bundleTools.defaultKeyId(publicKey);
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(id)) die(EXIT.USAGE, `--id ${JSON.stringify(id)}: letters, digits, '.', '_' and '-' (at most 64)`);
  mkdirSync(opts.out, { recursive: true, mode: 0o700 });
  const priv = join(opts.out, `${id}.key`);
  const pub = join(opts.out, `${id}.pub`);
  try {
    writeFileSync(priv, privateKey.export({ type: 'pkcs8', format: 'pem' }), { flag: 'wx', mode: 0o600 });
    writeFileSync(pub, publicKey.export({ type: 'spki', format: 'pem' }), { flag: 'wx', mode: 0o644 });
  } catch (err) {
    die(EXIT.FAILURE, `${errorMessage(err)} (keys are never overwritten)`);
  }
  process.stdout.write(
    `key ${id}\n  private ${priv} (mode 0600: keep it off the robots)\n  public  ${pub} (list it in ota.trustedKeys)\n  sha256  ${bundleTools.keyFingerprint(publicKey)}\n`,
  );
}

function sha256File(path: string): Promise<string> {
  return new Promise((resolveHash, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (c) => h.update(c as Buffer))
      .on('error', reject)
      .on('end', () => resolveHash(h.digest('hex')));
  });
}

/** Every regular file under `dir` (relative names), refusing links and anything not a file. */
function listFiles(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
    const name = rel === '' ? e.name : `${rel}/${e.name}`;
    if (rel === '' && bundleTools.RESERVED.has(name)) continue;
    if (!bundleTools.isSafeName(name)) die(EX_DATAERR, `${join(dir, name)}: not a bundle file name (letters, digits, '.', '_', '-')`);
    if (e.isDirectory()) out.push(...listFiles(dir, name));
    else if (e.isFile()) out.push(name);
    else die(EX_DATAERR, `${join(dir, name)} is ${e.isSymbolicLink() ? 'a symbolic link' : 'not a regular file'}: a bundle holds only regular files`);
  }
  return out;
}

async function bundleCreate(opts: { policy: string; version?: string; robot: string; out: string; minReflex?: string }): Promise<void> {
  const dir = opts.policy;
  let spec;
  try {
    spec = loadBundle(dir).spec;
  } catch (err) {
    die(EX_DATAERR, errorMessage(err));
  }
  const version = opts.version ?? spec.version;
  const minReflexVersion = opts.minReflex ?? reflexVersion();
  for (const [flag, v] of [['--version', version], ['--min-reflex', minReflexVersion]] as const) {
    if (!bundleTools.isVersion(v)) die(EXIT.USAGE, `${flag} ${JSON.stringify(v)} is not a version (MAJOR.MINOR.PATCH[-PRERELEASE])`);
  }
  const names = listFiles(dir).sort((a, b) => (a === 'policy.json' ? -1 : b === 'policy.json' ? 1 : a < b ? -1 : 1));
  const parts: bundleTools.ArchivePart[] = [];
  const files: Record<string, { sha256: string; size: number }> = {};
  for (const name of names) {
    const path = join(dir, name);
    if (name === 'policy.json' && version !== spec.version) {
      // The version the robots see is policy.json's too: the bundle carries it rewritten.
      const doc = JSON.parse(readRegularFile(path, POLICY_JSON_MAX_BYTES).toString('utf8')) as Record<string, unknown>;
      const bytes = Buffer.from(`${JSON.stringify({ ...doc, version }, null, 2)}\n`);
      files[name] = { sha256: bundleTools.sha256Hex(bytes), size: bytes.length };
      parts.push({ name, bytes, size: bytes.length });
      continue;
    }
    const size = regularSize(path);
    files[name] = { sha256: await sha256File(path), size };
    parts.push({ name, path, size });
  }
  const manifest = bundleTools.encodeManifest({ name: spec.name, version, robot: opts.robot, minReflexVersion, files, io: bundleTools.ioOf(spec) });
  // What a robot would refuse is refused here, before anything is written.
  try {
    bundleTools.parseManifest(manifest);
  } catch (err) {
    die(EX_DATAERR, errorMessage(err));
  }
  await bundleTools.writeArchive(opts.out, [{ name: bundleTools.MANIFEST_FILE, bytes: manifest, size: manifest.length }, ...parts]);
  process.stdout.write(`${opts.out}: ${spec.name} ${version} for ${opts.robot} (reflex >= ${minReflexVersion}), ${names.length} files, unsigned: sign it with \`reflex bundle sign ${opts.out} --key KEY\`\n`);
}

/** A file's size, once it is known to be a regular file of a size a robot accepts. */
function regularSize(path: string): number {
  try {
    checkRegularFile(path, MODEL_MAX_BYTES);
  } catch (err) {
    die(EX_DATAERR, `${path}: ${errorMessage(err)}`);
  }
  return statSync(path).size;
}

function privateKeyFrom(path: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(readRegularFile(path, KEY_MAX_BYTES));
  } catch (err) {
    die(EXIT.USAGE, `--key ${path}: ${errorMessage(err)}`);
  }
  if (key.asymmetricKeyType !== 'ed25519') die(EXIT.USAGE, `--key ${path}: a ${key.asymmetricKeyType ?? 'unknown'} key, want an Ed25519 private key`);
  return key;
}

async function bundleSign(file: string, opts: { key: string }): Promise<void> {
  const key = privateKeyFrom(opts.key);
  const pub = createPublicKey(key);
  const tmp = await bundleTools.tempDirIn(dirname(resolve(file)), '.sign-');
  // Refusals exit after the scratch folder is gone (process.exit skips `finally`).
  let refused: string | null = null;
  try {
    const ex = await bundleTools.extractArchive(file, tmp);
    if (!ex.manifest) throw new BundleRefused('bad-manifest', 'it has no manifest.json: make it with `reflex bundle create`');
    const m = bundleTools.parseManifest(ex.manifest);
    // Signing says "these files": a bundle whose files are not the manifest's is not signed.
    bundleTools.checkFiles(m, ex.files, ex.dirs);
    const sig = sign(null, ex.manifest, key);
    const signer = Buffer.from(pub.export({ type: 'spki', format: 'pem' }));
    const names = [...ex.files.keys()].sort((a, b) => (a === 'policy.json' ? -1 : b === 'policy.json' ? 1 : a < b ? -1 : 1));
    await bundleTools.writeArchive(file, [
      { name: bundleTools.MANIFEST_FILE, bytes: ex.manifest, size: ex.manifest.length },
      { name: bundleTools.SIGNATURE_FILE, bytes: sig, size: sig.length },
      { name: bundleTools.SIGNER_FILE, bytes: signer, size: signer.length },
      ...names.map((name) => ({ name, path: join(tmp, name), size: ex.files.get(name)!.size })),
    ]);
    process.stdout.write(`${file}: ${m.name} ${m.version} signed with key ${bundleTools.defaultKeyId(pub)}${ex.sig ? ' (the previous signature replaced)' : ''}\n`);
  } catch (err) {
    if (!(err instanceof BundleRefused)) throw err;
    refused = `${file}: not signed: ${err.code}: ${err.message}`;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  if (refused !== null) die(EX_DATAERR, refused);
}

interface VerifyOptions {
  config?: string;
  pubkey?: string[];
  robot?: string;
  reflexVersion?: string;
  json?: boolean;
}

/** Whom to trust and what to check, from a robot's config or from public key files. */
function checksFor(opts: VerifyOptions): Checks {
  const keys: TrustedKey[] = [];
  let revoked: string[] = [];
  let robotType: string | null = opts.robot ?? null;
  if (opts.config) {
    let config;
    try {
      config = loadConfig(opts.config, process.env);
    } catch (err) {
      if (err instanceof ConfigError) die(EXIT.CONFIG, err.message);
      throw err;
    }
    try {
      keys.push(...bundleTools.resolveTrustedKeys(config.ota.trustedKeys, dirname(resolve(opts.config))));
    } catch (err) {
      die(EXIT.CONFIG, `${opts.config}: ota.${errorMessage(err)}`);
    }
    revoked = [...config.ota.revokedKeys];
    robotType ??= config.robot.name;
  }
  for (const file of opts.pubkey ?? []) {
    try {
      const pem = readRegularFile(file, KEY_MAX_BYTES).toString('utf8');
      keys.push({ id: basename(file).replace(/\.(pub|pem)$/, '') || bundleTools.defaultKeyId(bundleTools.ed25519PublicKey(pem)), publicKey: bundleTools.ed25519PublicKey(pem).export({ type: 'spki', format: 'pem' }).toString() });
    } catch (err) {
      die(EXIT.USAGE, `--pubkey ${file}: ${errorMessage(err)}`);
    }
  }
  if (keys.length === 0) die(EXIT.USAGE, 'no key to verify with: give --config FILE (its ota.trustedKeys) or --pubkey PEM');
  return { keys, revoked, robotType, reflexVersion: opts.reflexVersion ?? null, floor: () => null };
}

async function bundleVerify(file: string, opts: VerifyOptions): Promise<void> {
  const checks = checksFor(opts);
  const scratch = await bundleTools.tempDirIn(tmpdir(), 'reflex-verify-');
  let refused: string | null = null;
  try {
    const v = await bundleTools.unpackChecked(file, scratch, checks);
    const m = v.manifest;
    if (opts.json) process.stdout.write(`${JSON.stringify({ ok: true, name: m.name, version: m.version, robot: m.robot, minReflexVersion: m.minReflexVersion, keyId: v.keyId, manifestSha256: v.manifestSha256, files: Object.keys(m.files).length }, null, 2)}\n`);
    else process.stdout.write(`${file}: ok: ${m.name} ${m.version} for ${m.robot} (reflex >= ${m.minReflexVersion}), signed by ${v.keyId}, ${Object.keys(m.files).length} files match the manifest (sha256 ${v.manifestSha256})\n`);
  } catch (err) {
    if (!(err instanceof BundleRefused)) throw err;
    if (opts.json) process.stdout.write(`${JSON.stringify({ ok: false, code: err.code, reason: err.message }, null, 2)}\n`);
    refused = `${file}: refused: ${err.code}: ${err.message}`;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  if (refused !== null) die(EX_DATAERR, refused);
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

export function registerBundle(program: Command): void {
  const keys = program.command('keys').description('signing keys for policy bundles');
  keys
    .command('generate')
    .description('a new Ed25519 key pair: ID.key (private, mode 0600) and ID.pub (for ota.trustedKeys)')
    .requiredOption('--out <dir>', 'where to write the pair')
    .option('--id <name>', 'the key\'s name (default: the first 16 hex of its sha256 fingerprint)')
    .action((opts: { out: string; id?: string }) => keysGenerate(opts));

  const bundle = program.command('bundle').description('signed policy bundles for over-the-air updates');
  bundle
    .command('create')
    .description('a bundle archive (tar with manifest.json) from a policy folder (policy.json + model)')
    .requiredOption('--policy <dir>', 'the policy folder')
    .option('--version <v>', 'the bundle\'s version (default: policy.json\'s; otherwise written into the bundle\'s policy.json)')
    .requiredOption('--robot <type>', 'the robot type it is for (a robot of another type refuses it)')
    .option('--min-reflex <v>', 'the oldest reflex that may run it (default: this reflex)')
    .requiredOption('--out <file>', 'the archive to write (FILE.tar)')
    .action((opts: { policy: string; version?: string; robot: string; out: string; minReflex?: string }) => bundleCreate(opts));
  bundle
    .command('sign')
    .description('sign a bundle\'s manifest (adds or replaces manifest.sig)')
    .argument('<file>', 'the bundle archive')
    .requiredOption('--key <pem>', 'the Ed25519 private key (from `reflex keys generate`, or openssl genpkey -algorithm ed25519)')
    .action((file: string, opts: { key: string }) => bundleSign(file, opts));
  bundle
    .command('verify')
    .description(`check a bundle as a robot would: exit 0 when accepted, ${EX_DATAERR} with the refusal code otherwise`)
    .argument('<file>', 'the bundle archive')
    .option('-c, --config <file>', 'trust what this robot config trusts (ota.trustedKeys, ota.revokedKeys; robot.name)')
    .option('--pubkey <pem>', 'trust this public key (repeatable)', collect)
    .option('--robot <type>', 'also check it is for this robot type')
    .option('--reflex-version <v>', 'also check it runs on this reflex')
    .option('--json', 'print JSON for scripts')
    .action((file: string, opts: VerifyOptions) => bundleVerify(file, opts));
}
