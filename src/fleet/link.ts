// The fleet link: MQTT 5 under reflex/v1/<device-id>/. Retained state with a birth and a Last
// Will (both carrying the boot id and a sequence number); telemetry batched at QoS 0; events
// and error logs through the durable outbox at QoS 1; remote commands as MQTT 5
// request/response, allowlisted. Optional and never in the control path: the loop does not
// know the broker exists, and the daemon runs the same offline.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type MqttClient, type IPublishPacket } from 'mqtt';
import { errorMessage, ReflexError, type Logger, type Part } from '../core/index.js';
import type { CommandRegistry } from '../cli/index.js';
import { Outbox, type OutboxStats } from './outbox.js';

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
  /** Outbox bound (entries) and how fast it drains after a reconnect. */
  maxOutbox: number;
  drainPerSecond: number;
}

/** Remote commands the fleet may send; anything else is refused. Each validates its own args. */
export const FLEET_COMMANDS = ['status', 'estop', 'reset', 'log.level', 'policy.activate', 'policy.rollback', 'policy.start', 'policy.stop', 'camera.snapshot'] as const;

export interface FleetStatus {
  state: 'connecting' | 'online' | 'offline';
  url: string;
  boot: string;
  outbox: OutboxStats;
  reconnects: number;
  commands: { handled: number; refused: number };
}

export class FleetLink implements Part {
  readonly name = 'fleet';
  readonly boot = randomUUID();
  private client: MqttClient | null = null;
  private outbox: Outbox | null = null;
  private stateSeq = 0;
  private timers: NodeJS.Timeout[] = [];
  private online = false;
  private reconnects = 0;
  private handled = 0;
  private refused = 0;
  private draining = false;
  private readonly prefix: string;

  constructor(
    private readonly opts: FleetOptions,
    private readonly commands: CommandRegistry,
    private readonly telemetry: () => unknown,
    private readonly log: Logger,
  ) {
    this.prefix = `reflex/v1/${opts.deviceId}/`;
  }

  start(): Promise<void> {
    const o = this.opts;
    this.outbox = new Outbox(`${o.stateDir}/outbox`, this.boot, o.maxOutbox);
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
      will: { topic: `${this.prefix}state`, payload: Buffer.from(this.statePayload(false)), qos: 1, retain: true },
      ...(o.username !== null ? { username: o.username } : {}),
      ...(o.passwordFile !== null ? { password: readFileSync(o.passwordFile, 'utf8').trim() } : {}),
      ...(o.caFile !== null ? { ca: readFileSync(o.caFile) } : {}),
      ...(o.certFile !== null ? { cert: readFileSync(o.certFile) } : {}),
      ...(o.keyFile !== null ? { key: readFileSync(o.keyFile) } : {}),
    };
    const client = mqtt.connect(o.url, options);
    this.client = client;
    client.on('connect', () => this.onConnect());
    client.on('close', () => this.onClose());
    client.on('error', (err) => this.log.warn({ err: errorMessage(err) }, 'fleet link error'));
    client.on('message', (topic, payload, packet) => this.onMessage(topic, payload, packet));
    this.timers.push(setInterval(() => this.publishTelemetry(), 1000 / o.telemetryHz));
    this.timers.push(setInterval(() => void this.drain(), 100));
    // The broker may be down: start never waits for it.
    return Promise.resolve();
  }

  private statePayload(online: boolean): string {
    return JSON.stringify({ online, boot: this.boot, seq: ++this.stateSeq, ts: Date.now() });
  }

  private onConnect(): void {
    this.online = true;
    this.log.info({ url: this.opts.url }, 'fleet link online');
    this.client?.publish(`${this.prefix}state`, this.statePayload(true), { qos: 1, retain: true });
    this.client?.subscribe(`${this.prefix}cmd/+`, { qos: 1 });
  }

  private onClose(): void {
    if (this.online) this.log.warn('fleet link offline; events wait in the outbox');
    this.online = false;
    if (this.client === null) return;
    // Reconnect with exponential backoff and jitter, so a fleet does not stampede a broker.
    const delay = Math.min(30_000, 500 * 2 ** Math.min(this.reconnects, 6)) * (0.5 + Math.random());
    this.reconnects++;
    const t = setTimeout(() => this.client?.reconnect(), delay);
    this.timers.push(t);
  }

  /** Queues an event (or an error log) for delivery; resolves once it is on disk. */
  async event(kind: string, data: unknown): Promise<void> {
    if (this.outbox === null) throw new ReflexError('COMMAND_FAILED', 'the fleet link is not started');
    await this.outbox.append(`${this.prefix}events/${kind}`, data);
  }

  private async drain(): Promise<void> {
    const client = this.client;
    const outbox = this.outbox;
    if (!this.online || client === null || outbox === null || this.draining) return;
    this.draining = true;
    try {
      const batch = outbox.take(Math.max(1, Math.round(this.opts.drainPerSecond / 10)));
      await Promise.all(
        batch.map(
          (e) =>
            new Promise<void>((resolve) => {
              const body = JSON.stringify({ boot: e.boot, seq: e.seq, ts: e.ts, data: e.payload });
              client.publish(e.topic, body, { qos: 1 }, (err) => {
                if (err) outbox.release(e.n);
                else outbox.ack(e.n);
                resolve();
              });
            }),
        ),
      );
    } finally {
      this.draining = false;
    }
  }

  private publishTelemetry(): void {
    if (!this.online || this.client === null) return;
    this.client.publish(`${this.prefix}telemetry`, JSON.stringify({ boot: this.boot, ts: Date.now(), ...(this.telemetry() as object) }), { qos: 0 });
  }

  private onMessage(topic: string, payload: Buffer, packet: IPublishPacket): void {
    const name = topic.slice(`${this.prefix}cmd/`.length);
    const props = packet.properties ?? {};
    const responseTopic = props.responseTopic;
    const correlation = props.correlationData;
    const reply = (body: object) => {
      // A device answers only under its own id.
      if (responseTopic === undefined || !responseTopic.startsWith(this.prefix)) return;
      this.client?.publish(responseTopic, JSON.stringify(body), { qos: 1, properties: correlation ? { correlationData: correlation } : {} });
    };
    const refuse = (code: string, message: string) => {
      this.refused++;
      this.log.warn({ cmd: name, code, message }, 'fleet command refused');
      reply({ ok: false, error: { code, message } });
    };
    if (responseTopic !== undefined && !responseTopic.startsWith(this.prefix)) return refuse('BAD_REQUEST', `response topic must be under ${this.prefix}`);
    if (!(FLEET_COMMANDS as readonly string[]).includes(name)) return refuse('NOT_ALLOWED', `command "${name}" is not allowed over the fleet link`);
    let args: Record<string, unknown>;
    try {
      const v: unknown = payload.length === 0 ? {} : JSON.parse(payload.toString('utf8'));
      if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
      args = v as Record<string, unknown>;
    } catch {
      return refuse('BAD_REQUEST', 'payload must be a JSON object');
    }
    // A stale command never runs late: MQTT 5 expiry at the broker, and expiresAt in the body.
    if (typeof args.expiresAt === 'number' && Date.now() > args.expiresAt) return refuse('EXPIRED', `command expired ${Date.now() - args.expiresAt} ms ago`);
    const { expiresAt: _e, ...rest } = args;
    this.commands
      .run(name, rest)
      .then((result) => {
        this.handled++;
        reply({ ok: true, result: result ?? null });
      })
      .catch((err: unknown) => refuse(err instanceof ReflexError ? err.code : 'COMMAND_FAILED', errorMessage(err)));
  }

  status(): FleetStatus {
    return {
      state: this.online ? 'online' : this.reconnects === 0 ? 'connecting' : 'offline',
      url: this.opts.url,
      boot: this.boot,
      outbox: this.outbox?.stats() ?? { pending: 0, appended: 0, delivered: 0, dropped: 0 },
      reconnects: this.reconnects,
      commands: { handled: this.handled, refused: this.refused },
    };
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    const client = this.client;
    this.client = null;
    if (client !== null) {
      if (this.online) {
        // A clean goodbye: offline, retained, then a disconnect (which suppresses the will).
        await new Promise<void>((resolve) => client.publish(`${this.prefix}state`, this.statePayload(false), { qos: 1, retain: true }, () => resolve()));
      }
      await client.endAsync(false);
    }
    this.outbox?.close();
  }
}
