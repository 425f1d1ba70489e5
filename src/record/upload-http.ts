// The robot's side of an upload on the wire: a PUT of a byte range of a file, and the POST that
// completes a multipart upload, to a presigned URL. No redirects are followed and no more than
// a small reply is read; a server that stops taking bytes is cut off after a quiet spell; the
// bandwidth cap is a token bucket shared by every request, so the robot's uplink (often LTE)
// keeps room for the fleet link and a technician.
import { createReadStream } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { monoMs } from '../rt/index.js';

/** Bytes per second over all uploads; `take` waits until the bytes may go. */
export class TokenBucket {
  private tokens: number;
  private lastMs = monoMs();

  constructor(private readonly bytesPerS: number) {
    // A quarter second of burst: enough for a 64 KiB read at any cap worth having.
    this.tokens = this.burst;
  }

  private get burst(): number {
    return Math.max(64 * 1024, this.bytesPerS / 4);
  }

  /**
   * The most bytes to write at once: half a second's worth under a low cap, so that a request
   * moves bytes often enough for the idle timeout (a 64 KiB read at 1 KiB/s would be a minute of silence).
   */
  get slice(): number {
    return this.bytesPerS <= 0 ? 64 * 1024 : Math.max(256, Math.min(64 * 1024, Math.floor(this.bytesPerS / 2)));
  }

  async take(n: number, signal?: AbortSignal): Promise<void> {
    if (this.bytesPerS <= 0) return;
    for (;;) {
      const now = monoMs();
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.lastMs) / 1000) * this.bytesPerS);
      this.lastMs = now;
      if (this.tokens >= n || this.tokens >= this.burst) {
        this.tokens -= n;
        return;
      }
      await sleep(Math.max(1, ((n - this.tokens) / this.bytesPerS) * 1000), undefined, { signal });
    }
  }
}

/** Why a request failed, as the uploader acts on it. */
export type FailureKind =
  /** 403: the URL expired or was never good; a new grant is needed. */
  | 'denied'
  /** Another 4xx, or a reply that makes no sense: the grant is wrong; a new one, after a pause. */
  | 'refused'
  /** 5xx, the network, a timeout: the same URL again after a pause. */
  | 'transient';

export class UploadError extends Error {
  constructor(
    readonly kind: FailureKind,
    message: string,
  ) {
    super(message);
  }
}

export interface RequestOptions {
  throttle: TokenBucket;
  /** A request that moves no byte either way for this long is abandoned. */
  idleMs: number;
  /**
   * A request slower than this on average (after one idle spell's grace) is abandoned: a server
   * that takes a byte now and then is never idle, and would hold the uploads for hours. 0: none.
   */
  minBytesPerS: number;
  signal: AbortSignal;
}

const MAX_REPLY = 64 * 1024;
const MAX_ETAG = 256;

function classify(status: number, body: string): UploadError {
  const code = /<Code>([^<]{1,64})<\/Code>/.exec(body)?.[1];
  const message = /<Message>([^<]{1,200})<\/Message>/.exec(body)?.[1];
  const what = `HTTP ${status}${code ? ` ${code}` : ''}${message ? `: ${message}` : ''}`;
  if (status === 403) return new UploadError('denied', what);
  // A presigned URL is signed for its host and path: a redirect elsewhere is never followed.
  if (status >= 300 && status < 400) return new UploadError('refused', `${what} (a redirect, not followed)`);
  if (status >= 400 && status < 500 && status !== 408 && status !== 429) return new UploadError('refused', what);
  return new UploadError('transient', what);
}

/** The reply's body; one longer than S3 ever sends (or endless) is cut off, not read to its end. */
async function readReply(res: IncomingMessage): Promise<{ text: string; cut: boolean }> {
  const chunks: Buffer[] = [];
  let n = 0;
  let cut = false;
  for await (const c of res as AsyncIterable<Buffer>) {
    chunks.push(c.subarray(0, MAX_REPLY - n));
    n += c.length;
    if (n >= MAX_REPLY) {
      cut = n > MAX_REPLY || !res.complete;
      break; // ends the reply (and its connection) here
    }
  }
  return { text: Buffer.concat(chunks).toString('utf8'), cut };
}

/**
 * Sends `body` (a byte range of a file, or a string) to `url` with `method`; resolves with the
 * reply's ETag header and body on a 2xx, else rejects with an UploadError.
 */
async function send(method: 'PUT' | 'POST', url: string, body: { file: string; start: number; end: number } | string, o: RequestOptions): Promise<{ etag: string | null; body: string }> {
  const u = new URL(url);
  const length = typeof body === 'string' ? Buffer.byteLength(body) : body.end - body.start;
  const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(u, {
    method,
    headers: { 'content-length': String(length), ...(typeof body === 'string' ? { 'content-type': 'application/xml' } : {}) },
    signal: o.signal,
  });
  req.setTimeout(o.idleMs, () => req.destroy(new UploadError('transient', `no progress for ${o.idleMs / 1000} s`)));
  const cut: { off: UploadError | null } = { off: null };
  const deadline =
    o.minBytesPerS > 0
      ? setTimeout(() => req.destroy((cut.off = new UploadError('transient', `too slow: under ${Math.round(o.minBytesPerS / 1024)} KiB/s on average`))), o.idleMs + (length / o.minBytesPerS) * 1000)
      : null;
  const replied = new Promise<IncomingMessage>((resolve, reject) => {
    req.once('response', resolve);
    req.once('error', reject);
  });
  // A reply before the body is all sent (an early 403) ends the upload there.
  let answered = false;
  replied.then(
    () => (answered = true),
    () => (answered = true),
  );
  // Bytes of a file's range handed to the socket before the reply came.
  let written = 0;
  try {
    if (typeof body === 'string') {
      req.end(body);
    } else if (length === 0) {
      req.end();
    } else {
      const stream = createReadStream(body.file, { start: body.start, end: body.end - 1, highWaterMark: 64 * 1024 });
      try {
        sending: for await (const chunk of stream as AsyncIterable<Buffer>) {
          for (let at = 0; at < chunk.length; at += o.throttle.slice) {
            const piece = chunk.subarray(at, at + o.throttle.slice);
            await o.throttle.take(piece.length, o.signal);
            if (req.destroyed || answered) break sending;
            written += piece.length;
            if (!req.write(piece)) await Promise.race([once(req, 'drain'), replied]);
          }
        }
      } finally {
        stream.destroy();
      }
      req.end();
    }
    const res = await replied;
    res.setTimeout?.(o.idleMs, () => res.destroy(new UploadError('transient', `reply stalled for ${o.idleMs / 1000} s`)));
    const { text, cut } = await readReply(res);
    const status = res.statusCode ?? 0;
    // An error page (a proxy's, a captive portal's) is judged by its status, however long.
    if (status < 200 || status >= 300) throw classify(status, text);
    if (cut) throw new UploadError('refused', `HTTP ${status} with a reply longer than ${MAX_REPLY / 1024} KiB`);
    // Nothing can be stored from bytes not yet sent: a success before them is a broken server or proxy.
    if (typeof body !== 'string' && written < length) throw new UploadError('refused', `HTTP ${status} answered before the whole body was sent`);
    const etag = res.headers.etag ?? null;
    return { etag: typeof etag === 'string' ? etag : null, body: text };
  } catch (err) {
    req.destroy();
    if (cut.off !== null) throw cut.off;
    if (err instanceof UploadError) throw err;
    if (o.signal.aborted) throw err;
    const e = err as NodeJS.ErrnoException;
    // The file itself (deleted by the disk policy, a bad disk) is not the network's fault.
    if (e.syscall === 'open' || e.syscall === 'read') throw err;
    throw new UploadError('transient', e.code ? `${e.code} ${e.message}` : e.message);
  } finally {
    if (deadline !== null) clearTimeout(deadline);
  }
}

/** PUTs bytes [start, end) of `file`; resolves with the part's ETag (S3 answers one for every part). */
export async function putRange(url: string, file: string, start: number, end: number, o: RequestOptions): Promise<string> {
  const { etag } = await send('PUT', url, { file, start, end }, o);
  if (etag === null) throw new UploadError('refused', 'the server stored the part but sent no ETag');
  // Every part's ETag is kept in progress.json (rewritten after each part) and sent back in the completion.
  if (etag.length > MAX_ETAG) throw new UploadError('refused', `the server answered an ETag of ${etag.length} characters (S3's are under 100)`);
  return etag;
}

/** Completes a multipart upload with its parts' ETags. S3 may answer 200 with an error inside. */
export async function completeMultipart(url: string, etags: readonly string[], o: RequestOptions): Promise<void> {
  const parts = etags.map((e, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>${escapeXml(e)}</ETag></Part>`).join('');
  const { body } = await send('POST', url, `<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUpload>${parts}</CompleteMultipartUpload>`, o);
  if (/<Error>/.test(body)) throw classify(500, body);
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
