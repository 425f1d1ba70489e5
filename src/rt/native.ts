// Typed facade over the N-API addon in native/. Arguments are checked here so that the C++ side
// stays a thin conversion layer. The addon is optional at run time: without it the daemon runs,
// and the parts that need it report that they are unavailable.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// Plain functions of the addon: they do not use `this`.
interface Addon {
  sdNotify(this: void, path: string, message: string): number;
  openPty(this: void): { error: number; master: number; slave: number; path: string };
  ptyBaud(this: void, fd: number): number;
  serialWrite(this: void, fd: number, buf: Uint8Array, len: number, timeoutUs: number): number;
  serialRead(this: void, fd: number, buf: Uint8Array, offset: number, minBytes: number, timeoutUs: number): number;
  serialDiscardInput(this: void, fd: number): number;
}

export interface PtyPair {
  /** The side the simulated device reads and writes. */
  master: number;
  /** Held open so the master sees no hang-up while no client is connected. */
  slave: number;
  /** /dev/pts/N: what a driver opens, as it would open /dev/ttyUSB0. */
  path: string;
}

const require = createRequire(import.meta.url);
let addon: Addon | null | undefined;
let loadError: string | null = null;

function addonPath(): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const p = join(dir, 'native', 'build', 'Release', 'reflex_native.node');
    if (existsSync(p)) return p;
    dir = dirname(dir);
  }
  return null;
}

function load(): Addon | null {
  if (addon !== undefined) return addon;
  const p = addonPath();
  if (p === null) {
    loadError = 'native addon not built (npm run build:native)';
    addon = null;
    return addon;
  }
  try {
    addon = require(p) as Addon;
  } catch (err) {
    loadError = err instanceof Error ? err.message : String(err);
    addon = null;
  }
  return addon;
}

/** Why the addon is unavailable, or null when it loaded. */
export function nativeUnavailableReason(): string | null {
  load();
  return loadError;
}

/**
 * Sends `message` as one datagram to the Unix socket `path` ("@x" = abstract). Returns 0 or
 * an errno value; never throws for socket errors.
 */
export function sdNotify(path: string, message: string): number {
  if (typeof path !== 'string' || path.length === 0 || path.length > 107) throw new TypeError('sdNotify: path must be 1..107 characters');
  if (typeof message !== 'string' || message.includes('\0')) throw new TypeError('sdNotify: message must be a string without NUL');
  const a = load();
  if (a === null) return 38; // ENOSYS
  return a.sdNotify(path, message);
}

/** A pseudo-terminal pair with its slave side raw, for simulated serial devices. */
export function openPty(): PtyPair {
  const a = load();
  if (a === null) throw new Error(`openPty: ${loadError ?? 'native addon unavailable'}`);
  const r = a.openPty();
  if (r.error !== 0) throw new Error(`openPty failed: errno ${r.error}`);
  return { master: r.master, slave: r.slave, path: r.path };
}

/** The baud rate the client set on a pty (through its master fd), or null when unknown. */
export function ptyBaud(masterFd: number): number | null {
  if (!Number.isInteger(masterFd) || masterFd < 0) throw new TypeError('ptyBaud: fd must be a non-negative integer');
  const a = load();
  if (a === null) return null;
  const r = a.ptyBaud(masterFd);
  return r > 0 ? r : null;
}

/**
 * Synchronous serial I/O on a non-blocking fd, for the control thread (no event loop, no
 * allocation). Each returns a byte count or -errno.
 */
export interface SerialIo {
  write(fd: number, buf: Uint8Array, len: number, timeoutUs: number): number;
  read(fd: number, buf: Uint8Array, offset: number, minBytes: number, timeoutUs: number): number;
  discardInput(fd: number): number;
}

export function serialIo(): SerialIo {
  const a = load();
  if (a === null) throw new Error(`synchronous serial I/O needs the native addon: ${loadError ?? 'unavailable'}`);
  return { write: a.serialWrite, read: a.serialRead, discardInput: a.serialDiscardInput };
}
