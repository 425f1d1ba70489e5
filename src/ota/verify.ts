// Verifying a policy bundle that came over the air: who signed it (a trusted, unrevoked key),
// that it is meant for this robot, this reflex and no older than the version floor, and that
// every file is byte for byte the one the signer hashed, with nothing added. The order matters:
// nothing in a manifest is believed before its signature verifies.
import { constants, createReadStream } from 'node:fs';
import { open, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { readRegularFile, RefusedFile } from '../core/index.js';
import { policySchema, POLICY_JSON_MAX_BYTES, type PolicySpec } from '../policy/index.js';
import { BundleRefused, type ArchiveLimits, type Manifest, type Trust, type TrustedKey, type VerifiedBundle } from './bundle-types.js';
import { extractArchive, fsyncDir, tempDirIn } from './archive.js';
import { checkSignature, compareVersions, MANIFEST_FILE, MANIFEST_MAX_BYTES, parseManifest, RESERVED, sha256Hex, SIGNATURE_FILE, SIGNER_FILE, SIGNER_MAX_BYTES, type ManifestJson } from './manifest.js';

export { BundleRefused, type ArchiveLimits, type Manifest, type RefusalCode, type Trust, type TrustedKey, type VerifiedBundle } from './bundle-types.js';
export { compareVersions } from './manifest.js';

/**
 * What a verification checks. `Trust` is the robot's; an operator checking a bundle on a laptop
 * (`reflex bundle verify`) may leave the robot or reflex version out (null: not checked).
 */
export interface Checks {
  keys: readonly TrustedKey[];
  revoked: readonly string[];
  robotType: string | null;
  reflexVersion: string | null;
  floor(name: string): string | null;
}

interface Accepted {
  manifest: ManifestJson;
  keyId: string;
  manifestSha256: string;
}

/** Signature first, then what the signed manifest says against this robot. */
function acceptManifest(bytes: Buffer, sig: Buffer | null, signer: Buffer | null, c: Checks): Accepted {
  const keyId = checkSignature(bytes, sig, signer, c.keys, c.revoked);
  const m = parseManifest(bytes);
  if (c.robotType !== null && m.robot !== c.robotType) throw new BundleRefused('wrong-robot', `${m.name} ${m.version} is for robot ${JSON.stringify(m.robot)}, this one is ${JSON.stringify(c.robotType)}`);
  if (c.reflexVersion !== null && compareVersions(m.minReflexVersion, c.reflexVersion) > 0) {
    throw new BundleRefused('reflex-too-old', `${m.name} ${m.version} needs reflex ${m.minReflexVersion} or newer, this is ${c.reflexVersion}`);
  }
  const floor = c.floor(m.name);
  // The floor itself is allowed: re-installing the committed version is not a downgrade.
  if (floor !== null && compareVersions(m.version, floor) < 0) throw new BundleRefused('below-floor', `${m.name} ${m.version} is older than ${floor}, the oldest version this robot accepts`);
  return { manifest: m, keyId, manifestSha256: sha256Hex(bytes) };
}

/** The I/O schema a manifest carries: what the fleet can match against a robot before downloading. */
export function ioOf(spec: PolicySpec): Record<string, unknown> {
  return { fps: spec.fps, joints: spec.joints, cameras: spec.cameras, features: spec.features, model: spec.model };
}

/** JSON with sorted keys, so two equal documents compare equal whatever wrote them. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** policy.json (already hashed) must say what the signed manifest says it does. */
function checkPolicyJson(dir: string, m: ManifestJson): void {
  let raw: unknown;
  try {
    raw = JSON.parse(readRegularFile(join(dir, 'policy.json'), POLICY_JSON_MAX_BYTES).toString('utf8'));
  } catch (err) {
    throw new BundleRefused('bad-manifest', `policy.json: ${(err as Error).message}`);
  }
  const parsed = policySchema.safeParse(raw);
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    throw new BundleRefused('bad-manifest', `policy.json ${i.path.join('.') || '(top level)'}: ${i.message}`);
  }
  const spec = parsed.data;
  if (spec.name !== m.name || spec.version !== m.version) throw new BundleRefused('bad-manifest', `policy.json is ${spec.name} ${spec.version}, the manifest says ${m.name} ${m.version}`);
  if (!listedIn(m, spec.model)) throw new BundleRefused('missing-file', `the model ${spec.model} that policy.json names is not in the manifest`);
  if (canonical(ioOf(spec)) !== canonical(m.io)) throw new BundleRefused('bad-manifest', "the manifest's io is not policy.json's inputs and outputs");
}

/** The manifest's entry for `name`: its own key only, never one every object inherits ("constructor", "__proto__"). */
export function listedIn(m: ManifestJson, name: string): { sha256: string; size: number } | undefined {
  return Object.hasOwn(m.files, name) ? m.files[name] : undefined;
}

/** Every listed file present with its hash; nothing unlisted. */
export function checkFiles(m: ManifestJson, files: ReadonlyMap<string, { sha256: string; size: number }>, dirs: Iterable<string>): void {
  for (const [name, want] of Object.entries(m.files)) {
    const got = files.get(name);
    if (!got) throw new BundleRefused('missing-file', `${name} is in the signed manifest but not in the bundle`);
    if (got.size !== want.size) throw new BundleRefused('tampered', `${name} is ${got.size} bytes, the signed manifest says ${want.size}`);
    if (got.sha256 !== want.sha256) throw new BundleRefused('tampered', `${name} is not the file that was signed (sha256 ${got.sha256.slice(0, 16)}…, the manifest says ${want.sha256.slice(0, 16)}…)`);
  }
  for (const name of files.keys()) if (!listedIn(m, name)) throw new BundleRefused('extra-file', `${name} is not in the signed manifest`);
  const listed = Object.keys(m.files);
  for (const d of dirs) if (!listed.some((f) => f.startsWith(`${d}/`))) throw new BundleRefused('extra-file', `folder ${d} holds nothing the signed manifest lists`);
}

/** Trust as the checks it implies. */
function checksOf(t: Trust): Checks {
  return { keys: t.keys, revoked: t.revoked, robotType: t.robotType, reflexVersion: t.reflexVersion, floor: (n) => t.floor(n) };
}

/** A folder name for a verified bundle: what it is, and unique. */
function bundleDirName(m: Manifest, sha: string): string {
  return `${m.name}-${m.version.replace(/[^0-9A-Za-z.-]/g, '_')}-${sha.slice(0, 12)}-${randomBytes(4).toString('hex')}`;
}

async function writeNew(path: string, bytes: Buffer): Promise<void> {
  await writeFile(path, bytes, { flag: constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode: 0o644, flush: true });
}

/**
 * Unpacks a bundle archive (tar or tar.gz) into a fresh folder under `intoDir` (a temporary name,
 * every file fsynced, then renamed), refusing hostile archives while streaming, then verifies the
 * signature and every file. Throws BundleRefused with the reason; an I/O error (a full disk) is
 * thrown as it is. Either way nothing is left behind; the scratch folders of an unpack that a
 * crash cut short are removed first (one unpack at a time per `intoDir`).
 */
export async function unpackBundle(archive: string, intoDir: string, trust: Trust, limits?: ArchiveLimits): Promise<VerifiedBundle> {
  return unpackChecked(archive, intoDir, checksOf(trust), limits);
}

const UNPACK_PREFIX = '.unpack-';

async function removeStale(intoDir: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(intoDir);
  } catch {
    return;
  }
  for (const n of names) if (n.startsWith(UNPACK_PREFIX)) await rm(join(intoDir, n), { recursive: true, force: true });
}

/** unpackBundle with explicit checks (what `reflex bundle verify` uses). */
export async function unpackChecked(archive: string, intoDir: string, checks: Checks, limits?: ArchiveLimits): Promise<VerifiedBundle> {
  await removeStale(intoDir);
  const tmp = await tempDirIn(intoDir, UNPACK_PREFIX);
  try {
    let accepted: Accepted | null = null;
    const ex = await extractArchive(archive, tmp, limits, (bytes, sig, signer) => {
      accepted = acceptManifest(bytes, sig, signer, checks);
      return accepted.manifest;
    });
    if (!ex.manifest) throw new BundleRefused(ex.sig ? 'bad-manifest' : 'unsigned', 'the archive has no manifest.json: it is not a signed bundle');
    const a = accepted as Accepted | null;
    if (!a) throw new BundleRefused('bad-manifest', 'the manifest was never checked');
    checkFiles(a.manifest, ex.files, ex.dirs);
    checkPolicyJson(tmp, a.manifest);
    await writeNew(join(tmp, MANIFEST_FILE), ex.manifest);
    await writeNew(join(tmp, SIGNATURE_FILE), ex.sig!);
    if (ex.signer) await writeNew(join(tmp, SIGNER_FILE), ex.signer);
    await fsyncDir(tmp);
    const dir = join(intoDir, bundleDirName(a.manifest, a.manifestSha256));
    await rename(tmp, dir);
    await fsyncDir(intoDir);
    return { dir, manifest: a.manifest, keyId: a.keyId, manifestSha256: a.manifestSha256 };
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

function readOptional(path: string, max: number): Buffer | null {
  try {
    return readRegularFile(path, max);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    if (err instanceof RefusedFile) throw new BundleRefused(err.reason === 'size' ? 'too-large' : 'tampered', `${path} ${err.message}`);
    throw err;
  }
}

/** Hashes a file listed in the manifest: a regular file (not through a link), of the listed size. */
async function hashListed(path: string, name: string, size: number): Promise<{ sha256: string; size: number }> {
  let fh;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw new BundleRefused('tampered', `${name} is a symbolic link`);
    throw err;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new BundleRefused('tampered', `${name} is not a regular file`);
    if (st.size !== size) return { sha256: '', size: st.size };
    const hash = createHash('sha256');
    if (size === 0) return { sha256: hash.digest('hex'), size };
    for await (const chunk of createReadStream('', { fd: fh.fd, autoClose: false, start: 0, end: size - 1 })) hash.update(chunk as Buffer);
    return { sha256: hash.digest('hex'), size };
  } finally {
    await fh.close();
  }
}

/** Verifies an unpacked bundle folder again (just before loading it): signature, hashes, nothing added. */
export async function verifyBundleDir(dir: string, trust: Trust): Promise<VerifiedBundle> {
  return verifyDirChecked(dir, checksOf(trust));
}

export async function verifyDirChecked(dir: string, checks: Checks): Promise<VerifiedBundle> {
  const bytes = readOptional(join(dir, MANIFEST_FILE), MANIFEST_MAX_BYTES);
  if (!bytes) throw new BundleRefused('bad-manifest', `${dir} has no manifest.json`);
  const a = acceptManifest(bytes, readOptional(join(dir, SIGNATURE_FILE), 1024), readOptional(join(dir, SIGNER_FILE), SIGNER_MAX_BYTES), checks);
  const files = new Map<string, { sha256: string; size: number }>();
  const dirs: string[] = [];
  let count = 0;
  const walk = async (rel: string, depth: number): Promise<void> => {
    for (const e of await readdir(join(dir, rel), { withFileTypes: true })) {
      if (++count > 4096) throw new BundleRefused('extra-file', `${dir} holds more than 4096 entries`);
      const name = rel === '' ? e.name : `${rel}/${e.name}`;
      if (rel === '' && RESERVED.has(name)) continue;
      if (e.isDirectory()) {
        if (depth >= 8) throw new BundleRefused('extra-file', `${name} is nested deeper than a bundle can be`);
        dirs.push(name);
        await walk(name, depth + 1);
        continue;
      }
      const want = listedIn(a.manifest, name);
      if (!want) throw new BundleRefused('extra-file', `${name} is not in the signed manifest`);
      files.set(name, await hashListed(join(dir, name), name, want.size));
    }
  };
  await walk('', 0);
  checkFiles(a.manifest, files, dirs);
  checkPolicyJson(dir, a.manifest);
  return { dir, manifest: a.manifest, keyId: a.keyId, manifestSha256: a.manifestSha256 };
}
