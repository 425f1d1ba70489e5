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
  rtSetup(this: void, priority: number, cpu: number, lockMemory: boolean): { fifo?: number; affinity?: number; mlock?: number };
  unlockMemory(this: void): number;
  keepThreadsOffCpu?(this: void, cpu: number): { moved: number; error: number };
  sleepThenSpin(this: void, deadlineMs: number, spinMs: number, out: Float64Array): void;
  clockInto(this: void, out: Float64Array, index: number): void;
  canOpen(this: void, ifname: string): number;
  canSetFilters(this: void, fd: number, pairs: Uint32Array): number;
  unixConnect(this: void, path: string): number;
  closeFd(this: void, fd: number): number;
  flockExclusive?(this: void, fd: number): number;
  peerCred?(this: void, fd: number): PeerCred | number;
  exitAfter?(this: void, ms: number, code: number): void;
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

/** Frame sockets (SocketCAN, the virtual bus's Unix socket): non-blocking fds; errors as -errno. */
export interface FrameSockets {
  canOpen(ifname: string): number;
  canSetFilters(fd: number, pairs: Uint32Array): number;
  unixConnect(path: string): number;
  close(fd: number): number;
}

export function frameSockets(): FrameSockets {
  const a = load();
  if (a === null) throw new Error(`CAN sockets need the native addon: ${loadError ?? 'unavailable'}`);
  const fd = (name: string, v: number) => {
    if (!Number.isInteger(v) || v < 0) throw new TypeError(`${name}: fd must be a non-negative integer`);
  };
  return {
    canOpen: (ifname) => {
      if (typeof ifname !== 'string' || ifname.length === 0 || ifname.length > 15) throw new TypeError('canOpen: interface name must be 1..15 characters');
      return a.canOpen(ifname);
    },
    canSetFilters: (f, pairs) => {
      fd('canSetFilters', f);
      if (!(pairs instanceof Uint32Array) || pairs.length % 2 !== 0) throw new TypeError('canSetFilters: pairs must be a Uint32Array of [id, mask] pairs');
      return a.canSetFilters(f, pairs);
    },
    unixConnect: (path) => {
      if (typeof path !== 'string' || path.length === 0 || path.length > 107) throw new TypeError('unixConnect: path must be 1..107 characters');
      return a.unixConnect(path);
    },
    close: (f) => {
      fd('close', f);
      return a.closeFd(f);
    },
  };
}

/**
 * An exclusive flock on `fd`, not waiting: 0 when taken, else the errno (11, EWOULDBLOCK, when
 * another open file holds it). Null without the addon (or one built before flock was added):
 * the caller falls back to something weaker.
 */
export function flockExclusive(fd: number): number | null {
  if (!Number.isInteger(fd) || fd < 0) throw new TypeError('flockExclusive: fd must be a non-negative integer');
  const f = load()?.flockExclusive;
  return f === undefined ? null : f(fd);
}

/** Who is at the other end of a Unix socket, as the kernel recorded it when they connected. */
export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
  /** Their supplementary groups; null where the kernel cannot say (before Linux 4.13). */
  groups: number[] | null;
}

/**
 * The peer credentials of the connected Unix socket `fd` (SO_PEERCRED); null without the addon
 * (or one built before this was added). Throws with the errno when the kernel refuses.
 */
export function peerCred(fd: number): PeerCred | null {
  if (!Number.isInteger(fd) || fd < 0) throw new TypeError('peerCred: fd must be a non-negative integer');
  const f = load()?.peerCred;
  if (f === undefined) return null;
  const r = f(fd);
  if (typeof r === 'number') throw new Error(`SO_PEERCRED on fd ${fd}: errno ${r}`);
  return r;
}

/**
 * Ends the process with `code` after `ms` whatever its threads are doing (a native thread
 * calls _exit). process.exit() waits for every worker thread to stop, and one stuck in a
 * system call never does. False without the addon: then only process.exit() is left.
 */
export function exitAfter(ms: number, code: number): boolean {
  if (!Number.isInteger(ms) || ms < 0) throw new TypeError('exitAfter: ms must be a non-negative integer');
  if (!Number.isInteger(code) || code < 0 || code > 255) throw new TypeError('exitAfter: code must be 0..255');
  const f = load()?.exitAfter;
  if (f === undefined) return false;
  f(ms, code);
  return true;
}

export interface RealtimeReport {
  /** The control thread runs SCHED_FIFO at this priority; null when not permitted (why in `notes`). */
  fifoPriority: number | null;
  /** The control thread is pinned to this CPU; null when not asked or not permitted. */
  cpu: number | null;
  memoryLocked: boolean;
  notes: string[];
}

function errnoName(e: number): string {
  return e === 1 ? 'EPERM (grant LimitRTPRIO / LimitMEMLOCK in the unit)' : e === 22 ? 'EINVAL' : e === 12 ? 'ENOMEM' : `errno ${e}`;
}

/**
 * Real-time set-up of the calling thread (call it from the control worker): SCHED_FIFO at
 * `priority` (0 = leave it), pinned to `cpu` (-1 = leave it), and mlockall. Whatever is not
 * permitted is reported, not thrown: the loop still runs, just with more jitter.
 */
export function setupRealtime(priority: number, cpu: number, lockMemory: boolean): RealtimeReport {
  const a = load();
  if (a === null) return { fifoPriority: null, cpu: null, memoryLocked: false, notes: [`native addon unavailable: ${loadError ?? '?'}`] };
  const r = a.rtSetup(priority, cpu, lockMemory);
  const notes: string[] = [];
  if (priority > 0 && r.fifo) notes.push(`SCHED_FIFO ${priority}: ${errnoName(r.fifo)}`);
  if (cpu >= 0 && r.affinity) notes.push(`CPU affinity ${cpu}: ${errnoName(r.affinity)}`);
  if (lockMemory && r.mlock) notes.push(`mlockall: ${errnoName(r.mlock)}`);
  return {
    fifoPriority: priority > 0 && !r.fifo ? priority : null,
    cpu: cpu >= 0 && !r.affinity ? cpu : null,
    memoryLocked: lockMemory && !r.mlock,
    notes,
  };
}

/**
 * Keeps every thread the process has now off `cpu` (each keeps its other CPUs; threads they
 * start and processes they spawn inherit it), so that the control thread pinned there has that
 * CPU to itself: on a machine without isolated cores, an encoder or an upload on the control
 * thread's CPU delays its wake-ups even at real-time priority. Returns what could not be done,
 * in words, or null.
 */
export function keepThreadsOffCpu(cpu: number): string | null {
  const a = load();
  if (a === null) return `native addon unavailable: ${loadError ?? '?'}`;
  if (a.keepThreadsOffCpu === undefined) return 'the native addon predates keepThreadsOffCpu (npm run build:native)';
  const r = a.keepThreadsOffCpu(cpu);
  return r.error ? `keeping the other threads off CPU ${cpu}: ${errnoName(r.error)}` : null;
}

/**
 * Undoes mlockall. Call before the process exits: V8 aborts while freeing locked pages at
 * teardown (seen on Node 20), which would turn a clean stop into a crash.
 */
export function unlockMemory(): void {
  load()?.unlockMemory();
}

/** What the JS fallback of the tick clock sleeps on (Atomics.wait with a timeout). */
const SLEEPER = new Int32Array(new SharedArrayBuffer(4));

/** The control thread's clock: sleeps and reads time into a Float64Array, allocating nothing. */
export interface TickClock {
  /** Sleeps until spinMs before `deadlineMs`, spins to it, and writes the wake time into out[0]. */
  sleepThenSpin(deadlineMs: number, spinMs: number, out: Float64Array): void;
  /** out[index] = now (CLOCK_MONOTONIC, ms). */
  into(out: Float64Array, index: number): void;
}

export function tickClock(): TickClock {
  const a = load();
  if (a !== null) return { sleepThenSpin: a.sleepThenSpin, into: a.clockInto };
  // Without the addon: the same semantics from JS (allocating a little per call on Node 20).
  const now = () => Number(process.hrtime.bigint()) / 1e6;
  return {
    sleepThenSpin: (deadline, spin, out) => {
      const left = deadline - spin - now();
      if (left > 0) Atomics.wait(SLEEPER, 0, 0, left);
      while (now() < deadline) {
        // spin
      }
      out[0] = now();
    },
    into: (out, i) => {
      out[i] = now();
    },
  };
}
