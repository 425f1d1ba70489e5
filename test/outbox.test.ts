// The durable outbox under a full or failing disk, a torn tail, and a large backlog. Failures
// are injected into the real filesystem calls (ENOSPC, EIO) where a real disk cannot be made to
// fail on cue, and made real with a small tmpfs where this machine lets us mount one.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Outbox, type OutboxFs } from '../src/fleet/index.js';
import { tempDir } from '../tools/testkit/daemon.js';
import { until } from '../tools/testkit/mosquitto.js';

const root = tempDir('reflex-outbox-');
let dirs = 0;
const fresh = () => join(root, `o${++dirs}`, 'outbox');
const turn = () => new Promise((r) => setImmediate(r));

type Op = 'openSync' | 'writeSync' | 'fsyncSync' | 'ftruncateSync' | 'writeFileSync' | 'renameSync' | 'unlinkSync' | 'readSync';

/** node:fs, with errors injected on cue and the work counted. */
class FaultyFs implements OutboxFs {
  readonly faults = new Map<Op, string>();
  /** The next write stores half its bytes, then the disk is full. */
  tornWrite = false;
  bytesWritten = 0;
  bytesRead = 0;
  largestRead = 0;
  calls = 0;

  private check(op: Op): void {
    this.calls++;
    const code = this.faults.get(op);
    if (code !== undefined) throw Object.assign(new Error(`${code}: injected, ${op}`), { code });
  }
  mkdirSync(path: string, opts: { recursive: true }): unknown {
    return fs.mkdirSync(path, opts);
  }
  readdirSync(path: string): string[] {
    return fs.readdirSync(path);
  }
  openSync(path: string, flags: number, mode?: number): number {
    this.check('openSync');
    return fs.openSync(path, flags, mode);
  }
  closeSync(fd: number): void {
    fs.closeSync(fd);
  }
  fstatSync(fd: number): fs.Stats {
    return fs.fstatSync(fd);
  }
  readSync(fd: number, buf: Buffer, offset: number, length: number, position: number): number {
    this.check('readSync');
    const n = fs.readSync(fd, buf, offset, length, position);
    this.bytesRead += n;
    this.largestRead = Math.max(this.largestRead, length);
    return n;
  }
  writeSync(fd: number, buf: Buffer, offset: number, length: number): number {
    if (this.tornWrite) {
      this.tornWrite = false;
      this.faults.set('writeSync', 'ENOSPC');
      const n = fs.writeSync(fd, buf, offset, Math.floor(length / 2));
      this.bytesWritten += n;
      return n;
    }
    this.check('writeSync');
    const n = fs.writeSync(fd, buf, offset, length);
    this.bytesWritten += n;
    return n;
  }
  fsyncSync(fd: number): void {
    this.check('fsyncSync');
    fs.fsyncSync(fd);
  }
  ftruncateSync(fd: number, len: number): void {
    this.check('ftruncateSync');
    fs.ftruncateSync(fd, len);
  }
  unlinkSync(path: string): void {
    this.check('unlinkSync');
    fs.unlinkSync(path);
  }
  renameSync(from: string, to: string): void {
    this.check('renameSync');
    fs.renameSync(from, to);
  }
  writeFileSync(path: string, data: string): void {
    this.check('writeFileSync');
    fs.writeFileSync(path, data);
    this.bytesWritten += Buffer.byteLength(data);
  }
}

/** Appends and says which were reported stored. */
async function appendAll(o: Outbox, is: number[], size = 0): Promise<{ stored: number[]; refused: number[] }> {
  const out = { stored: [] as number[], refused: [] as number[] };
  await Promise.all(is.map((i) => o.append('reflex/v1/t/events/x', { i, pad: 'x'.repeat(size) }).then(() => out.stored.push(i), () => out.refused.push(i))));
  out.stored.sort((a, b) => a - b);
  out.refused.sort((a, b) => a - b);
  return out;
}

/** Everything the outbox would publish, oldest first (acknowledged, so it leaves). */
function drainAll(o: Outbox): number[] {
  const out: number[] = [];
  for (;;) {
    const batch = o.take(1000);
    if (batch.length === 0) return out;
    for (const e of batch) {
      out.push((e.payload as { i: number }).i);
      o.ack(e.n);
    }
  }
}

/** Every line of every segment is whole JSON (nothing glued onto a torn line). */
function assertWholeLines(dir: string): void {
  for (const f of fs.readdirSync(dir).filter((n) => n.startsWith('seg-'))) {
    const text = fs.readFileSync(join(dir, f), 'utf8');
    assert.ok(text.length === 0 || text.endsWith('\n'), `${f} ends with a whole line`);
    for (const line of text.split('\n').filter((l) => l.length > 0)) assert.doesNotThrow(() => JSON.parse(line), `${f}: ${line.slice(0, 80)}`);
  }
}

function segmentBytes(dir: string): number {
  return fs
    .readdirSync(dir)
    .filter((n) => n.startsWith('seg-'))
    .reduce((sum, n) => sum + fs.statSync(join(dir, n)).size, 0);
}

const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, k) => a + k);

test('disk full on append: the event is refused and counted, a half-written line is cut, and everything reported stored survives a restart', async () => {
  const dir = fresh();
  const f = new FaultyFs();
  const o = new Outbox(dir, 'boot-1', 1000, { fs: f });
  assert.deepEqual((await appendAll(o, range(1, 5))).stored, range(1, 5));
  f.tornWrite = true;
  const full = await appendAll(o, [6, 7]);
  assert.deepEqual(full.refused, [6, 7]);
  assert.equal(o.stats().dropped, 2, 'what could not be stored is counted');
  assert.match(o.stats().error ?? '', /ENOSPC/);
  f.faults.clear();
  assert.deepEqual((await appendAll(o, range(8, 10))).stored, range(8, 10), 'it tries again and stores once the disk has room');
  assert.equal(o.stats().error, null);
  o.close();
  assertWholeLines(dir);
  const again = new Outbox(dir, 'boot-2', 1000);
  assert.deepEqual(drainAll(again), [1, 2, 3, 4, 5, 8, 9, 10]);
  assert.equal(again.stats().dropped, 2, 'the count survives a restart');
  again.close();
});

test('a half-written line whose cut fails too: the segment is abandoned, never read past its last whole line, and cut at the next start', async () => {
  const dir = fresh();
  const f = new FaultyFs();
  const o = new Outbox(dir, 'boot-1', 1000, { fs: f });
  await appendAll(o, range(1, 3));
  f.tornWrite = true;
  f.faults.set('ftruncateSync', 'EIO');
  assert.deepEqual((await appendAll(o, [4])).refused, [4]);
  f.faults.clear();
  assert.deepEqual((await appendAll(o, range(5, 7))).stored, range(5, 7));
  assert.deepEqual(drainAll(o), [1, 2, 3, 5, 6, 7], 'nothing read from the torn line, nothing glued onto it');
  await appendAll(o, [8]);
  // a crash: no close
  const again = new Outbox(dir, 'boot-2', 1000);
  assertWholeLines(dir);
  assert.deepEqual(drainAll(again), [8]);
  again.close();
  o.close();
});

test('a failing fsync: what it could not make durable is taken back, its appends reject, it is counted and never delivered', async () => {
  const dir = fresh();
  const f = new FaultyFs();
  const o = new Outbox(dir, 'boot-1', 1000, { fs: f });
  await appendAll(o, range(1, 3));
  f.faults.set('fsyncSync', 'EIO');
  assert.deepEqual((await appendAll(o, [4, 5])).refused, [4, 5]);
  assert.match(o.stats().error ?? '', /EIO/);
  f.faults.clear();
  assert.deepEqual((await appendAll(o, [6])).stored, [6]);
  assert.deepEqual(o.stats().dropped, 2);
  assert.deepEqual(drainAll(o), [1, 2, 3, 6]);
  o.close();
  assertWholeLines(dir);
});

test('ENOSPC while saving the state on the ack path is contained: reported, retried, and nothing is lost', async () => {
  const dir = fresh();
  const f = new FaultyFs();
  const o = new Outbox(dir, 'boot-1', 1000, { fs: f });
  await appendAll(o, range(1, 10));
  f.faults.set('writeFileSync', 'ENOSPC');
  for (const e of o.take(5)) o.ack(e.n);
  await turn();
  await turn();
  assert.equal(o.stats().delivered, 5);
  assert.match(o.stats().error ?? '', /state: ENOSPC/);
  // A crash now: the state on disk is older, so the next start resends (deduplicated on boot, seq), loses nothing.
  const crashed = new Outbox(dir, 'boot-2', 1000);
  assert.deepEqual(drainAll(crashed), range(1, 10));
  crashed.close();
  f.faults.clear();
  o.maintain();
  assert.equal(o.stats().error, null, 'saved once the disk has room');
});

test('a torn tail left by a crash is cut at the next start, and the next event is not glued onto it', async () => {
  const dir = fresh();
  const o = new Outbox(dir, 'boot-1', 1000);
  await appendAll(o, range(1, 3));
  o.close();
  const seg = fs.readdirSync(dir).find((n) => n.startsWith('seg-'))!;
  fs.appendFileSync(join(dir, seg), '{"n":4,"boot":"boot-1","seq":4,"ts":1,"topic":"reflex/v1/t/ev');
  const o2 = new Outbox(dir, 'boot-2', 1000);
  assert.ok(fs.readFileSync(join(dir, seg), 'utf8').endsWith('\n'), 'the torn line is cut');
  await appendAll(o2, [4]);
  o2.close();
  assertWholeLines(dir);
  const o3 = new Outbox(dir, 'boot-3', 1000);
  assert.deepEqual(drainAll(o3), [1, 2, 3, 4]);
  o3.close();
});

test('an outbox that cannot open (its directory under a file) refuses and counts, and opens once it can', async () => {
  const base = join(root, 'blocked');
  fs.writeFileSync(base, 'not a directory');
  const o = new Outbox(join(base, 'outbox'), 'boot-1', 1000);
  assert.match(o.stats().error ?? '', /open: .*(ENOTDIR|EEXIST)/);
  assert.deepEqual((await appendAll(o, [1, 2])).refused, [1, 2]);
  assert.equal(o.stats().dropped, 2);
  fs.rmSync(base);
  await until('opened', () => (o.maintain(), o.stats().error === null), 5000);
  assert.deepEqual((await appendAll(o, [3])).stored, [3]);
  assert.equal(o.stats().dropped, 2);
  assert.deepEqual(drainAll(o), [3]);
  o.close();
});

test('bounded in bytes: the files never exceed the bound, the oldest go first, and every drop is counted', async () => {
  const dir = fresh();
  const maxBytes = 64 * 1024;
  const o = new Outbox(dir, 'boot-1', 1_000_000, { maxBytes });
  for (let k = 0; k < 30; k++) {
    await appendAll(o, range(k * 100 + 1, k * 100 + 100), 60);
    assert.ok(segmentBytes(dir) <= maxBytes, `${segmentBytes(dir)} bytes on disk after ${(k + 1) * 100} events`);
  }
  const s = o.stats();
  assert.equal(s.bytes, segmentBytes(dir));
  assert.ok(s.dropped > 0);
  assert.equal(s.pending + s.dropped, 3000);
  o.close();
  const again = new Outbox(dir, 'boot-2', 1_000_000, { maxBytes });
  assert.equal(again.stats().pending, s.pending);
  assert.deepEqual(drainAll(again), range(3001 - s.pending, 3000), 'the newest kept, in order');
  again.close();
});

test('a full outbox appends in constant work: what one event writes does not grow with what the outbox holds', async () => {
  const perEvent = async (max: number) => {
    const f = new FaultyFs();
    const o = new Outbox(fresh(), 'boot-1', max, { fs: f });
    for (let k = 0; k < max + 500; k += 1000) await appendAll(o, range(k + 1, k + 1000));
    assert.equal(o.stats().pending, max, 'full');
    f.bytesWritten = 0;
    f.calls = 0;
    // One event per turn, as a log storm arrives: each is written, synced and drops the oldest.
    for (let i = 0; i < 100; i++) await appendAll(o, [1_000_000 + i]);
    await turn();
    const out = { bytes: f.bytesWritten / 100, calls: f.calls / 100 };
    o.close();
    return out;
  };
  const small = await perEvent(1000);
  const large = await perEvent(30_000);
  // Before: every event past the bound rewrote the whole file (30,000 lines), on the main thread.
  assert.ok(large.bytes < 1024, `${large.bytes} bytes written per event`);
  assert.ok(large.bytes <= small.bytes * 1.2 + 16, `per event: ${large.bytes} bytes with 30,000 held, ${small.bytes} with 1,000`);
  assert.ok(large.calls <= small.calls + 1, `per event: ${large.calls} calls with 30,000 held, ${small.calls} with 1,000`);
});

test('a large outbox is never read whole: it opens reading a few KiB, then streams in order', () => {
  const dir = fresh();
  fs.mkdirSync(dir, { recursive: true });
  // An outbox of an earlier version (one file), 150,000 events, about 24 MiB.
  const n = 150_000;
  const fd = fs.openSync(join(dir, 'outbox.jsonl'), 'w');
  const lines: string[] = [];
  for (let i = 1; i <= n; i++) {
    lines.push(`${JSON.stringify({ n: i, boot: 'old', seq: i, ts: 1, topic: 'reflex/v1/t/events/x', payload: { i, pad: 'x'.repeat(90) } })}\n`);
    if (lines.length === 10_000) fs.writeSync(fd, lines.splice(0).join(''));
  }
  fs.closeSync(fd);
  const size = fs.statSync(join(dir, 'outbox.jsonl')).size;
  assert.ok(size > 20 * 1024 * 1024);
  const f = new FaultyFs();
  const o = new Outbox(dir, 'boot-1', 1_000_000, { fs: f });
  assert.equal(o.stats().pending, n);
  assert.ok(f.bytesRead < 256 * 1024, `opening read ${f.bytesRead} bytes of ${size}`);
  assert.deepEqual(
    o.take(3).map((e) => (e.payload as { i: number }).i),
    [1, 2, 3],
  );
  assert.ok(f.largestRead <= 128 * 1024, `reads of at most a line and a chunk (largest ${f.largestRead})`);
  const all = drainAll(o);
  assert.equal(all.length, n - 3);
  assert.equal(all.at(-1), n);
  o.close();
});

// A real full disk: a small tmpfs (root only; elsewhere the injected failures above stand in).
const mnt = join(root, 'tmpfs');
fs.mkdirSync(mnt);
const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mnt]).status === 0;
after(() => {
  if (mounted) spawnSync('umount', ['-l', mnt]);
});

/** Fills the filesystem with a file until it is full; returns its path. */
function fill(dir: string): string {
  const path = join(dir, 'filler');
  const fd = fs.openSync(path, 'w');
  const block = Buffer.alloc(4096, 1);
  try {
    for (;;) fs.writeSync(fd, block);
  } catch (err) {
    assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
  } finally {
    fs.closeSync(fd);
  }
  return path;
}

test('a real full disk (tmpfs): refused and counted while full, nothing stored is lost, and it recovers when space returns', { skip: mounted ? false : 'cannot mount a tmpfs here (not root)' }, async () => {
  const dir = join(mnt, 'outbox');
  const o = new Outbox(dir, 'boot-1', 10_000, { maxBytes: 1024 * 1024 });
  const before = await appendAll(o, range(1, 5), 500);
  assert.deepEqual(before.stored, range(1, 5));
  const filler = fill(mnt);
  const during = await appendAll(o, range(6, 40), 500);
  assert.ok(during.refused.length > 0, 'the disk is full');
  assert.equal(o.stats().dropped, during.refused.length);
  assert.match(o.stats().error ?? '', /ENOSPC/);
  // A restart with the disk still full opens (before: it failed to start).
  const whileFull = new Outbox(dir, 'boot-x', 10_000, { maxBytes: 1024 * 1024 });
  assert.equal(whileFull.stats().error, null);
  assert.equal(whileFull.stats().pending, before.stored.length + during.stored.length);
  whileFull.close();
  fs.rmSync(filler);
  const afterwards = await appendAll(o, range(41, 45), 500);
  assert.deepEqual(afterwards.stored, range(41, 45));
  o.maintain(); // the link calls it every 100 ms: the state is saved again
  assert.equal(o.stats().error, null);
  o.close();
  assertWholeLines(dir);
  const again = new Outbox(dir, 'boot-2', 10_000, { maxBytes: 1024 * 1024 });
  assert.deepEqual(drainAll(again), [...before.stored, ...during.stored, ...afterwards.stored]);
  assert.equal(again.stats().dropped, during.refused.length);
  again.close();
});
