import { sdNotify } from './native.js';

export type NotifySend = (socketPath: string, message: string) => number;

/**
 * The systemd notification protocol (sd_notify(3)): READY=1, STOPPING=1, WATCHDOG=1, STATUS=.
 * Inactive (every call a no-op) when NOTIFY_SOCKET is not set, i.e. when not run by systemd
 * with Type=notify.
 */
export class SystemdNotifier {
  private readonly socket: string | null;
  private readonly watchdogUsec: number | null;
  private lastStatus = '';
  /** errno of the last failed send, 0 when the last send worked. */
  lastError = 0;

  constructor(
    env: NodeJS.ProcessEnv,
    private readonly send: NotifySend = sdNotify,
  ) {
    this.socket = env.NOTIFY_SOCKET && env.NOTIFY_SOCKET.length > 0 ? env.NOTIFY_SOCKET : null;
    const usec = Number(env.WATCHDOG_USEC);
    // WATCHDOG_PID, when set, names the process the watchdog is meant for (not a child of it).
    const forUs = env.WATCHDOG_PID === undefined || Number(env.WATCHDOG_PID) === process.pid;
    this.watchdogUsec = forUs && Number.isFinite(usec) && usec > 0 ? usec : null;
  }

  get active(): boolean {
    return this.socket !== null;
  }

  /** How often to send WATCHDOG=1: half of WatchdogSec, as sd_watchdog_enabled(3) advises. */
  get watchdogIntervalMs(): number | null {
    return this.watchdogUsec === null ? null : this.watchdogUsec / 2000;
  }

  ready(status: string): void {
    status = oneLine(status);
    this.lastStatus = status;
    this.write(`READY=1\nSTATUS=${status}`);
  }

  stopping(status = 'stopping'): void {
    status = oneLine(status);
    this.lastStatus = status;
    this.write(`STOPPING=1\nSTATUS=${status}`);
  }

  watchdog(): void {
    this.write('WATCHDOG=1');
  }

  /** Sends STATUS= only when the text changed, so a steady state sends nothing. */
  status(text: string): void {
    text = oneLine(text);
    if (text === this.lastStatus) return;
    this.lastStatus = text;
    this.write(`STATUS=${text}`);
  }

  private write(message: string): void {
    if (this.socket === null) return;
    this.lastError = this.send(this.socket, message.replace(/\0/g, ''));
  }
}

/** A newline would start a new assignment in the notify message. */
function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ');
}
