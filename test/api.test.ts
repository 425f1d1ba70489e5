// The daemon's command catalog: what the daemon answers, which commands move the arm, what the
// fleet may send, and how bad args are refused. The catalog is the one list: the socket, the
// fleet link and the client all read it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { CATALOG, CommandRegistry, type DaemonCommand } from '../src/api/index.js';
import { parseConfig } from '../src/config/index.js';
import { Logging, ReflexError } from '../src/core/index.js';
import { Daemon } from '../src/daemon.js';
import { FleetLink } from '../src/fleet/index.js';
import { Mosquitto, freePort, until } from '../tools/testkit/mosquitto.js';
import { tempDir, testConfig } from '../tools/testkit/daemon.js';
import { fleetOptions } from './helpers/fleet.js';

const names = Object.keys(CATALOG) as DaemonCommand[];
const silentLogging = () => new Logging({ level: 'silent', pretty: false });

function daemon(faultInjection: boolean): Daemon {
  const dir = tempDir('reflex-api-');
  const config = parseConfig(testConfig(dir, { debug: { faultInjection } }), 'test');
  return new Daemon({ config, logging: silentLogging(), env: {} });
}

test('the daemon answers every command of the catalog, and only those (fault injection only when configured)', () => {
  assert.deepEqual(daemon(true).commands.names(), [...names].sort());
  const plain = names.filter((n) => CATALOG[n].debug !== true).sort();
  assert.deepEqual(daemon(false).commands.names(), plain);
  assert.ok(!plain.some((n) => n.startsWith('debug.')));
});

test('each command says whether it moves the arm: starting, swapping or re-enabling does; stopping, holding and looking do not', () => {
  const moving = names.filter((n) => CATALOG[n].moves).sort();
  assert.deepEqual(moving, ['jog', 'policy.activate', 'policy.rollback', 'policy.start', 'policy.task', 'reset']);
  for (const n of names) assert.ok(CATALOG[n].summary.length > 0, `${n} has a summary`);
});

test('a bad argument is refused with the schema\'s message, before the handler runs', async () => {
  let ran = 0;
  const r = new CommandRegistry(CATALOG, { debug: true }).add({
    'debug.stall': () => (ran++, null),
    'policy.activate': () => (ran++, Promise.reject(new Error('not reached'))),
    'log.level': () => (ran++, {}),
  });
  const refused = async (name: string, args: Record<string, unknown>, message: string) => {
    await assert.rejects(r.run(name, args), (err: unknown) => err instanceof ReflexError && err.code === 'BAD_REQUEST' && err.message === message);
  };
  await refused('debug.stall', { ms: 0 }, 'args.ms: got 0; want a number from 1 to 60000');
  await refused('debug.stall', { ms: '5' }, 'args.ms: got "5"; want a number from 1 to 60000');
  await refused('policy.activate', {}, 'args.path: got nothing; want a string');
  await refused('log.level', { level: 'loud' }, 'args.level: got "loud"; want one of fatal, error, warn, info, debug, trace, silent');
  await refused('log.level', { level: 'info', module: 7 }, 'args.module: got 7; want a string');
  assert.equal(ran, 0);
  assert.equal(await r.run('debug.stall', { ms: 5 }), null);
  assert.equal(ran, 1);
});

test('a name that is not a command (even one every object has) is unknown, not run', async () => {
  const r = new CommandRegistry(CATALOG).add({ ping: () => 'pong' });
  for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'selfdestruct']) {
    assert.equal(r.spec(name), undefined);
    await assert.rejects(r.run(name, {}), (err: unknown) => err instanceof ReflexError && err.code === 'UNKNOWN_COMMAND');
  }
});

test('the daemon composes status, faults and STATUS= from its parts', () => {
  const d = daemon(false);
  const s = d.status();
  for (const key of ['loop', 'policy', 'cameras', 'fleet', 'socket', 'systemd', 'faults'] as const) assert.ok(key in s, `status.${key}`);
  assert.deepEqual(s.fleet, { state: 'disabled' });
  assert.deepEqual(s.cameras, []);
  assert.equal(s.policy.state, 'none');
  // Not started: the loop reports itself as not ticking, and says so in the line.
  assert.match(d.summary(), /^STALLED .* Hz, .*, policy none, fleet disabled, 0 episodes recorded$/);
});

const brokers: Mosquitto[] = [];
after(async () => {
  for (const b of brokers) await b.stop();
});

test('the fleet refuses every catalog command not marked fleet-allowed, and runs the ones that are', async () => {
  const dir = tempDir('reflex-api-fleet-');
  const b = new Mosquitto(dir, await freePort());
  await b.start();
  brokers.push(b);
  const url = `mqtt://127.0.0.1:${b.port}`;
  const ran = new Set<string>();
  // Every command answered (fault injection too), by a stub that notes it ran.
  const stubs = Object.fromEntries(names.map((n) => [n, () => (ran.add(n), null)]));
  const registry = new CommandRegistry(CATALOG, { debug: true }).add(stubs);
  const link = new FleetLink(fleetOptions(url, 'arm-40', dir), registry, () => ({}), pino({ level: 'silent' }));
  await link.start();
  const backend = await mqtt.connectAsync(url, { protocolVersion: 5 });
  try {
    await until('online', () => link.status().state === 'online', 5000);
    const replies = new Map<string, { ok: boolean; error?: { code: string } }>();
    backend.on('message', (_t, p, packet) => replies.set(packet.properties?.correlationData?.toString() ?? '', JSON.parse(p.toString()) as { ok: boolean }));
    await backend.subscribeAsync('reflex/v1/arm-40/resp/backend', { qos: 1 });
    // Args valid for each command, so only the allowlist can refuse it.
    const args: Partial<Record<DaemonCommand, object>> = { 'policy.activate': { path: '/nonexistent' }, 'camera.snapshot': { name: 'top' }, 'log.level': { level: 'info' }, 'record.mark': { label: 'success' } };
    for (const n of names) if (n.startsWith('debug.')) args[n] = { ms: 5 };
    const asked = [...names, 'constructor'];
    for (const n of asked) {
      await backend.publishAsync(`reflex/v1/arm-40/cmd/${n}`, JSON.stringify(args[n as DaemonCommand] ?? {}), {
        qos: 1,
        properties: { responseTopic: 'reflex/v1/arm-40/resp/backend', correlationData: Buffer.from(n) },
      });
    }
    await until('every reply', () => replies.size === asked.length, 10_000);
    const allowed: string[] = names.filter((n) => CATALOG[n].fleet).sort();
    assert.deepEqual(allowed, ['camera.snapshot', 'estop', 'faults', 'log.level', 'ota.cancel', 'ota.status', 'policy.activate', 'policy.rollback', 'policy.start', 'policy.stop', 'policy.task', 'record.mark', 'record.start', 'record.status', 'record.stop', 'reset', 'status']);
    for (const n of asked) {
      const r = replies.get(n);
      if (allowed.includes(n)) assert.equal(r?.ok, true, `${n} runs from the fleet`);
      else assert.equal(r?.error?.code, 'NOT_ALLOWED', `${n} is refused from the fleet`);
    }
    assert.deepEqual([...ran].sort(), allowed, 'no refused command ran');
  } finally {
    await backend.endAsync();
    await link.stop();
  }
});
