// One daemon per robot, decided before any hardware is touched. A second daemon used to open
// the CAN bus and enable the motors before it found the first one's socket, then disable them
// while unwinding: the running robot went limp. The lock is an exclusive flock on a file in
// the run directory (beside the control socket), held for the life of the process: the kernel
// drops it when the process ends, however it ends, so no stale lock is ever left to clean up.
// The holder's pid is written in the file for the second one's message.
import { closeSync, constants, fstatSync, ftruncateSync, mkdirSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { ReflexError, errorMessage } from './errors.js';

/**
 * The rt room (the native addon's facade and the worker host), loaded when a daemon takes its
 * lock: every `reflex` verb imports this room for its errors and should not pay for rt's
 * start-up (issue 18: `reflex status` under 200 ms).
 */
function flockExclusive(fd: number): ReturnType<typeof import('../rt/index.js').flockExclusive> {
  return (createRequire(import.meta.url)('../rt/index.js') as typeof import('../rt/index.js')).flockExclusive(fd);
}

export const LOCK_FILE = 'reflex.lock';

const EWOULDBLOCK = 11;

export interface InstanceLock {
  readonly path: string;
  /** How it is held: flock (the native addon), or a pid file checked for liveness (without it). */
  readonly kind: 'flock' | 'pidfile';
}

/** The lock of the daemon whose control socket is `socketPath`: reflex.lock beside it. */
export function lockPathFor(socketPath: string): string {
  return join(dirname(socketPath), LOCK_FILE);
}

/**
 * Takes the instance lock at `path` for the rest of the process's life (its fd stays open and
 * is never closed), or throws START_FAILED naming the pid that holds it.
 */
export function acquireInstanceLock(path: string): InstanceLock {
  let fd: number;
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    // O_NOFOLLOW: the daemon runs as root; a link planted at the lock's name must not make it
    // truncate the file the link points at.
    fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o644);
  } catch (err) {
    throw new ReflexError('START_FAILED', `cannot open the instance lock ${path}: ${errorMessage(err)}`, { cause: err });
  }
  try {
    if (!fstatSync(fd).isFile()) throw new ReflexError('START_FAILED', `the instance lock ${path} is not a regular file`);
    const r = flockExclusive(fd);
    if (r === EWOULDBLOCK) throw held(path, readHolder(fd));
    if (r !== null && r !== 0) throw new ReflexError('START_FAILED', `cannot lock ${path}: errno ${r}`);
    if (r === null) {
      // Without the addon there is no flock: trust the pid written in the file while that
      // process lives (and is the same process: pids are reused, start times are not).
      const holder = readHolder(fd);
      if (holder !== null && holder.pid !== process.pid && alive(holder)) throw held(path, holder);
    }
    ftruncateSync(fd, 0);
    writeSync(fd, `${process.pid} ${startTime(process.pid) ?? 0}\n`, 0);
    return { path, kind: r === null ? 'pidfile' : 'flock' };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

interface Holder {
  pid: number;
  start: number | null;
}

function held(path: string, holder: Holder | null): ReflexError {
  return new ReflexError('START_FAILED', `another reflex (pid ${holder?.pid ?? 'unknown'}) holds ${path}`);
}

function readHolder(fd: number): Holder | null {
  const buf = Buffer.alloc(64);
  const n = readSync(fd, buf, 0, buf.length, 0);
  const m = /^(\d+)(?: (\d+))?/.exec(buf.toString('ascii', 0, n));
  if (!m) return null;
  return { pid: Number(m[1]), start: m[2] === undefined || m[2] === '0' ? null : Number(m[2]) };
}

/** The process's start time in clock ticks since boot (/proc/PID/stat field 22), or null. */
function startTime(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'ascii');
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const v = Number(fields[19]);
    return Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}

function alive(h: Holder): boolean {
  try {
    process.kill(h.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const start = startTime(h.pid);
  return h.start === null || start === null || start === h.start;
}
