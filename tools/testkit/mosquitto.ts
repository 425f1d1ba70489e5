import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';

export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** A real Mosquitto on a port of its own, with a config the test writes. */
export class Mosquitto {
  private proc: ChildProcess | null = null;
  private started = false;

  constructor(
    readonly dir: string,
    public port: number,
    private readonly extra: string[] = [],
  ) {}

  /**
   * Starts the broker. The first start may move to another free port if the chosen one was
   * taken meanwhile (test files run in parallel); a restart keeps its port, as clients expect.
   */
  async start(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.startOnce();
        this.started = true;
        return;
      } catch (err) {
        if (this.started || attempt >= 3) throw err;
        this.port = await freePort();
      }
    }
  }

  private async startOnce(): Promise<void> {
    const conf = join(this.dir, `mosquitto-${this.port}.conf`);
    // `user root`: as root, mosquitto would otherwise switch to its own user, which cannot read
    // the test's private temporary directory (the certificates).
    writeFileSync(conf, [`listener ${this.port} 127.0.0.1`, 'allow_anonymous true', 'persistence false', 'user root', ...this.extra, ''].join('\n'));
    const proc = spawn('/usr/sbin/mosquitto', ['-c', conf], { stdio: 'ignore' });
    this.proc = proc;
    for (let i = 0; i < 200; i++) {
      if (proc.exitCode !== null) throw new Error(`mosquitto exited (${proc.exitCode}) on port ${this.port}`);
      if (await this.listening()) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    proc.kill('SIGKILL');
    throw new Error(`mosquitto did not start on ${this.port}`);
  }

  private listening(): Promise<boolean> {
    return new Promise((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(true));
      s.listen(this.port, '127.0.0.1', () => s.close(() => resolve(false)));
    });
  }

  async stop(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await exited;
  }
}

/** A subscriber that keeps every message it gets. */
export async function subscriber(url: string, topic: string): Promise<{ client: MqttClient; messages: { topic: string; payload: string; retain: boolean }[] }> {
  const client = await mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 200 });
  const messages: { topic: string; payload: string; retain: boolean }[] = [];
  client.on('message', (t, p, packet) => messages.push({ topic: t, payload: p.toString(), retain: packet.retain }));
  await client.subscribeAsync(topic, { qos: 1 });
  return { client, messages };
}

export async function until(what: string, check: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
