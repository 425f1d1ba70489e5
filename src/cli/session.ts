// One connection to the daemon kept open for many requests (`reflex top` several times a
// second, a jog's confirmations): no connect per request, so a live view costs the daemon one
// small command per refresh; and the daemon sees the client go away when the connection does.
import { createConnection, type Socket } from 'node:net';
import { ReflexError, errorMessage } from '../core/index.js';
import { LineSplitter, OVERLONG, isObject, remoteError, type DaemonArgs, type DaemonCommand, type DaemonResult, type Response } from '../api/wire.js';

interface Waiter {
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

/** Replies can be large (a status with many joints); a reply longer than this is an error. */
const MAX_REPLY_BYTES = 16 * 1024 * 1024;

export class Session {
  private nextId = 1;
  private readonly waiting = new Map<number, Waiter>();
  private readonly lines = new LineSplitter(MAX_REPLY_BYTES);
  private closedWith: Error | null = null;
  private readonly closeHandlers: ((err: Error) => void)[] = [];

  private constructor(private readonly sock: Socket, readonly path: string) {
    sock.on('data', (chunk: Buffer) => this.onData(chunk));
    sock.on('error', (err) => this.fail(new ReflexError('NOT_CONNECTED', `lost the daemon at ${path}: ${errorMessage(err)}`, { disconnected: true })));
    sock.on('close', () => this.fail(new ReflexError('NOT_CONNECTED', `the daemon at ${path} closed the connection`, { disconnected: true })));
  }

  static connect(path: string, timeoutMs = 5000): Promise<Session> {
    return new Promise((resolve, reject) => {
      const sock = createConnection(path);
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new ReflexError('TIMEOUT', `no connection to ${path} in ${timeoutMs} ms`, { timeout: true }));
      }, timeoutMs);
      sock.once('error', (err) => {
        clearTimeout(timer);
        reject(new ReflexError('NOT_CONNECTED', `cannot reach the daemon at ${path}: ${errorMessage(err)}`, { disconnected: true }));
      });
      sock.once('connect', () => {
        clearTimeout(timer);
        sock.removeAllListeners('error');
        resolve(new Session(sock, path));
      });
    });
  }

  request<N extends DaemonCommand>(cmd: N, args?: DaemonArgs<N>, timeoutMs?: number): Promise<DaemonResult<N>>;
  request(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 5000): Promise<unknown> {
    if (this.closedWith !== null) return Promise.reject(this.closedWith);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new ReflexError('TIMEOUT', `no answer to ${cmd} from ${this.path} in ${timeoutMs} ms`, { timeout: true }));
      }, timeoutMs);
      this.waiting.set(id, { resolve, reject, timer });
      this.sock.write(`${JSON.stringify({ id, cmd, args })}\n`);
    });
  }

  /** Called once, when the connection ends (the daemon stopped, or closed it). */
  onClose(fn: (err: Error) => void): void {
    this.closeHandlers.push(fn);
  }

  close(): void {
    this.sock.destroy();
  }

  private onData(chunk: Buffer): void {
    this.lines.push(chunk);
    for (;;) {
      const line = this.lines.next();
      if (line === null) return;
      if (line === OVERLONG) return this.fail(new ReflexError('COMMAND_FAILED', `a reply from ${this.path} was longer than ${MAX_REPLY_BYTES} bytes`));
      let res: Response;
      try {
        res = JSON.parse(line) as Response;
      } catch {
        return this.fail(new ReflexError('COMMAND_FAILED', 'the daemon sent a malformed reply'));
      }
      if (!isObject(res) || typeof res.id !== 'number') continue; // a reply to no request of ours (an idle timeout's)
      const w = this.waiting.get(res.id);
      if (w === undefined) continue;
      this.waiting.delete(res.id);
      clearTimeout(w.timer);
      if (res.ok) w.resolve(res.result);
      else w.reject(remoteError(res.error));
    }
  }

  private fail(err: Error): void {
    if (this.closedWith !== null) return;
    this.closedWith = err;
    this.sock.destroy();
    for (const w of this.waiting.values()) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    this.waiting.clear();
    for (const fn of this.closeHandlers) fn(err);
  }
}
