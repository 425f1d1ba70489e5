// The serial port under a Dynamixel bus, over the serialport package's Linux binding. The
// binding opens and configures the port (raw termios, baud, lock, ASYNC_LOW_LATENCY); reads
// and writes then go straight to the fd through the native addon (TickIo), so a transaction
// pays neither the libuv thread pool nor an allocation per chunk, in any thread.
import { writeSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { constants } from 'node:os';
import { basename } from 'node:path';
import { autoDetect, type LinuxPortBinding } from '@serialport/bindings-cpp';
import { ReflexError, errorMessage } from '../../core/index.js';
import { serialIo } from '../../rt/index.js';

/** What a Dynamixel bus needs from a serial port. */
export interface SerialLink {
  readonly path: string;
  /** The open file descriptor, for the control thread's synchronous I/O (TickIo). */
  readonly fd: number;
  /** Queues bytes for sending; returns without waiting for them to leave. */
  write(data: Uint8Array, length: number): void;
  /** Discards whatever has arrived and not been read. */
  flushInput(): Promise<void>;
  setBaud(baud: number): Promise<void>;
  /** Sets ASYNC_LOW_LATENCY; false where the driver does not take it (a pty, some UARTs). */
  setLowLatency(): Promise<boolean>;
  close(): Promise<void>;
}

export interface LatencyReport {
  /** ASYNC_LOW_LATENCY was set on the port. */
  lowLatency: boolean;
  /** The FTDI latency timer in ms, when the port is an FTDI adapter (U2D2). */
  ftdiLatencyTimerMs: number | null;
  /** What to do about it, when something should be done. */
  warning: string | null;
}

export const FTDI_UDEV_RULE =
  'ACTION=="add", SUBSYSTEM=="usb-serial", DRIVER=="ftdi_sio", ATTR{latency_timer}="1"';

class BindingLink implements SerialLink {
  private closed = false;

  constructor(
    readonly path: string,
    private readonly port: LinuxPortBinding,
  ) {}

  get fd(): number {
    const fd = this.port.fd;
    if (fd === null || this.closed) throw new ReflexError('NOT_CONNECTED', `${this.path} is closed`, { disconnected: true });
    return fd;
  }

  write(data: Uint8Array, length: number): void {
    let off = 0;
    while (off < length) off += writeSync(this.fd, data, off, length - off);
  }

  async flushInput(): Promise<void> {
    await this.port.flush();
  }

  async setBaud(baud: number): Promise<void> {
    await this.port.update({ baudRate: baud });
  }

  async setLowLatency(): Promise<boolean> {
    try {
      await this.port.set({ lowLatency: true });
      return true;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Closing stops the poller, which cancels a pending read.
    await this.port.close();
  }
}

export async function openSerial(path: string, baud: number): Promise<SerialLink> {
  const Binding = autoDetect();
  let port;
  try {
    port = (await Binding.open({ path, baudRate: baud, lock: true })) as LinuxPortBinding;
  } catch (err) {
    throw new ReflexError('NOT_CONNECTED', `cannot open ${path}: ${errorMessage(err)}`, { disconnected: true, cause: err });
  }
  return new BindingLink(path, port);
}

/**
 * Makes a USB serial adapter answer quickly: ASYNC_LOW_LATENCY where the driver takes it, and
 * the FTDI latency timer (16 ms by default, which alone would eat most of a 20 ms tick) set to
 * 1 ms where we may write it. Reports what it found and, when it could not fix it, the fix.
 */
export interface SysfsAccess {
  root: string;
  write: (file: string, value: string) => void;
}

const SYSFS: SysfsAccess = { root: '/sys/bus/usb-serial/devices', write: (file, value) => writeFileSync(file, value) };

export async function tuneLatency(link: SerialLink, sysfs: SysfsAccess = SYSFS): Promise<LatencyReport> {
  const lowLatency = await link.setLowLatency();
  let timer: number | null = null;
  let warning: string | null = null;
  try {
    const tty = basename(realpathSync(link.path));
    const file = `${sysfs.root}/${tty}/latency_timer`;
    timer = Number(readFileSync(file, 'utf8').trim());
    if (timer > 1) {
      try {
        sysfs.write(file, '1');
        timer = Number(readFileSync(file, 'utf8').trim());
      } catch {
        // not root: say how to fix it for good
      }
    }
    if (timer >= 16) warning = `FTDI latency_timer of ${link.path} is ${timer} ms; install the udev rules (systemd/udev/99-reflex.rules as /etc/udev/rules.d/99-reflex.rules, README "On a robot"), which hold: ${FTDI_UDEV_RULE}`;
  } catch {
    // not a USB serial adapter (a pty, a native UART): no latency timer
  }
  return { lowLatency, ftdiLatencyTimerMs: timer, warning };
}

/**
 * The control thread's view of a port: write a request, then wait right there for the reply
 * bytes with a deadline. Synchronous and allocation-free (the native addon does the waiting).
 */
export interface TickIo {
  /** False when not every byte went out (output stuck). */
  write(buf: Uint8Array, len: number): boolean;
  /** Reads into buf from offset until minBytes arrived or timeoutUs passed; returns the count. Throws when the port is gone. */
  read(buf: Uint8Array, offset: number, minBytes: number, timeoutUs: number): number;
  discardInput(): void;
}

/** " (EIO)" for errno 5: the name a person searches for (only when a port fails, never per tick). */
function errnoName(e: number): string {
  for (const [name, v] of Object.entries(constants.errno)) if (v === e) return ` (${name})`;
  return '';
}

export function tickIo(link: SerialLink): TickIo {
  const io = serialIo();
  const fd = link.fd;
  const lost = (r: number) => new ReflexError('BUS_ERROR', `${link.path}: errno ${-r}${errnoName(-r)}`, { disconnected: true });
  return {
    write: (buf, len) => {
      const r = io.write(fd, buf, len, 5000);
      if (r < 0) throw lost(r);
      return r === len;
    },
    read: (buf, offset, minBytes, timeoutUs) => {
      const r = io.read(fd, buf, offset, minBytes, timeoutUs);
      if (r < 0) throw lost(r);
      return r;
    },
    discardInput: () => {
      io.discardInput(fd);
    },
  };
}
