// Crash-safe file writes for the dataset: every file is written under a temporary name in its
// own directory, synced, renamed over its final name, and the directory synced, so that after a
// kill -9 or a power cut a reader sees either the old file or the whole new one, never a torn one.
import { closeSync, constants, fstatSync, fsyncSync, mkdirSync, openSync, readSync, readdirSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** Suffix of a file being written; a restart removes any it finds (see `sweepTemporaries`). */
export const TMP_SUFFIX = '.reflex-tmp';

export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Writes `bytes` to `path` atomically: temporary name, fsync, rename, fsync of the directory. */
export function writeFileAtomic(path: string, bytes: Uint8Array | string): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  const tmp = `${path}${TMP_SUFFIX}`;
  const fd = openSync(tmp, 'w', 0o644);
  try {
    const buf = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
    let at = 0;
    while (at < buf.byteLength) at += writeSync(fd, buf, at, buf.byteLength - at);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  fsyncDir(dir);
}

/** Renames a finished file (already synced) into place and syncs the directory it lands in. */
export function moveIntoPlace(from: string, to: string): void {
  mkdirSync(dirname(to), { recursive: true });
  const fd = openSync(from, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(from, to);
  fsyncDir(dirname(to));
}

/**
 * Opens `path` for reading if it is a regular file, never through a symbolic link (O_NOFOLLOW):
 * files from outside (a bucket synced by hand) are read as what they are, not what they point at.
 * O_NONBLOCK: a named pipe in their place would otherwise hang the open until a writer came.
 */
export function openRegular(path: string): { fd: number; size: number } {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  const st = fstatSync(fd);
  if (!st.isFile()) {
    closeSync(fd);
    throw Object.assign(new Error(`${path}: not a regular file`), { code: 'ENOTREG' });
  }
  return { fd, size: st.size };
}

/** The bytes of the regular file `path` (see openRegular); refused when longer than `maxBytes`. */
export function readRegular(path: string, maxBytes: number): Buffer {
  const { fd, size } = openRegular(path);
  try {
    if (size > maxBytes) throw Object.assign(new Error(`${path}: ${size} bytes, more than ${maxBytes}`), { code: 'ETOOBIG' });
    const buf = Buffer.alloc(size);
    let at = 0;
    while (at < size) {
      const n = readSync(fd, buf, at, size - at, at);
      if (n === 0) break;
      at += n;
    }
    if (at !== size) throw new Error(`${path}: shrank while read`);
    return buf;
  } finally {
    closeSync(fd);
  }
}

/** Copies the regular file `from` (see openRegular) to `to`: temporary name, fsync, rename, fsync of the directory. */
export function copyIntoPlace(from: string, to: string): void {
  const dir = dirname(to);
  mkdirSync(dir, { recursive: true });
  const tmp = `${to}${TMP_SUFFIX}`;
  const src = openRegular(from);
  try {
    const dst = openSync(tmp, 'w', 0o644);
    try {
      const buf = Buffer.allocUnsafe(1 << 20);
      for (;;) {
        const n = readSync(src.fd, buf, 0, buf.length, null);
        if (n === 0) break;
        let at = 0;
        while (at < n) at += writeSync(dst, buf, at, n - at);
      }
      fsyncSync(dst);
    } finally {
      closeSync(dst);
    }
    renameSync(tmp, to);
  } catch (err) {
    rmSync(tmp, { force: true }); // a full disk leaves no half copy behind
    throw err;
  } finally {
    closeSync(src.fd);
  }
  fsyncDir(dir);
}

/** Calls `fn` with each regular file under `dir` (recursively); nothing when `dir` does not exist. */
function eachFile(dir: string, fn: (path: string, name: string) => void): void {
  let entries: import('node:fs').Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) eachFile(p, fn);
    else if (e.isFile()) fn(p, e.name);
  }
}

/** Removes temporary files a crash left under `dir` (recursively); returns how many. */
export function sweepTemporaries(dir: string): number {
  let n = 0;
  eachFile(dir, (p, name) => {
    if (!name.endsWith(TMP_SUFFIX)) return;
    rmSync(p, { force: true });
    n++;
  });
  return n;
}

/** Bytes of the regular files under `dir` (recursively); 0 when it does not exist. */
export function diskBytes(dir: string): number {
  let total = 0;
  eachFile(dir, (p) => {
    try {
      total += statSync(p).size;
    } catch {
      // removed meanwhile
    }
  });
  return total;
}
