// The types every part of a bundle's verification shares, kept apart so that verify.ts,
// manifest.ts and archive.ts import them without a cycle.

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

