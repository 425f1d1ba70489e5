import { test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { Mosquitto, freePort, subscriber, until } from '../tools/testkit/mosquitto.js';
import { spawnReflex, tempDir, testConfig, writeConfig } from '../tools/testkit/daemon.js';

test('a spawned daemon goes online, sends telemetry, answers a fleet e-stop, and its will marks it offline after kill -9', async () => {
  const dir = tempDir();
  const b = new Mosquitto(dir, await freePort());
  await b.start();
  const url = `mqtt://127.0.0.1:${b.port}`;
  const sub = await subscriber(url, 'reflex/v1/test-01/#');
  const d = spawnReflex(['run', '--config', writeConfig(dir, testConfig(dir, { fleet: { enabled: true, url, telemetryHz: 5 } }))]);
  try {
    const state = () => sub.messages.filter((m) => m.topic === 'reflex/v1/test-01/state').map((m) => JSON.parse(m.payload) as { online: boolean; seq: number });
    await until('birth', () => state().some((s) => s.online), 15_000);
    await until('telemetry', () => sub.messages.some((m) => m.topic === 'reflex/v1/test-01/telemetry'), 5000);
    const t = JSON.parse(sub.messages.find((m) => m.topic.endsWith('/telemetry'))!.payload) as { loop: { mode: string; hz: number } };
    assert.equal(t.loop.mode, 'hold');

    const backend = await mqtt.connectAsync(url, { protocolVersion: 5 });
    let response: unknown = null;
    backend.on('message', (_t, p) => {
      response = JSON.parse(p.toString()) as unknown;
    });
    await backend.subscribeAsync('reflex/v1/test-01/resp/ops', { qos: 1 });
    await backend.publishAsync('reflex/v1/test-01/cmd/estop', '{}', { qos: 1, properties: { responseTopic: 'reflex/v1/test-01/resp/ops', correlationData: Buffer.from('1') } });
    await until('e-stop answered', () => response !== null, 5000);
    assert.deepEqual(response, { ok: true, result: { mode: 'estop' } });
    await backend.endAsync();

    d.proc.kill('SIGKILL');
    await until('the will', () => state().at(-1)?.online === false, 40_000);
  } finally {
    d.proc.kill('SIGKILL');
    await sub.client.endAsync();
    await b.stop();
  }
});
