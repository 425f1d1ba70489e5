import { pino, type Logger, type DestinationStream } from 'pino';
import pretty from 'pino-pretty';

export type { Logger } from 'pino';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LoggingOptions {
  level: LogLevel;
  /** Human-readable lines instead of JSON; 'auto' means when stdout is a terminal. */
  pretty: boolean | 'auto';
  /** Where lines go; stdout by default (journald takes it from there). */
  destination?: DestinationStream;
}

/**
 * One root logger and a child per module. pino's children copy their level when created, so
 * changing the root's level later would not reach them: this keeps the children and sets
 * their levels itself, which is what a run-time level change through the control socket needs.
 */
export type LogTap = (record: Record<string, unknown>) => void;

export class Logging {
  readonly root: Logger;
  private readonly children = new Map<string, Logger>();
  private tap: LogTap | null = null;

  constructor(opts: LoggingOptions) {
    const usePretty = opts.pretty === 'auto' ? process.stdout.isTTY === true : opts.pretty;
    const dest =
      opts.destination ??
      (usePretty
        ? pretty({ colorize: process.stdout.isTTY === true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', sync: true })
        : pino.destination({ dest: 1, sync: true }));
    // Warnings and errors also go to a tap (the fleet link ships them), whatever the level set.
    const tap = {
      write: (line: string) => {
        if (this.tap === null) return;
        try {
          this.tap(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // a line the tap cannot read is still in the main log
        }
      },
    };
    this.root = pino({ level: opts.level, base: null }, pino.multistream([{ level: 'trace', stream: dest }, { level: 'warn', stream: tap }]));
  }

  /** Receives every warning and error record (one tap; the fleet link). */
  setTap(tap: LogTap | null): void {
    this.tap = tap;
  }

  /** The logger of module `mod` (`{ mod: 'dxl' }` on every line). */
  child(mod: string): Logger {
    let log = this.children.get(mod);
    if (!log) {
      log = this.root.child({ mod });
      this.children.set(mod, log);
    }
    return log;
  }

  /** Sets the level of one module, or of all of them when `mod` is omitted. */
  setLevel(level: LogLevel, mod?: string): void {
    if (mod !== undefined) {
      this.child(mod).level = level;
      return;
    }
    this.root.level = level;
    for (const log of this.children.values()) log.level = level;
  }

  levels(): Record<string, string> {
    const out: Record<string, string> = { '*': this.root.level };
    for (const [mod, log] of this.children) out[mod] = log.level;
    return out;
  }
}

export function isLogLevel(v: unknown): v is LogLevel {
  return typeof v === 'string' && (LOG_LEVELS as readonly string[]).includes(v);
}
