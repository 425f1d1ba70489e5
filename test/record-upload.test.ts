// Store and forward, the robot's side against a real S3-compatible server (s3rver, started here)
// and the grant service's own presigning: multipart uploads resumed after a restart, the
// bandwidth cap, expired URLs renewed, a grant naming a host outside the allowed origins
// refused without a byte sent there, a failing and a stalling server retried with backoff, and
// an episode deleted by the disk policy before it went up. The daemon end to end, through a
// real Mosquitto and `reflex fleet uploads`, is in record-upload-daemon.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { join } from 'node:path';
import { Uploader, type PendingUploads } from '../src/record/index.js';
import { parseGrant } from '../src/record/upload-protocol.js';
import type { Presigner } from '../src/record/index.js';
import { tempDir } from '../tools/testkit/daemon.js';
import { until } from '../tools/testkit/mosquitto.js';
import { fleetChannel, recordingLogger, uploadDataset } from './helpers/upload-rig.js';
import { S3_KEYS, startS3, type S3 } from '../tools/testkit/s3.js';
import type { UploadChildManifest } from './helpers/upload-child.js';

const MiB = 1024 ** 2;
const DEVICE = 'robot-7';




/** The fleet link and `reflex fleet uploads` folded into one: each pending list is granted at once. */
const grantingChannel = (presigner: () => Presigner) => fleetChannel((doc) => presigner().grant(DEVICE, doc));

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function withS3(fn: (s3: S3) => Promise<void>): Promise<void> {
  const s3 = await startS3();
  try {
    await fn(s3);
  } finally {
    await s3.stop();
  }
}

test('upload: a multipart upload cut half-way by kill -9 resumes at the first part not stored; every byte arrives; the bandwidth cap holds', { timeout: 120_000 }, async () => {
  await withS3(async (s3) => {
    const dir = tempDir('reflex-upload-');
    const ds = uploadDataset(dir, [[12 * MiB, 200_000]], [['fault']]);
    const outbox = join(dir, 'uploads');
    const cap = 4 * MiB;
    const opts = { deviceId: DEVICE, dir: outbox, origins: [`${s3.endpoint}/${s3.bucket}/`], maxBytesPerS: cap, backoff: { minMs: 100, maxMs: 1000 }, pollMs: 100 };
    // The first attempt runs in a process of its own, killed (-9, as a power cut) once the first
    // 5 MiB part is stored, whatever it was doing then: sending the next part, or saving progress.
    const manifest: UploadChildManifest = { device: DEVICE, opts, grants: { endpoint: s3.endpoint, bucket: s3.bucket, region: 'us-east-1', prefix: '', expiresS: 600, partBytes: 5 * MiB, credentials: S3_KEYS }, episodes: ds.episodes };
    writeFileSync(join(dir, 'uploader.json'), JSON.stringify(manifest));
    const first = spawn(process.execPath, [join(import.meta.dirname, 'helpers', 'upload-child.js'), join(dir, 'uploader.json')], { stdio: ['ignore', 'ignore', 'inherit'] });
    const id = ds.episodes[0]!.entry.id;
    const progress = () => JSON.parse(readFileSync(join(outbox, id, 'progress.json'), 'utf8')) as { files: { name: string; uploadId?: string; etags: string[] }[] };
    const exited = once(first, 'exit');
    try {
      await until('one part stored', () => first.exitCode !== null || (existsSync(join(outbox, id, 'progress.json')) && (progress().files.find((f) => f.name === 'data.parquet')?.etags.length ?? 0) >= 1), 60_000);
    } finally {
      first.kill('SIGKILL');
    }
    await exited;
    assert.equal(first.signalCode, 'SIGKILL', `the uploader's process ended on its own (exit ${first.exitCode})`);
    const { log } = recordingLogger();
    const begun = progress().files.find((f) => f.name === 'data.parquet')!;
    assert.ok(begun.uploadId, 'a multipart upload was begun');
    assert.ok(begun.etags.length < 3, 'stopped before the last part');

    const g2 = grantingChannel(() => s3.presigner());
    const second = new Uploader(opts, ds.source, g2.channel, log);
    g2.attach(second);
    const t0 = Date.now();
    await second.start();
    await until('the episode uploaded', () => ds.uploaded.includes(id), 60_000);
    const elapsedS = (Date.now() - t0) / 1000;
    const sent = second.status().sentMb * MiB;
    await second.stop();

    // The restart offered the upload it had begun, and sent only the parts not yet stored.
    const offered = g2.pending[0]!.episodes[0]!.files.find((f) => f.name === 'data.parquet')!;
    assert.equal(offered.uploadId, begun.uploadId);
    assert.ok(sent <= 12 * MiB - begun.etags.length * 5 * MiB + 300_000 + 0.1 * MiB, `the second run sent ${sent} bytes`);
    // The cap: the bytes sent could not have gone faster than it allows (less one burst).
    assert.ok(elapsedS >= (sent - cap / 4) / cap * 0.9, `${sent} bytes in ${elapsedS} s under a cap of ${cap} B/s`);

    for (const f of ds.episodes[0]!.files) {
      const got = await s3.get(`${DEVICE}/${id}/${f.name}`);
      assert.ok(got !== null, `${f.name} stored`);
      assert.equal(sha(got), sha(readFileSync(f.path)), `${f.name}: the same bytes`);
    }
    const meta = JSON.parse((await s3.get(`${DEVICE}/${id}/episode.json`))!.toString()) as { deviceId: string; episode: { id: string; task: string; flags: string[] }; dataset: { fps: number } };
    assert.equal(meta.deviceId, DEVICE);
    assert.equal(meta.episode.task, 'fold the towel');
    assert.deepEqual(meta.episode.flags, ['fault']);
    assert.equal(meta.dataset.fps, 10);
    assert.deepEqual(readdirSync(outbox), [], 'the snapshot is removed once uploaded');
    const ev = g2.events.find((e) => e.kind === 'episode.uploaded');
    assert.ok(ev, 'the fleet hears of it');
    assert.equal((ev.data as { files: { name: string; sha256: string }[] }).files.find((f) => f.name === 'data.parquet')?.sha256, sha(readFileSync(ds.episodes[0]!.files[0]!.path)));
  });
});

test('upload: URLs that expire mid-upload are renewed with a new grant; flagged episodes go first; a mark after the upload sends episode.json again', { timeout: 120_000 }, async () => {
  await withS3(async (s3) => {
    const dir = tempDir('reflex-upload-');
    // Three parts at 2 MiB/s take over a second each: the 1 s URLs of the later ones expire.
    const ds = uploadDataset(dir, [[100_000], [11 * MiB]], [[], ['estop']]);
    const g = grantingChannel(() => s3.presigner({ expiresS: 1 }));
    const { log, lines } = recordingLogger();
    const u = new Uploader({ deviceId: DEVICE, dir: join(dir, 'uploads'), origins: [`${s3.endpoint}/`], maxBytesPerS: 2 * MiB, backoff: { minMs: 50, maxMs: 200 }, pollMs: 100 }, ds.source, g.channel, log);
    g.attach(u);
    await u.start();
    try {
      await until('both episodes uploaded', () => ds.uploaded.length === 2, 90_000);
      const [plain, flagged] = ds.episodes.map((e) => e.entry.id);
      assert.deepEqual(ds.uploaded, [flagged, plain], 'the e-stopped episode went first, though recorded later');
      assert.ok(lines.some((l) => l.msg.includes('upload failed') && /403/.test(l.err ?? '')), 'an expired URL was refused by the server');
      assert.ok(g.pending.length >= 3, `new grants were asked for (${g.pending.length} pending lists)`);
      const big = ds.episodes[1]!;
      assert.equal(sha((await s3.get(`${DEVICE}/${big.entry.id}/data.parquet`))!), sha(readFileSync(big.files[0]!.path)));

      // A technician marks the first episode a failure after it went up: only its episode.json goes again.
      const before = g.pending.length;
      const ep = ds.episodes[0]!;
      ep.entry = { ...ep.entry, outcome: 'failure' };
      await until('the new marks uploaded', () => ds.uploaded.length === 3, 60_000);
      const again = g.pending.slice(before).find((p) => p.episodes.length > 0)!;
      assert.deepEqual(again.episodes[0]!.files.map((f) => f.name), ['episode.json']);
      const meta = JSON.parse((await s3.get(`${DEVICE}/${ep.entry.id}/episode.json`))!.toString()) as { episode: { outcome: string } };
      assert.equal(meta.episode.outcome, 'failure');
    } finally {
      await u.stop();
    }
  });
});

/** An HTTP server that counts requests and answers each with `answer`, or passes it on to `to`. */
async function gate(answer: (n: number) => 'pass' | 'stall' | number, to?: string): Promise<{ url: string; count: () => number; server: Server }> {
  let n = 0;
  const server = createServer((req, res) => {
    const a = answer(++n);
    if (a === 'stall') return; // never answers: the client must give up by itself
    if (a !== 'pass' || to === undefined) {
      req.resume();
      res.writeHead(typeof a === 'number' ? a : 500).end('<Error><Code>InternalError</Code><Message>try again</Message></Error>');
      return;
    }
    const up = httpRequest(`${to}${req.url}`, { method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, count: () => n, server };
}

test('upload: a grant naming a host outside record.upload.origins is refused and nothing is sent there; a malformed grant is ignored', { timeout: 60_000 }, async () => {
  await withS3(async (s3) => {
    const dir = tempDir('reflex-upload-');
    const ds = uploadDataset(dir, [[50_000]]);
    const elsewhere = await gate(() => 200);
    try {
      const g = grantingChannel(() => s3.presigner({ endpoint: elsewhere.url }));
      const { log, lines } = recordingLogger();
      const u = new Uploader({ deviceId: DEVICE, dir: join(dir, 'uploads'), origins: [`${s3.endpoint}/${s3.bucket}/`], maxBytesPerS: 0, backoff: { minMs: 50, maxMs: 200 }, pollMs: 100 }, ds.source, g.channel, log);
      g.attach(u);
      u.onGrant(Buffer.from('{"seq": 1, "episodes": [{"id": "../../etc", "files": []}]}'));
      u.onGrant(Buffer.from('not json'));
      await u.start();
      try {
        await until('the grant refused', () => /not under record.upload.origins/.test(u.status().reason ?? ''), 30_000);
        await until('asked again', () => g.pending.length >= 3, 30_000);
        assert.equal(elsewhere.count(), 0, 'no request reached the host outside the origins');
        assert.equal(ds.uploaded.length, 0);
        assert.equal(lines.filter((l) => l.msg === 'upload grant refused').length, 2, 'both malformed grants were refused, saying so');
      } finally {
        await u.stop();
      }
    } finally {
      elsewhere.server.close();
    }
  });
});

test('upload: a server that fails or stalls is retried with backoff, and the upload completes once it recovers', { timeout: 90_000 }, async () => {
  await withS3(async (s3) => {
    const dir = tempDir('reflex-upload-');
    const ds = uploadDataset(dir, [[300_000, 20_000]]);
    // Two 503s, one request left hanging, then the real server.
    const flaky = await gate((n) => (n <= 2 ? 503 : n === 3 ? 'stall' : 'pass'), s3.endpoint);
    try {
      const g = grantingChannel(() => s3.presigner({ endpoint: flaky.url }));
      const { log, lines } = recordingLogger();
      const u = new Uploader({ deviceId: DEVICE, dir: join(dir, 'uploads'), origins: [`${flaky.url}/`], maxBytesPerS: 0, idleMs: 1000, backoff: { minMs: 100, maxMs: 400 }, pollMs: 100 }, ds.source, g.channel, log);
      g.attach(u);
      const states = new Set<string>();
      const watch = setInterval(() => states.add(u.status().state), 20);
      await u.start();
      try {
        await until('uploaded after the server recovered', () => ds.uploaded.length === 1, 60_000);
        assert.ok(states.has('backoff'), 'it backed off between tries');
        const errs = lines.filter((l) => l.msg.includes('upload failed')).map((l) => l.err ?? '');
        assert.ok(errs.some((e) => /503/.test(e)), errs.join('; '));
        assert.ok(errs.some((e) => /no progress|stalled/.test(e)), `a stalled request was given up: ${errs.join('; ')}`);
        const f = ds.episodes[0]!.files[0]!;
        assert.equal(sha((await s3.get(`${DEVICE}/${ds.episodes[0]!.entry.id}/${f.name}`))!), sha(readFileSync(f.path)));
      } finally {
        clearInterval(watch);
        await u.stop();
      }
    } finally {
      flaky.server.closeAllConnections();
      flaky.server.close();
    }
  });
});

test('upload: an episode deleted by the disk policy before it went up is dropped from the queue and its snapshot removed', { timeout: 60_000 }, async () => {
  const dir = tempDir('reflex-upload-');
  const ds = uploadDataset(dir, [[40_000], [40_000]]);
  const outbox = join(dir, 'uploads');
  const pending: PendingUploads[] = [];
  const { log } = recordingLogger();
  // No grant ever comes: both episodes wait, snapshotted.
  const u = new Uploader({ deviceId: DEVICE, dir: outbox, origins: ['http://127.0.0.1:9/'], maxBytesPerS: 0, pollMs: 50 }, ds.source, { publishPending: (d) => void pending.push(d), event: () => undefined }, log);
  await u.start();
  try {
    await until('both offered', () => pending.at(-1)?.episodes.length === 2, 30_000);
    assert.equal(readdirSync(outbox).length, 2);
    assert.equal(u.status().state, 'waiting');
    const gone = ds.episodes.shift()!;
    await until('the deleted one is no longer offered', () => pending.at(-1)?.episodes.length === 1 && pending.at(-1)!.waiting === 1, 30_000);
    assert.ok(!readdirSync(outbox).includes(gone.entry.id), 'its snapshot is removed');
    assert.equal(u.status().waiting, 1);
  } finally {
    await u.stop();
  }
});

test('upload: a grant for big files holds as many episodes as a robot accepts, and the rest come in the next one', { timeout: 60_000 }, async () => {
  await withS3(async (s3) => {
    const big = (id: string) => ({ id, files: [{ name: 'observation.images.top.mp4', bytes: 3 * 1024 ** 3, sha256: '0'.repeat(64) }] });
    const pending: PendingUploads = { seq: 7, episodes: [big(randomUUID()), big(randomUUID()), big(randomUUID())], waiting: 3, waitingBytes: 9 * 1024 ** 3 };
    const grant = await s3.presigner().grant(DEVICE, pending);
    const text = JSON.stringify(grant);
    assert.ok(grant.episodes.length >= 1 && grant.episodes.length < 3, `${grant.episodes.length} episodes granted`);
    const r = parseGrant(Buffer.from(text));
    assert.ok(r.ok, `the robot accepts it: ${r.ok ? '' : r.reason}`);
    const parts = (grant.episodes[0]!.files[0] as { multipart: { parts: string[] } }).multipart.parts.length;
    assert.equal(parts, Math.ceil((3 * 1024 ** 3) / (5 * 1024 ** 2)));
    // A file whose URLs alone would not fit is refused with what to change.
    const huge = { ...pending, episodes: [{ id: randomUUID(), files: [{ name: 'data.parquet', bytes: 48 * 1024 ** 3, sha256: '0'.repeat(64) }] }] };
    await assert.rejects(s3.presigner().grant(DEVICE, huge), /raise --part-mb/);
  });
});
