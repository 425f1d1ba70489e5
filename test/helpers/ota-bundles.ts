// Bundles for the OTA bundle and download tests, built byte by byte: tar headers written by
// hand (so a test can declare what no honest tool would: a size bomb, a device, a path out of
// the bundle), and manifests signed with node:crypto as a fleet's signing step would.
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import type { Trust } from '../../src/ota/index.js';

export interface Entry {
  name: string;
  data?: Buffer;
  /** ustar typeflag: '0' file, '1' hard link, '2' symlink, '3' char device, '4' block, '5' folder, '6' FIFO. */
  type?: string;
  linkname?: string;
  /** Declared size, when it must differ from the data's (a size bomb). */
  size?: number;
}

function octal(n: number, width: number): string {
  return `${n.toString(8).padStart(width - 1, '0')}\0`;
}

/** One 512-byte ustar header. */
export function header(e: Entry): Buffer {
  const b = Buffer.alloc(512);
  b.write(e.name, 0, 100, 'utf8');
  b.write(octal(0o644, 8), 100);
  b.write(octal(0, 8), 108);
  b.write(octal(0, 8), 116);
  b.write(octal(e.size ?? e.data?.length ?? 0, 12), 124);
  b.write(octal(0, 12), 136);
  b.write('        ', 148);
  b.write(e.type ?? '0', 156);
  if (e.linkname) b.write(e.linkname, 157, 100, 'utf8');
  b.write('ustar\0', 257);
  b.write('00', 263);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return b;
}

/** A tar of `entries`; `end: false` leaves out the two zero blocks that end an archive. */
export function tarOf(entries: Entry[], end = true): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    parts.push(header(e));
    const d = e.data ?? Buffer.alloc(0);
    parts.push(d, Buffer.alloc((512 - (d.length % 512)) % 512));
  }
  if (end) parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

export interface Key {
  id: string;
  publicKey: KeyObject;
  privateKey: KeyObject;
  pem: string;
}

export function newKey(id: string): Key {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return { id, publicKey, privateKey, pem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

export function trustOf(keys: Key[], over: Partial<Omit<Trust, 'floor'>> & { floors?: Record<string, string> } = {}): Trust {
  const floors = over.floors ?? {};
  return {
    keys: over.keys ?? keys.map((k) => ({ id: k.id, publicKey: k.pem })),
    revoked: over.revoked ?? [],
    robotType: over.robotType ?? 'arm3',
    reflexVersion: over.reflexVersion ?? '0.1.0',
    floor: (n) => floors[n] ?? null,
  };
}

/** The files of a policy folder, by name. */
export function filesOf(dir: string): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const n of readdirSync(dir)) if (statSync(join(dir, n)).isFile()) out[n] = readFileSync(join(dir, n));
  return out;
}

export interface ManifestOver {
  name?: string;
  version?: string;
  robot?: string;
  minReflexVersion?: string;
  io?: unknown;
}

interface PolicyDoc {
  name: string;
  version: string;
  fps: number;
  joints: string[];
  cameras?: string[];
  features: Record<string, { shape: number[]; normalization?: string }>;
  model?: string;
}

/** manifest.json's bytes for `files`, with policy.json's io, as `reflex bundle create` writes it. */
export function manifestFor(files: Record<string, Buffer>, over: ManifestOver = {}): Buffer {
  const policy = JSON.parse(files['policy.json']!.toString('utf8')) as PolicyDoc;
  const features = Object.fromEntries(Object.entries(policy.features).map(([k, f]) => [k, { shape: f.shape, normalization: f.normalization ?? 'mean_std' }]));
  const doc = {
    format: 'reflex.manifest/1',
    name: over.name ?? policy.name,
    version: over.version ?? policy.version,
    robot: over.robot ?? 'arm3',
    minReflexVersion: over.minReflexVersion ?? '0.1.0',
    files: Object.fromEntries(Object.entries(files).map(([n, b]) => [n, { sha256: sha256(b), size: b.length }])),
    io: over.io ?? { fps: policy.fps, joints: policy.joints, cameras: policy.cameras ?? [], features, model: policy.model ?? 'model.onnx' },
  };
  return Buffer.from(JSON.stringify(doc, null, 2));
}

export interface SignedOptions {
  key?: Key | null;
  /** Put the signer's public key beside the signature (what `reflex bundle sign` does). */
  hint?: boolean;
  manifest?: Buffer;
  /** Files in the archive (default: those the manifest was made from). */
  archiveFiles?: Record<string, Buffer>;
}

/** A signed bundle tar: manifest.json, manifest.sig, signer.pub, then the files. */
export function signedTar(files: Record<string, Buffer>, opts: SignedOptions = {}, over: ManifestOver = {}): Buffer {
  const manifest = opts.manifest ?? manifestFor(files, over);
  const entries: Entry[] = [{ name: 'manifest.json', data: manifest }];
  if (opts.key) {
    entries.push({ name: 'manifest.sig', data: sign(null, manifest, opts.key.privateKey) });
    if (opts.hint !== false) entries.push({ name: 'signer.pub', data: Buffer.from(opts.key.pem) });
  }
  for (const [name, data] of Object.entries(opts.archiveFiles ?? files)) entries.push({ name, data });
  return tarOf(entries);
}

/**
 * A folder on a tmpfs of `bytes` (a disk that fills up), unmounted after the test; null with
 * the test skipped, saying why, where tmpfs cannot be mounted (not root, no CAP_SYS_ADMIN).
 */
export function smallDisk(t: TestContext, bytes: number): { dir: string; grow(to: number): void } | null {
  if (process.getuid?.() !== 0) {
    t.skip('mounting a small tmpfs (a disk that fills up) needs root');
    return null;
  }
  const dir = mkdtempSync(join(tmpdir(), 'reflex-full-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes},mode=0755`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (err) {
    t.skip(`cannot mount a tmpfs here: ${(err as Error).message}`);
    return null;
  }
  t.after(() => execFileSync('umount', ['-l', dir]));
  return { dir, grow: (to) => execFileSync('mount', ['-o', `remount,size=${to}`, dir]) };
}
