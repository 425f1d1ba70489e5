// What is shipped to the fleet does not depend on the local log level: `log.level silent`
// (allowed from the fleet) quiets the local log, never the error reports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { Logging } from '../src/core/index.js';
import { CATALOG, CommandRegistry } from '../src/api/index.js';
import { LogShipper } from '../src/fleet/index.js';
import { Mosquitto, freePort, subscriber, until } from '../tools/testkit/mosquitto.js';
import { tempDir } from '../tools/testkit/daemon.js';
import { fleetOptions, testLink } from './helpers/fleet.js';

function logging(): { logging: Logging; lines: { level: number; msg: string }[]; tapped: { level: number; msg: string }[] } {
  const lines: { level: number; msg: string }[] = [];
  const tapped: { level: number; msg: string }[] = [];
  const l = new Logging({ level: 'info', pretty: false, destination: { write: (s: string) => void lines.push(JSON.parse(s) as { level: number; msg: string }) } });
  l.setTap((r) => void tapped.push(r as { level: number; msg: string }));
  return { logging: l, lines, tapped };
}

test('the local level decides the local log only: at silent, for all or one module, warnings and errors still reach the tap', () => {
  const { logging: l, lines, tapped } = logging();
  const dxl = l.child('dxl');
  const camera = l.child('camera');
  l.setLevel('silent');
  dxl.error('servo 3 did not answer');
  dxl.warn('voltage low');
  dxl.info('not for anyone');
  assert.equal(lines.length, 0, 'the local log is silent');
  assert.deepEqual(tapped.map((r) => r.msg), ['servo 3 did not answer', 'voltage low'], 'before: the tap got nothing at silent');
  l.setLevel('error');
  dxl.warn('w2');
  dxl.error('e2');
  assert.deepEqual(lines.map((r) => r.msg), ['e2']);
  assert.deepEqual(tapped.map((r) => r.msg).slice(2), ['w2', 'e2']);
  l.setLevel('info');
  l.setLevel('silent', 'dxl');
  dxl.error('e3');
  camera.warn('c1');
  camera.info('i1');
  assert.deepEqual(lines.map((r) => r.msg).slice(1), ['c1', 'i1']);
  assert.deepEqual(tapped.map((r) => r.msg).slice(4), ['e3', 'c1']);
  assert.deepEqual(l.levels(), { '*': 'info', dxl: 'silent', camera: 'info' });
  l.setLevel('debug');
  dxl.debug('d1');
  assert.equal(lines.at(-1)?.msg, 'd1');
  assert.equal(tapped.at(-1)?.msg, 'c1', 'the tap takes warnings and above only');
});

test('log.level silent sent from the fleet: an error after it is still shipped to the fleet', async () => {
  const dir = tempDir('reflex-fleet-logs-');
  const b = new Mosquitto(dir, await freePort());
  await b.start();
  const url = `mqtt://127.0.0.1:${b.port}`;
  const { logging: l } = logging();
  const commands = new CommandRegistry(CATALOG).add({
    'log.level': ({ level }) => {
      l.setLevel(level);
      return l.levels();
    },
  });
  const link = testLink(fleetOptions(url, 'arm-30', dir), commands, l.child('fleet'));
  // As the daemon wires it (daemon.ts fleetLink).
  const shipper = new LogShipper((log) => void link.event('log', log).catch(() => undefined));
  l.setTap((record) => {
    if (record.mod !== 'fleet' && Number(record.level) >= 40) shipper.take(record);
  });
  const sub = await subscriber(url, 'reflex/v1/arm-30/#');
  const backend = await mqtt.connectAsync(url, { protocolVersion: 5 });
  await link.start();
  try {
    await until('online', () => link.status().state === 'online', 5000);
    await backend.publishAsync('reflex/v1/arm-30/cmd/log.level', '{"level":"silent"}', { qos: 1, properties: { responseTopic: 'reflex/v1/arm-30/resp/ops' } });
    await until('silent', () => sub.messages.some((m) => m.topic.endsWith('/resp/ops')), 5000);
    assert.equal(l.levels()['*'], 'silent');
    l.child('dxl').error({ servo: 3 }, 'servo 3 did not answer');
    await until('the error reaches the fleet', () => sub.messages.some((m) => m.topic === 'reflex/v1/arm-30/events/log'), 5000);
    const shipped = JSON.parse(sub.messages.find((m) => m.topic.endsWith('/events/log'))!.payload) as { data: { level: string; mod: string; msg: string; fields: { servo: number } } };
    assert.deepEqual([shipped.data.level, shipped.data.mod, shipped.data.msg, shipped.data.fields.servo], ['error', 'dxl', 'servo 3 did not answer', 3]);
  } finally {
    await link.stop();
    await backend.endAsync();
    await sub.client.endAsync();
    await b.stop();
  }
});
