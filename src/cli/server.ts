import { createServer, createConnection, type Server, type Socket } from 'node:net';
import { chmodSync, chownSync, mkdirSync, readFileSync, unlinkSync, existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { ReflexError, errorMessage, type Logger, type Part } from '../core/index.js';
import { MAX_LINE_BYTES, parseRequest, salvageId, type Response } from './protocol.js';
import type { CommandRegistry } from './commands.js';

export interface ControlSocketOptions {
  path: string;
  /** Octal file mode, e.g. "0660". */
  mode: string;
  /** Group given access to the socket; null keeps the daemon's group. */
  group: string | null;
  /** Bound on simultaneous clients: a local tool gone wild must not exhaust the daemon. */
  maxClients?: number;
}

export function groupId(name: string, groupFile = '/etc/group'): number {
  for (const line of readFileSync(groupFile, 'utf8').split('\n')) {
    const [g, , gid] = line.split(':');
    if (g === name && gid !== undefined) return Number(gid);
  }
  throw new Error(`group "${name}" does not exist (socket.group)`);
}

/** Resolves when something listens at `path`; a stale socket file from a crash does not count. */
function isLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** The local control socket: newline-delimited JSON requests answered by the command registry. */
export class ControlSocketServer implements Part {
  readonly name = 'control-socket';
  private server: Server | null = null;
  private readonly clients = new Set<Socket>();

  constructor(
    private readonly opts: ControlSocketOptions,
    private readonly commands: CommandRegistry,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    const { path } = this.opts;
    mkdirSync(dirname(path), { recursive: true });
    if (existsSync(path)) {
      if (await isLive(path)) throw new Error(`${path} is in use: is another reflex running?`);
      unlinkSync(path);
    }
    const gid = this.opts.group === null ? null : groupId(this.opts.group);
    const server = createServer((sock) => this.accept(sock));
    server.maxConnections = this.opts.maxClients ?? 16;
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

  async stop(): Promise<void> {
    const server = this.server;
    if (server === null) return;
    this.server = null;
    for (const c of this.clients) c.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private accept(sock: Socket): void {
    this.clients.add(sock);
    sock.setEncoding('utf8');
    let buffered = '';
    // Requests from one client are answered in order, one at a time.
    let queue = Promise.resolve();
    sock.on('data', (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        if (line.length === 0) continue;
        queue = queue.then(() => this.answer(sock, line));
      }
      if (Buffer.byteLength(buffered) > MAX_LINE_BYTES) {
        buffered = '';
        this.reply(sock, { id: null, ok: false, error: { code: 'BAD_REQUEST', message: `request longer than ${MAX_LINE_BYTES} bytes` } });
        sock.end();
      }
    });
    sock.on('error', () => sock.destroy());
    sock.on('close', () => this.clients.delete(sock));
  }

  private async answer(sock: Socket, line: string): Promise<void> {
    let id = salvageId(line);
    try {
      const req = parseRequest(line);
      id = req.id;
      this.log.debug({ cmd: req.cmd, id }, 'request');
      const result = await this.commands.run(req.cmd, req.args);
      this.reply(sock, { id, ok: true, result: result ?? null });
    } catch (err) {
      const code = err instanceof ReflexError ? err.code : 'COMMAND_FAILED';
      if (code === 'COMMAND_FAILED') this.log.warn({ err: errorMessage(err), line: line.slice(0, 200) }, 'control command failed');
      this.reply(sock, { id, ok: false, error: { code, message: errorMessage(err) } });
    }
  }

  private reply(sock: Socket, res: Response): void {
    if (!sock.writable) return;
    sock.write(`${JSON.stringify(res)}\n`);
  }
}
