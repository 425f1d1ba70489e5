// The virtual bus reached from other threads and processes: a Unix socket on which each
// connection is one node of a VirtualCanHub, frames travelling as struct can_frame (16 bytes),
// exactly as SocketCAN hands them over. The simulated robot serves it; the control worker
// connects with SocketCan.connectVirtual, so the tick runs the same code as on a real bus.
import { createServer, type Server, type Socket } from 'node:net';
import { mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { CanErr, CanErrCrtl, CanFlag, FRAME_BYTES, frameFlags, frameId, writeFrame } from './frame.js';
import type { CanBusState } from './transport.js';
import type { VirtualCanHub } from './virtual.js';

export class VirtualCanServer {
  private readonly conns = new Set<Socket>();

  private constructor(
    readonly path: string,
    private readonly server: Server,
    private readonly hub: VirtualCanHub,
  ) {
    server.on('connection', (s) => this.attach(s));
  }

  static async listen(hub: VirtualCanHub, path: string): Promise<VirtualCanServer> {
    mkdirSync(dirname(path), { recursive: true });
    rmSync(path, { force: true });
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
    return new VirtualCanServer(path, server, hub);
  }

  get connections(): number {
    return this.conns.size;
  }

  /** Fault injection: every connected controller is told its bus went to `state` (an error frame). */
  injectState(state: CanBusState): void {
    const f = Buffer.alloc(FRAME_BYTES);
    const data = new Uint8Array(8);
    if (state === 'bus-off') writeFrame(f, 0, CanErr.BUSOFF, CanFlag.ERROR, data, 8);
    else {
      data[1] = state === 'error-passive' ? CanErrCrtl.TX_PASSIVE | CanErrCrtl.RX_PASSIVE : CanErrCrtl.ACTIVE;
      writeFrame(f, 0, CanErr.CRTL, CanFlag.ERROR, data, 8);
    }
    for (const c of this.conns) c.write(f);
  }

  async close(): Promise<void> {
    for (const c of this.conns) c.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    rmSync(this.path, { force: true });
  }

  private attach(sock: Socket): void {
    this.conns.add(sock);
    const node = this.hub.listen((id, data, length, flags) => {
      const f = Buffer.alloc(FRAME_BYTES);
      writeFrame(f, 0, id, flags, data, length);
      sock.write(f);
    });
    let pending: Buffer = Buffer.alloc(0);
    sock.on('data', (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      let at = 0;
      for (; at + FRAME_BYTES <= pending.length; at += FRAME_BYTES) {
        const id = frameId(pending, at);
        const flags = frameFlags(pending, at);
        if ((flags & CanFlag.ERROR) !== 0) {
          // A node's restart request: the bus confirms as the kernel does, with RESTARTED.
          if ((id & CanErr.RESTARTED) !== 0) {
            const f = Buffer.alloc(FRAME_BYTES);
            writeFrame(f, 0, CanErr.RESTARTED, CanFlag.ERROR, new Uint8Array(8), 8);
            sock.write(f);
          }
          continue;
        }
        node.send(id, pending.subarray(at + 8, at + 16), Math.min(pending[at + 4]!, 8), flags);
      }
      pending = pending.subarray(at);
    });
    const drop = () => {
      node.close();
      this.conns.delete(sock);
    };
    sock.on('close', drop);
    sock.on('error', drop);
  }
}
