// The bundle download against a real HTTP server on loopback that misbehaves the ways real ones
// do: drops the connection, ignores Range, lies in Content-Range, garbles the body, stalls, goes
// away. Whatever happens, the file at `dest` is either the right one or absent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { download, DownloadFailed, type DownloadFailureCode } from '../src/ota/index.js';
import { tempDir } from '../tools/testkit/daemon.js';
import { sha256, smallDisk } from './helpers/ota-bundles.js';

const BODY = randomBytes(3 * 1024 * 1024 + 123);
const SHA = sha256(BODY);
const want = { sha256: SHA, size: BODY.length };

/** What the server was asked: the Range header of each request (null: none). */
interface Server {
  url: string;
  ranges: (string | null)[];
  close(): Promise<void>;
}

type Handler = (req: IncomingMessage, res: ServerResponse, n: number) => void;

async function serve(handler: Handler): Promise<Server> {
  const ranges: (string | null)[] = [];
  const server = http.createServer((req, res) => {
    ranges.push(req.headers.range ?? null);
    handler(req, res, ranges.length);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/bundle.tar`,
    ranges,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** An honest server: ETag, Range, 206 with the right Content-Range. */
function honest(req: IncomingMessage, res: ServerResponse, body = BODY): void {
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  const etag = '"v1"';
  const ifRange = req.headers['if-range'];
  if (m && (ifRange === undefined || ifRange === etag)) {
    const start = Number(m[1]);
    res.writeHead(206, { etag, 'content-length': body.length - start, 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` });
    res.end(body.subarray(start));
    return;
  }
  res.writeHead(200, { etag, 'content-length': body.length });
  res.end(body);
}

/** Sends the headers and the first `bytes` of the body, then cuts the connection. */
function dropAfter(res: ServerResponse, status: number, headers: http.OutgoingHttpHeaders, body: Buffer, bytes: number): void {
  res.writeHead(status, headers);
  res.write(body.subarray(0, bytes), () => setTimeout(() => res.socket?.destroy(), 50));
}

function fullHeaders(): http.OutgoingHttpHeaders {
  return { etag: '"v1"', 'content-length': BODY.length };
}

const dest = () => join(tempDir('reflex-dl-'), 'bundle.tar');

function assertDownloaded(file: string): void {
  assert.equal(sha256(readFileSync(file)), SHA);
  assert.equal(existsSync(`${file}.part`), false);
  assert.equal(existsSync(`${file}.part.json`), false);
}

async function failsWith(p: Promise<void>, code: DownloadFailureCode, why: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof DownloadFailed, String(e));
    assert.equal(e.code, code, e.message);
    assert.match(e.message, why);
    return true;
  });
}

test('a connection dropped mid-body is resumed with Range, and the result is the right file', async () => {
  const s = await serve((req, res, n) => (n === 1 ? dropAfter(res, 200, fullHeaders(), BODY, 1024 * 1024) : honest(req, res)));
  try {
    const file = dest();
    const seen: number[] = [];
    await download(s.url, file, { ...want, maxRetries: 3, onProgress: (b) => seen.push(b) });
    assertDownloaded(file);
    assert.equal(s.ranges[0], null);
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(s.ranges[1] ?? '')?.[1]);
    assert.ok(resumedAt > 0 && resumedAt <= 1024 * 1024, `resumed with ${s.ranges[1]}`);
    assert.equal(seen.at(-1), BODY.length);
  } finally {
    await s.close();
  }
});

test('a server that answers 200 to a Range request is read from byte 0 again', async () => {
  const s = await serve((_req, res, n) => (n === 1 ? dropAfter(res, 200, fullHeaders(), BODY, 512 * 1024) : (res.writeHead(200, fullHeaders()), res.end(BODY))));
  try {
    const file = dest();
    await download(s.url, file, { ...want, maxRetries: 3 });
    assertDownloaded(file);
    assert.match(s.ranges[1] ?? '', /^bytes=\d+-$/);
  } finally {
    await s.close();
  }
});

test('a wrong Content-Range is never spliced: the part is dropped and the file fetched whole', async () => {
  const s = await serve((req, res, n) => {
    if (n === 1) return dropAfter(res, 200, fullHeaders(), BODY, 1024 * 1024);
    if (req.headers.range) {
      // Claims to start at byte 0 of what was asked from further on: splicing it would corrupt the file.
      res.writeHead(206, { 'content-range': `bytes 0-${BODY.length - 1}/${BODY.length}`, 'content-length': BODY.length });
      return void res.end(BODY);
    }
    honest(req, res);
  });
  try {
    const file = dest();
    await download(s.url, file, { ...want, maxRetries: 3 });
    assertDownloaded(file);
    assert.match(s.ranges[1] ?? '', /^bytes=\d+-$/);
    assert.equal(s.ranges[2], null, 'after the bad range, the whole file');
  } finally {
    await s.close();
  }
});

test('a file that changed on the server since the part began is fetched whole, not spliced', async () => {
  const old = randomBytes(BODY.length);
  // The server ignores If-Range: it answers every Range with 206 of whatever it holds now.
  const s = await serve((req, res, n) => {
    if (n === 1) return dropAfter(res, 200, { etag: '"old"', 'content-length': old.length }, old, 1024 * 1024);
    const start = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? 0);
    if (req.headers.range) {
      res.writeHead(206, { etag: '"new"', 'content-range': `bytes ${start}-${BODY.length - 1}/${BODY.length}`, 'content-length': BODY.length - start });
      return void res.end(BODY.subarray(start));
    }
    res.writeHead(200, { etag: '"new"', 'content-length': BODY.length });
    res.end(BODY);
  });
  try {
    const file = dest();
    await download(s.url, file, { ...want, maxRetries: 3 });
    assertDownloaded(file);
    assert.match(s.ranges[1] ?? '', /^bytes=\d+-$/);
    assert.equal(s.ranges[2], null, 'the old part dropped, the new file fetched whole');
  } finally {
    await s.close();
  }
});

test('a garbled body fails with hash-mismatch and leaves neither the file nor a part', async () => {
  const garbled = Buffer.from(BODY);
  garbled[123_456]! ^= 0xff;
  const s = await serve((req, res) => honest(req, res, garbled));
  try {
    const file = dest();
    await failsWith(download(s.url, file, { ...want, maxRetries: 3 }), 'hash-mismatch', /not the bundle expected/);
    assert.equal(existsSync(file), false);
    assert.equal(existsSync(`${file}.part`), false);
  } finally {
    await s.close();
  }
});

test('a server that sends more than the expected size is cut off (too-large)', async () => {
  const s = await serve((_req, res) => {
    res.writeHead(200);
    res.end(Buffer.concat([BODY, BODY]));
  });
  try {
    const file = dest();
    await failsWith(download(s.url, file, { ...want, maxRetries: 3 }), 'too-large', /more than the \d+ bytes expected/);
    assert.equal(existsSync(file), false);
    assert.equal(s.ranges.length, 1, 'not retried');
  } finally {
    await s.close();
  }
});

test('a server that went away: bounded retries, then a typed error', async () => {
  const s = await serve(() => undefined);
  const url = s.url;
  await s.close();
  const file = dest();
  await failsWith(download(url, file, { ...want, maxRetries: 2 }), 'network', /gave up on .* after 3 attempts: .*ECONNREFUSED/);
  assert.equal(existsSync(file), false);
});

test('404 is final (no retries); a stall ends the attempt and the next one resumes', async () => {
  const missing = await serve((_req, res) => (res.writeHead(404), res.end()));
  try {
    await failsWith(download(missing.url, dest(), { ...want, maxRetries: 3 }), 'http', /answered 404/);
    assert.equal(missing.ranges.length, 1);
  } finally {
    await missing.close();
  }
  const stall = await serve((req, res, n) => {
    if (n > 1) return honest(req, res);
    res.writeHead(200, fullHeaders());
    res.write(BODY.subarray(0, 256 * 1024)); // then nothing, the connection held open
  });
  try {
    const file = dest();
    await download(stall.url, file, { ...want, maxRetries: 2, timeoutMs: 1000 });
    assertDownloaded(file);
    assert.match(stall.ranges[1] ?? '', /^bytes=\d+-$/);
  } finally {
    await stall.close();
  }
});

test('a restart of the downloader (a new call) resumes from the .part file; another bundle does not', async () => {
  const s = await serve((req, res) => honest(req, res));
  try {
    const file = dest();
    const ac = new AbortController();
    const first = download(s.url, file, {
      ...want,
      signal: ac.signal,
      onProgress: (b) => {
        if (b >= 1024 * 1024) ac.abort();
      },
    });
    await failsWith(first, 'aborted', /bytes kept for a resume/);
    const kept = statSync(`${file}.part`).size;
    assert.ok(kept >= 1024 * 1024 && kept < BODY.length, `kept ${kept}`);
    assert.equal(existsSync(file), false);

    await download(s.url, file, want);
    assertDownloaded(file);
    assert.equal(s.ranges.at(-1), `bytes=${kept}-`);

    // A part left for another bundle (another hash) is not resumed into this one.
    const other = dest();
    const ac2 = new AbortController();
    await failsWith(
      download(s.url, other, { ...want, sha256: 'f'.repeat(64), signal: ac2.signal, onProgress: (b) => (b >= 1024 * 1024 ? ac2.abort() : undefined) }),
      'aborted',
      /kept/,
    );
    await download(s.url, other, want);
    assertDownloaded(other);
    assert.equal(s.ranges.at(-1), null);
  } finally {
    await s.close();
  }
});

test('a full disk fails with disk-full, keeps what it has, and the download resumes once there is room', async (t) => {
  const disk = smallDisk(t, 1024 * 1024);
  if (!disk) return;
  const s = await serve((req, res) => honest(req, res));
  try {
    const file = join(disk.dir, 'bundle.tar');
    await failsWith(download(s.url, file, { ...want, maxRetries: 3 }), 'disk-full', /the disk is full: \d+ of \d+ bytes .* kept in .*bundle\.tar\.part for a resume/);
    assert.equal(existsSync(file), false);
    assert.equal(s.ranges.length, 1, 'a full disk is not retried');
    const kept = statSync(`${file}.part`).size;
    assert.ok(kept > 0, 'what came before the disk filled is kept');
    disk.grow(16 * 1024 * 1024);
    await download(s.url, file, want);
    assertDownloaded(file);
    assert.equal(s.ranges.at(-1), `bytes=${kept}-`);
  } finally {
    await s.close();
  }
});
