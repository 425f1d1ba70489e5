// One host for every worker thread (the control loop, each inference worker, the vision
// worker): it spawns the thread, waits for its ready handshake within a bound, sends it
// requests by id with timeouts, stops it within a bound (ask, then terminate, then give up and
// say so: a thread stuck in a native call cannot be interrupted, and a stop must never wait
// forever), and reports a thread that died on its own with the reason.
//
// Messages are for rare control events only; the data between threads goes through shared
// memory (channels.ts, records.ts). `hostPort()` is the worker side of the same envelope.
import { Worker, parentPort, type ResourceLimits } from 'node:worker_threads';

/** What a worker and its host say to each other. */
export interface WorkerProtocol {
  /** What the worker reports when it is ready. */
  ready: unknown;
  /** Events from the worker, as they happen. */
  event: unknown;
  /** One-way messages to the worker. */
  post: unknown;
  /** Requests to the worker, and their replies. */
  request: unknown;
  reply: unknown;
}

type ToWorker<P extends WorkerProtocol> =
  | { kind: 'stop' }
  | { kind: 'post'; body: P['post'] }
  | { kind: 'request'; id: number; body: P['request'] };

type FromWorker<P extends WorkerProtocol> =
  | { kind: 'ready'; value: P['ready'] }
  | { kind: 'failed'; message: string }
  | { kind: 'event'; body: P['event'] }
  | { kind: 'reply'; id: number; ok: true; value: P['reply'] }
  | { kind: 'reply'; id: number; ok: false; error: string };

export interface WorkerHostOptions {
  /** The thread's name (seen in stack traces and /proc). */
  name: string;
  url: URL;
  workerData: unknown;
  resourceLimits?: ResourceLimits;
  /** Bound on the ready handshake; null: none (a model load may legitimately take minutes). */
  readyTimeoutMs: number | null;
  /** Cancels the handshake. */
  signal?: AbortSignal;
  /** Bound on each step of a stop: asked, then terminated, then abandoned (default 1000). */
  stopMs?: number;
  /**
   * How to ask the worker to stop; by default a stop message. The control worker never turns
   * its event loop while it ticks, so it is asked through shared memory instead.
   */
  askStop?: () => void;
}

/** How a stop ended: asked and done, terminated, or abandoned (the thread would not end). */
export type StopOutcome = 'stopped' | 'terminated' | 'abandoned';

/** Why a host's promise failed: the thread failed to start, timed out, exited, or was cancelled. */
export class WorkerHostError extends Error {
  constructor(
    message: string,
    readonly reason: 'failed' | 'timeout' | 'exited' | 'cancelled' | 'abandoned',
  ) {
    super(message);
    this.name = 'WorkerHostError';
  }

  get timeout(): boolean {
    return this.reason === 'timeout';
  }
}

interface Pending<R> {
  resolve: (r: R) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout | undefined;
}

export class WorkerHost<P extends WorkerProtocol> {
  /** Settles once: the worker's ready value, or why it never became ready. */
  readonly ready: Promise<P['ready']>;
  /** Resolves with the exit code once the thread has ended. */
  readonly exited: Promise<number>;
  private readonly worker: Worker;
  private isAlive = true;
  private isReady = false;
  private stopping: Promise<StopOutcome> | null = null;
  private lastError: Error | null = null;
  private ids = 0;
  private readonly pending = new Map<number, Pending<P['reply']>>();
  private settleReady!: { resolve: (v: P['ready']) => void; reject: (e: Error) => void };
  private readonly eventListeners: ((e: P['event']) => void)[] = [];
  private readonly diedListeners: ((reason: Error) => void)[] = [];
  private readonly exitListeners: ((code: number) => void)[] = [];

  constructor(private readonly opts: WorkerHostOptions) {
    this.ready = new Promise((resolve, reject) => (this.settleReady = { resolve, reject }));
    // Awaited by the owner, or not at all (a worker nobody waits for): never an unhandled rejection.
    this.ready.catch(() => undefined);
    this.worker = new Worker(opts.url, { workerData: opts.workerData, name: opts.name, ...(opts.resourceLimits ? { resourceLimits: opts.resourceLimits } : {}) });
    this.exited = new Promise((resolve) => this.worker.once('exit', resolve));
    this.worker.on('message', (m: FromWorker<P>) => this.onMessage(m));
    // An uncaught exception in the thread: the exit that follows reports it as the reason.
    this.worker.on('error', (err) => (this.lastError = err));
    this.worker.once('exit', (code: number) => this.exitedWith(code));
    this.armReadyBounds();
  }

  get name(): string {
    return this.opts.name;
  }

  /** True until the thread has ended. */
  get alive(): boolean {
    return this.isAlive;
  }

  /** Events the worker sends (after or before ready). */
  onEvent(fn: (e: P['event']) => void): void {
    this.eventListeners.push(fn);
  }

  /** The thread ended after it was ready without being asked to stop: with the reason. */
  onDied(fn: (reason: Error) => void): void {
    this.diedListeners.push(fn);
  }

  /** The thread ended, whatever the cause (after pending requests were failed). */
  onExit(fn: (code: number) => void): void {
    this.exitListeners.push(fn);
  }

  /** A one-way message; dropped when the thread has ended. */
  post(body: P['post']): void {
    if (this.isAlive) this.worker.postMessage({ kind: 'post', body } satisfies ToWorker<P>);
  }

  /** Sends a request and waits for its reply, at most `timeoutMs`. */
  request(body: P['request'], timeoutMs: number): Promise<P['reply']> {
    const { id, reply } = this.expect(timeoutMs, `${this.opts.name}: no reply within ${timeoutMs} ms`);
    if (this.isAlive) this.worker.postMessage({ kind: 'request', id, body } satisfies ToWorker<P>);
    return reply;
  }

  /**
   * A reply the caller asks for by another way (shared memory: the control worker reads no
   * messages while it ticks), passing `id` along; the worker answers it with `port.reply(id)`.
   */
  expect(timeoutMs: number, timeoutMessage = `${this.opts.name}: no reply within ${timeoutMs} ms`): { id: number; reply: Promise<P['reply']> } {
    const id = ++this.ids;
    const reply = new Promise<P['reply']>((resolve, reject) => {
      if (!this.isAlive) return reject(this.gone());
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new WorkerHostError(timeoutMessage, 'timeout'));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
    });
    return { id, reply };
  }

  /**
   * Stops the thread within twice the stop bound, whatever it is doing: asks, terminates
   * after the bound (that interrupts a long synchronous call as soon as it runs JavaScript
   * again), and after as long again gives up on a thread stuck in a native call, failing
   * whatever still waits on it. Never waits longer. Idempotent.
   */
  stop(): Promise<StopOutcome> {
    this.stopping ??= this.bounded();
    return this.stopping;
  }

  private async bounded(): Promise<StopOutcome> {
    if (!this.isAlive) return 'stopped';
    const bound = this.opts.stopMs ?? 1000;
    if (this.opts.askStop) this.opts.askStop();
    else this.worker.postMessage({ kind: 'stop' } satisfies ToWorker<P>);
    if (await within(this.exited, bound)) return 'stopped';
    void this.worker.terminate();
    if (await within(this.exited, bound)) return 'terminated';
    // Left to end with the process: it must not keep the process alive either.
    this.worker.unref();
    const err = new WorkerHostError(`${this.opts.name}: abandoned (the thread did not end within ${2 * bound} ms; stuck in a native call)`, 'abandoned');
    this.settleReady.reject(err);
    this.failPending(err);
    return 'abandoned';
  }

  private onMessage(m: FromWorker<P>): void {
    switch (m.kind) {
      case 'ready':
        this.isReady = true;
        this.settleReady.resolve(m.value);
        break;
      case 'failed':
        this.settleReady.reject(new WorkerHostError(m.message, 'failed'));
        break;
      case 'event':
        for (const fn of this.eventListeners) fn(m.body);
        break;
      case 'reply': {
        const p = this.pending.get(m.id);
        if (p === undefined) break; // timed out already
        this.pending.delete(m.id);
        clearTimeout(p.timer);
        if (m.ok) p.resolve(m.value);
        else p.reject(new WorkerHostError(m.error, 'failed'));
        break;
      }
    }
  }

  private exitedWith(code: number): void {
    this.isAlive = false;
    const reason = this.gone(code);
    this.settleReady.reject(new WorkerHostError(`${reason.message} before it was ready`, 'exited'));
    this.failPending(reason);
    for (const fn of this.exitListeners) fn(code);
    if (this.isReady && this.stopping === null) for (const fn of this.diedListeners) fn(reason);
  }

  private gone(code?: number): WorkerHostError {
    const why = this.lastError ? `: ${this.lastError.message}` : '';
    return new WorkerHostError(`${this.opts.name} exited${code === undefined ? '' : ` (code ${code})`}${why}`, 'exited');
  }

  private failPending(err: Error): void {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
  }

  private armReadyBounds(): void {
    const { readyTimeoutMs, signal } = this.opts;
    let timer: NodeJS.Timeout | undefined;
    if (readyTimeoutMs !== null) {
      timer = setTimeout(() => this.settleReady.reject(new WorkerHostError(`${this.opts.name} not ready within ${readyTimeoutMs} ms`, 'timeout')), readyTimeoutMs);
    }
    const cancel = () => this.settleReady.reject(new WorkerHostError(`${this.opts.name}: start cancelled`, 'cancelled'));
    if (signal?.aborted) cancel();
    signal?.addEventListener('abort', cancel, { once: true });
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', cancel);
    };
    this.ready.then(done, done);
  }
}

/** Resolves true when `p` settles within `ms`, false otherwise; never waits longer. */
export async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([p.then(() => true as const), t]);
  } finally {
    clearTimeout(timer);
  }
}

/** The worker side of WorkerHost's envelope. */
export interface HostPort<P extends WorkerProtocol> {
  ready(value: P['ready']): void;
  /** The worker could not start: the host's `ready` rejects with this message. */
  failed(message: string): void;
  event(body: P['event']): void;
  reply(id: number, value: P['reply']): void;
  replyError(id: number, message: string): void;
  /** Answers requests; a throw or rejection becomes the request's error. */
  onRequest(handler: (body: P['request']) => P['reply'] | Promise<P['reply']>): void;
  onPost(handler: (body: P['post']) => void): void;
  onStop(handler: () => void): void;
}

export function hostPort<P extends WorkerProtocol>(): HostPort<P> {
  const port = parentPort;
  if (port === null) throw new Error('hostPort() is for a worker thread');
  const send = (m: FromWorker<P>) => port.postMessage(m);
  let onRequest: ((body: P['request']) => P['reply'] | Promise<P['reply']>) | null = null;
  let onPost: ((body: P['post']) => void) | null = null;
  let onStop: (() => void) | null = null;
  const replyError = (id: number, message: string) => send({ kind: 'reply', id, ok: false, error: message });
  let listening = false;
  // Listening keeps the thread alive, so only a worker that takes messages listens: the
  // control worker reads none while it ticks, and ends when its loop does.
  const listen = () => {
    if (listening) return;
    listening = true;
    port.on('message', (m: ToWorker<P>) => {
      if (m.kind === 'stop') onStop?.();
      else if (m.kind === 'post') onPost?.(m.body);
      else if (onRequest === null) replyError(m.id, 'this worker answers no requests');
      else {
        const handler = onRequest;
        Promise.resolve()
          .then(() => handler(m.body))
          .then(
            (value) => send({ kind: 'reply', id: m.id, ok: true, value }),
            (err: unknown) => replyError(m.id, err instanceof Error ? err.message : String(err)),
          );
      }
    });
  };
  return {
    ready: (value) => send({ kind: 'ready', value }),
    failed: (message) => send({ kind: 'failed', message }),
    event: (body) => send({ kind: 'event', body }),
    reply: (id, value) => send({ kind: 'reply', id, ok: true, value }),
    replyError,
    onRequest: (h) => {
      onRequest = h;
      listen();
    },
    onPost: (h) => {
      onPost = h;
      listen();
    },
    onStop: (h) => {
      onStop = h;
      listen();
    },
  };
}
