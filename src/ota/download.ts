// Downloading a bundle archive over HTTP(S) so that a dropped link, a restart or a server that
// misbehaves never yields a wrong file: the partial download is kept (dest + '.part', with what
// it is for in dest + '.part.json'), resumed with Range (and If-Range when the server gave a
// validator), hashed as it streams (a resume re-hashes the kept part first), never allowed past
// the expected size, and renamed to `dest` only when size and sha256 both match.
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { dirname } from 'node:path';
import { fsyncDir } from './archive.js';

export type DownloadFailureCode =
  /** The server answered with an error that retrying does not fix (404, 403...), or an unsupported URL. */
  | 'http'
  /** The connection failed or dropped every time, up to maxRetries. */
  | 'network'
  /** No byte for timeoutMs, every time, up to maxRetries. */
  | 'timeout'
  /** The server sent more than the expected size. */
  | 'too-large'
  /** All bytes came, but not the ones expected: the partial file is removed. */
  | 'hash-mismatch'
  | 'aborted'
  /** The disk is full: the partial file is kept for a later resume. */
  | 'disk-full'
  /** Another local I/O error. */
  | 'io';

export class DownloadFailed extends Error {
  constructor(
    readonly code: DownloadFailureCode,
    message: string,
  ) {
    super(message);
    this.name = 'DownloadFailed';
  }
}

export interface DownloadOptions {
  sha256: string;
  size: number;
  signal?: AbortSignal;
  onProgress?(bytes: number, total: number): void;
  /** Attempts after the first one, for failures a retry may fix (default 5). */
  maxRetries?: number;
  /** No byte for this long ends an attempt (default 30 s); so do response headers not all in by then. */
  timeoutMs?: number;
  /**
   * Fewer body bytes than this per second, averaged over each timeoutMs, ends an attempt too
   * (default 1024): a server that trickles a byte now and then is never idle, and never done.
   */
  minBytesPerS?: number;
}

/** What a .part file is the beginning of. */
interface PartMeta {
  url: string;
  sha256: string;
  size: number;
  /** The server's validator, sent back as If-Range so a changed file is never spliced. */
  validator: string | null;
}

/** A failure a retry may fix (and from which offset it resumes: the .part file's length). */
class Retry extends Error {
  constructor(
    message: string,
    readonly code: 'network' | 'timeout' | 'http',
    readonly restart = false,
  ) {
    super(message);
  }
}

/** A failure of the local disk (not of the network): never retried here. */
class LocalIo extends Error {
  constructor(readonly io: NodeJS.ErrnoException) {
    super(io.message);
  }
}

/** Runs a file operation, marking its failure as the disk's. */
async function local<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    throw new LocalIo(err as NodeJS.ErrnoException);
  }
}

const SYNC_EVERY = 16 * 1024 * 1024;
const MAX_REDIRECTS = 5;

function get(url: URL, headers: Record<string, string>, signal: AbortSignal | undefined, timeoutMs: number): Promise<IncomingMessage> {
  const mod = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    // Headers trickled a byte at a time never leave the socket idle: they get timeoutMs in all.
    const deadline = setTimeout(() => req.destroy(new Retry(`${url.host} sent no whole answer in ${timeoutMs} ms`, 'timeout')), timeoutMs);
    const req = mod.get(url, { headers, ...(signal ? { signal } : {}) }, (res) => {
      clearTimeout(deadline);
      resolve(res);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Retry(`no answer from ${url.host} for ${timeoutMs} ms`, 'timeout')));
    req.on('error', (err) => {
      clearTimeout(deadline);
      reject(err);
    });
  });
}

async function readMeta(path: string): Promise<PartMeta | null> {
  try {
    const m = JSON.parse(await readFile(path, 'utf8')) as Partial<PartMeta>;
    return typeof m.sha256 === 'string' && typeof m.size === 'number' && typeof m.url === 'string' ? { url: m.url, sha256: m.sha256, size: m.size, validator: m.validator ?? null } : null;
  } catch {
    return null;
  }
}

async function writeMeta(path: string, m: PartMeta): Promise<void> {
  await writeFile(`${path}.tmp`, JSON.stringify(m), { flush: true });
  await rename(`${path}.tmp`, path);
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

/** The kept part re-hashed (its bytes are the start of what the hash covers). */
async function hashPart(path: string, bytes: number): Promise<Hash> {
  const hash = createHash('sha256');
  if (bytes > 0) for await (const c of createReadStream(path, { start: 0, end: bytes - 1 })) hash.update(c as Buffer);
  return hash;
}

function parseContentRange(v: string | undefined): { start: number; end: number; total: number | null } | null {
  const m = v === undefined ? null : /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(v.trim());
  if (!m) return null;
  return { start: Number(m[1]), end: Number(m[2]), total: m[3] === '*' ? null : Number(m[3]) };
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * Resumable HTTP(S) GET of `url` into `dest`. Resolves once `dest` holds exactly `size` bytes
 * whose sha256 is `sha256` (fsynced, renamed into place); throws DownloadFailed otherwise.
 */
export async function download(url: string, dest: string, opts: DownloadOptions): Promise<void> {
  const { size, signal } = opts;
  const want = opts.sha256.toLowerCase();
  const maxRetries = opts.maxRetries ?? 5;
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const part = `${dest}.part`;
  const metaPath = `${dest}.part.json`;
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    throw new DownloadFailed('http', `not a URL: ${url}`);
  }
  if (target.protocol !== 'http:' && target.protocol !== 'https:') throw new DownloadFailed('http', `${target.protocol} URLs are not supported (http or https)`);
  if (!Number.isSafeInteger(size) || size < 0) throw new DownloadFailed('http', `the expected size ${size} is not a byte count`);

  const discard = async () => {
    await rm(part, { force: true });
    await rm(metaPath, { force: true });
  };
  // A part left for another file (another URL, hash or size) is not the start of this one.
  let meta = await readMeta(metaPath);
  if (!meta || meta.url !== url || meta.sha256 !== want || meta.size !== size) {
    await discard();
    meta = { url, sha256: want, size, validator: null };
    try {
      await writeMeta(metaPath, meta);
    } catch (err) {
      throw localFailure(new LocalIo(err as NodeJS.ErrnoException), part, size, 0, url);
    }
  }

  let last: Retry | null = null;
  for (let attempt = 0; attempt <= maxRetries; attempt++) {
    if (signal?.aborted) throw new DownloadFailed('aborted', `download of ${url} aborted; ${await sizeOf(part)} bytes kept for a resume`);
    if (attempt > 0 && !last?.restart) await sleep(Math.min(200 * 2 ** (attempt - 1), 5000), signal);
    try {
      await attemptOnce(target, part, meta, metaPath, want, size, opts, timeoutMs);
      await local(rename(part, dest));
      await local(rm(metaPath, { force: true }));
      await local(fsyncDir(dirname(dest)));
      return;
    } catch (err) {
      if (err instanceof DownloadFailed) {
        if (err.code === 'hash-mismatch' || err.code === 'too-large') await discard();
        throw err;
      }
      if (signal?.aborted) throw new DownloadFailed('aborted', `download of ${url} aborted; ${await sizeOf(part)} bytes kept for a resume`);
      if (err instanceof LocalIo) throw localFailure(err, part, size, await sizeOf(part), url);
      if (err instanceof Retry) last = err;
      else last = new Retry(`${target.host}: ${(err as Error).message}`, 'network');
      if (last.restart) await rm(part, { force: true });
    }
  }
  const code = last?.code ?? 'network';
  throw new DownloadFailed(code, `gave up on ${url} after ${maxRetries + 1} attempts: ${last?.message ?? 'unknown'}; ${await sizeOf(part)} bytes kept for a resume`);
}

function localFailure(err: LocalIo, part: string, size: number, kept: number, url: string): DownloadFailed {
  const c = err.io;
  if (c.code === 'ENOSPC' || c.code === 'EDQUOT') return new DownloadFailed('disk-full', `the disk is full: ${kept} of ${size} bytes of ${url} kept in ${part} for a resume`);
  return new DownloadFailed('io', `${part}: ${c.message}`);
}

/** One request: resumes from the part's length, appends what comes, checks the whole at the end. */
async function attemptOnce(target: URL, part: string, meta: PartMeta, metaPath: string, want: string, size: number, opts: DownloadOptions, timeoutMs: number): Promise<void> {
  let offset = await sizeOf(part);
  if (offset > size) {
    await local(rm(part, { force: true }));
    offset = 0;
  }
  // Hashed before asking: a big part on a slow card takes longer than timeoutMs to read, and an
  // answer left unread that long is cut off as a stall, on every attempt.
  const kept = await local(hashPart(part, offset));
  let res: IncomingMessage | null = null;
  let url = target;
  for (let hop = 0; ; hop++) {
    const headers: Record<string, string> = { 'accept-encoding': 'identity' };
    if (offset > 0) {
      headers.range = `bytes=${offset}-`;
      if (meta.validator) headers['if-range'] = meta.validator;
    }
    res = await get(url, headers, opts.signal, timeoutMs);
    const loc = res.headers.location;
    if (res.statusCode !== undefined && [301, 302, 303, 307, 308].includes(res.statusCode) && loc) {
      res.resume();
      if (hop >= MAX_REDIRECTS) throw new DownloadFailed('http', `more than ${MAX_REDIRECTS} redirects from ${target.href}`);
      url = new URL(loc, url);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new DownloadFailed('http', `redirected to a ${url.protocol} URL`);
      continue;
    }
    break;
  }
  const status = res.statusCode ?? 0;
  // Everything but 200 and 206 ends here, its body unread.
  if (status !== 200 && status !== 206) {
    res.resume();
    if (status === 416) throw new Retry(`${url.host} cannot serve bytes from ${offset} (416): starting again`, 'http', true);
    if (status >= 500 || status === 408 || status === 429) throw new Retry(`${url.host} answered ${status}`, 'http');
    throw new DownloadFailed('http', `${url.href} answered ${status} ${res.statusMessage ?? ''}`.trim());
  }
  if (status === 206) {
    const cr = parseContentRange(res.headers['content-range']);
    if (!cr || cr.start !== offset || (cr.total !== null && cr.total !== size) || cr.end >= size || cr.end < cr.start) {
      res.destroy();
      // Never spliced: the kept part is dropped and the next attempt asks for everything.
      throw new Retry(`${url.host} sent Content-Range ${JSON.stringify(res.headers['content-range'] ?? null)} for a request from byte ${offset}`, 'http', true);
    }
  } else {
    // 200: the whole file, from byte 0 (the server ignored Range, or If-Range said it changed).
    offset = 0;
    const len = res.headers['content-length'];
    if (len !== undefined && Number(len) > size) {
      res.destroy();
      throw new DownloadFailed('too-large', `${url.href} is ${len} bytes, the bundle is ${size}`);
    }
  }
  const validator = (res.headers.etag && !res.headers.etag.startsWith('W/') ? res.headers.etag : null) ?? res.headers['last-modified'] ?? null;
  if (status === 206 && offset > 0 && meta.validator !== null && validator !== null && validator !== meta.validator) {
    // The server ignored If-Range and the file changed since the part began: never spliced.
    res.destroy();
    throw new Retry(`${url.host}: the file changed since the download began (${meta.validator}, now ${validator}): starting again`, 'http', true);
  }
  if (validator !== meta.validator) {
    meta.validator = validator;
    await local(writeMeta(metaPath, meta));
  }

  const hash = offset === 0 ? createHash('sha256') : kept;
  const fh = await local(open(part, offset === 0 ? 'w' : 'r+'));
  let pos = offset;
  let unsynced = 0;
  const minPerWindow = ((opts.minBytesPerS ?? 1024) * timeoutMs) / 1000;
  let windowStart = pos;
  const slow = setInterval(() => {
    if (pos - windowStart < minPerWindow) res.destroy(new Retry(`${url.host} sent ${pos - windowStart} bytes in ${timeoutMs} ms (fewer than ${opts.minBytesPerS ?? 1024} a second)`, 'timeout'));
    windowStart = pos;
  }, timeoutMs);
  try {
    try {
      for await (const chunk of res as AsyncIterable<Buffer>) {
        if (pos + chunk.length > size) {
          res.destroy();
          throw new DownloadFailed('too-large', `${url.href} sent more than the ${size} bytes expected`);
        }
        hash.update(chunk);
        let off = 0;
        while (off < chunk.length) off += (await local(fh.write(chunk, off, chunk.length - off, pos + off))).bytesWritten;
        pos += chunk.length;
        unsynced += chunk.length;
        if (unsynced >= SYNC_EVERY) {
          await local(fh.sync());
          unsynced = 0;
        }
        opts.onProgress?.(pos, size);
      }
    } catch (err) {
      if (err instanceof DownloadFailed || err instanceof Retry || err instanceof LocalIo) throw err;
      throw new Retry(`${url.host}: the connection dropped at byte ${pos} of ${size}: ${(err as Error).message}`, 'network');
    }
    await local(fh.sync());
  } finally {
    clearInterval(slow);
    await fh.close();
  }
  if (pos < size) throw new Retry(`${url.host}: the body ended at byte ${pos} of ${size}`, 'network');
  const got = hash.digest('hex');
  if (got !== want) throw new DownloadFailed('hash-mismatch', `${url.href}: sha256 ${got}, want ${want}: not the bundle expected`);
}
