// The local control socket speaks newline-delimited JSON: one request per line, one response
// per line, matched by `id`.
//   request:  {"id": 1, "cmd": "status", "args": {}}
//   response: {"id": 1, "ok": true, "result": {...}}
//             {"id": 1, "ok": false, "error": {"code": "UNKNOWN_COMMAND", "message": "..."}}
import { ReflexError } from '../core/index.js';

export type RequestId = string | number | null;

export interface Request {
  id: RequestId;
  cmd: string;
  args: Record<string, unknown>;
}

export type Response =
  | { id: RequestId; ok: true; result: unknown }
  | { id: RequestId; ok: false; error: { code: string; message: string } };

/** Longest request line accepted; longer input is an error, not unbounded buffering. */
export const MAX_LINE_BYTES = 64 * 1024;

/** What `LineSplitter.next` returns when the line in progress is longer than its bound. */
export const OVERLONG = Symbol('overlong line');

/**
 * Cuts a byte stream into lines, bounding every line as its bytes arrive: a line's length is
 * counted across reads, so a long line whose newline comes in a later read is refused as soon
 * as it passes the bound, whatever the reads' sizes. Chunks are kept as they came (no copy per
 * read), and each byte is scanned for a newline once.
 */
export class LineSplitter {
  private parts: Buffer[] = [];
  private length = 0;
  /** Leading bytes of `parts` already known to hold no newline. */
  private scanned = 0;

  constructor(private readonly maxLineBytes: number = MAX_LINE_BYTES) {}

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.parts.push(chunk);
    this.length += chunk.length;
  }

  /** Bytes held: at most one read beyond the line in progress. */
  get held(): number {
    return this.length;
  }

  /**
   * The next complete line (without its newline), null when none is complete yet, or OVERLONG.
   * At the end of input (`eof`) what is left without a newline is a last line.
   */
  next(eof = false): string | null | typeof OVERLONG {
    const nl = this.findNewline();
    if (nl < 0) {
      this.scanned = this.length;
      if (this.length > this.maxLineBytes) return OVERLONG;
      if (!eof || this.length === 0) return null;
      return this.take(this.length, 0);
    }
    if (nl > this.maxLineBytes) return OVERLONG;
    return this.take(nl, 1);
  }

  /** Position of the first newline in the held bytes, or -1; looks no further than one byte past the bound. */
  private findNewline(): number {
    const limit = this.maxLineBytes + 1;
    let base = 0;
    for (const part of this.parts) {
      if (base >= limit) break;
      const from = Math.max(0, this.scanned - base);
      if (from < part.length) {
        const i = part.indexOf(0x0a, from);
        if (i >= 0) return base + i;
      }
      base += part.length;
    }
    return -1;
  }

  /** Removes `n` bytes plus `skip` (the newline) from the front and returns the `n` as text. */
  private take(n: number, skip: number): string {
    const all = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.length);
    const line = all.toString('utf8', 0, n);
    const rest = all.subarray(n + skip);
    this.parts = rest.length > 0 ? [rest] : [];
    this.length = rest.length;
    this.scanned = 0;
    return line;
  }
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Parses one request line. Throws BAD_REQUEST with what was wrong; `id` is kept when it can be read. */
export function parseRequest(line: string): Request {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw new ReflexError('BAD_REQUEST', 'request is not valid JSON');
  }
  if (!isObject(v)) throw new ReflexError('BAD_REQUEST', 'request must be a JSON object');
  const id = v.id;
  if (id !== undefined && id !== null && typeof id !== 'string' && typeof id !== 'number') {
    throw new ReflexError('BAD_REQUEST', 'id must be a string or a number');
  }
  if (typeof v.cmd !== 'string' || v.cmd.length === 0) throw new ReflexError('BAD_REQUEST', 'cmd must be a non-empty string');
  if (v.args !== undefined && !isObject(v.args)) throw new ReflexError('BAD_REQUEST', 'args must be a JSON object');
  return { id: id ?? null, cmd: v.cmd, args: v.args ?? {} };
}

/** The id of a request line that failed to parse, when one can be had, so the reply can carry it. */
export function salvageId(line: string): RequestId {
  try {
    const v: unknown = JSON.parse(line);
    if (isObject(v) && (typeof v.id === 'string' || typeof v.id === 'number')) return v.id;
  } catch {
    // not JSON: no id to give back
  }
  return null;
}
