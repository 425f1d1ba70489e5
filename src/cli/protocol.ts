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
