// The durable outbox for events and error logs. An entry is on disk (written and fsync'd, in
// batches) before append() resolves; it leaves only when the broker has acknowledged it (QoS 1
// PUBACK). It survives broker outages and process crashes; it is bounded in entries and in
// bytes, dropping the oldest first and counting every drop. Each entry carries (boot id, seq) so
// that the backend can deduplicate what a crash between publish and acknowledgement sends twice.
//
// On disk: segment files of JSON lines (`seg-<first n>.jsonl`, appended, never rewritten) and a
// small state file ({acked, dropped}: every entry up to `acked` is done). Appending, dropping and
// acknowledging cost the same whatever the outbox holds: a full outbox drops by moving `acked`
// (and unlinks a segment once all of it is done, or whole when the byte bound needs room), and
// entries are read back from disk a chunk at a time as they are published, never all at once.
//
// A full or failing disk is contained: an entry that cannot be written, or whose fsync fails, is
// taken back (the file truncated to its last good line), its append() rejects and it is counted
// as dropped; the outbox reports the error and tries again with the next entry. A line torn by
// a crash or a failed write is never read and is cut when the outbox next opens.
import * as nodeFs from 'node:fs';
import { join } from 'node:path';

/** The file operations the outbox makes (node:fs; a test passes one that fails on purpose). */
export interface OutboxFs {
  mkdirSync(path: string, opts: { recursive: true }): unknown;
  readdirSync(path: string): string[];
  openSync(path: string, flags: number, mode?: number): number;
  closeSync(fd: number): void;
  fstatSync(fd: number): { size: number; isFile(): boolean };
  readSync(fd: number, buf: Buffer, offset: number, length: number, position: number): number;
  writeSync(fd: number, buf: Buffer, offset: number, length: number): number;
  fsyncSync(fd: number): void;
  ftruncateSync(fd: number, len: number): void;
  unlinkSync(path: string): void;
  renameSync(from: string, to: string): void;
  writeFileSync(path: string, data: string): void;
}

export interface OutboxEntry {
  /** Position in the outbox, increasing across restarts. */
  n: number;
  boot: string;
  seq: number;
  /** ms since the epoch, when it was appended. */
  ts: number;
  topic: string;
  payload: unknown;
}

export interface OutboxStats {
  pending: number;
  /** Bytes of the segment files on disk. */
  bytes: number;
  appended: number;
  delivered: number;
  /** Dropped by a bound, or never stored (disk full, failed write): counted across restarts. */
  dropped: number;
  /** The last storage error while one persists (cleared once that operation succeeds again). */
  error: string | null;
}

export interface OutboxOptions {
  /** Bound on the bytes on disk; past it the oldest segment is dropped whole. */
  maxBytes?: number;
  fs?: OutboxFs;
}

interface Segment {
  /** Every entry in the segment has n >= first (the next segment's first is its end). */
  first: number;
  path: string;
  /** Bytes of complete lines: what may be read. A torn tail past it is never read. */
  size: number;
  /** Bytes known to be on disk (fsync'd). The reader never reads past them. */
  synced: number;
}

interface Waiter {
  entry: OutboxEntry;
  resolve: (e: OutboxEntry) => void;
  reject: (err: Error) => void;
}

const { O_RDONLY, O_RDWR, O_WRONLY, O_CREAT, O_TRUNC, O_APPEND, O_NOFOLLOW, O_NONBLOCK, O_DIRECTORY } = nodeFs.constants;
const SEGMENT = /^seg-(\d{16})\.jsonl$/;
const CHUNK = 64 * 1024;
const NL = 0x0a;
const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;
/** How often a broken outbox (say, a read-only state dir) tries to open again. */
const REOPEN_MS = 1000;

export class Outbox {
  private readonly fs: OutboxFs;
  private readonly stateFile: string;
  private readonly maxBytes: number;
  /** Segments rotate past this size, so the byte bound can drop the oldest whole. */
  private readonly segmentBytes: number;
  /** The largest entry accepted (a line); anything bigger is refused and counted. */
  private readonly maxLine: number;
  private opened = false;
  private closed = false;
  private lastOpenAttempt = -Infinity;
  private segments: Segment[] = [];
  /** The segment appends go to, and its file descriptor. */
  private current: Segment | null = null;
  private fd: number | null = null;
  private bytes = 0;
  /** Every entry with n <= head is done (delivered or dropped). Persisted as `acked`. */
  private head = 0;
  /** Entries after head that are done already (acknowledged out of order, or found missing). */
  private done = new Set<number>();
  private nextN = 1;
  private seq = 0;
  private appended = 0;
  private delivered = 0;
  private dropped = 0;
  private waiters: Waiter[] = [];
  private syncScheduled = false;
  private saveScheduled = false;
  private stateDirty = false;
  /** Handed out by take() and not yet acknowledged or released. */
  private inFlight = new Map<number, OutboxEntry>();
  /** Released after a failed publish: handed out again first. */
  private retry: OutboxEntry[] = [];
  /** Entries read from disk and not handed out yet (one chunk's worth at most). */
  private ready: OutboxEntry[] = [];
  private readyAt = 0;
  private cursor: { seg: Segment | null; offset: number; fd: number | null; lastN: number } = { seg: null, offset: 0, fd: null, lastN: 0 };
  /** Segment files to unlink (retried when an unlink failed). */
  private unlinkQueue: string[] = [];
  private readonly failures = new Map<string, string>();
  private lastError: string | null = null;
  private readonly chunk = Buffer.allocUnsafe(CHUNK);

  constructor(
    private readonly dir: string,
    readonly boot: string,
    private readonly maxEntries: number,
    opts: OutboxOptions = {},
  ) {
    this.fs = opts.fs ?? nodeFs;
    this.stateFile = join(dir, 'outbox.state.json');
    this.maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
    this.segmentBytes = Math.max(4096, Math.floor(this.maxBytes / 16));
    this.maxLine = Math.min(64 * 1024, this.segmentBytes);
    this.tryOpen();
  }

  stats(): OutboxStats {
    return {
      pending: this.pendingCount(),
      bytes: this.bytes,
      appended: this.appended,
      delivered: this.delivered,
      dropped: this.dropped,
      error: this.failures.size > 0 ? this.lastError : null,
    };
  }

  /** Appends an entry; resolves once it is on disk (fsync'd with whatever else came in the same turn). */
  append(topic: string, payload: unknown): Promise<OutboxEntry> {
    if (this.closed) return Promise.reject(new Error('the outbox is closed'));
    if (!this.opened && !this.tryOpen()) return this.refuse(new Error(`the outbox cannot open: ${this.lastError ?? 'unknown'}`));
    const entry = (): [OutboxEntry, Buffer] => {
      const e: OutboxEntry = { n: this.nextN, boot: this.boot, seq: this.seq + 1, ts: Date.now(), topic, payload };
      return [e, Buffer.from(`${JSON.stringify(e)}\n`)];
    };
    let e: OutboxEntry;
    let line: Buffer;
    try {
      [e, line] = entry();
    } catch (err) {
      return this.refuse(asError(err)); // not serializable (a cycle, a BigInt)
    }
    if (line.length > this.maxLine) return this.refuse(new Error(`an event of ${line.length} bytes is over the outbox's ${this.maxLine}`));
    try {
      // Making room may sync and retire the segment, and a failed sync takes entries back
      // (their numbers are used again): number the entry after it.
      this.makeRoom(line.length + 16);
      if (e.n !== this.nextN) [e, line] = entry();
      this.write(line);
    } catch (err) {
      this.fail('append', err);
      return this.refuse(asError(err));
    }
    this.succeed('append');
    this.nextN++;
    this.seq++;
    this.appended++;
    while (this.pendingCount() > this.maxEntries) this.dropOldest();
    return new Promise((resolve, reject) => {
      this.waiters.push({ entry: e, resolve, reject });
      if (!this.syncScheduled) {
        this.syncScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Up to `n` of the oldest entries not in flight, to publish now. */
  take(n: number): OutboxEntry[] {
    const out: OutboxEntry[] = [];
    if (!this.opened) return out;
    // Only what is on disk goes out (a failed fsync takes entries back and uses their numbers
    // again): what was appended this turn is synced now rather than left behind.
    if (this.current !== null && this.current.synced < this.current.size) this.flush();
    if (this.retry.length > 0) {
      this.retry.sort((a, b) => a.n - b.n);
      while (out.length < n && this.retry.length > 0) {
        const e = this.retry.shift()!;
        if (this.isPending(e.n) && !this.inFlight.has(e.n)) this.handOut(e, out);
      }
    }
    while (out.length < n) {
      if (this.readyAt >= this.ready.length && !this.fill()) break;
      const e = this.ready[this.readyAt++]!;
      if (this.isPending(e.n) && !this.inFlight.has(e.n)) this.handOut(e, out);
    }
    return out;
  }

  /** The broker has it: the entry leaves the outbox for good. */
  ack(n: number): void {
    this.inFlight.delete(n);
    if (!this.isPending(n)) return;
    this.delivered++;
    this.markDone(n);
    this.scheduleSave();
  }

  /** An entry that must not go out (not a topic this device publishes): it leaves, counted as dropped. */
  discard(n: number): void {
    this.inFlight.delete(n);
    if (!this.isPending(n)) return;
    this.dropped++;
    this.markDone(n);
    this.scheduleSave();
  }

  /** Publishing failed (disconnected): the entry goes back to wait for the next connection. */
  release(n: number): void {
    const e = this.inFlight.get(n);
    this.inFlight.delete(n);
    if (e && this.isPending(n)) this.retry.push(e);
  }

  /** Retries what failed earlier (opening, saving the state, unlinking); call it now and then. */
  maintain(): void {
    if (this.closed) return;
    if (!this.opened) {
      this.tryOpen();
      return;
    }
    if (this.stateDirty && !this.saveScheduled) this.saveState();
    if (this.unlinkQueue.length > 0) this.unlinkDone();
  }

  close(): void {
    if (this.closed) return;
    if (this.opened) {
      this.flush();
      this.saveState();
    }
    this.closed = true;
    this.closeFd(this.fd);
    this.closeFd(this.cursor.fd);
    this.fd = null;
    this.cursor.fd = null;
  }

  // --- opening -------------------------------------------------------------------------------

  private tryOpen(): boolean {
    const now = performance.now();
    if (now - this.lastOpenAttempt < REOPEN_MS) return false;
    this.lastOpenAttempt = now;
    try {
      this.open();
    } catch (err) {
      this.segments = [];
      this.bytes = 0;
      this.head = 0;
      this.done.clear();
      this.unlinkQueue = [];
      this.fail('open', err);
      return false;
    }
    this.opened = true;
    this.succeed('open');
    // Drops made while opening (or while the outbox could not open) are saved before any
    // segment they emptied is unlinked.
    if (this.stateDirty) this.saveState();
    this.unlinkDone();
    return true;
  }

  private open(): void {
    const fs = this.fs;
    fs.mkdirSync(this.dir, { recursive: true });
    const saved = this.loadState();
    this.head = saved.acked;
    this.adoptLegacy();
    const names = fs
      .readdirSync(this.dir)
      .filter((f) => SEGMENT.test(f))
      .sort();
    let lastN = this.head;
    for (const name of names) {
      const path = join(this.dir, name);
      let fd: number;
      try {
        fd = fs.openSync(path, O_RDWR | O_NOFOLLOW | O_NONBLOCK);
      } catch (err) {
        // Not a segment we wrote (a link, a directory): left alone. Anything else (EIO) is
        // an outbox that cannot open yet.
        if (['ELOOP', 'EISDIR', 'ENOENT'].includes((err as NodeJS.ErrnoException).code ?? '')) continue;
        throw err;
      }
      try {
        const st = fs.fstatSync(fd);
        if (!st.isFile()) continue;
        // A line torn by a crash (or a write the disk refused) is cut, so nothing is ever
        // appended onto it; where the cut itself fails, it is never read.
        const size = this.lastLineEnd(fd, st.size);
        if (size < st.size) {
          try {
            fs.ftruncateSync(fd, size);
          } catch {
            // left on disk past `size`, never read; the next segment starts a new file
          }
        }
        if (size === 0) {
          this.unlinkQueue.push(path);
          continue;
        }
        const seg: Segment = { first: Number(SEGMENT.exec(name)![1]), path, size, synced: size };
        this.segments.push(seg);
        this.bytes += size;
      } finally {
        fs.closeSync(fd);
      }
    }
    const last = this.segments.at(-1);
    if (last !== undefined) lastN = Math.max(lastN, this.lastEntryN(last));
    this.nextN = Math.max(this.head, lastN) + 1;
    // Counted while it could not open, on top of what was saved.
    this.dropped += saved.dropped;
    this.cursor = { seg: this.segments[0] ?? null, offset: 0, fd: null, lastN: this.head };
    this.collect();
    // Appends go to a fresh segment: never after a tail that may be torn.
    while (this.pendingCount(true) > this.maxEntries) this.dropOldest();
    while (this.bytes > this.maxBytes && this.segments.length > 0) this.dropSegment();
  }

  private loadState(): { acked: number; dropped: number } {
    const out = { acked: 0, dropped: 0 };
    let fd: number;
    try {
      fd = this.fs.openSync(this.stateFile, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return out;
      throw err;
    }
    try {
      const st = this.fs.fstatSync(fd);
      if (!st.isFile() || st.size > 4096) return out;
      const buf = Buffer.alloc(st.size);
      const got = this.fs.readSync(fd, buf, 0, st.size, 0);
      const s = JSON.parse(buf.subarray(0, got).toString('utf8')) as Partial<Record<'acked' | 'dropped', unknown>>;
      if (Number.isSafeInteger(s.acked) && (s.acked as number) >= 0) out.acked = s.acked as number;
      if (Number.isSafeInteger(s.dropped) && (s.dropped as number) >= 0) out.dropped = s.dropped as number;
    } catch {
      // a torn state file: deliver again rather than lose (the backend deduplicates)
    } finally {
      this.fs.closeSync(fd);
    }
    return out;
  }

  /** The single-file outbox of earlier versions becomes the oldest segment. */
  private adoptLegacy(): void {
    const legacy = join(this.dir, 'outbox.jsonl');
    let fd: number;
    try {
      fd = this.fs.openSync(legacy, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
    } catch {
      return;
    }
    let first = this.head + 1;
    try {
      const buf = Buffer.alloc(64);
      const got = this.fs.readSync(fd, buf, 0, buf.length, 0);
      first = entryN(buf.subarray(0, got).toString('utf8')) ?? first;
    } finally {
      this.fs.closeSync(fd);
    }
    this.fs.renameSync(legacy, join(this.dir, segmentName(first)));
  }

  /** The end of the last complete line (0 when there is none). */
  private lastLineEnd(fd: number, size: number): number {
    const buf = Buffer.alloc(Math.min(CHUNK, size));
    for (let end = size; end > 0; ) {
      const start = Math.max(0, end - buf.length);
      const got = this.fs.readSync(fd, buf, 0, end - start, start);
      const i = buf.subarray(0, got).lastIndexOf(NL);
      if (i >= 0) return start + i + 1;
      end = start;
    }
    return 0;
  }

  /** The n of the newest entry in a segment: its last line, or a scan where that line is damaged. */
  private lastEntryN(seg: Segment): number {
    const fd = this.fs.openSync(seg.path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
    try {
      const len = Math.min(seg.size, this.maxLine + 1);
      const buf = Buffer.alloc(len);
      const got = this.fs.readSync(fd, buf, 0, len, seg.size - len);
      const text = buf.subarray(0, got).toString('utf8');
      const n = entryN(text.slice(text.lastIndexOf('\n', text.length - 2) + 1));
      if (n !== null) return n;
      // Rare: a damaged last line. Read the segment through, a chunk at a time.
      let max = seg.first - 1;
      this.scan(fd, 0, seg.size, false, (line) => (max = Math.max(max, entryN(line) ?? max)));
      return max;
    } finally {
      this.fs.closeSync(fd);
    }
  }

  // --- writing -------------------------------------------------------------------------------

  /** Room for `len` more bytes: the oldest segments dropped whole past the byte bound, a new segment past the segment size. */
  private makeRoom(len: number): void {
    if (this.current !== null && this.current.size > 0 && this.current.size + len > this.segmentBytes) this.retire();
    while (this.bytes + len > this.maxBytes && this.segments.length > 0 && this.segments[0] !== this.current) this.dropSegment();
    if (this.current === null) this.startSegment();
  }

  /** Writes one line whole, or takes the part written back and throws. */
  private write(line: Buffer): void {
    const seg = this.current!;
    const fd = this.fd!;
    let off = 0;
    try {
      while (off < line.length) off += this.fs.writeSync(fd, line, off, line.length - off);
    } catch (err) {
      // Part of the line may be in the file: cut it, so that nothing is appended onto it.
      if (off > 0 && !this.cutBack(seg, seg.size)) this.retire();
      throw err;
    }
    seg.size += line.length;
    this.bytes += line.length;
  }

  private startSegment(): void {
    const seg: Segment = { first: this.nextN, path: join(this.dir, segmentName(this.nextN)), size: 0, synced: 0 };
    // A segment of this name can hold nothing complete (its n would be below nextN): a torn
    // line at most, which O_TRUNC clears.
    this.fd = this.fs.openSync(seg.path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_NOFOLLOW, 0o600);
    this.unlinkQueue = this.unlinkQueue.filter((p) => p !== seg.path);
    // The new file's name is made durable too, or a power cut could lose a synced segment.
    try {
      const dir = this.fs.openSync(this.dir, O_RDONLY | O_DIRECTORY);
      try {
        this.fs.fsyncSync(dir);
      } finally {
        this.fs.closeSync(dir);
      }
    } catch (err) {
      this.fs.closeSync(this.fd);
      this.fd = null;
      throw err;
    }
    this.current = seg;
    this.segments.push(seg);
  }

  /** Makes what is written durable and closes the segment to appends (the next append starts another). */
  private retire(): void {
    this.flush();
    this.closeFd(this.fd);
    this.fd = null;
    this.current = null;
  }

  /**
   * Truncates the current segment back to `size` after a failed write or fsync. Where even
   * that fails, the caller abandons the segment: nothing more is appended to it, and the
   * reader (now, and after a restart when the tail is cut) never reads past `size`.
   */
  private cutBack(seg: Segment, size: number): boolean {
    let ok = true;
    try {
      this.fs.ftruncateSync(this.fd!, size);
    } catch (err) {
      this.fail('truncate', err);
      ok = false;
    }
    this.bytes -= seg.size - size;
    seg.size = size;
    seg.synced = Math.min(seg.synced, size);
    return ok;
  }

  private flush(): void {
    this.syncScheduled = false;
    const seg = this.current;
    const waiting = this.waiters;
    this.waiters = [];
    if (seg !== null && this.fd !== null && seg.synced < seg.size) {
      try {
        this.fs.fsyncSync(this.fd);
        seg.synced = seg.size;
        this.succeed('sync');
      } catch (err) {
        this.fail('sync', err);
        this.takeBack(seg, waiting, asError(err));
        return;
      }
    }
    for (const w of waiting) w.resolve(w.entry);
  }

  /**
   * An fsync failed: what was written since the last good one may not be on disk. None of it
   * was reported stored, so it is taken back, its appends reject, and it is counted as dropped.
   */
  private takeBack(seg: Segment, waiting: Waiter[], err: Error): void {
    const first = waiting[0]?.entry.n ?? this.nextN;
    const truncated = this.cutBack(seg, seg.synced);
    if (truncated && first > this.head) {
      // Never read by anyone (the reader stops at `synced`): the numbers are used again.
      this.nextN = first;
      this.seq -= waiting.length;
      this.dropped += waiting.length;
    } else {
      for (const w of waiting) {
        if (!this.isPending(w.entry.n)) continue; // dropped by the bound already, and counted
        this.dropped++;
        this.markDone(w.entry.n);
      }
    }
    if (!truncated) {
      this.closeFd(this.fd);
      this.fd = null;
      this.current = null;
    }
    this.scheduleSave();
    for (const w of waiting) w.reject(err);
  }

  private refuse(err: Error): Promise<never> {
    this.dropped++;
    this.scheduleSave();
    return Promise.reject(err);
  }

  // --- dropping and acknowledging -------------------------------------------------------------

  private pendingCount(opening = false): number {
    return this.opened || opening ? this.nextN - 1 - this.head - this.done.size : 0;
  }

  private isPending(n: number): boolean {
    return n > this.head && n < this.nextN && !this.done.has(n);
  }

  private markDone(n: number): void {
    if (n !== this.head + 1) {
      this.done.add(n);
      return;
    }
    this.head = n;
    while (this.done.delete(this.head + 1)) this.head++;
    this.collect();
  }

  private dropOldest(): void {
    this.dropped++;
    this.markDone(this.head + 1);
    this.scheduleSave();
  }

  /** Drops the oldest segment whole (the byte bound): what it still held is counted. */
  private dropSegment(): void {
    const seg = this.segments[0]!;
    const end = (this.segments[1]?.first ?? this.nextN) - 1;
    if (end > this.head) {
      let doneIn = 0;
      for (const n of this.done) {
        if (n > end) continue;
        this.done.delete(n);
        doneIn++;
      }
      this.dropped += end - this.head - doneIn;
      this.head = end;
    }
    while (this.done.delete(this.head + 1)) this.head++;
    this.forget(seg);
    this.collect();
  }

  /** Unlinks the segments everything in which is done (all but the current one). */
  private collect(): void {
    while (this.segments.length > 1 && this.segments[1]!.first - 1 <= this.head && this.segments[0] !== this.current) this.forget(this.segments[0]!);
  }

  private forget(seg: Segment): void {
    this.segments.splice(this.segments.indexOf(seg), 1);
    this.bytes -= seg.size;
    if (seg === this.current) {
      this.closeFd(this.fd);
      this.fd = null;
      this.current = null;
    }
    if (this.cursor.seg === seg) {
      this.closeFd(this.cursor.fd);
      this.cursor = { seg: this.segments[0] ?? null, offset: 0, fd: null, lastN: Math.max(this.cursor.lastN, this.head) };
    }
    this.unlinkQueue.push(seg.path);
    this.stateDirty = true;
    if (!this.opened) return; // opening: saved and unlinked once it has opened
    // The state that makes the file unnecessary is saved first where it can be (then a crash
    // in between only resends). The file goes even where it cannot: on a full disk the space
    // is what is needed, and a restart counts what it no longer finds as dropped.
    this.saveState();
    this.unlinkDone();
  }

  private unlinkDone(): void {
    const queue = this.unlinkQueue;
    this.unlinkQueue = [];
    for (const path of queue) {
      try {
        this.fs.unlinkSync(path);
        this.succeed('unlink');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        this.fail('unlink', err);
        this.unlinkQueue.push(path);
      }
    }
  }

  private scheduleSave(): void {
    this.stateDirty = true;
    if (this.saveScheduled || !this.opened) return;
    this.saveScheduled = true;
    setImmediate(() => {
      this.saveScheduled = false;
      if (!this.closed) this.saveState();
    });
  }

  private saveState(): void {
    if (!this.stateDirty) return;
    const tmp = `${this.stateFile}.tmp`;
    try {
      this.fs.writeFileSync(tmp, JSON.stringify({ acked: this.head, dropped: this.dropped }));
      this.fs.renameSync(tmp, this.stateFile);
      this.stateDirty = false;
      this.succeed('state');
    } catch (err) {
      // Kept in memory and saved again later; a crash meanwhile only resends (deduplicated).
      this.fail('state', err);
      return;
    }
    this.unlinkDone();
  }

  // --- reading back --------------------------------------------------------------------------

  private handOut(e: OutboxEntry, out: OutboxEntry[]): void {
    this.inFlight.set(e.n, e);
    out.push(e);
  }

  /** Reads the next chunk of entries from disk into `ready`; false when there is nothing more. */
  private fill(): boolean {
    this.ready = [];
    this.readyAt = 0;
    while (this.ready.length === 0) {
      const c = this.cursor;
      if (c.seg === null || !this.segments.includes(c.seg)) {
        this.closeFd(c.fd);
        this.cursor = { seg: this.segments[0] ?? null, offset: 0, fd: null, lastN: Math.max(c.lastN, this.head) };
        if (this.cursor.seg === null) return false;
        continue;
      }
      const seg = c.seg;
      const limit = seg === this.current ? seg.synced : seg.size;
      if (c.offset >= limit) {
        const next = this.segments[this.segments.indexOf(seg) + 1];
        if (next === undefined) return false;
        this.closeFd(c.fd);
        this.cursor = { seg: next, offset: 0, fd: null, lastN: c.lastN };
        continue;
      }
      try {
        c.fd ??= this.fs.openSync(seg.path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
        const from = c.offset;
        c.offset = this.scan(c.fd, from, limit, true, (line) => this.readLine(line));
        if (c.offset === from) throw new Error(`${seg.path} is shorter than written`);
        this.succeed('read');
      } catch (err) {
        this.fail('read', err);
        // A segment removed behind our back: what it held is gone, counted, once it is the oldest.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' && seg === this.segments[0] && seg !== this.current) this.dropSegment();
        return false;
      }
    }
    return true;
  }

  /**
   * Calls `each` for every complete line in [from, limit) of a file, a chunk at a time (only
   * the first chunk when `once`); returns the end of the last line it passed.
   */
  private scan(fd: number, from: number, limit: number, once: boolean, each: (line: string) => void): number {
    let off = from;
    let want = CHUNK;
    while (off < limit) {
      const len = Math.min(want, limit - off);
      const buf = len <= CHUNK ? this.chunk : Buffer.allocUnsafe(len);
      const got = this.fs.readSync(fd, buf, 0, len, off);
      const end = buf.subarray(0, got).lastIndexOf(NL);
      if (end < 0) {
        // A line longer than the chunk: read a bigger one. Nothing more to read: a file
        // shorter than we knew, read again later.
        if (got < len) return off;
        want *= 2;
        continue;
      }
      for (const line of buf.toString('utf8', 0, end).split('\n')) if (line.length > 0) each(line);
      off += end + 1;
      want = CHUNK;
      if (once) break;
    }
    return off;
  }

  private readLine(line: string): void {
    const c = this.cursor;
    const e = parseEntry(line);
    if (e === null || e.n <= c.lastN) return; // damaged (say, torn by an older version): its number shows up as a gap
    // Numbers skipped between two good lines belong to entries that never made it whole.
    for (let n = Math.max(c.lastN, this.head) + 1; n < e.n; n++) {
      if (this.isPending(n)) {
        this.dropped++;
        this.markDone(n);
        this.scheduleSave();
      }
    }
    c.lastN = e.n;
    if (this.isPending(e.n)) this.ready.push(e);
  }

  // --- errors --------------------------------------------------------------------------------

  private fail(op: string, err: unknown): void {
    this.lastError = `${op}: ${err instanceof Error ? err.message : String(err)}`;
    this.failures.set(op, this.lastError);
  }

  private succeed(op: string): void {
    if (this.failures.delete(op) && this.failures.size > 0) this.lastError = [...this.failures.values()].at(-1)!;
  }

  private closeFd(fd: number | null): void {
    if (fd === null) return;
    try {
      this.fs.closeSync(fd);
    } catch {
      // closing cannot be retried; the descriptor is gone either way
    }
  }
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function segmentName(first: number): string {
  return `seg-${String(first).padStart(16, '0')}.jsonl`;
}

/** The n at the start of a line (`{"n":123,`), without parsing the rest. */
function entryN(line: string): number | null {
  const m = /^\{"n":(\d{1,15}),/.exec(line);
  return m ? Number(m[1]) : null;
}

function parseEntry(line: string): OutboxEntry | null {
  try {
    const e = JSON.parse(line) as Partial<OutboxEntry> | null;
    if (e === null || typeof e !== 'object' || !Number.isSafeInteger(e.n) || typeof e.topic !== 'string' || typeof e.boot !== 'string' || typeof e.seq !== 'number' || typeof e.ts !== 'number') return null;
    return e as OutboxEntry;
  } catch {
    return null;
  }
}
