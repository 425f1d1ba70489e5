// A handful of coded errors rather than a class tree: callers branch on `code`, and flags such
// as `timeout` say what kind of failure it was.

export type ErrorCode =
  | 'CONFIG_INVALID'
  | 'CONFIG_UNREADABLE'
  | 'START_FAILED'
  | 'STOP_TIMEOUT'
  | 'BAD_REQUEST'
  | 'UNKNOWN_COMMAND'
  | 'COMMAND_FAILED'
  | 'NOT_CONNECTED'
  /** The control socket has every client slot taken: only `estop` is answered. */
  | 'BUSY'
  | 'TIMEOUT'
  /** A bus transaction failed: no reply, a corrupt reply, a port that went away. */
  | 'BUS_ERROR'
  /** A device answered with an error in its status (e.g. access error, hardware alert). */
  | 'DEVICE_ERROR'
  /** A bus failed for longer than its error budget: latched until reset. */
  | 'BUS_FAULT'
  /** The control socket's peer is not allowed this command (its group, see control.operatorGroup). */
  | 'FORBIDDEN'
  /** The command cannot be done in the robot's current state (reset with nothing to reset). */
  | 'REFUSED';

export interface ReflexErrorOptions {
  cause?: unknown;
  timeout?: boolean;
  disconnected?: boolean;
}

export class ReflexError extends Error {
  readonly code: ErrorCode;
  readonly timeout: boolean;
  readonly disconnected: boolean;

  constructor(code: ErrorCode, message: string, opts: ReflexErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'ReflexError';
    this.code = code;
    this.timeout = opts.timeout ?? false;
    this.disconnected = opts.disconnected ?? false;
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Exit statuses from sysexits.h that systemd units and scripts act on. */
export const EXIT = {
  OK: 0,
  FAILURE: 1,
  USAGE: 64,
  UNAVAILABLE: 69,
  /** A bad config: the unit's RestartPreventExitStatus=78 keeps systemd from restart-looping. */
  CONFIG: 78,
} as const;
