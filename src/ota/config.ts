// Whom a robot trusts to sign its policies: the config's keys (inline PEM or a file), read and
// checked once at start, so a key that is not an Ed25519 public key is a config error that names
// it rather than a bundle refused later for no visible reason.
import { isAbsolute, join } from 'node:path';
import { z } from 'zod';
import { readRegularFile } from '../core/index.js';
import type { TrustedKey } from './bundle-types.js';
import { ed25519PublicKey, keyFingerprint } from './manifest.js';

export const trustedKeySchema = z
  .object({
    /** A name for the key; the first 16 hex of its SPKI sha256 when left out. */
    id: z.string().min(1).max(128).optional(),
    /** PEM (SPKI) Ed25519 public key, inline ... */
    publicKey: z.string().min(1).optional(),
    /** ... or in a file (relative to the config's folder). */
    publicKeyFile: z.string().min(1).optional(),
  })
  .strict()
  .refine((k) => (k.publicKey === undefined) !== (k.publicKeyFile === undefined), 'exactly one of publicKey and publicKeyFile');

/** `trustedKeys` and `revokedKeys`, as the `ota:` section holds them. */
export const trustSchema = z
  .object({
    trustedKeys: z.array(trustedKeySchema).default([]),
    /** Key ids or SPKI sha256 fingerprints (all 64 hex or at least the first 16) never accepted. */
    revokedKeys: z.array(z.string().min(1)).default([]),
  })
  .strict();

/**
 * For the schema that holds `trustedKeys` and `revokedKeys`: a revocation that names nothing
 * would revoke nothing, silently, so a typo must not leave a compromised key trusted.
 */
export function checkRevocations(t: { trustedKeys: { id?: string | undefined }[]; revokedKeys: string[] }, ctx: z.RefinementCtx): void {
  const ids = new Set(t.trustedKeys.map((k) => k.id).filter((id) => id !== undefined));
  t.revokedKeys.forEach((r, i) => {
    if (ids.has(r) || /^[0-9a-f]{16,64}$/i.test(r)) return;
    ctx.addIssue({ code: 'custom', path: ['revokedKeys', i], message: 'the id of a trusted key or a key fingerprint (16 to 64 hex digits)' });
  });
}

export type TrustConfig = z.output<typeof trustSchema>;

/** A PEM public key file is under a kilobyte. */
const KEY_FILE_MAX_BYTES = 16 * 1024;

/**
 * The configured keys, each read (from its file when it names one), checked to be an Ed25519
 * public key and given its id. Throws an Error naming the key (`trustedKeys[i]`) and what is wrong.
 */
export function resolveTrustedKeys(entries: readonly { id?: string | undefined; publicKey?: string | undefined; publicKeyFile?: string | undefined }[], baseDir: string): TrustedKey[] {
  const seen = new Set<string>();
  return entries.map((e, i) => {
    const where = `trustedKeys[${i}]${e.id ? ` (${e.id})` : ''}`;
    let pem: string;
    try {
      pem = e.publicKey ?? readRegularFile(isAbsolute(e.publicKeyFile!) ? e.publicKeyFile! : join(baseDir, e.publicKeyFile!), KEY_FILE_MAX_BYTES).toString('utf8');
    } catch (err) {
      throw new Error(`${where}: ${e.publicKeyFile}: ${(err as Error).message}`);
    }
    let fp: string;
    try {
      fp = keyFingerprint(ed25519PublicKey(pem));
    } catch (err) {
      throw new Error(`${where}: ${(err as Error).message}`);
    }
    const id = e.id ?? fp.slice(0, 16);
    if (seen.has(id)) throw new Error(`${where}: the id ${id} is given twice`);
    seen.add(id);
    return { id, publicKey: pem };
  });
}
