// The serial port under a Dynamixel bus, over the serialport package's Linux binding. The
// binding opens and configures the port (raw termios, baud, lock, ASYNC_LOW_LATENCY); reads
// then go straight to the fd once the binding's poller says it is readable, so a tick pays
// neither the libuv thread pool nor an allocation per chunk.
import { readSync, writeSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { autoDetect, type LinuxPortBinding } from '@serialport/bindings-cpp';
import { ReflexError, errorMessage } from '../../core/index.js';

/** What a Dynamixel bus needs from a serial port. */
export interface SerialLink {
  readonly path: string;
  /** Queues bytes for sending; returns without waiting for them to leave. */
  write(data: Uint8Array, length: number): void;
  /** Resolves with the number of bytes read into `into` (at least 1). Rejects when closed. */
  read(into: Uint8Array): Promise<number>;
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

  private get fd(): number {
    const fd = this.port.fd;
    if (fd === null || this.closed) throw new ReflexError('NOT_CONNECTED', `${this.path} is closed`, { disconnected: true });
    return fd;
  }

  write(data: Uint8Array, length: number): void {
    let off = 0;
    while (off < length) off += writeSync(this.fd, data, off, length - off);
  }

  async read(into: Uint8Array): Promise<number> {
    for (;;) {
      await new Promise<void>((resolve, reject) => {
        if (this.closed) return reject(new ReflexError('NOT_CONNECTED', `${this.path} is closed`, { disconnected: true }));
        this.port.poller.once('readable', (err?: Error | null) => (err ? reject(err) : resolve()));
      });
      try {
        const n = readSync(this.fd, into, 0, into.length, null);
        if (n > 0) return n;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN' || code === 'EINTR') continue;
        throw new ReflexError('NOT_CONNECTED', `${this.path}: ${errorMessage(err)}`, { disconnected: true, cause: err });
      }
    }
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
export async function tuneLatency(link: SerialLink): Promise<LatencyReport> {
  const lowLatency = await link.setLowLatency();
  let timer: number | null = null;
  let warning: string | null = null;
  try {
    const tty = basename(realpathSync(link.path));
    const file = `/sys/bus/usb-serial/devices/${tty}/latency_timer`;
    timer = Number(readFileSync(file, 'utf8').trim());
    if (timer > 1) {
      try {
        writeFileSync(file, '1');
        timer = Number(readFileSync(file, 'utf8').trim());
      } catch {
        // not root: say how to fix it for good
      }
    }
    if (timer >= 16) warning = `FTDI latency_timer of ${link.path} is ${timer} ms; add the udev rule: ${FTDI_UDEV_RULE}`;
  } catch {
    // not a USB serial adapter (a pty, a native UART): no latency timer
  }
  return { lowLatency, ftdiLatencyTimerMs: timer, warning };
}
