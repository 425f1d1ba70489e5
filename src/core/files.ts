// Files that come from outside (a config, a policy bundle, credentials) are checked for what
// they are before anything reads them: a regular file of bounded size. A FIFO would block the
// reading thread, a link to /dev/zero would fill its memory, a log file would be read whole.
import { closeSync, constants, fstatSync, openSync, readFileSync, readSync, type Stats } from 'node:fs';

/** A file refused for what it is (`kind`: not a regular file) or its size (`size`). */
export class RefusedFile extends Error {
  constructor(
    message: string,
    readonly reason: 'kind' | 'size',
  ) {
    super(message);
  }
}

/** What a path is, in words, for a message that says why it was refused. */
export function fileKind(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/**
 * Opens `path` and checks what it is before anything reads it: a regular file of at most
 * `maxBytes`. O_NONBLOCK so that opening a FIFO returns at once instead of blocking the thread
 * until a writer appears (a thread blocked in open() can be neither terminated nor joined, so
 * the process could not exit); the check is on the descriptor, so a link to /dev/zero is seen
 * for what it is. Returns the open descriptor and the size; throws naming what is wrong.
 */
function openRegular(path: string, maxBytes: number): { fd: number; size: number } {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new RefusedFile(`is ${fileKind(st)}, not a regular file`, 'kind');
    if (st.size > maxBytes) throw new RefusedFile(`is ${st.size} bytes, more than the ${maxBytes} allowed`, 'size');
    return { fd, size: st.size };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/** Reads a regular file of at most `maxBytes` (one that grows past it while read is refused too). */
export function readRegularFile(path: string, maxBytes: number): Buffer {
  const { fd, size } = openRegular(path, maxBytes);
  try {
    const buf = Buffer.alloc(Math.min(size, maxBytes) + 1);
    let n = 0;
    for (;;) {
      const got = readSync(fd, buf, n, buf.length - n, null);
      if (got === 0) break;
      n += got;
      if (n > maxBytes) throw new RefusedFile(`grew past the ${maxBytes} bytes allowed while being read`, 'size');
      if (n === buf.length) break;
    }
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

/** Checks that `path` is a regular file of at most `maxBytes`, without reading it. */
export function checkRegularFile(path: string, maxBytes: number): void {
  closeSync(openRegular(path, maxBytes).fd);
}


/** The group's id from the group file (what the control socket chowns to), or null. */
export function groupIdOf(name: string, groupFile = '/etc/group'): number | null {
  for (const line of readFileSync(groupFile, 'utf8').split('\n')) {
    const [g, , gid] = line.split(':');
    if (g === name && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  return null;
}
