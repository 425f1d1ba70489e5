import { createRequire } from 'node:module';
import type { Logger, DestinationStream } from 'pino';
import type PinoPretty from 'pino-pretty';

// pino and pino-pretty load when the first Logging is made, not when core/ is imported: worker
// threads import core/ for its errors alone, and loading both costs ~70 ms of a policy swap.
const require = createRequire(import.meta.url);
const loadPino = () => (require('pino') as typeof import('pino')).pino;
const loadPretty = () => require('pino-pretty') as typeof PinoPretty;

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

export type LogTap = (record: Record<string, unknown>) => void;

const LEVEL_VALUES: Record<LogLevel, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };
/** Lines of the local log kept for `reflex logs`, and the longest line kept whole. */
const KEPT_LINES = 2000;
const MAX_KEPT_LINE = 8192;
/** The tap (fleet shipping) takes warnings and above. */
const TAP_LEVEL = LEVEL_VALUES.warn;

/** What pino itself is set to: the level asked for, or warn where that is quieter, so the tap still sees warnings. */
function pinoLevel(level: LogLevel): LogLevel {
  return LEVEL_VALUES[level] > TAP_LEVEL ? 'warn' : level;
}

/**
 * One root logger and a child per module. pino's children copy their level when created, so
 * changing the root's level later would not reach them: this keeps the children and sets
 * their levels itself, which is what a run-time level change through the control socket needs.
 *
 * The level set here is what the local log shows; it never silences the tap. pino drops a
 * record below its level before any stream sees it, so pino is never set above warn: the one
 * stream below writes a record to the local log when it reaches the level asked for that
 * logger, and hands warnings and errors to the tap whatever that level is.
 */
export class Logging {
  readonly root: Logger;
  private readonly children = new Map<string, Logger>();
  /** The level asked for, per logger (pino's own may be lower: see pinoLevel). */
  private readonly wanted = new WeakMap<Logger, LogLevel>();
  private rootLevel: LogLevel;
  private tap: LogTap | null = null;
  /** The newest lines of the local log, for `reflex logs` where there is no journal to read. */
  private readonly recent: string[] = [];
  /** Sequence number of the line after the newest one kept. */
  private recentNext = 0;

  constructor(opts: LoggingOptions) {
    const pino = loadPino();
    const usePretty = opts.pretty === 'auto' ? process.stdout.isTTY === true : opts.pretty;
    const dest =
      opts.destination ??
      (usePretty
        ? loadPretty()({ colorize: process.stdout.isTTY === true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', sync: true })
        : pino.destination({ dest: 1, sync: true }));
    // pino fills in the level and the logger of each record before it calls write.
    const out = {
      [pino.symbols.needsMetadataGsym]: true,
      lastLevel: 0,
      lastLogger: undefined as Logger | undefined,
      write: (line: string) => {
        const level = out.lastLevel;
        const logger = out.lastLogger;
        if (level >= LEVEL_VALUES[(logger && this.wanted.get(logger)) ?? this.rootLevel]) {
          dest.write(line);
          this.keep(line);
        }
        // Warnings and errors also go to the tap (the fleet link ships them), whatever the level set.
        if (level < TAP_LEVEL || this.tap === null) return;
        try {
          this.tap(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // a line the tap cannot read is still in the main log
        }
      },
    };
    this.rootLevel = opts.level;
    this.root = pino({ level: pinoLevel(opts.level), base: null }, out);
  }

  private keep(line: string): void {
    this.recent.push(line.length > MAX_KEPT_LINE ? `${line.slice(0, MAX_KEPT_LINE)}...` : line);
    if (this.recent.length > KEPT_LINES) this.recent.shift();
    this.recentNext++;
  }

  /**
   * The lines of the local log from sequence number `since` (at most `limit`, the newest), and
   * the number to ask from next time; `missed`: lines that were no longer kept.
   */
  recentLines(since = 0, limit = KEPT_LINES): { lines: string[]; next: number; missed: number } {
    const first = this.recentNext - this.recent.length;
    const from = Math.max(since, first, this.recentNext - limit);
    return { lines: this.recent.slice(from - first), next: this.recentNext, missed: Math.max(0, first - since) };
  }

  /** Receives every warning and error record, whatever the level set (one tap; the fleet link). */
  setTap(tap: LogTap | null): void {
    this.tap = tap;
  }

  /** The logger of module `mod` (`{ mod: 'dxl' }` on every line). */
  child(mod: string): Logger {
    let log = this.children.get(mod);
    if (!log) {
      log = this.root.child({ mod });
      this.children.set(mod, log);
      this.wanted.set(log, this.rootLevel);
    }
    return log;
  }

  /** Sets the level of one module, or of all of them when `mod` is omitted (the local log's; the tap always gets warnings). */
  setLevel(level: LogLevel, mod?: string): void {
    if (mod !== undefined) {
      const log = this.child(mod);
      log.level = pinoLevel(level);
      this.wanted.set(log, level);
      return;
    }
    this.rootLevel = level;
    this.root.level = pinoLevel(level);
    for (const log of this.children.values()) {
      log.level = pinoLevel(level);
      this.wanted.set(log, level);
    }
  }

  levels(): Record<string, string> {
    const out: Record<string, string> = { '*': this.rootLevel };
    for (const [mod, log] of this.children) out[mod] = this.wanted.get(log) ?? this.rootLevel;
    return out;
  }
}

export function isLogLevel(v: unknown): v is LogLevel {
  return typeof v === 'string' && (LOG_LEVELS as readonly string[]).includes(v);
}
