import { createConnection, type Socket } from 'node:net';
import { ReflexError, errorMessage, type ErrorCode } from '../core/index.js';
import { isObject, type Response } from './protocol.js';
import type { DaemonArgs, DaemonCommand, DaemonResult } from './catalog.js';

/**
 * Sends one request to a control socket and returns its result (throws on an error response).
 * A command of the daemon's catalog gets its args and result typed from the catalog; any
 * other name (the simulated rig's, a test's) is untyped.
 */
export function request<N extends DaemonCommand>(path: string, cmd: N, args?: DaemonArgs<N>, timeoutMs?: number): Promise<DaemonResult<N>>;
export function request(path: string, cmd: string, args?: Record<string, unknown>, timeoutMs?: number): Promise<unknown>;
export async function request(path: string, cmd: string, args: Record<string, unknown> = {}, timeoutMs = 5000): Promise<unknown> {
  const sock: Socket = createConnection(path);
  sock.setEncoding('utf8');
  try {
    const line = await new Promise<string>((resolve, reject) => {
      let buffered = '';
      const timer = setTimeout(() => reject(new ReflexError('TIMEOUT', `no answer from ${path} in ${timeoutMs} ms`, { timeout: true })), timeoutMs);
      sock.once('error', (err) => {
        clearTimeout(timer);
        reject(new ReflexError('NOT_CONNECTED', `cannot reach the daemon at ${path}: ${errorMessage(err)}`, { disconnected: true }));
      });
      sock.on('data', (chunk: string) => {
        buffered += chunk;
        const nl = buffered.indexOf('\n');
        if (nl >= 0) {
          clearTimeout(timer);
          resolve(buffered.slice(0, nl));
        }
      });
      sock.once('connect', () => sock.write(`${JSON.stringify({ id: 1, cmd, args })}\n`));
    });
    const res = JSON.parse(line) as Response;
    if (!isObject(res)) throw new ReflexError('COMMAND_FAILED', 'daemon sent a malformed response');
    if (!res.ok) throw remoteError(res.error);
    return res.result;
  } finally {
    sock.destroy();
  }
}

/**
 * The daemon's error code, kept when a caller acts on it (the technician's client turns it into
 * an exit status); any other is COMMAND_FAILED. Never a `timeout`/`disconnected` flag: the
 * daemon answered.
 */
const KEPT_CODES: ReadonlySet<string> = new Set<ErrorCode>(['BAD_REQUEST', 'UNKNOWN_COMMAND', 'BUSY', 'FORBIDDEN', 'REFUSED', 'BUS_FAULT', 'BUS_ERROR', 'DEVICE_ERROR']);

/** The error an error response stands for: its message as `CODE: message`. */
export function remoteError(error: { code: string; message: string }): ReflexError {
  const code: ErrorCode = KEPT_CODES.has(error.code) ? (error.code as ErrorCode) : 'COMMAND_FAILED';
  return new ReflexError(code, `${error.code}: ${error.message}`);
}
