// Store and forward under attack: the robot's uploader against hostile servers (real HTTP
// servers on loopback that misbehave on purpose), hostile or careless grants, a full disk (a
// real tmpfs, root only) and a stop in the middle of hashing. Each test names the hole it
// closed: the uploader must end in a clear reason and a safe state, never mark an episode
// uploaded that the server did not take whole, and never hang.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { closeSync, constants, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { join } from 'node:path';
import { Uploader, parsePending, serveGrants, type EpisodeEntry, type PendingUploads, type UploadGrant, type UploadSource } from '../src/record/index.js';
import type { Logger } from '../src/core/index.js';
import { tempDir } from '../tools/testkit/daemon.js';
import { Mosquitto, freePort, subscriber, until } from '../tools/testkit/mosquitto.js';
import { fleetChannel, recordingLogger, uploadDataset } from './helpers/upload-rig.js';
import { startS3 } from '../tools/testkit/s3.js';

const MiB = 1024 ** 2;
const DEVICE = 'robot-7';



/** A real HTTP server on loopback that answers every request with `handle`; counts them. */
async function server(handle: (req: IncomingMessage, res: ServerResponse) => void) {
  let n = 0;
  const s = createServer((req, res) => {
    n++;
    handle(req, res);
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(s.address() as { port: number }).port}`,
    count: () => n,
    close: () => {
      s.closeAllConnections();
      s.close();
    },
  };
}

/** A server that stores what is PUT, whole, and answers as S3 does. */
async function store() {
  const objects = new Map<string, Buffer>();
  const s = await server((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      objects.set(req.url ?? '', body);
      res.writeHead(200, { etag: `"${createHash('md5').update(body).digest('hex')}"` }).end();
    });
  });
  return { ...s, objects };
}

/** A grant of one PUT URL per offered file, under `base`. */
function putGrant(doc: PendingUploads, base: string): UploadGrant {
  return { seq: doc.seq, episodes: doc.episodes.map((e) => ({ id: e.id, files: e.files.map((f) => ({ name: f.name, put: `${base}/${DEVICE}/${e.id}/${f.name}` })) })) };
}

const fleet = fleetChannel;

function uploader(dir: string, origin: string, source: UploadSource, f: ReturnType<typeof fleet>, log: Logger, extra: Partial<ConstructorParameters<typeof Uploader>[0]> = {}): Uploader {
  const u = new Uploader({ deviceId: DEVICE, dir: join(dir, 'uploads'), origins: [`${origin}/`], maxBytesPerS: 0, backoff: { minMs: 50, maxMs: 200 }, pollMs: 50, ...extra }, source, f.channel, log);
  f.attach(u);
  return u;
}

test('upload attack: a server whose reply never ends is cut off and the episode is not taken for uploaded', { timeout: 60_000 }, async () => {
  const dir = tempDir('reflex-upatk-');
  const ds = uploadDataset(dir, [[20_000]]);
  const chunk = Buffer.alloc(64 * 1024, 'x');
  const endless = await server((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { etag: '"e"' });
      const pump = () => {
        while (!res.destroyed && res.write(chunk));
      };
      res.on('drain', pump);
      pump();
    });
  });
  const f = fleet((doc) => putGrant(doc, endless.url));
  const { log } = recordingLogger();
  const u = uploader(dir, endless.url, ds.source, f, log);
  await u.start();
  try {
    await until('the endless reply given up', () => /reply/.test(u.status().reason ?? ''), 30_000);
    assert.equal(ds.uploaded.length, 0, 'not marked uploaded');
    assert.equal(u.status().waiting, 1);
  } finally {
    await u.stop();
    endless.close();
  }
});

test('upload attack: a 200 answered before the body was sent does not count as stored', { timeout: 60_000 }, async () => {
  const dir = tempDir('reflex-upatk-');
  // Bigger than what loopback's socket buffers hold: the reply must come before the last byte.
  const ds = uploadDataset(dir, [[32 * MiB]]);
  const liar = await server((_req, res) => void res.writeHead(200, { etag: '"e"' }).end());
  const f = fleet((doc) => putGrant(doc, liar.url));
  const { log } = recordingLogger();
  const u = uploader(dir, liar.url, ds.source, f, log);
  await u.start();
  try {
    await until('the early answer refused', () => /before/.test(u.status().reason ?? ''), 30_000);
    assert.equal(ds.uploaded.length, 0, 'an episode the server never read is not marked uploaded (the disk policy would delete it first)');
    assert.equal(f.events.length, 0);
  } finally {
    await u.stop();
    liar.close();
  }
});

test('upload attack: a grant naming an episode or a file twice is refused whole; nothing is sent or counted twice', { timeout: 60_000 }, async () => {
  const dir = tempDir('reflex-upatk-');
  const ds = uploadDataset(dir, [[10_000]]);
  const s3 = await store();
  const f = fleet(() => null);
  const { log, lines } = recordingLogger();
  const u = uploader(dir, s3.url, ds.source, f, log);
  await u.start();
  try {
    await until('offered', () => f.pending.some((p) => p.episodes.length === 1), 30_000);
    const g = putGrant(f.pending.at(-1)!, s3.url);
    u.onGrant(Buffer.from(JSON.stringify({ ...g, episodes: [g.episodes[0], g.episodes[0]] })));
    const e = g.episodes[0]!;
    u.onGrant(Buffer.from(JSON.stringify({ ...g, episodes: [{ ...e, files: [...e.files, { name: 'data.parquet', put: `${s3.url}/elsewhere` }] }] })));
    await until('both refused', () => lines.filter((l) => l.msg === 'upload grant refused').length === 2, 10_000);
    assert.ok(lines.filter((l) => l.msg === 'upload grant refused').every((l) => /twice/.test(l.err ?? '')), 'saying why');
    assert.equal(s3.count(), 0, 'nothing sent on a malformed grant');
    // The same grant without the duplicates goes through, once.
    u.onGrant(Buffer.from(JSON.stringify(g)));
    await until('uploaded', () => ds.uploaded.length === 1, 30_000);
    assert.equal(f.events.filter((x) => x.kind === 'episode.uploaded').length, 1);
    assert.equal(u.status().uploaded, 1);
  } finally {
    await u.stop();
    s3.close();
  }
});

test('upload attack: a redirect is not followed; the grant is taken for wrong and a new one asked for', { timeout: 60_000 }, async () => {
  const dir = tempDir('reflex-upatk-');
  const ds = uploadDataset(dir, [[10_000]]);
  const target = await store();
  const redirect = await server((req, res) => {
    req.resume();
    res.writeHead(307, { location: `${target.url}${req.url ?? ''}` }).end();
  });
  const f = fleet((doc) => putGrant(doc, redirect.url));
  const { log } = recordingLogger();
  const u = uploader(dir, redirect.url, ds.source, f, log);
  await u.start();
  try {
    await until('a new grant asked for', () => f.pending.length >= 2, 30_000);
    assert.match(u.status().reason ?? '', /307/);
    assert.equal(target.count(), 0, 'the redirect target got nothing');
    assert.equal(ds.uploaded.length, 0);
  } finally {
    await u.stop();
    redirect.close();
    target.close();
  }
});

test('upload attack: a server that takes bytes at a trickle is abandoned, not waited on for hours', { timeout: 60_000 }, async () => {
  const dir = tempDir('reflex-upatk-');
  const ds = uploadDataset(dir, [[24 * MiB]]);
  // Reads what has come in every 50 ms (at most about 1.6 MiB/s, well under the 8 MiB/s asked
  // for): never quiet long enough for the idle timeout.
  const trickle = await server((req, res) => {
    req.pause();
    const t = setInterval(() => void req.read(), 50);
    req.on('end', () => {
      clearInterval(t);
      res.writeHead(200, { etag: '"e"' }).end();
    });
    res.on('close', () => clearInterval(t));
  });
  const f = fleet((doc) => putGrant(doc, trickle.url));
  const { log } = recordingLogger();
  const u = uploader(dir, trickle.url, ds.source, f, log, { idleMs: 1000, minBytesPerS: 8 * MiB });
  await u.start();
  try {
    await until('the trickle given up', () => /too slow/.test(u.status().reason ?? ''), 45_000).catch((e: unknown) => { throw new Error(`${String(e)}: ${JSON.stringify(u.status())}`); });
    assert.equal(ds.uploaded.length, 0);
  } finally {
    await u.stop();
    trickle.close();
  }
});

test('upload attack: stopping the uploader while it hashes a file that reads slowly returns at once', { timeout: 60_000 }, async () => {
  const dir = tempDir('reflex-upatk-');
  const ds = uploadDataset(dir, [[1000]]);
  // The data file is a pipe that gives a few bytes and then nothing more: hashing never ends by
  // itself (a stand-in for a multi-GB file on a slow SD card).
  const path = ds.episodes[0]!.files[0]!.path;
  rmSync(path);
  assert.equal(spawnSync('mkfifo', [path]).status, 0, 'mkfifo');
  const fd = openSync(path, constants.O_RDWR);
  writeSync(fd, Buffer.from('PAR1'));
  const s3 = await store();
  const f = fleet((doc) => putGrant(doc, s3.url));
  const { log, lines } = recordingLogger();
  const u = uploader(dir, s3.url, ds.source, f, log);
  await u.start();
  try {
    const id = ds.episodes[0]!.entry.id;
    await until('hashing', () => readdirSync(join(dir, 'uploads')).includes(id) && readdirSync(join(dir, 'uploads', id)).includes('data.parquet'), 30_000);
    const stopped = await Promise.race([u.stop().then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 20_000).unref())]);
    assert.ok(stopped, 'stop() returned while a hash was under way');
    assert.ok(!lines.some((l) => l.msg.includes('cannot be read')), 'a stop is not taken for a broken episode');
  } finally {
    closeSync(fd); // the pipe ends: a stop that hung on it returns now
    await u.stop();
    s3.close();
  }
});

// A real full disk: a tmpfs with few inodes (root only), where a hard link needs one too.
const root = tempDir('reflex-upatk-fs-');
const mnt = join(root, 'tmpfs');
mkdirSync(mnt);
const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64m,nr_inodes=64', 'tmpfs', mnt]).status === 0;
after(() => {
  if (mounted) spawnSync('umount', ['-l', mnt]);
});

test('upload attack: a full disk while snapshotting backs off and says so, and the episode goes up once there is room', { timeout: 60_000, skip: mounted ? false : 'cannot mount a tmpfs here (not root)' }, async () => {
  const ds = uploadDataset(mnt, [[30_000]]);
  mkdirSync(join(mnt, 'uploads'));
  const fillers: string[] = [];
  for (;;) {
    const p = join(mnt, `filler-${fillers.length}`);
    try {
      writeFileSync(p, '');
    } catch {
      break;
    }
    fillers.push(p);
  }
  // One inode left: the snapshot's directory is made, its hard link is not.
  rmSync(fillers.pop()!);
  const s3 = await store();
  const f = fleet((doc) => putGrant(doc, s3.url));
  const { log } = recordingLogger();
  const u = uploader(mnt, s3.url, ds.source, f, log);
  await u.start();
  try {
    await until('the full disk reported', () => /ENOSPC/.test(u.status().reason ?? ''), 30_000);
    assert.equal(u.status().waiting, 1, 'still waiting, not given up');
    for (const p of fillers) rmSync(p);
    await until('uploaded once there is room', () => ds.uploaded.length === 1, 30_000);
    const { entry, files } = ds.episodes[0]!;
    assert.deepEqual(s3.objects.get(`/${DEVICE}/${entry.id}/data.parquet`), readFileSync(files[0]!.path));
  } finally {
    await u.stop();
    s3.close();
  }
});

test('upload attack: the disk policy renumbering episodes while one is being hashed does not send another episode\'s bytes', { timeout: 60_000 }, async () => {
  const dir = tempDir('reflex-upatk-');
  mkdirSync(join(dir, 'files'));
  // Files named by episode index, as the dataset's are: a renumbering renames them.
  const at = (index: number) => join(dir, 'files', `episode-${index}.parquet`);
  let entries = [0, 1, 2].map((i) => ({
    id: randomUUID(), episodeIndex: i, length: 10, task: 't', from: i * 10, to: i * 10 + 10, flags: [], outcome: null, policy: { name: 'act', version: '1' },
    startedAt: new Date().toISOString(), repeatedFrames: 0, bytes: 4000, stats: {}, uploaded: null,
  })) as unknown as EpisodeEntry[];
  const [, b, c] = entries as [EpisodeEntry, EpisodeEntry, EpisodeEntry];
  // The oldest episode's file reads slowly (a pipe): its hash is under way while the disk policy acts.
  assert.equal(spawnSync('mkfifo', [at(0)]).status, 0, 'mkfifo');
  let fd = -1;
  const bytes = new Map([b, c].map((e) => [e.id, randomBytes(4000)]));
  writeFileSync(at(1), bytes.get(b.id)!);
  writeFileSync(at(2), bytes.get(c.id)!);
  const uploaded: string[] = [];
  const source: UploadSource = {
    episodes: () => entries,
    files: (e) => [{ name: 'data.parquet', path: at(e.episodeIndex) }],
    describe: () => ({ codebase_version: 'v3.0', fps: 10, robot_type: 'test', features: {} }),
    markUploaded: (id, meta, when) => {
      entries = entries.map((e) => (e.id === id ? { ...e, uploaded: { meta, at: when } } : e));
      uploaded.push(id);
    },
  };
  const s3 = await store();
  const f = fleet((doc) => putGrant(doc, s3.url));
  const { log } = recordingLogger();
  const u = uploader(dir, s3.url, source, f, log);
  await u.start();
  try {
    // A pipe opens for writing without waiting only once its reader (the hash) has it open.
    await until('hashing the first', () => {
      try {
        fd = openSync(at(0), constants.O_WRONLY | constants.O_NONBLOCK);
        return true;
      } catch {
        return false;
      }
    }, 30_000);
    writeSync(fd, Buffer.from('PAR1'));
    // The disk policy deletes the first episode: the others move down one index, their files too.
    rmSync(at(0));
    renameSync(at(1), at(0));
    renameSync(at(2), at(1));
    entries = entries.slice(1).map((e) => ({ ...e, episodeIndex: e.episodeIndex - 1 }));
    closeSync(fd);
    fd = -1;
    await until('both uploaded', () => uploaded.length === 2, 30_000);
    for (const e of [b, c]) assert.deepEqual(s3.objects.get(`/${DEVICE}/${e.id}/data.parquet`), bytes.get(e.id), `episode ${e.id.slice(0, 8)}: its own bytes`);
  } finally {
    if (fd >= 0) closeSync(fd);
    await u.stop();
    s3.close();
  }
});

test('upload attack: a pending list the fleet never saw (broker restarted, link down for hours) is asked again, not waited on forever', { timeout: 60_000 }, async () => {
  const dir = tempDir('reflex-upatk-');
  const ds = uploadDataset(dir, [[10_000]]);
  const s3 = await store();
  // The first list is lost on the way; the grant service answers whatever reaches it after.
  let lost = 0;
  const f = fleet((doc) => (lost++ === 0 ? null : putGrant(doc, s3.url)));
  const { log } = recordingLogger();
  const u = uploader(dir, s3.url, ds.source, f, log, { reaskMs: 300 });
  await u.start();
  try {
    await until('uploaded after asking again', () => ds.uploaded.length === 1, 30_000);
    assert.ok(f.pending.length >= 2, 'the pending list went out again');
    assert.notEqual(f.pending[0]!.seq, f.pending[1]!.seq, 'as a new list: a late grant for the lost one is not taken for it');
  } finally {
    await u.stop();
    s3.close();
  }
});

test('upload attack: a server answering parts with huge ETags is refused, not written into progress.json part after part', { timeout: 60_000 }, async () => {
  const dir = tempDir('reflex-upatk-');
  const ds = uploadDataset(dir, [[6 * MiB]]);
  const hostile = await server((req, res) => {
    req.resume();
    req.on('end', () => void res.writeHead(200, { etag: `"${'f'.repeat(8000)}"` }).end());
  });
  const f = fleet((doc) => ({
    seq: doc.seq,
    episodes: doc.episodes.map((e) => ({
      id: e.id,
      files: e.files.map((x) => (x.bytes > 5 * MiB ? { name: x.name, multipart: { uploadId: 'u1', partBytes: 5 * MiB, parts: [`${hostile.url}/p1`, `${hostile.url}/p2`], complete: `${hostile.url}/c` } } : { name: x.name, put: `${hostile.url}/${x.name}` })),
    })),
  }));
  const { log } = recordingLogger();
  const u = uploader(dir, hostile.url, ds.source, f, log);
  await u.start();
  try {
    await until('the ETag refused', () => /ETag/.test(u.status().reason ?? ''), 30_000);
    assert.equal(ds.uploaded.length, 0);
  } finally {
    await u.stop();
    hostile.close();
  }
});

test('upload attack: the grant service makes no key outside <prefix><device>/ whatever device, episode, file name or prefix it is handed', { timeout: 60_000 }, async () => {
  const s3 = await startS3('reflex-fleet');
  after(() => s3.stop());
  const presigner = (prefix = 'fleet/') => s3.presigner({ prefix });
  const doc = (id: string, name: string): PendingUploads => ({ seq: 1, episodes: [{ id, files: [{ name, bytes: 10, sha256: '0'.repeat(64) }] }], waiting: 1, waitingBytes: 10 });
  const good = randomUUID();
  const ok = await presigner().grant(DEVICE, doc(good, 'data.parquet'));
  assert.match((ok.episodes[0]!.files[0] as { put: string }).put, new RegExp(`/reflex-fleet/fleet/${DEVICE}/${good}/data\\.parquet\\?`));
  for (const device of ['..', '../other-robot', 'a/b', '']) await assert.rejects(presigner().grant(device, doc(good, 'data.parquet')), /not a device id/, device);
  for (const name of ['../../other-robot/x', '.hidden', 'a/b', '..']) {
    assert.equal(parsePending(Buffer.from(JSON.stringify(doc(good, name)))), null, `a robot's pending list naming ${name} is refused`);
    await assert.rejects(presigner().grant(DEVICE, doc(good, name)), /not a plain file name/, name);
  }
  await assert.rejects(presigner().grant(DEVICE, doc('../../../../../../../../../../../x', 'data.parquet')), /not an episode id/);
  for (const prefix of ['../', 'fleet/../', './']) assert.throws(() => presigner(prefix), /--prefix/, prefix);
});

test('upload attack: a device flooding pending lists is answered no faster than the service allows, for its newest list, not once per list (each a multipart upload begun)', { timeout: 60_000 }, async () => {
  const s3 = await startS3('reflex-fleet');
  const broker = new Mosquitto(tempDir('reflex-upatk-mqtt-'), await freePort());
  await broker.start();
  const url = `mqtt://127.0.0.1:${broker.port}`;
  const lines: string[] = [];
  const service = await serveGrants(url, s3.presigner({ prefix: 'fleet/' }), (l) => lines.push(l), 500);
  const robot = await subscriber(url, `reflex/v1/${DEVICE}/uploads/grant`);
  try {
    // Every list offers a file of three parts: each grant begins a multipart upload on the bucket.
    const episode = randomUUID();
    const list = (seq: number) => JSON.stringify({ seq, episodes: [{ id: episode, files: [{ name: 'data.parquet', bytes: 12 * MiB, sha256: '0'.repeat(64) }] }], waiting: 1, waitingBytes: 12 * MiB });
    const t0 = Date.now();
    for (let seq = 0; seq < 400; seq++) await robot.client.publishAsync(`reflex/v1/${DEVICE}/uploads/pending`, list(seq), { qos: 1, retain: true });
    const newest = () => robot.messages.map((m) => (JSON.parse(m.payload) as UploadGrant).seq).at(-1);
    await until('the newest list answered', () => newest() === 399, 30_000);
    const grants = lines.filter((l) => l.includes('granted'));
    const bound = Math.ceil((Date.now() - t0) / 500) + 1;
    assert.ok(grants.length <= bound, `${grants.length} grants for 400 lists in ${Date.now() - t0} ms (at most ${bound})`);
    const g = JSON.parse(robot.messages.at(-1)!.payload) as UploadGrant;
    assert.equal(g.episodes[0]!.id, episode);
    assert.equal((g.episodes[0]!.files[0] as { multipart: { parts: string[] } }).multipart.parts.length, 3);
  } finally {
    await robot.client.endAsync();
    await service.stop();
    await broker.stop();
    await s3.stop();
  }
});

test('upload attack: an https origin with a certificate nobody vouches for gets no byte; the reason says so', { timeout: 60_000 }, async () => {
  const dir = tempDir('reflex-upatk-');
  const ds = uploadDataset(dir, [[10_000]]);
  const tls = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem')], { encoding: 'utf8' });
  assert.equal(tls.status, 0, tls.stderr);
  let requests = 0;
  const s = createHttpsServer({ key: readFileSync(join(dir, 'k.pem')), cert: readFileSync(join(dir, 'c.pem')) }, (req, res) => {
    requests++;
    req.resume();
    req.on('end', () => void res.writeHead(200, { etag: '"e"' }).end());
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const url = `https://127.0.0.1:${(s.address() as { port: number }).port}`;
  const f = fleet((doc) => putGrant(doc, url));
  const { log } = recordingLogger();
  const u = uploader(dir, url, ds.source, f, log);
  await u.start();
  try {
    await until('the certificate refused', () => /certificate/i.test(u.status().reason ?? ''), 30_000);
    assert.equal(requests, 0, 'no request got through');
    assert.equal(ds.uploaded.length, 0);
  } finally {
    await u.stop();
    s.closeAllConnections();
    s.close();
  }
});

test('upload attack: while the dataset cannot be opened, half-sent uploads are kept (not swept) and status says why nothing moves', { timeout: 60_000 }, async () => {
  const dir = tempDir('reflex-upatk-');
  const ds = uploadDataset(dir, [[10_000]]);
  const id = ds.episodes[0]!.entry.id;
  // A multipart upload begun in an earlier boot.
  const snap = join(dir, 'uploads', id);
  mkdirSync(snap, { recursive: true });
  writeFileSync(join(snap, 'progress.json'), JSON.stringify({ id, meta: 'm', files: [{ name: 'data.parquet', bytes: 10_000, sha256: '0'.repeat(64), uploadId: 'u1', partBytes: 5 * MiB, etags: ['"a"'], done: false }] }));
  let open = false;
  const source: UploadSource = { ...ds.source, episodes: () => (open ? ds.source.episodes() : []), describe: () => (open ? ds.source.describe() : null) };
  const f = fleet(() => null);
  const { log } = recordingLogger();
  const u = uploader(dir, 'http://127.0.0.1:9', source, f, log);
  await u.start();
  try {
    await until('status says why', () => /not open/.test(u.status().reason ?? ''), 30_000);
    assert.ok(readdirSync(snap).includes('progress.json'), 'the half-sent upload is kept');
    assert.equal(f.pending.length, 0, 'nothing offered');
    open = true;
    await until('offered once open', () => f.pending.some((p) => p.episodes.length === 1), 30_000);
    assert.equal(u.status().reason, null);
  } finally {
    await u.stop();
  }
});

test('upload attack: a grant service that answers every list with a grant for nothing offered is backed off from, not asked every poll', { timeout: 60_000 }, async () => {
  const dir = tempDir('reflex-upatk-');
  const ds = uploadDataset(dir, [[10_000]]);
  const s3 = await store();
  const f = fleet((doc) => ({ seq: doc.seq, episodes: [{ id: randomUUID(), files: [{ name: 'data.parquet', put: `${s3.url}/x` }] }] }));
  const { log } = recordingLogger();
  const u = uploader(dir, s3.url, ds.source, f, log, { backoff: { minMs: 50, maxMs: 60_000 } });
  await u.start();
  try {
    await until('backing off', () => u.status().state === 'backoff' && /covers none/.test(u.status().reason ?? ''), 30_000);
    // Each useless grant doubles the wait (50 ms at first; at least 600 ms after the fifth).
    let retryInS = 0;
    await until('a few rounds', () => {
      const s = u.status();
      retryInS = s.retryInS ?? 0;
      return f.pending.length >= 5 && s.state === 'backoff';
    }, 30_000);
    assert.ok(retryInS >= 0.1, `retry in ${retryInS} s after ${f.pending.length} lists`);
    assert.equal(s3.count(), 0);
  } finally {
    await u.stop();
    s3.close();
  }
});

test('upload attack: an episode the disk policy deletes while it waits or is being sent frees its bytes at once (its snapshot goes), not after the upload', { timeout: 60_000 }, async () => {
  const dir = tempDir('reflex-upatk-');
  const ds = uploadDataset(dir, [[40 * MiB], [20_000]]);
  // A server that takes the headers and never reads the body: the first upload hangs in flight.
  const stuck = await server(() => undefined);
  const f = fleet((doc) => putGrant(doc, stuck.url));
  const { log } = recordingLogger();
  const u = uploader(dir, stuck.url, ds.source, f, log, { idleMs: 120_000 });
  await u.start();
  const outbox = join(dir, 'uploads');
  const [sending, waiting] = ds.episodes.map((e) => e.entry.id) as [string, string];
  try {
    await until('the first in flight', () => u.status().current?.episode === sending, 30_000);
    assert.ok(readdirSync(outbox).includes(waiting), 'the second is snapshotted, waiting its turn');
    // The disk policy deletes both (the free space it counts on comes only once the links go too).
    ds.episodes.splice(0, 2);
    await until('both snapshots gone', () => readdirSync(outbox).length === 0, 20_000);
    await until('the upload given up', () => u.status().current === null, 20_000);
    assert.equal(ds.uploaded.length, 0);
  } finally {
    await u.stop();
    stuck.close();
  }
});

test('upload attack: an origin written without its trailing slash does not let a grant into a bucket or path that merely starts the same', { timeout: 60_000 }, async () => {
  const dir = tempDir('reflex-upatk-');
  const ds = uploadDataset(dir, [[10_000]]);
  const s3 = await store();
  const f = fleet((doc) => putGrant(doc, `${s3.url}/reflex-fleet-other-team`));
  const { log } = recordingLogger();
  const u = new Uploader({ deviceId: DEVICE, dir: join(dir, 'uploads'), origins: [`${s3.url}/reflex-fleet`], maxBytesPerS: 0, backoff: { minMs: 50, maxMs: 200 }, pollMs: 50 }, ds.source, f.channel, log);
  f.attach(u);
  await u.start();
  try {
    await until('refused', () => /not under record.upload.origins/.test(u.status().reason ?? ''), 30_000);
    assert.equal(s3.count(), 0, 'nothing sent to the other bucket');
  } finally {
    await u.stop();
    s3.close();
  }
});

// A second small tmpfs, few inodes: every progress.json save makes a temporary file, which needs one.
const mnt2 = join(root, 'tmpfs2');
mkdirSync(mnt2);
const mounted2 = mounted && spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64m,nr_inodes=64', 'tmpfs', mnt2]).status === 0;
after(() => {
  if (mounted2) spawnSync('umount', ['-l', mnt2]);
});

test('upload attack: the disk full when progress.json is saved after a part: it backs off saying so, then resumes and every byte arrives', { timeout: 90_000, skip: mounted2 ? false : 'cannot mount a tmpfs here (not root)' }, async () => {
  const ds = uploadDataset(mnt2, [[11 * MiB]]);
  const s3 = await startS3();
  // In front of the bucket: holds the answer to the first part until the disk is full.
  let release: () => void = () => undefined;
  const released = new Promise<void>((r) => (release = r));
  let parts = 0;
  const proxy = await server((req, res) => {
    const first = /partNumber=1&/.test(req.url ?? '') && parts++ === 0;
    const up = httpRequest(`${s3.endpoint}${req.url}`, { method: req.method, headers: req.headers }, (r) => {
      void (first ? released : Promise.resolve()).then(() => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
    });
    req.pipe(up);
  });
  const f = fleet(() => null);
  const presigner = s3.presigner({ endpoint: proxy.url });
  f.channel.publishPending = (doc: PendingUploads) => {
    f.pending.push(doc);
    if (doc.episodes.length > 0) void presigner.grant(DEVICE, doc).then((g) => u.onGrant(Buffer.from(JSON.stringify(g))));
  };
  const { log } = recordingLogger();
  const u = uploader(mnt2, proxy.url, ds.source, f, log);
  await u.start();
  const fillers: string[] = [];
  try {
    await until('the first part sent', () => parts === 1, 30_000);
    for (;;) {
      const p = join(mnt2, `filler-${fillers.length}`);
      try {
        writeFileSync(p, '');
      } catch {
        break;
      }
      fillers.push(p);
    }
    release();
    await until('the full disk reported', () => /ENOSPC/.test(u.status().reason ?? ''), 30_000);
    assert.equal(ds.uploaded.length, 0);
    for (const p of fillers.splice(0)) rmSync(p);
    const { entry, files } = ds.episodes[0]!;
    await until('uploaded once there is room', () => ds.uploaded.length === 1, 60_000);
    assert.deepEqual(await s3.get(`${DEVICE}/${entry.id}/data.parquet`), readFileSync(files[0]!.path));
  } finally {
    for (const p of fillers) rmSync(p);
    await u.stop();
    proxy.close();
    await s3.stop();
  }
});

test('upload attack: a bandwidth cap set very low (1 KiB/s) still moves bytes often enough that the idle timeout never cuts the request', { timeout: 60_000 }, async () => {
  const dir = tempDir('reflex-upatk-');
  // A quarter second's burst is 64 KiB at most caps; past it, the rest goes at the cap.
  const ds = uploadDataset(dir, [[64 * 1024 + 3 * 1024]]);
  const s3 = await store();
  const f = fleet((doc) => putGrant(doc, s3.url));
  const { log } = recordingLogger();
  const u = uploader(dir, s3.url, ds.source, f, log, { maxBytesPerS: 1024, idleMs: 2000 });
  await u.start();
  try {
    await until('uploaded', () => ds.uploaded.length === 1 || /no progress/.test(u.status().reason ?? ''), 45_000);
    assert.equal(u.status().reason, null, 'no request was cut off');
    const { entry, files } = ds.episodes[0]!;
    assert.deepEqual(s3.objects.get(`/${DEVICE}/${entry.id}/data.parquet`), readFileSync(files[0]!.path));
  } finally {
    await u.stop();
    s3.close();
  }
});

test('upload attack: an episode whose files are gone from the disk is not silently left out: status says how many cannot go up', { timeout: 60_000 }, async () => {
  const dir = tempDir('reflex-upatk-');
  const ds = uploadDataset(dir, [[10_000], [10_000]]);
  rmSync(ds.episodes[0]!.files[0]!.path); // a bad card, a technician's rm
  const s3 = await store();
  const f = fleet((doc) => putGrant(doc, s3.url));
  const { log } = recordingLogger();
  const u = uploader(dir, s3.url, ds.source, f, log);
  await u.start();
  try {
    await until('the other uploaded', () => ds.uploaded.length === 1, 30_000);
    await until('status says so', () => /1 episode.*cannot be uploaded/.test(u.status().reason ?? ''), 30_000);
    assert.equal(u.status().state, 'idle');
  } finally {
    await u.stop();
    s3.close();
  }
});

test('upload attack: a long error page (a proxy, a captive portal) is judged by its status: a 503 is retried with the same grant', { timeout: 60_000 }, async () => {
  const dir = tempDir('reflex-upatk-');
  const ds = uploadDataset(dir, [[10_000]]);
  const portal = await server((req, res) => {
    req.resume();
    req.on('end', () => void res.writeHead(503, { 'content-type': 'text/html' }).end(`<html>${'<p>please log in</p>'.repeat(20_000)}</html>`));
  });
  const f = fleet((doc) => putGrant(doc, portal.url));
  const { log } = recordingLogger();
  const u = uploader(dir, portal.url, ds.source, f, log);
  await u.start();
  try {
    await until('a few tries', () => portal.count() >= 3, 30_000);
    assert.match(u.status().reason ?? '', /HTTP 503/);
    assert.equal(f.pending.length, 1, 'no new grant asked for: the server is down, the grant is fine');
  } finally {
    await u.stop();
    portal.close();
  }
});

test('upload attack: asked again after a failure, the robot names the multipart uploads the last grant began, so the fleet begins no orphan ones', { timeout: 90_000 }, async () => {
  const dir = tempDir('reflex-upatk-');
  const ds = uploadDataset(dir, [[6 * MiB], [6 * MiB]]);
  const s3 = await startS3();
  // The first part sent is refused as an expired URL would be: the robot asks for a new grant.
  let puts = 0;
  const proxy = await server((req, res) => {
    if (req.method === 'PUT' && puts++ === 0) {
      req.resume();
      res.writeHead(403).end('<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>');
      return;
    }
    const up = httpRequest(`${s3.endpoint}${req.url}`, { method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    req.pipe(up);
  });
  const presigner = s3.presigner({ endpoint: proxy.url });
  const grants: UploadGrant[] = [];
  const f = fleet(() => null);
  f.channel.publishPending = (doc: PendingUploads) => {
    f.pending.push(doc);
    if (doc.episodes.length > 0)
      void presigner.grant(DEVICE, doc).then((g) => {
        grants.push(g);
        u.onGrant(Buffer.from(JSON.stringify(g)));
      });
  };
  const { log } = recordingLogger();
  const u = uploader(dir, proxy.url, ds.source, f, log);
  await u.start();
  try {
    await until('both uploaded', () => ds.uploaded.length === 2, 60_000);
    const begun = (g: UploadGrant) => g.episodes.flatMap((e) => e.files.flatMap((x) => ('multipart' in x ? [x.multipart.uploadId] : [])));
    const all = new Set(grants.flatMap(begun));
    assert.equal(all.size, 2, `one multipart upload per file, not one per grant: ${grants.length} grants began ${all.size}`);
    for (const { entry, files } of ds.episodes) assert.deepEqual(await s3.get(`${DEVICE}/${entry.id}/data.parquet`), readFileSync(files[0]!.path));
  } finally {
    await u.stop();
    proxy.close();
    await s3.stop();
  }
});

test('upload attack: a careless grant (parts that do not fit the file, URLs for files never offered) sends nothing it should not', { timeout: 60_000 }, async () => {
  const dir = tempDir('reflex-upatk-');
  const ds = uploadDataset(dir, [[6 * MiB]]);
  const s3 = await store();
  const f = fleet((doc) => ({
    seq: doc.seq,
    episodes: doc.episodes.map((e) => ({
      id: e.id,
      files: [
        // 6 MiB in 5 MiB parts is two parts, not three.
        { name: 'data.parquet', multipart: { uploadId: 'u1', partBytes: 5 * MiB, parts: [1, 2, 3].map((i) => `${s3.url}/p${i}`), complete: `${s3.url}/c` } },
        { name: 'install.sh', put: `${s3.url}/install.sh` },
      ],
    })),
  }));
  const { log } = recordingLogger();
  const u = uploader(dir, s3.url, ds.source, f, log);
  await u.start();
  try {
    await until('refused', () => /3 part URLs for data.parquet, which takes 2 parts/.test(u.status().reason ?? ''), 30_000);
    assert.equal(s3.count(), 0, 'no byte sent');
    assert.equal(ds.uploaded.length, 0);
  } finally {
    await u.stop();
    s3.close();
  }
});
