// Remote commands against a real Mosquitto, attacked the ways a hostile network would: replies
// steered onto the device's own command and event topics, retained commands that replay.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { Mosquitto, freePort, subscriber, until } from '../tools/testkit/mosquitto.js';
import { spawnReflex, tempDir, testConfig, writeConfig } from '../tools/testkit/daemon.js';
import { countingRegistry, fleetOptions, killSocket, testLink, type Ran } from './helpers/fleet.js';
import { ptyRun } from './helpers/cli-pty.js';

const dir = tempDir('reflex-fleet-cmd-');
const brokers: Mosquitto[] = [];
after(async () => {
  for (const b of brokers) await b.stop();
});

async function broker(): Promise<string> {
  const b = new Mosquitto(dir, await freePort());
  await b.start();
  brokers.push(b);
  return `mqtt://127.0.0.1:${b.port}`;
}

/** A backend that asks and waits for the answer on its response topic. */
async function backend(url: string, deviceId: string): Promise<{ client: MqttClient; ask: (cmd: string, body: string, opts?: { retain?: boolean }) => Promise<unknown> }> {
  const client = await mqtt.connectAsync(url, { protocolVersion: 5 });
  const responses = new Map<string, unknown>();
  client.on('message', (_t, p, packet) => responses.set(packet.properties?.correlationData?.toString() ?? '', JSON.parse(p.toString())));
  const respTopic = `reflex/v1/${deviceId}/resp/backend`;
  await client.subscribeAsync(respTopic, { qos: 1 });
  let id = 0;
  const ask = async (cmd: string, body: string, opts: { retain?: boolean } = {}) => {
    const key = String(++id);
    await client.publishAsync(`reflex/v1/${deviceId}/cmd/${cmd}`, body, { qos: 1, retain: opts.retain ?? false, properties: { responseTopic: respTopic, correlationData: Buffer.from(key) } });
    await until(`response to ${cmd}`, () => responses.has(key), 5000);
    return responses.get(key);
  };
  return { client, ask };
}

test('a reply is never published outside resp/: a status whose response topic is cmd/reset resets nothing, and nothing lands on cmd/ or events/', async () => {
  const url = await broker();
  const ran: Ran = {};
  const l = testLink(fleetOptions(url, 'arm-10', dir), countingRegistry(ran));
  const spy = await subscriber(url, 'reflex/v1/arm-10/#');
  const attacker = await mqtt.connectAsync(url, { protocolVersion: 5 });
  await l.start();
  try {
    await until('online', () => l.status().state === 'online', 5000);
    const ops = await backend(url, 'arm-10');
    assert.deepEqual(await ops.ask('status', '{}'), { ok: true, result: { mode: 'hold' } });
    const steered = ['reflex/v1/arm-10/cmd/reset', 'reflex/v1/arm-10/cmd/policy.start', 'reflex/v1/arm-10/events/fault', 'reflex/v1/arm-10/state', 'reflex/v1/arm-10/resp', 'reflex/v1/arm-10/respx/y', 'reflex/v1/arm-11/resp/x'];
    for (const responseTopic of steered) {
      await attacker.publishAsync('reflex/v1/arm-10/cmd/status', '{}', { qos: 1, properties: { responseTopic, correlationData: Buffer.from('x') } });
    }
    await until('every steered command refused', () => l.status().commands.refused === steered.length, 5000);
    // A command on the device's own connection (as if the device had published one): with
    // noLocal it never comes back to it. The backend's ask after it proves the queue drained.
    await (l as unknown as { client: MqttClient }).client.publishAsync('reflex/v1/arm-10/cmd/reset', '{}', { qos: 1 });
    assert.deepEqual(await ops.ask('status', '{}'), { ok: true, result: { mode: 'hold' } });
    assert.equal(ran.reset ?? 0, 0, 'no reset ran (before: the reply, published on cmd/reset, ran as a reset)');
    assert.equal(ran['policy.start'] ?? 0, 0, 'the arm was not started');
    assert.equal(ran.status, 2, 'the steered commands themselves were refused, not run');
    const onCmd = spy.messages.filter((m) => m.topic.includes('/cmd/'));
    assert.equal(onCmd.length, 2 + steered.length + 1, 'on cmd/: only what the backend, the attacker and the one local publish sent');
    assert.ok(!onCmd.some((m) => m.payload.includes('"ok"')), 'no reply on cmd/');
    assert.deepEqual(spy.messages.filter((m) => m.topic.includes('/events/')), [], 'no forged event');
    assert.deepEqual(spy.messages.filter((m) => m.topic.endsWith('/state')).map((m) => (JSON.parse(m.payload) as { online: boolean }).online), [true], 'state untouched');
    assert.deepEqual(l.status().commands, { handled: 2, refused: steered.length });
    await ops.client.endAsync();
  } finally {
    await l.stop();
    await spy.client.endAsync();
    await attacker.endAsync();
  }
});

test('a retained command never runs: not at connect, not after a reconnect, and one published live with retain is refused', async () => {
  const url = await broker();
  const ran: Ran = {};
  // Left on the broker before the robot ever connects.
  const attacker = await mqtt.connectAsync(url, { protocolVersion: 5 });
  await attacker.publishAsync('reflex/v1/arm-12/cmd/estop', '{}', { qos: 1, retain: true });
  await attacker.publishAsync('reflex/v1/arm-12/cmd/log.level', '{"level":"silent"}', { qos: 1, retain: true });
  const l = testLink(fleetOptions(url, 'arm-12', dir, { backoff: { minMs: 100, maxMs: 1000, stableMs: 60_000 } }), countingRegistry(ran));
  await l.start();
  const ops = await backend(url, 'arm-12');
  try {
    await until('online', () => l.status().state === 'online', 5000);
    // The answer to a command sent after the subscription proves any retained one had its chance.
    assert.deepEqual(await ops.ask('status', '{}'), { ok: true, result: { mode: 'hold' } });
    assert.equal(ran.estop ?? 0, 0, 'the retained e-stop did not run at connect');
    assert.equal(ran['log.level'] ?? 0, 0, 'the retained log.level did not run at connect');
    killSocket(l);
    await until('reconnected', () => l.status().reconnects === 1 && l.status().state === 'online', 10_000);
    assert.deepEqual(await ops.ask('status', '{}'), { ok: true, result: { mode: 'hold' } });
    assert.equal(ran.estop ?? 0, 0, 'nor after a reconnect');
    assert.deepEqual(await ops.ask('estop', '{}', { retain: true }), {
      ok: false,
      error: { code: 'BAD_REQUEST', message: 'a retained command is refused: publish commands without the retain flag' },
    });
    assert.equal(ran.estop ?? 0, 0);
    assert.equal(l.status().commands.refused, 1, 'the live retained command is refused and counted');
  } finally {
    await l.stop();
    await ops.client.endAsync();
    await attacker.endAsync();
  }
});

test('an outbox entry whose topic is not one of its own events is never published: an altered outbox cannot make the device send a command', async () => {
  const url = await broker();
  const ran: Ran = {};
  const opts = fleetOptions(url, 'arm-13', dir);
  const outbox = join(opts.stateDir, 'outbox');
  mkdirSync(outbox, { recursive: true });
  const entry = (n: number, topic: string) => `${JSON.stringify({ n, boot: 'old', seq: n, ts: 1, topic, payload: {} })}\n`;
  writeFileSync(join(outbox, 'seg-0000000000000001.jsonl'), entry(1, 'reflex/v1/arm-13/cmd/reset') + entry(2, 'reflex/v1/arm-14/events/fault') + entry(3, 'reflex/v1/arm-13/events/fault'));
  const spy = await subscriber(url, 'reflex/v1/#');
  const l = testLink(opts, countingRegistry(ran));
  await l.start();
  try {
    await until('the outbox drained', () => l.status().state === 'online' && l.status().outbox.pending === 0, 5000);
    await until('its own event delivered', () => spy.messages.some((m) => m.topic === 'reflex/v1/arm-13/events/fault'), 5000);
    assert.deepEqual(spy.messages.filter((m) => m.topic.includes('/cmd/') || m.topic.startsWith('reflex/v1/arm-14/')), []);
    assert.equal(ran.reset ?? 0, 0);
    assert.equal(l.status().outbox.dropped, 2, 'the two foreign entries are dropped and counted');
  } finally {
    await l.stop();
    await spy.client.endAsync();
  }
});

test('the audit trail: a fleet command that changes the robot\'s state is logged at info with where it came from, as `reflex logs` and `reflex faults` show it; a read-only one is not; the broker password never is', async () => {
  const url = await broker();
  const ddir = tempDir('reflex-fleet-audit-');
  const sock = join(ddir, 'control.sock');
  // Credentials in the URL, as a config may carry them: they must not reach the log.
  const d = spawnReflex(['run', '--config', writeConfig(ddir, testConfig(ddir, { fleet: { enabled: true, url: url.replace('mqtt://', 'mqtt://robot:hunter2@') } }))]);
  let ops: Awaited<ReturnType<typeof backend>> | null = null;
  try {
    await d.waitForLog((l) => l.msg === 'reflex is running', 30_000);
    await d.waitForLog((l) => l.msg === 'fleet link online', 15_000);
    ops = await backend(url, 'test-01');
    assert.equal(((await ops.ask('status', '{}')) as { ok: boolean }).ok, true);
    assert.deepEqual(await ops.ask('estop', '{}'), { ok: true, result: { mode: 'estop' } });

    const line = await d.waitForLog((l) => l.msg === 'estop from the fleet', 5000);
    assert.equal(line.level, 30, 'at info');
    assert.equal(line.mod, 'fleet');
    assert.equal(line.via, 'fleet');
    assert.equal(line.cmd, 'estop');
    assert.match(String(line.from), /^mqtt mqtt:\/\/robot:<redacted>@127\.0\.0\.1:\d+ reflex\/v1\/test-01\/cmd\/estop from backend$/, 'the broker, the topic and the requester (its resp/ topic)');
    assert.equal(line.requester, 'backend');
    assert.ok(!d.logs.some((l) => l.cmd === 'status' && l.via === 'fleet'), 'a read-only command leaves no audit line');

    // What the technician reads at the robot (not under systemd here: the daemon's own lines).
    const logs = await ptyRun(['logs', '--daemon', '--module', 'fleet', '--level', 'info', '--socket', sock]);
    assert.equal(logs.code, 0, logs.text);
    assert.match(logs.text, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} INFO +\[fleet\] estop from the fleet +cmd=estop args=\{\} via=fleet from=.*reflex\/v1\/test-01\/cmd\/estop from backend requester=backend/m);
    const faults = await ptyRun(['faults', '--socket', sock]);
    assert.equal(faults.code, 0, faults.text);
    assert.match(faults.text, /E-STOP +e-stop by the fleet \(mqtt .*reflex\/v1\/test-01\/cmd\/estop from backend\)/);
    const status = await ptyRun(['status', '--json', '--socket', sock]);
    assert.match((JSON.parse(status.text) as { fleet: { url: string } }).fleet.url, /^mqtt:\/\/robot:<redacted>@/, 'status shows the broker without its password');
    for (const text of [JSON.stringify(d.logs), logs.text, faults.text, status.text]) assert.doesNotMatch(text, /hunter2/, 'the broker password is not in the audit trail');
  } finally {
    await ops?.client.endAsync();
    d.proc.kill('SIGTERM');
    await d.exited;
  }
});
