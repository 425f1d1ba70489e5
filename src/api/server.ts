import { createServer, createConnection, type Server, type Socket } from 'node:net';
import { chmodSync, chownSync, lstatSync, mkdirSync, unlinkSync, type Stats } from 'node:fs';
import { dirname } from 'node:path';
import { ReflexError, errorMessage, groupIdOf, type Logger, type Part } from '../core/index.js';
import { LineSplitter, MAX_LINE_BYTES, OVERLONG, parseRequest, salvageId, type Response } from './protocol.js';
import type { CommandRunner } from './registry.js';
import { changesState, peerOf, refusal, type AccessOptions, type Peer } from './access.js';

/** The one command a connection beyond `maxClients` may send (see README, "control socket"). */
export const RESERVED_COMMAND = 'estop';

export interface ControlSocketOptions {
  path: string;
  /** Octal file mode, e.g. "0660". */
  mode: string;
  /** Group given access to the socket; null keeps the daemon's group. */
  group: string | null;
  /** Bound on simultaneous clients: a local tool gone wild must not exhaust the daemon. */
  maxClients?: number;
  /** A client that sends no request for this long is disconnected, so idle clients cannot hold every slot. */
  idleTimeoutMs?: number;
  /** Requests read but not yet answered, per client; at the bound the server stops reading from it. */
  maxPending?: number;
  /** Replies a client has not read, in bytes, past which the server stops reading and answering it. */
  outputHighWaterBytes?: number;
  /** How long a client may leave its replies unread (past the high-water mark) before it is disconnected. */
  writeStallMs?: number;
  /** Unread replies, in bytes, past which a client is disconnected at once. */
  maxOutputBytes?: number;
  /**
   * Connections accepted beyond `maxClients` that may send one `estop` and nothing else, so a
   * flood of clients cannot lock out the e-stop. When they are all taken, the oldest one that
   * has not sent its line yet makes way for the newcomer.
   */
  reservedSlots?: number;
  /** How long a reserved connection has to send its line. */
  reservedDeadlineMs?: number;
  /** Who may run what, by the peer's credentials (api/access.ts); absent: anyone who can connect. */
  access?: AccessOptions;
}

/** The socket as status shows it: who holds a slot now. */
export interface SocketStatus {
  path: string;
  clients: number;
  /** Connections beyond `maxClients` that may only e-stop. */
  reserved: number;
}

type Limits = Required<Omit<ControlSocketOptions, 'path' | 'mode' | 'group' | 'access'>>;

const DEFAULTS: Limits = {
  maxClients: 16,
  idleTimeoutMs: 60_000,
  maxPending: 32,
  outputHighWaterBytes: 64 * 1024,
  writeStallMs: 10_000,
  // A camera snapshot is the largest reply (a base64 JPEG); this is a backstop, not a working bound.
  maxOutputBytes: 16 * 1024 * 1024,
  reservedSlots: 4,
  reservedDeadlineMs: 2_000,
};

/** Longest line a reserved connection may send: `{"id":1,"cmd":"estop"}` needs a few dozen bytes. */
const RESERVED_LINE_BYTES = 1024;
/** How long a connection we have ended may wait for the client to close its side. */
const LINGER_MS = 2_000;

export function groupId(name: string, groupFile = '/etc/group'): number {
  const gid = groupIdOf(name, groupFile);
  if (gid === null) throw new Error(`group "${name}" does not exist (socket.group)`);
  return gid;
}

/**
 * Whether something listens at the socket `path`. Only a refused connection proves a socket
 * stale; any other failure (a full backlog answers EAGAIN) could be a live daemon, so it is an
 * error rather than a licence to remove the socket.
 */
function isLive(path: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const s = createConnection(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED' || err.code === 'ENOENT') resolve(false);
      else reject(new ReflexError('START_FAILED', `cannot tell whether ${path} is in use: ${errorMessage(err)}`, { cause: err }));
    });
  });
}

function kindOf(st: Stats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a directory';
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a socket';
}

/**
 * The local control socket: newline-delimited JSON requests answered by the command registry
 * (any `CommandRunner`: the daemon's, or the simulated rig's).
 * Every input is bounded: clients, line length, requests queued per client, replies a client
 * leaves unread, and time without a request. A client past the limit can still e-stop.
 */
export class ControlSocketServer implements Part {
  readonly name = 'control-socket';
  private server: Server | null = null;
  private readonly limits: Limits;
  /** Every open connection, closed on stop. */
  private readonly sockets = new Set<Socket>();
  /** Connections holding one of the `maxClients` slots. */
  private clients = 0;
  /** Reserved connections, oldest first. */
  private readonly reserved: Connection[] = [];
  private full = false;

  constructor(
    private readonly opts: ControlSocketOptions,
    private readonly commands: CommandRunner,
    private readonly log: Logger,
  ) {
    const limits = { ...DEFAULTS };
    for (const k of Object.keys(DEFAULTS) as (keyof Limits)[]) limits[k] = opts[k] ?? DEFAULTS[k];
    this.limits = limits;
  }

  async start(): Promise<void> {
    const { path } = this.opts;
    mkdirSync(dirname(path), { recursive: true });
    await this.clearStale(path);
    const gid = this.opts.group === null ? null : groupId(this.opts.group);
    // allowHalfOpen: a client that sends its requests and then ends its side (`echo ... | socat`)
    // is still owed the replies; the connection ends once they are written.
    const server = createServer({ allowHalfOpen: true }, (sock) => this.accept(sock));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.log.error({ err: errorMessage(err) }, 'control socket error'));
    this.server = server;
    chmodSync(path, parseInt(this.opts.mode, 8));
    if (gid !== null) chownSync(path, -1, gid);
    this.log.info({ path }, 'control socket listening');
  }

  status(): SocketStatus {
    return { path: this.opts.path, clients: this.clients, reserved: this.reserved.length };
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (server === null) return;
    this.server = null;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /**
   * Removes a socket file left by a crash. Anything else at the path (a file, a directory, a
   * link) is left alone and refuses the start: the daemon runs as root, and a mistyped
   * `socket.path` must not delete what it names.
   */
  private async clearStale(path: string): Promise<void> {
    let st: Stats;
    try {
      st = lstatSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    if (!st.isSocket()) {
      throw new ReflexError('START_FAILED', `socket.path ${path} is ${kindOf(st)}, not a socket; refusing to replace it (remove it or choose another socket.path)`);
    }
    if (await isLive(path)) throw new ReflexError('START_FAILED', `${path} is in use: is another reflex running?`);
    unlinkSync(path);
  }

  private accept(sock: Socket): void {
    if (this.server === null) {
      sock.destroy();
      return;
    }
    this.sockets.add(sock);
    sock.once('close', () => this.sockets.delete(sock));
    const { limits } = this;
    const peer = this.peer(sock);
    if (this.clients < limits.maxClients) {
      this.clients++;
      this.full = false;
      new Connection(sock, this, { ...limits, reserved: false, maxLineBytes: MAX_LINE_BYTES }, peer, () => this.clients--);
      return;
    }
    if (!this.full) {
      this.full = true;
      this.log.warn({ maxClients: limits.maxClients }, 'control socket full: further connections may only e-stop');
    }
    if (this.reserved.length >= limits.reservedSlots) {
      const waiting = this.reserved.find((c) => !c.committed);
      if (waiting === undefined) {
        sock.destroy();
        return;
      }
      waiting.refuse(busy(null, limits.maxClients));
    }
    const conn: Connection = new Connection(
      sock,
      this,
      { ...limits, maxPending: 1, idleTimeoutMs: limits.reservedDeadlineMs, reserved: true, maxLineBytes: RESERVED_LINE_BYTES },
      peer,
      () => this.reserved.splice(this.reserved.indexOf(conn), 1),
    );
    this.reserved.push(conn);
  }

  /** Who is connected, as the kernel says; null when it cannot say (no addon, a closed socket). */
  private peer(sock: Socket): Peer | null {
    try {
      return peerOf(sock);
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, 'control socket: peer credentials unreadable');
      return null;
    }
  }

  /** The reply to one request line; never throws. */
  async answer(line: string, reserved: boolean, peer: Peer | null = null): Promise<Response> {
    let id = salvageId(line);
    try {
      const req = parseRequest(line);
      id = req.id;
      if (reserved && req.cmd !== RESERVED_COMMAND) return busy(id, this.limits.maxClients);
      if (reserved) this.log.warn('e-stop through a reserved connection (the control socket is full)');
      this.log.debug({ cmd: req.cmd, id }, 'request');
      const spec = this.commands.spec?.(req.cmd);
      const who = peer === null ? { uid: null, user: 'unknown' } : { uid: peer.uid, user: peer.user, pid: peer.pid };
      if (spec !== undefined && this.opts.access !== undefined) {
        const why = refusal(req.cmd, spec, peer, this.opts.access);
        if (why !== null) {
          this.log.warn({ cmd: req.cmd, ...who }, 'control command refused: not an operator');
          return { id, ok: false, error: { code: 'FORBIDDEN', message: why } };
        }
      }
      // The audit trail: every command that changes the robot's state, with who sent it.
      if (spec !== undefined && changesState(spec)) this.log.info({ cmd: req.cmd, args: req.args, via: 'socket', ...who }, `${req.cmd} by ${who.user}`);
      const result = await this.commands.run(req.cmd, req.args, { via: 'socket', peer });
      return { id, ok: true, result: result ?? null };
    } catch (err) {
      const code = err instanceof ReflexError ? err.code : 'COMMAND_FAILED';
      if (code === 'COMMAND_FAILED') this.log.warn({ err: errorMessage(err), line: line.slice(0, 200) }, 'control command failed');
      return { id, ok: false, error: { code, message: errorMessage(err) } };
    }
  }

  /** A connection closed for misbehaving; said once per connection. */
  dropped(why: string): void {
    this.log.warn({ why }, 'control socket client disconnected');
  }
}

function busy(id: Response['id'], maxClients: number): Response {
  return {
    id,
    ok: false,
    error: { code: 'BUSY', message: `too many clients (${maxClients}): a connection beyond the limit may only send ${RESERVED_COMMAND}` },
  };
}

interface ConnectionLimits extends Limits {
  reserved: boolean;
  maxLineBytes: number;
}

/**
 * One client. Requests are answered one at a time, in order. Reading stops (the client's writes
 * back up in the kernel, not in our heap) while `maxPending` requests wait or while its unread
 * replies pass the high-water mark; the next request is not run until those drain.
 */
class Connection {
  /** Set once this connection has sent a whole line (a reserved one is then no longer evictable). */
  committed = false;
  private readonly lines: LineSplitter;
  private readonly pending: string[] = [];
  private readonly highWater: number;
  /** The client ended its side. */
  private eof = false;
  /** Nothing more is read: the line bound was passed, or a reserved connection has its line. */
  private done = false;
  /** The reply that ends the connection after the queued ones (e.g. an over-long line). */
  private last: Response | null = null;
  private working = false;
  private released = false;
  private readonly idle: NodeJS.Timeout;
  private stall: NodeJS.Timeout | null = null;
  private linger: NodeJS.Timeout | null = null;

  constructor(
    private readonly sock: Socket,
    private readonly server: ControlSocketServer,
    private readonly limits: ConnectionLimits,
    private readonly peer: Peer | null,
    private readonly onRelease: () => void,
  ) {
    this.lines = new LineSplitter(limits.maxLineBytes);
    // A reply to a stream that stops at the kernel's own buffer would never be 'drain'ed.
    this.highWater = Math.max(limits.outputHighWaterBytes, sock.writableHighWaterMark);
    sock.on('data', (chunk: Buffer) => this.onData(chunk));
    sock.on('end', () => {
      this.eof = true;
      this.pump();
    });
    sock.on('drain', () => {
      if (this.stall !== null) clearTimeout(this.stall);
      this.stall = null;
      this.pump();
    });
    sock.on('error', () => sock.destroy());
    sock.on('close', () => this.close());
    this.idle = setTimeout(() => this.onIdle(), limits.idleTimeoutMs);
  }

  /** Ends a reserved connection that has to make way for a newer one. */
  refuse(res: Response): void {
    this.done = true;
    this.pending.length = 0;
    this.last = res;
    this.pump();
  }

  private onData(chunk: Buffer): void {
    if (this.done) return;
    this.lines.push(chunk);
    this.pump();
  }

  /** Takes what lines there is room for, sets reading on or off, and answers what is queued. */
  private pump(): void {
    while (!this.done && this.pending.length < this.limits.maxPending) {
      const line = this.lines.next(this.eof);
      if (line === null) break;
      if (line === OVERLONG) {
        this.done = true;
        this.last = { id: null, ok: false, error: { code: 'BAD_REQUEST', message: `request longer than ${this.limits.maxLineBytes} bytes` } };
        break;
      }
      const text = line.trim();
      if (text.length === 0) continue;
      this.pending.push(text);
      this.committed = true;
      this.idle.refresh();
      if (this.limits.reserved) this.done = true;
    }
    // Once nothing more will be taken, what still comes is read and discarded (so the client's
    // writes finish and it sees our reply and end) until the client or the linger closes it.
    const read = !this.eof && (this.done || (this.pending.length < this.limits.maxPending && this.sock.writableLength <= this.highWater));
    if (read) this.sock.resume();
    else this.sock.pause();
    void this.work();
  }

  private async work(): Promise<void> {
    if (this.working) return;
    this.working = true;
    while (this.pending.length > 0 && !this.sock.destroyed && this.sock.writableLength <= this.highWater) {
      const res = await this.server.answer(this.pending[0]!, this.limits.reserved, this.peer);
      this.pending.shift();
      this.send(res);
      // Room in the queue: take more lines from what was read, maybe read again.
      this.pump();
    }
    this.working = false;
    // pump() has taken every complete line there was room for, so an empty queue here means
    // nothing more will come: answer the last word and end.
    if (this.pending.length === 0 && (this.done || this.eof)) this.finish();
  }

  private send(res: Response): void {
    if (!this.sock.writable) return;
    this.sock.write(`${JSON.stringify(res)}\n`);
    const unread = this.sock.writableLength;
    if (unread > this.limits.maxOutputBytes) this.drop(`${unread} bytes of replies unread`);
    else if (unread > this.highWater && this.stall === null) {
      this.stall = setTimeout(() => this.drop(`replies unread for ${this.limits.writeStallMs} ms`), this.limits.writeStallMs);
    }
  }

  /** Everything owed is answered: the final reply if any, then our end of the connection. */
  private finish(): void {
    if (this.linger !== null || this.sock.destroyed) return;
    if (this.last !== null) this.send(this.last);
    this.last = null;
    this.sock.end();
    this.release();
    // A client that keeps its side open after our end gets a bounded wait, not a slot forever.
    this.linger = setTimeout(() => this.sock.destroy(), LINGER_MS);
  }

  private onIdle(): void {
    if (this.sock.destroyed || this.linger !== null) return;
    if (this.working || this.pending.length > 0) {
      this.idle.refresh();
      return;
    }
    const what = this.limits.reserved ? `sent no ${RESERVED_COMMAND}` : 'sent no request';
    this.done = true;
    this.last = { id: null, ok: false, error: { code: 'TIMEOUT', message: `${what} for ${this.limits.idleTimeoutMs} ms; closing` } };
    this.finish();
  }

  private drop(why: string): void {
    if (this.sock.destroyed) return;
    this.server.dropped(why);
    this.sock.destroy();
  }

  private close(): void {
    clearTimeout(this.idle);
    if (this.stall !== null) clearTimeout(this.stall);
    if (this.linger !== null) clearTimeout(this.linger);
    // Requests not yet begun are dropped with the connection; the one running completes.
    this.pending.length = this.working ? 1 : 0;
    this.release();
  }

  private release(): void {
    if (this.released) return;
    this.released = true;
    this.onRelease();
  }
}
