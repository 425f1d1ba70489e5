// The durable outbox for events and error logs: an append-only file of JSON lines plus a small
// state file. An entry is on disk (written and fsync'd, in batches) before append() returns
// its promise; it leaves only when the broker has acknowledged it (QoS 1 PUBACK). It survives
// broker outages and process crashes; it is bounded, dropping the oldest first and counting
// every drop. Each entry carries (boot id, seq) so that the backend can deduplicate what a
// crash between publish and acknowledgement sends twice.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

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
  appended: number;
  delivered: number;
  dropped: number;
}

interface State {
  /** Entries up to here are delivered (or dropped). */
  acked: number;
  dropped: number;
}

export class Outbox {
  private readonly file: string;
  private readonly stateFile: string;
  private fd: number;
  private pending: OutboxEntry[] = [];
  private state: State = { acked: 0, dropped: 0 };
  private nextN = 1;
  private seq = 0;
  private appended = 0;
  private delivered = 0;
  private syncQueued: (() => void)[] = [];
  private syncScheduled = false;
  /** Entries handed out by take() and not yet acked or returned. */
  private inFlight = new Set<number>();

  constructor(
    dir: string,
    readonly boot: string,
    private readonly max: number,
  ) {
    mkdirSync(dir, { recursive: true });
    this.file = join(dir, 'outbox.jsonl');
    this.stateFile = join(dir, 'outbox.state.json');
    if (existsSync(this.stateFile)) {
      try {
        this.state = { ...this.state, ...(JSON.parse(readFileSync(this.stateFile, 'utf8')) as State) };
      } catch {
        // a torn state file: deliver again rather than lose (the backend deduplicates)
      }
    }
    if (existsSync(this.file)) {
      for (const line of readFileSync(this.file, 'utf8').split('\n')) {
        if (line.length === 0) continue;
        try {
          const e = JSON.parse(line) as OutboxEntry;
          this.nextN = Math.max(this.nextN, e.n + 1);
          if (e.n > this.state.acked) this.pending.push(e);
        } catch {
          // a line torn by a crash mid-write: it was never acknowledged to its writer
        }
      }
    }
    this.nextN = Math.max(this.nextN, this.state.acked + 1);
    this.compact();
    this.fd = openSync(this.file, 'a');
    this.enforceBound();
  }

  stats(): OutboxStats {
    return { pending: this.pending.length, appended: this.appended, delivered: this.delivered, dropped: this.state.dropped };
  }

  /** Appends an entry; resolves once it is on disk (fsync'd with whatever else came in the same turn). */
  append(topic: string, payload: unknown): Promise<OutboxEntry> {
    const e: OutboxEntry = { n: this.nextN++, boot: this.boot, seq: ++this.seq, ts: Date.now(), topic, payload };
    writeSync(this.fd, `${JSON.stringify(e)}\n`);
    this.pending.push(e);
    this.appended++;
    this.enforceBound();
    return new Promise((resolve) => {
      this.syncQueued.push(() => resolve(e));
      if (!this.syncScheduled) {
        this.syncScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private closed = false;

  private flush(): void {
    this.syncScheduled = false;
    if (this.closed) return;
    fsyncSync(this.fd);
    const waiting = this.syncQueued;
    this.syncQueued = [];
    for (const w of waiting) w();
  }

  /** Up to `n` of the oldest entries not in flight, to publish now. */
  take(n: number): OutboxEntry[] {
    const out: OutboxEntry[] = [];
    for (const e of this.pending) {
      if (out.length >= n) break;
      if (this.inFlight.has(e.n)) continue;
      this.inFlight.add(e.n);
      out.push(e);
    }
    return out;
  }

  /** The broker has it: the entry leaves the outbox for good. */
  ack(n: number): void {
    this.inFlight.delete(n);
    const i = this.pending.findIndex((e) => e.n === n);
    if (i < 0) return;
    this.pending.splice(i, 1);
    this.delivered++;
    this.saveAcked();
  }

  /** Publishing failed (disconnected): the entry goes back to wait for the next connection. */
  release(n: number): void {
    this.inFlight.delete(n);
  }

  private enforceBound(): void {
    const over = this.pending.length - this.max;
    if (over <= 0) return;
    const dropped = this.pending.splice(0, over);
    for (const e of dropped) this.inFlight.delete(e.n);
    this.state.dropped += over;
    this.saveAcked();
  }

  /** Everything before the oldest pending entry is done with. */
  private saveAcked(): void {
    const oldest = this.pending[0];
    this.state.acked = oldest ? oldest.n - 1 : this.nextN - 1;
    const tmp = `${this.stateFile}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.state));
    renameSync(tmp, this.stateFile);
    if (this.delivered % 1000 === 0) this.compactOpen();
  }

  /** Rewrites the log with only the pending entries (at start, and now and then). */
  private compact(): void {
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, this.pending.map((e) => `${JSON.stringify(e)}\n`).join(''));
    renameSync(tmp, this.file);
  }

  private compactOpen(): void {
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.compact();
    this.fd = openSync(this.file, 'a');
  }

  close(): void {
    if (this.closed) return;
    if (this.syncScheduled) this.flush();
    this.closed = true;
    closeSync(this.fd);
  }
}
