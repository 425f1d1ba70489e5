// The fleet link: MQTT 5 under reflex/v1/<device-id>/. Retained state with a birth and a Last
// Will (both carrying the boot id and a sequence number); telemetry batched at QoS 0; events
// and error logs through the durable outbox at QoS 1; remote commands as MQTT 5
// request/response, allowlisted. Optional and never in the control path: the loop does not
// know the broker exists, and the daemon runs the same offline. Nothing here stops the daemon:
// a link whose files cannot be read, or whose outbox cannot store, starts degraded, says why
// in status, and tries again.
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient, type IPublishPacket } from 'mqtt';
import { errorMessage, readRegularFile, ReflexError, type Logger, type Part } from '../core/index.js';
import type { CommandRegistry } from '../api/index.js';
import { Outbox, type OutboxStats } from './outbox.js';

/**
 * The broker URL as logs, status and the fault history show it: a password the URL carries
 * replaced, since those reach readers (the socket's group, journald, the fleet's log shipping,
 * a diagnostics bundle) who must not learn it.
 */
function shownUrl(url: string): string {
  const m = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)@/i.exec(url);
  const colon = m?.[2]?.indexOf(':') ?? -1;
  if (m === null || colon < 0) return url;
  return `${m[1]}${m[2]!.slice(0, colon)}:<redacted>${url.slice(m[0].length - 1)}`;
}

export interface FleetOptions {
  deviceId: string;
  url: string;
  username: string | null;
  passwordFile: string | null;
  caFile: string | null;
  certFile: string | null;
  keyFile: string | null;
  telemetryHz: number;
  stateDir: string;
  /** Outbox bounds (entries, and bytes on disk: 64 MiB when omitted) and how fast it drains after a reconnect. */
  maxOutbox: number;
  maxOutboxBytes?: number;
  drainPerSecond: number;
  /** Reconnect backoff; the defaults suit a fleet (tests shorten them). */
  backoff?: Backoff;
}

export interface Backoff {
  minMs: number;
  maxMs: number;
  /** A connection that stayed up this long starts the next outage's backoff from minMs again. */
  stableMs: number;
}

const BACKOFF: Backoff = { minMs: 500, maxMs: 30_000, stableMs: 10_000 };

export interface FleetStatus {
  /** `degraded`: the link cannot connect at all (a credential file unreadable); `error` says why. */
  state: 'connecting' | 'online' | 'offline' | 'degraded';
  /** What is wrong while something is (the link's files, the outbox's disk), else null. */
  error: string | null;
  url: string;
  boot: string;
  outbox: OutboxStats;
  reconnects: number;
  /** The delay chosen for the latest reconnect attempt. */
  backoffMs: number;
  commands: { handled: number; refused: number };
}

/** Credential files are small; anything else (a FIFO, a device, a huge file) is refused. */
const MAX_CREDENTIAL_BYTES = 1024 * 1024;

/** A credential file: a regular file of bounded size (not a FIFO that blocks, not /dev/zero). */
function credential(path: string): Buffer {
  try {
    return readRegularFile(path, MAX_CREDENTIAL_BYTES);
  } catch (err) {
    throw new Error(`${path}: ${errorMessage(err)}`, { cause: err });
  }
}
/** Retained documents kept for the next connect while offline (one per topic). */
const MAX_UNSENT = 256;
/** Responses go to a response topic of at most this length. */
const MAX_RESPONSE_TOPIC = 256;

export class FleetLink implements Part {
  readonly name = 'fleet';
  readonly boot = randomUUID();
  private client: MqttClient | null = null;
  private outbox: Outbox | null = null;
  /** Sequence of the retained state messages of this boot (births, wills, offline). */
  private stateSeq = 0;
  private birthSeq = 0;
  private timers: NodeJS.Timeout[] = [];
  private retryTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  private online = false;
  private onlineSince = 0;
  private reconnects = 0;
  /** Consecutive attempts since the last connection that stayed up: the backoff's exponent. */
  private attempt = 0;
  private backoffMs = 0;
  private problem: string | null = null;
  private outboxError: string | null = null;
  private handled = 0;
  private refused = 0;
  private draining = false;
  private tokens = 0;
  private lastDrain = 0;
  private readonly prefix: string;
  private readonly cmdPrefix: string;
  private readonly respPrefix: string;
  private readonly eventsPrefix: string;
  private readonly backoff: Backoff;
  /** Topics the device follows besides its commands (the desired policy), by exact name. */
  private readonly watches = new Map<string, (payload: Buffer) => void>();
  /** Retained documents to publish once online: the newest per topic. */
  private readonly unsent = new Map<string, string>();

  constructor(
    private readonly opts: FleetOptions,
    private readonly commands: CommandRegistry,
    private readonly readTelemetry: () => unknown,
    private readonly log: Logger,
  ) {
    this.prefix = `reflex/v1/${opts.deviceId}/`;
    this.cmdPrefix = `${this.prefix}cmd/`;
    // Responses go only here: a subtree the device never subscribes to, so a reply can never
    // land on a topic the device acts on (its commands) or that others trust (its events).
    this.respPrefix = `${this.prefix}resp/`;
    this.eventsPrefix = `${this.prefix}events/`;
    this.backoff = opts.backoff ?? BACKOFF;
  }

  start(): Promise<void> {
    const o = this.opts;
    this.outbox = new Outbox(join(o.stateDir, 'outbox'), this.boot, o.maxOutbox, o.maxOutboxBytes !== undefined ? { maxBytes: o.maxOutboxBytes } : {});
    this.reportOutbox();
    this.lastDrain = performance.now();
    this.timers.push(setInterval(() => this.publishTelemetry(), 1000 / o.telemetryHz));
    this.timers.push(setInterval(() => this.drain(), 100));
    this.connect();
    // The broker may be down, a file unreadable: start never waits for the link, nor fails.
    return Promise.resolve();
  }

  private statePayload(online: boolean, seq: number): string {
    return JSON.stringify({ online, boot: this.boot, seq, ts: Date.now() });
  }

  /**
   * One connection attempt. Each gets its own will, numbered after this connection's birth
   * (so the will wins over it when the link dies) and before the next connection's birth (so
   * a late will never wins over a newer birth): per boot, the highest seq is the truth.
   */
  private connect(): void {
    this.retryTimer = null;
    if (this.stopped) return;
    this.birthSeq = ++this.stateSeq;
    const will = { topic: `${this.prefix}state`, payload: Buffer.from(this.statePayload(false, ++this.stateSeq)), qos: 1 as const, retain: true };
    if (this.client !== null) {
      this.client.options.will = will;
      this.client.reconnect();
      return;
    }
    const o = this.opts;
    try {
      const options: IClientOptions = {
        protocolVersion: 5,
        // One client id per robot: a new connection takes the old session over, so the broker
        // publishes the old connection's will before this one's birth, never after it.
        clientId: `reflex-${o.deviceId}`,
        clean: true,
        keepalive: 15,
        reconnectPeriod: 0,
        connectTimeout: 5000,
        queueQoSZero: false,
        // The broker sends nothing bigger (a command is a few hundred bytes).
        properties: { maximumPacketSize: 1024 * 1024 },
        will,
        ...(o.username !== null ? { username: o.username } : {}),
        ...(o.passwordFile !== null ? { password: credential(o.passwordFile).toString('utf8').trim() } : {}),
        ...(o.caFile !== null ? { ca: credential(o.caFile) } : {}),
        ...(o.certFile !== null ? { cert: credential(o.certFile) } : {}),
        ...(o.keyFile !== null ? { key: credential(o.keyFile) } : {}),
      };
      const client = mqtt.connect(o.url, options);
      this.client = client;
      client.on('connect', () => this.onConnect());
      client.on('close', () => this.onClose());
      client.on('error', (err) => this.log.warn({ err: errorMessage(err) }, 'fleet link error'));
      client.on('message', (topic, payload, packet) => this.onMessage(topic, payload, packet));
    } catch (err) {
      const problem = `cannot connect: ${errorMessage(err)}`;
      if (problem !== this.problem) this.log.error({ err: problem }, 'fleet link degraded; retrying');
      this.problem = problem;
      this.scheduleReconnect();
      return;
    }
    if (this.problem !== null) this.log.info('fleet link recovered');
    this.problem = null;
  }

  private onConnect(): void {
    const client = this.client;
    if (client === null) return;
    this.online = true;
    this.onlineSince = performance.now();
    this.log.info({ url: shownUrl(this.opts.url) }, 'fleet link online');
    client.publish(`${this.prefix}state`, this.statePayload(true, this.birthSeq), { qos: 1, retain: true });
    // nl: never receive what this client published itself. rh 2: no retained commands on
    // subscribe (they would replay at every connect). rap: a command published with the
    // retain flag keeps it on its way here, so it is seen and refused.
    client.subscribe(`${this.cmdPrefix}+`, { qos: 1, nl: true, rap: true, rh: 2 }, (err, granted) => {
      // A reason code of 0x80 or more: the broker refused it (no commands will arrive).
      const refused = granted?.find((g) => g.qos >= 0x80);
      if (err || refused) this.log.error({ err: err ? errorMessage(err) : `reason code ${refused?.qos}` }, 'fleet command subscription failed');
    });
    // Followed documents are retained: rh 0 sends the current one at every subscribe.
    for (const topic of this.watches.keys()) {
      client.subscribe(topic, { qos: 1, nl: true, rh: 0 }, (err, granted) => {
        const refused = granted?.find((g) => g.qos >= 0x80);
        if (err || refused) this.log.error({ topic, err: err ? errorMessage(err) : `reason code ${refused?.qos}` }, 'fleet subscription failed');
      });
    }
    for (const [topic, body] of this.unsent) this.sendRetained(topic, body);
  }

  /**
   * Follows a retained document (exact topic, no wildcards): `fn` gets each payload, the
   * current one at every connect included. Call before start.
   */
  watch(topic: string, fn: (payload: Buffer) => void): void {
    if (topic.includes('+') || topic.includes('#')) throw new ReflexError('BAD_REQUEST', `watch ${topic}: an exact topic, no wildcards`);
    this.watches.set(topic, fn);
  }

  /**
   * Publishes a retained document at QoS 1 under this device's own topics. Offline, the newest
   * per topic waits (bounded) and goes out at the next connect.
   */
  publishRetained(topic: string, body: object): void {
    if (!topic.startsWith(this.prefix) || topic.startsWith(this.cmdPrefix)) throw new ReflexError('BAD_REQUEST', `${topic}: not a document topic of this device`);
    const text = JSON.stringify(body);
    this.unsent.delete(topic);
    if (this.unsent.size >= MAX_UNSENT) this.unsent.delete(this.unsent.keys().next().value!);
    this.unsent.set(topic, text);
    if (this.online) this.sendRetained(topic, text);
  }

  private sendRetained(topic: string, text: string): void {
    this.client?.publish(topic, text, { qos: 1, retain: true }, (err) => {
      if (!err && this.unsent.get(topic) === text) this.unsent.delete(topic);
    });
  }

  private onClose(): void {
    const wasOnline = this.online;
    if (wasOnline) this.log.warn('fleet link offline; events wait in the outbox');
    this.online = false;
    if (this.stopped || this.client === null) return;
    // An outage after a connection that held starts from a short delay again; a broker that
    // accepts and drops at once keeps the backoff growing.
    if (wasOnline && performance.now() - this.onlineSince >= this.backoff.stableMs) this.attempt = 0;
    this.reconnects++;
    this.scheduleReconnect();
  }

  /** Exponential backoff with jitter, so a fleet does not stampede a broker. */
  private scheduleReconnect(): void {
    if (this.stopped) return;
    const b = this.backoff;
    const delay = Math.min(b.maxMs, b.minMs * 2 ** Math.min(this.attempt, 20)) * (0.5 + Math.random());
    this.attempt++;
    this.backoffMs = Math.round(delay);
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  /** Queues an event (or an error log) for delivery; resolves once it is on disk. */
  async event(kind: string, data: unknown): Promise<void> {
    if (this.outbox === null) throw new ReflexError('COMMAND_FAILED', 'the fleet link is not started');
    await this.outbox.append(`${this.eventsPrefix}${kind}`, data);
  }

  /** Every 100 ms: publishes what the token bucket allows (drainPerSecond, however small). */
  private drain(): void {
    const now = performance.now();
    const rate = this.opts.drainPerSecond;
    this.tokens = Math.min(Math.max(1, rate / 5), this.tokens + ((now - this.lastDrain) * rate) / 1000);
    this.lastDrain = now;
    const outbox = this.outbox;
    if (outbox === null) return;
    outbox.maintain();
    this.reportOutbox();
    const client = this.client;
    if (!this.online || client === null || this.draining || this.tokens < 1) return;
    const batch = outbox.take(Math.floor(this.tokens));
    if (batch.length === 0) return;
    this.tokens -= batch.length;
    this.draining = true;
    let left = batch.length;
    for (const e of batch) {
      // Only ever onto its own events: an outbox file altered behind its back cannot make the
      // device publish a command (or under another device's id).
      if (!e.topic.startsWith(this.eventsPrefix)) {
        outbox.discard(e.n);
        if (--left === 0) this.draining = false;
        continue;
      }
      const body = JSON.stringify({ boot: e.boot, seq: e.seq, ts: e.ts, data: e.payload });
      client.publish(e.topic, body, { qos: 1 }, (err) => {
        if (err) outbox.release(e.n);
        else outbox.ack(e.n);
        if (--left === 0) this.draining = false;
      });
    }
  }

  /** Says once when the outbox starts failing to store, and once when it recovers. */
  private reportOutbox(): void {
    const err = this.outbox?.stats().error ?? null;
    if (err === this.outboxError) return;
    if (err !== null) this.log.warn({ err }, 'fleet outbox cannot store events; they are counted as dropped');
    else this.log.info('fleet outbox stores events again');
    this.outboxError = err;
  }

  private publishTelemetry(): void {
    if (!this.online || this.client === null) return;
    this.client.publish(`${this.prefix}telemetry`, JSON.stringify({ boot: this.boot, ts: Date.now(), ...(this.readTelemetry() as object) }), { qos: 0 });
  }

  /** A response topic the device may publish to: under its resp/ subtree, a plain topic name. */
  private isResponseTopic(t: string): boolean {
    return t.startsWith(this.respPrefix) && t.length > this.respPrefix.length && t.length <= MAX_RESPONSE_TOPIC && !t.includes('+') && !t.includes('#') && !t.includes('\0');
  }

  private onMessage(topic: string, payload: Buffer, packet: IPublishPacket): void {
    const follow = this.watches.get(topic);
    if (follow !== undefined) {
      try {
        follow(payload);
      } catch (err) {
        this.log.error({ topic, err: errorMessage(err) }, 'a followed document could not be handled');
      }
      return;
    }
    // Only our own command topics are ever acted on, whatever the broker sends.
    if (!topic.startsWith(this.cmdPrefix)) return;
    const name = topic.slice(this.cmdPrefix.length);
    const props = packet.properties ?? {};
    const responseTopic = props.responseTopic;
    const replyTo = responseTopic !== undefined && this.isResponseTopic(responseTopic) ? responseTopic : null;
    const correlation = props.correlationData;
    const reply = (body: object) => {
      if (replyTo === null || this.client === null) return;
      this.client.publish(replyTo, JSON.stringify(body), { qos: 1, retain: false, properties: correlation ? { correlationData: correlation } : {} });
    };
    const refuse = (code: string, message: string) => {
      this.refused++;
      this.log.warn({ cmd: name, code, message }, 'fleet command refused');
      reply({ ok: false, error: { code, message } });
    };
    // A response topic elsewhere is refused without a reply: a reply published there could be
    // taken for a command or an event.
    if (responseTopic !== undefined && replyTo === null) return refuse('BAD_REQUEST', `response topic must be under ${this.respPrefix}`);
    // A retained command would run again at every connect and every boot.
    if (packet.retain) return refuse('BAD_REQUEST', 'a retained command is refused: publish commands without the retain flag');
    // The catalog says which commands the fleet may send (`fleet: true`); anything else is refused.
    if (this.commands.spec(name)?.fleet !== true) return refuse('NOT_ALLOWED', `command "${name}" is not allowed over the fleet link`);
    let args: Record<string, unknown>;
    try {
      const v: unknown = payload.length === 0 ? {} : JSON.parse(payload.toString('utf8'));
      if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
      args = v as Record<string, unknown>;
    } catch {
      return refuse('BAD_REQUEST', 'payload must be a JSON object');
    }
    // A stale command never runs late: MQTT 5 expiry at the broker, and expiresAt in the body.
    // An expiry that cannot be read is refused, never ignored.
    if ('expiresAt' in args) {
      const at = args.expiresAt;
      if (typeof at !== 'number' || !Number.isFinite(at)) return refuse('BAD_REQUEST', 'expiresAt must be a number: milliseconds since the epoch');
      if (Date.now() > at) return refuse('EXPIRED', `command expired ${Date.now() - at} ms ago`);
    }
    const { expiresAt: _e, ...rest } = args;
    // The audit trail: a command that changes the robot's state says where it came from.
    // The requester is whoever asked for the reply (resp/<requester>): MQTT names no sender.
    const requester = replyTo === null ? null : replyTo.slice(this.respPrefix.length);
    const from = `mqtt ${shownUrl(this.opts.url)} ${topic}${requester === null ? '' : ` from ${requester}`}`;
    if (this.commands.spec(name)?.readOnly !== true) this.log.info({ cmd: name, args: rest, via: 'fleet', from, requester }, `${name} from the fleet`);
    this.commands
      .run(name, rest, { via: 'fleet', from })
      .then((result) => {
        this.handled++;
        reply({ ok: true, result: result ?? null });
      })
      .catch((err: unknown) => refuse(err instanceof ReflexError ? err.code : 'COMMAND_FAILED', errorMessage(err)));
  }

  /** A few words for systemctl's STATUS= line. */
  headline(): string {
    return `fleet ${this.status().state}`;
  }

  status(): FleetStatus {
    const outbox = this.outbox?.stats() ?? { pending: 0, bytes: 0, appended: 0, delivered: 0, dropped: 0, error: null };
    return {
      state: this.online ? 'online' : this.client === null && this.problem !== null ? 'degraded' : this.reconnects === 0 ? 'connecting' : 'offline',
      error: this.problem ?? (outbox.error !== null ? `outbox: ${outbox.error}` : null),
      url: shownUrl(this.opts.url),
      boot: this.boot,
      outbox,
      reconnects: this.reconnects,
      backoffMs: this.backoffMs,
      commands: { handled: this.handled, refused: this.refused },
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    const client = this.client;
    this.client = null;
    if (client !== null) {
      if (this.online) {
        // A clean goodbye: offline (numbered after this connection's will), retained, then a
        // disconnect (which suppresses the will). Bounded: a broker that stops answering
        // does not hold the stop.
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, 2000);
          client.publish(`${this.prefix}state`, this.statePayload(false, ++this.stateSeq), { qos: 1, retain: true }, () => {
            clearTimeout(t);
            resolve();
          });
        });
      }
      await client.endAsync(false);
    }
    this.outbox?.close();
  }
}
