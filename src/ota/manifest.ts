// The signed manifest of a bundle on the wire: what it is, what it fits, and the sha256 and size
// of every file. The signature is a raw 64-byte Ed25519 signature over manifest.json's exact
// bytes, so anyone can check it with openssl (see README, "Checking a bundle's signature").
import { createHash, createPublicKey, verify as verifySignature, type KeyObject } from 'node:crypto';
import { z } from 'zod';
import { BundleRefused, type Manifest, type TrustedKey } from './bundle-types.js';

export const MANIFEST_FORMAT = 'reflex.manifest/1';
export const MANIFEST_FILE = 'manifest.json';
export const SIGNATURE_FILE = 'manifest.sig';
/** The signer's public key, a hint only (never trusted by itself): it tells an unknown or revoked
 *  signer from a manifest changed after signing. */
export const SIGNER_FILE = 'signer.pub';
/** Names of the archive that are not bundle files. */
export const RESERVED = new Set([MANIFEST_FILE, SIGNATURE_FILE, SIGNER_FILE]);

/** A manifest is a few kilobytes; a signer's PEM under one. */
export const MANIFEST_MAX_BYTES = 1024 * 1024;
export const SIGNER_MAX_BYTES = 4096;
export const SIGNATURE_BYTES = 64;

/**
 * Versions: MAJOR.MINOR.PATCH with any number of numeric parts (missing parts count as 0, so
 * 1.2 == 1.2.0), then an optional -PRERELEASE (dot-separated identifiers, below the release
 * itself: 1.0.0-rc.1 < 1.0.0; numeric identifiers compare as numbers and below alphanumeric
 * ones, as in semver) and an optional +BUILD that is ignored.
 */
const VERSION = /^(\d{1,9}(?:\.\d{1,9}){0,4})(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z.-]+)?$/;

export function isVersion(v: string): boolean {
  return v.length <= 128 && VERSION.test(v);
}

/** Two digit strings by value, however long (Number() would round past 2^53 and call them equal). */
function compareDigits(x: string, y: string): number {
  const a = x.replace(/^0+(?=\d)/, '');
  const b = y.replace(/^0+(?=\d)/, '');
  if (a.length !== b.length) return a.length < b.length ? -1 : 1;
  return a === b ? 0 : a < b ? -1 : 1;
}

/** Negative when a < b, 0 when they are the same version, positive when a > b. Throws on a string that is not a version. */
export function compareVersions(a: string, b: string): number {
  const ma = VERSION.exec(a);
  const mb = VERSION.exec(b);
  if (!ma || !mb) throw new RangeError(`not a version: ${JSON.stringify(ma ? b : a)} (want MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD])`);
  const na = ma[1]!.split('.').map(Number);
  const nb = mb[1]!.split('.').map(Number);
  for (let i = 0; i < Math.max(na.length, nb.length); i++) {
    const d = (na[i] ?? 0) - (nb[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  const pa = ma[2];
  const pb = mb[2];
  if (pa === undefined || pb === undefined) return pa === pb ? 0 : pa === undefined ? 1 : -1;
  const ia = pa.split('.');
  const ib = pb.split('.');
  for (let i = 0; i < Math.max(ia.length, ib.length); i++) {
    const x = ia[i];
    const y = ib[i];
    if (x === undefined || y === undefined) return x === y ? 0 : x === undefined ? -1 : 1;
    const xn = /^\d+$/.test(x);
    const yn = /^\d+$/.test(y);
    if (xn && yn) {
      const d = compareDigits(x, y);
      if (d !== 0) return d;
    } else if (xn !== yn) {
      return xn ? -1 : 1;
    } else if (x !== y) {
      return x < y ? -1 : 1;
    }
  }
  return 0;
}

/**
 * A bundle file's name: a relative path of at most 8 parts, each of letters, digits, '.', '_'
 * and '-' (not '.' or '..'), at most 200 characters in all. Anything else (absolute, '..',
 * backslashes, control characters, odd Unicode) is refused rather than interpreted.
 */
export function isSafeName(name: string): boolean {
  if (name.length === 0 || name.length > 200) return false;
  const parts = name.split('/');
  return parts.length <= 8 && parts.every((p) => /^[A-Za-z0-9._-]{1,100}$/.test(p) && p !== '.' && p !== '..');
}

const version = z.string().refine(isVersion, { message: 'not a version (want MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD])' });

const fileEntry = z
  .object({
    sha256: z.string().regex(/^[0-9a-f]{64}$/, 'want 64 lowercase hex digits'),
    size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  })
  .strict();

export const manifestSchema = z
  .object({
    format: z.literal(MANIFEST_FORMAT),
    name: z.string().min(1).max(100).refine(isSafeName, { message: 'want letters, digits, ".", "_" and "-"' }).refine((n) => !n.includes('/'), { message: 'no "/" in a name' }),
    version,
    robot: z.string().min(1).max(100),
    minReflexVersion: version,
    files: z
      .record(z.string(), fileEntry)
      .superRefine((files, ctx) => {
        const names = Object.keys(files);
        if (!names.includes('policy.json')) ctx.addIssue({ code: 'custom', message: 'lists no policy.json' });
        for (const n of names) {
          if (!isSafeName(n)) ctx.addIssue({ code: 'custom', path: [n], message: 'not a safe relative file name' });
          else if (RESERVED.has(n)) ctx.addIssue({ code: 'custom', path: [n], message: 'a reserved name cannot be a bundle file' });
        }
        // A name that is both a file and a folder of another cannot be unpacked.
        for (const n of names) if (names.some((m) => m.startsWith(`${n}/`))) ctx.addIssue({ code: 'custom', path: [n], message: 'is both a file and a folder' });
      }),
    /** The I/O schema of policy.json: fps, joints, cameras, features. */
    io: z.record(z.string(), z.unknown()),
  })
  .strict();

export type ManifestJson = z.output<typeof manifestSchema>;

/**
 * The first key that appears twice in one object of `text` (already known to be valid JSON), or
 * null. JSON.parse keeps the last one silently; another reader may keep the first, so signed bytes
 * with a repeated key could say one robot to a reviewer and another to the robot.
 */
function repeatedKey(text: string): string | null {
  const objects: (Set<string> | null)[] = [];
  let lastString = '';
  // In valid JSON, outside strings, ':' only ever follows an object's key.
  for (const [t] of text.matchAll(/"[^"\\]*(?:\\.[^"\\]*)*"|[{}[\]:]/g)) {
    if (t === '{') objects.push(new Set());
    else if (t === '[') objects.push(null);
    else if (t === '}' || t === ']') objects.pop();
    else if (t === ':') {
      const keys = objects.at(-1);
      const key = JSON.parse(lastString) as string;
      if (keys?.has(key)) return key;
      keys?.add(key);
    } else lastString = t;
  }
  return null;
}

/** Parses manifest.json's bytes; refuses ('bad-manifest') naming the first thing wrong. */
export function parseManifest(bytes: Buffer): ManifestJson {
  let raw: unknown;
  const text = bytes.toString('utf8');
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new BundleRefused('bad-manifest', `manifest.json is not JSON: ${(err as Error).message}`);
  }
  const twice = repeatedKey(text);
  if (twice !== null) throw new BundleRefused('bad-manifest', `manifest.json gives the key ${JSON.stringify(twice)} twice in one object: it reads differently to different readers`);
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    throw new BundleRefused('bad-manifest', `manifest.json ${i.path.join('.') || '(top level)'}: ${i.message}`);
  }
  return parsed.data;
}

/** The manifest's bytes as `bundle create` writes them (the signature covers these exact bytes). */
export function encodeManifest(m: Manifest): Buffer {
  const files = Object.fromEntries(Object.keys(m.files).sort().map((k) => [k, m.files[k]]));
  const doc = { format: MANIFEST_FORMAT, name: m.name, version: m.version, robot: m.robot, minReflexVersion: m.minReflexVersion, files, io: m.io };
  return Buffer.from(`${JSON.stringify(doc, null, 2)}\n`);
}

export function sha256Hex(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** sha256 of the key's SPKI DER, hex: what a revocation list may name (all 64 or the first 16). */
export function keyFingerprint(key: KeyObject): string {
  return sha256Hex(key.export({ type: 'spki', format: 'der' }));
}

/** An Ed25519 public key from PEM; throws saying what it got otherwise. */
export function ed25519PublicKey(pem: string | Buffer): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (err) {
    throw new Error(`not a public key in PEM: ${(err as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`is a ${key.asymmetricKeyType ?? 'unknown'} key, want ed25519`);
  return key;
}

/** The default id of a key: the first 16 hex digits of its fingerprint. */
export function defaultKeyId(key: KeyObject): string {
  return keyFingerprint(key).slice(0, 16);
}

interface KnownKey {
  id: string;
  key: KeyObject;
  fingerprint: string;
}

function isRevoked(k: { id: string | null; fingerprint: string }, revoked: readonly string[]): boolean {
  return revoked.some((r) => r === k.id || r.toLowerCase() === k.fingerprint || (r.length >= 16 && k.fingerprint.startsWith(r.toLowerCase())));
}

/** The revocation list with every key it names by id also named by fingerprint, so a key revoked
 *  under one id is revoked under every id (and as a signer hint) it is listed with. */
function revokedByKey(known: readonly KnownKey[], revoked: readonly string[]): string[] {
  return [...revoked, ...known.filter((k) => revoked.includes(k.id)).map((k) => k.fingerprint)];
}

/**
 * Which trusted key signed these manifest bytes. A signature carries no key id, so every trusted
 * key is tried; when none verifies, the signer's public key (a hint beside the signature, if
 * any) tells a revoked or unknown signer from a manifest changed after signing.
 * Returns the id of the key that verified; throws BundleRefused otherwise.
 */
export function checkSignature(manifest: Buffer, sig: Buffer | null, signerHint: Buffer | null, keys: readonly TrustedKey[], revoked: readonly string[]): string {
  if (sig === null) throw new BundleRefused('unsigned', 'the bundle has no manifest.sig: nobody signed it');
  if (sig.length !== SIGNATURE_BYTES) throw new BundleRefused('bad-signature', `manifest.sig is ${sig.length} bytes, an Ed25519 signature is ${SIGNATURE_BYTES}`);
  const known: KnownKey[] = [];
  for (const k of keys) {
    // A key that does not parse was refused when the config was read; here it just never verifies.
    try {
      const key = ed25519PublicKey(k.publicKey);
      known.push({ id: k.id, key, fingerprint: keyFingerprint(key) });
    } catch {
      continue;
    }
  }
  const revokedAll = revokedByKey(known, revoked);
  const verifies = (key: KeyObject) => verifySignature(null, manifest, key, sig);
  for (const k of known) if (!isRevoked(k, revokedAll) && verifies(k.key)) return k.id;
  for (const k of known) if (isRevoked(k, revokedAll) && verifies(k.key)) throw new BundleRefused('revoked-key', `signed by key ${k.id}, which is revoked`);
  let hint: KnownKey | null = null;
  if (signerHint !== null) {
    try {
      const key = ed25519PublicKey(signerHint);
      hint = { id: defaultKeyId(key), key, fingerprint: keyFingerprint(key) };
    } catch {
      hint = null;
    }
  }
  if (hint && verifies(hint.key)) {
    if (isRevoked(hint, revokedAll)) throw new BundleRefused('revoked-key', `signed by key ${hint.id}, which is revoked`);
    throw new BundleRefused('unknown-key', `signed by key ${hint.id}, which is not among the trusted keys (${known.map((k) => k.id).join(', ') || 'none configured'})`);
  }
  if (hint && known.some((k) => k.fingerprint === hint.fingerprint)) {
    throw new BundleRefused('bad-signature', `manifest.sig does not verify with key ${known.find((k) => k.fingerprint === hint.fingerprint)!.id}: the manifest changed after it was signed`);
  }
  throw new BundleRefused('bad-signature', `no trusted key (${known.map((k) => k.id).join(', ') || 'none configured'}) verifies manifest.sig: signed by another key, or changed after signing`);
}
