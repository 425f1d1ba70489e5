// The update record on a real disk: what a power cut at any instant of a write leaves behind is
// read back as the last record that was completely written, never as garbage, never as nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, truncateSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { MAX_TRANSITIONS, STORE_FILES, UpdateStore, type JobRecord } from '../src/ota/index.js';
import { tempDir } from '../tools/testkit/daemon.js';

function job(jobId: string): JobRecord {
  const now = Date.now();
  return { jobId, origin: 'fleet', bundle: { name: 'reach', version: '2', url: 'http://h/b.tar', sha256: 'a'.repeat(64), size: 10 }, state: 'QUEUED', step: null, transitions: 0, createdAt: now, updatedAt: now, reason: null, stagedDir: null };
}

function withJob(store: UpdateStore, id: string): void {
  store.save({ ...store.record, job: job(id) });
}

test('every transition is on disk at once: a new store reads the latest', () => {
  const dir = tempDir();
  const a = new UpdateStore(dir);
  withJob(a, 'j1');
  a.transition('IN_PROGRESS', 'download');
  a.transition('IN_PROGRESS', 'verify', null, { stagedDir: '/x' });
  const b = new UpdateStore(dir);
  assert.equal(b.record.job?.step, 'verify');
  assert.equal(b.record.job?.stagedDir, '/x');
  assert.equal(b.record.job?.transitions, 2);
  assert.deepEqual(b.opened.damaged, []);
  assert.ok(!readdirSync(dir).some((f) => f.endsWith('.tmp')), 'no temp file left');
});

test('a record torn by a power cut (truncated, garbled, emptied) is detected and the previous one is used', () => {
  for (const tear of ['truncate', 'garble', 'empty'] as const) {
    const dir = tempDir();
    const a = new UpdateStore(dir);
    withJob(a, 'j1');
    a.transition('IN_PROGRESS', 'download');
    const before = a.record.seq;
    a.transition('IN_PROGRESS', 'verify');
    // The newest write went to the slot of its sequence number.
    const newest = join(dir, STORE_FILES[a.record.seq % 2]!);
    const size = statSync(newest).size;
    if (tear === 'truncate') truncateSync(newest, Math.floor(size / 2));
    else if (tear === 'empty') truncateSync(newest, 0);
    else {
      const text = readFileSync(newest, 'utf8');
      writeFileSync(newest, text.replace('verify', 'trial!'));
    }
    const b = new UpdateStore(dir);
    assert.equal(b.record.seq, before, `${tear}: the older, intact record`);
    assert.equal(b.record.job?.step, 'download', tear);
    assert.equal(b.opened.damaged.length, 1, tear);
    // And writing on goes on from there, into the damaged slot.
    b.transition('IN_PROGRESS', 'verify');
    assert.equal(new UpdateStore(dir).record.job?.step, 'verify', tear);
    assert.deepEqual(new UpdateStore(dir).opened.damaged, [], tear);
  }
});

test('a kill in the middle of a write leaves a temp file: ignored and removed', () => {
  const dir = tempDir();
  const a = new UpdateStore(dir);
  withJob(a, 'j1');
  writeFileSync(join(dir, `${STORE_FILES[0]}.tmp`), '{"sha256":"half');
  const b = new UpdateStore(dir);
  assert.equal(b.record.job?.jobId, 'j1');
  assert.deepEqual(b.opened.damaged, []);
  assert.ok(!readdirSync(dir).some((f) => f.endsWith('.tmp')));
});

test('both slots unreadable: an empty record (the config\'s policy boots), each damage reported', () => {
  const dir = tempDir();
  for (const f of STORE_FILES) writeFileSync(join(dir, f), 'not json at all');
  const s = new UpdateStore(dir);
  assert.equal(s.record.job, null);
  assert.equal(s.record.active, null);
  assert.equal(s.opened.damaged.length, 2);
});

test('a write that fails (the slot cannot be replaced) throws and the record stays as it was', () => {
  const dir = tempDir();
  const a = new UpdateStore(dir);
  withJob(a, 'j1'); // seq 1, slot b next is seq 2 -> update.a.json
  const next = join(dir, STORE_FILES[(a.record.seq + 1) % 2]!);
  mkdirSync(join(next, 'blocker'), { recursive: true });
  assert.throws(() => a.transition('IN_PROGRESS', 'download'), /cannot persist the update record/);
  assert.equal(a.record.job?.state, 'QUEUED');
  assert.equal(new UpdateStore(dir).record.job?.state, 'QUEUED');
});

test('a job that keeps moving (a state loop) is failed at the transition cap', () => {
  const dir = tempDir();
  const s = new UpdateStore(dir);
  withJob(s, 'loop');
  let last: JobRecord | null = null;
  for (let i = 0; i < MAX_TRANSITIONS + 5 && last?.state !== 'FAILED'; i++) last = s.transition('IN_PROGRESS', i % 2 ? 'download' : 'verify');
  assert.equal(last?.state, 'FAILED');
  assert.match(last?.reason ?? '', /state transitions \(a loop\)/);
  assert.equal(last?.transitions, MAX_TRANSITIONS + 1);
  assert.ok(s.record.done.includes('loop'), 'remembered as done: not run again');
});
