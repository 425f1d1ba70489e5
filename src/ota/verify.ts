// Verifying a policy bundle that came over the air: who signed it, that every file is the one
// the signer hashed, and that it fits this robot. First commit: the interface, so src/ota's
// state machine compiles against it; the bodies follow.

export interface TrustedKey {
  id: string;
  /** PEM (SPKI) Ed25519 public key. */
  publicKey: string;
}

export interface Trust {
  /** Several, for rotation. */
  keys: TrustedKey[];
  /** Key ids (and/or SPKI sha256 fingerprints) never accepted. */
  revoked: string[];
  /** This robot's type; a manifest for another robot is refused. */
  robotType: string;
  /** This reflex; a manifest whose minReflexVersion is above it is refused. */
  reflexVersion: string;
  /** The version floor per policy name (raised at commit), or null when none. */
  floor(name: string): string | null;
}

export type RefusalCode =
  | 'unsigned'
  | 'unknown-key'
  | 'revoked-key'
  | 'bad-signature'
  | 'bad-manifest'
  | 'tampered'
  | 'missing-file'
  | 'extra-file'
  | 'below-floor'
  | 'wrong-robot'
  | 'reflex-too-old'
  | 'unsafe-archive'
  | 'too-large';

export class BundleRefused extends Error {
  constructor(
    readonly code: RefusalCode,
    message: string,
  ) {
    super(message);
    this.name = 'BundleRefused';
  }
}

export interface Manifest {
  name: string;
  version: string;
  robot: string;
  minReflexVersion: string;
  files: Record<string, { sha256: string; size: number }>;
  /** The I/O schema (from policy.json). */
  io: unknown;
}

export interface VerifiedBundle {
  dir: string;
  manifest: Manifest;
  keyId: string;
  manifestSha256: string;
}

export interface ArchiveLimits {
  maxBytes?: number;
  maxFiles?: number;
}

/** Unpacks a bundle archive (tar) into a fresh dir under `intoDir`, then verifies it. Throws BundleRefused. */
export function unpackBundle(archive: string, intoDir: string, trust: Trust, limits?: ArchiveLimits): Promise<VerifiedBundle> {
  void archive, intoDir, trust, limits;
  return Promise.reject(new Error('unpackBundle: not implemented yet'));
}

/** Verifies an unpacked bundle dir again (just before loading). Throws BundleRefused. */
export function verifyBundleDir(dir: string, trust: Trust): Promise<VerifiedBundle> {
  void dir, trust;
  return Promise.reject(new Error('verifyBundleDir: not implemented yet'));
}

/** Compares two versions: negative when a < b, 0 when equal, positive when a > b. */
export function compareVersions(a: string, b: string): number {
  void a, b;
  throw new Error('compareVersions: not implemented yet');
}
