// CAN over a file descriptor that carries struct can_frame: a raw SocketCAN socket (can0 on a
// Jetson's mttcan, a candleLight or PEAK adapter, vcan0), or a connection to the virtual bus's
// Unix socket. The socketcan npm package delivers frames as events on the main event loop,
// which the control worker never runs; so the tick reads and writes the socket itself, through
// the native addon, non-blocking, into buffers allocated once.
import { ReflexError } from '../../core/index.js';
import { frameSockets, serialIo, type FrameSockets, type SerialIo } from '../../rt/index.js';
import { CanErr, CanErrCrtl, CanFlag, FRAME_BYTES, frameFlags, frameId, writeFrame } from './frame.js';
import type { CanBusState, CanFilter, CanStats, CanTransport } from './transport.js';
import { passes, type FrameHandler } from './virtual.js';

const RX_FRAMES = 64;
const ENETDOWN = 100;

const errnoText = (e: number): string =>
  ({ 1: 'EPERM', 2: 'ENOENT', 19: 'ENODEV (no such interface)', 97: 'EAFNOSUPPORT (this kernel has no CAN)', 100: 'ENETDOWN (interface is down)', 111: 'ECONNREFUSED' })[e] ?? `errno ${e}`;

export class SocketCan implements CanTransport {
  state: CanBusState = 'error-active';
  readonly stats: CanStats = { sent: 0, received: 0, refused: 0, overruns: 0, busOffs: 0, errorFrames: 0 };
  /** The interface answered ENETDOWN: sends keep trying, since it may come back up. */
  private down = false;
  private readonly rx = new Uint8Array(RX_FRAMES * FRAME_BYTES);
  private start = 0;
  private end = 0;
  private readonly tx = new Uint8Array(FRAME_BYTES);
  private readonly view = new Uint8Array(8);
  private filters: readonly CanFilter[] = [];
  private closed = false;

  private constructor(
    readonly name: string,
    private fd: number,
    private readonly io: SerialIo,
    private readonly sockets: FrameSockets,
    /** Kernel SocketCAN (true) or the virtual bus's socket. */
    private readonly kernel: boolean,
  ) {}

  /** A raw socket on a SocketCAN interface (it must be up: `ip link set can0 up type can bitrate 1000000 restart-ms 100`). */
  static open(ifname: string): SocketCan {
    const s = frameSockets();
    const fd = s.canOpen(ifname);
    if (fd < 0) throw new ReflexError('START_FAILED', `CAN interface ${ifname}: ${errnoText(-fd)}`);
    return new SocketCan(ifname, fd, serialIo(), s, true);
  }

  /** A node on the virtual bus served at `path` (the simulated robot's). */
  static connectVirtual(path: string): SocketCan {
    const s = frameSockets();
    const fd = s.unixConnect(path);
    if (fd < 0) throw new ReflexError('START_FAILED', `virtual CAN bus ${path}: ${errnoText(-fd)}`);
    return new SocketCan(path, fd, serialIo(), s, false);
  }

  send(id: number, data: Uint8Array, length: number, flags = 0): boolean {
    if (this.closed || (this.state === 'bus-off' && !this.down) || length > 8) {
      this.stats.refused++;
      return false;
    }
    writeFrame(this.tx, 0, id, flags, data, length);
    const n = this.io.write(this.fd, this.tx, FRAME_BYTES, 0);
    if (n === FRAME_BYTES) {
      if (this.down) {
        this.down = false;
        this.state = 'error-active';
      }
      this.stats.sent++;
      return true;
    }
    if (n > 0) {
      // A stream socket took part of the frame: the rest must follow or the stream is garbled.
      this.io.write(this.fd, this.tx.subarray(n), FRAME_BYTES - n, 2000);
      this.stats.sent++;
      return true;
    }
    // 0: the socket's queue is full; ENOBUFS: the interface's; ENETDOWN: down or bus-off.
    this.stats.refused++;
    if (n === -ENETDOWN) {
      this.down = true;
      this.enterBusOff();
    }
    return false;
  }

  receive(take: FrameHandler): number {
    let n = 0;
    for (;;) {
      while (this.end - this.start >= FRAME_BYTES) {
        const at = this.start;
        this.start += FRAME_BYTES;
        const id = frameId(this.rx, at);
        const flags = frameFlags(this.rx, at);
        const len = Math.min(this.rx[at + 4]!, 8);
        for (let i = 0; i < 8; i++) this.view[i] = this.rx[at + 8 + i]!;
        if ((flags & CanFlag.ERROR) !== 0) {
          this.onError(id, this.view);
          continue;
        }
        if (!passes(this.filters, id)) continue;
        this.stats.received++;
        n++;
        take(id, this.view, len, flags);
      }
      if (!this.fill(0)) return n;
    }
  }

  wait(timeoutUs: number): boolean {
    if (this.end - this.start >= FRAME_BYTES) return true;
    this.fill(timeoutUs);
    return this.end - this.start >= FRAME_BYTES;
  }

  setFilters(filters: readonly CanFilter[]): void {
    this.filters = filters.map((f) => ({ ...f }));
    if (!this.kernel) return;
    // The kernel filters too, so other traffic never wakes this socket.
    const pairs = new Uint32Array(filters.length * 2);
    filters.forEach((f, i) => {
      pairs[2 * i] = f.id;
      pairs[2 * i + 1] = f.mask;
    });
    const r = this.sockets.canSetFilters(this.fd, pairs);
    if (r < 0) throw new ReflexError('START_FAILED', `CAN ${this.name}: setting filters: ${errnoText(-r)}`);
  }

  restart(): void {
    if (this.kernel) return; // restart-ms does it; the RESTARTED error frame returns the state
    // The virtual bus takes an error frame from a node as its restart request, and confirms.
    writeFrame(this.tx, 0, CanErr.RESTARTED, CanFlag.ERROR, this.view, 0);
    this.io.write(this.fd, this.tx, FRAME_BYTES, 1000);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sockets.close(this.fd);
    this.fd = -1;
  }

  /** Reads what is there (waiting up to timeoutUs for the first byte); false when nothing came. */
  private fill(timeoutUs: number): boolean {
    if (this.closed) return false;
    if (this.start > 0) {
      this.rx.copyWithin(0, this.start, this.end);
      this.end -= this.start;
      this.start = 0;
    }
    if (this.end === this.rx.length) return false;
    const r = this.io.read(this.fd, this.rx, this.end, 1, timeoutUs);
    if (r > 0) {
      this.end += r;
      return true;
    }
    if (r < 0 && !this.kernel) this.enterBusOff(); // the virtual bus went away
    return false;
  }

  private onError(id: number, data: Uint8Array): void {
    this.stats.errorFrames++;
    if ((id & CanErr.BUSOFF) !== 0) {
      this.enterBusOff();
    } else if ((id & CanErr.RESTARTED) !== 0) {
      this.state = 'error-active';
    } else if ((id & CanErr.CRTL) !== 0) {
      const c = data[1]!;
      if ((c & (CanErrCrtl.RX_PASSIVE | CanErrCrtl.TX_PASSIVE)) !== 0) this.state = 'error-passive';
      else if ((c & CanErrCrtl.ACTIVE) !== 0) this.state = 'error-active';
    }
  }

  private enterBusOff(): void {
    if (this.state === 'bus-off') return;
    this.state = 'bus-off';
    this.stats.busOffs++;
  }
}

