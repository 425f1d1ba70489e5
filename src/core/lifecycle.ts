import { ReflexError, errorMessage } from './errors.js';
import type { Logger } from './log.js';

/**
 * What a part of the daemon says of itself, so that the daemon composes status, telemetry,
 * the STATUS= line and its commands from the parts instead of assembling them by hand.
 * `Api` is the type of the commands a part answers (the api room's catalog gives it).
 */
export interface Reporter<Api = unknown> {
  readonly name: string;
  /** Everything the part reports (`reflex status --json` shows it under the part's key). */
  status(): unknown;
  /** What is wrong now, in words; the daemon lists every part's in status.faults. */
  faults?(): string[];
  /** The few numbers the fleet gets every telemetry period; the parts' records are merged. */
  telemetry?(): Record<string, unknown>;
  /** A few words for systemctl's STATUS= line; the parts' are joined in order. */
  headline?(): string;
  /** The commands the part answers: handlers by command name. */
  api?(): Api;
}

/**
 * A part of the daemon with a name, a status, the commands it answers, and an orderly start
 * and stop. `stop()` must be idempotent. `safe()`, where a part has one, puts hardware in its
 * safe state and is called on every started part before anything is stopped, so motors are
 * made safe first.
 */
export interface Part<Api = unknown> extends Reporter<Api> {
  start(signal: AbortSignal): Promise<void>;
  stop(): Promise<void>;
  safe?(): Promise<void>;
}

export interface LifecycleOptions {
  /** Bound on each part's stop (and safe) call; a part that overruns is abandoned and logged. */
  stopTimeoutMs: number;
}

/** Starts parts in order, stops them in reverse, and unwinds what started when one fails. */
export class Lifecycle {
  private readonly started: Part[] = [];
  private readonly abort = new AbortController();
  private stopping: Promise<boolean> | undefined;

  constructor(
    private readonly parts: readonly Part[],
    private readonly log: Logger,
    private readonly opts: LifecycleOptions,
  ) {}

  get signal(): AbortSignal {
    return this.abort.signal;
  }

  /** Starts every part; on a failure, stops what started (in reverse) and rejects with START_FAILED. */
  async start(): Promise<void> {
    for (const part of this.parts) {
      if (this.abort.signal.aborted) throw new ReflexError('START_FAILED', 'start cancelled');
      this.log.debug({ part: part.name }, 'starting');
      try {
        await part.start(this.abort.signal);
      } catch (err) {
        this.log.error({ part: part.name, err: errorMessage(err) }, 'start failed; unwinding');
        await this.stop();
        throw new ReflexError('START_FAILED', `${part.name}: ${errorMessage(err)}`, { cause: err });
      }
      if (this.abort.signal.aborted) {
        // A stop came while this part was starting: the stop did not see it, so it is made
        // safe and stopped here, or it would run on after the daemon says it has stopped.
        if (part.safe) await this.bounded(part, 'safe', () => part.safe!());
        await this.bounded(part, 'stop', () => part.stop());
        throw new ReflexError('START_FAILED', 'start cancelled');
      }
      this.started.push(part);
      this.log.info({ part: part.name }, 'started');
    }
  }

  /** Makes hardware safe, then stops every started part in reverse. Resolves true when all stopped in time. */
  stop(): Promise<boolean> {
    this.stopping ??= this.stopAll();
    return this.stopping;
  }

  private async stopAll(): Promise<boolean> {
    this.abort.abort();
    let clean = true;
    const parts = [...this.started].reverse();
    for (const part of parts) {
      if (part.safe) clean = (await this.bounded(part, 'safe', () => part.safe!())) && clean;
    }
    for (const part of parts) {
      clean = (await this.bounded(part, 'stop', () => part.stop())) && clean;
    }
    this.started.length = 0;
    return clean;
  }

  private async bounded(part: Part, what: string, fn: () => Promise<void>): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.opts.stopTimeoutMs);
    });
    try {
      const r = await Promise.race([fn().then(() => 'done' as const), timeout]);
      if (r === 'timeout') {
        this.log.error({ part: part.name, ms: this.opts.stopTimeoutMs }, `${what} timed out`);
        return false;
      }
      this.log.info({ part: part.name }, what === 'safe' ? 'made safe' : 'stopped');
      return true;
    } catch (err) {
      this.log.error({ part: part.name, err: errorMessage(err) }, `${what} failed`);
      return false;
    } finally {
      clearTimeout(timer);
    }
  }
}
