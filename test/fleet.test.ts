import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { CommandRegistry, NO_ARGS, command, oneOf } from '../src/api/index.js';
import { FleetLink, Outbox, LogShipper, type FleetOptions } from '../src/fleet/index.js';
import { Mosquitto, freePort, subscriber, until } from '../tools/testkit/mosquitto.js';
import { tempDir } from '../tools/testkit/daemon.js';
import { fleetOptions } from './helpers/fleet.js';

const silent = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const dir = tempDir('reflex-fleet-');
const brokers: Mosquitto[] = [];
after(async () => {
  for (const b of brokers) await b.stop();
});

async function broker(extra: string[] = []): Promise<Mosquitto> {
  const b = new Mosquitto(dir, await freePort(), extra);
  await b.start();
  brokers.push(b);
  return b;
}

let estops = 0;

/** The link reads the catalog's `fleet` flag: debug.stall is answered, but not for the fleet. */
const catalog = {
  status: command<{ mode: string }>()({ summary: '', args: NO_ARGS, moves: false, fleet: true }),
  estop: command<{ mode: string }>()({ summary: '', args: NO_ARGS, moves: false, fleet: true }),
  'log.level': command<{ level: string }>()({ summary: '', args: NO_ARGS.extend({ level: oneOf(['info', 'debug']) }), moves: false, fleet: true }),
  'debug.stall': command<null>()({ summary: '', args: NO_ARGS, moves: false, fleet: false }),
};

function registry(): CommandRegistry<typeof catalog> {
  return new CommandRegistry(catalog).add({
    status: () => ({ mode: 'hold' }),
    estop: () => (estops++, { mode: 'estop' }),
    'log.level': ({ level }) => ({ level }),
    'debug.stall': () => null,
  });
}

function link(url: string, deviceId: string, over: Partial<FleetOptions> = {}): FleetLink {
  const opts = fleetOptions(url, deviceId, dir, over);
  return new FleetLink(opts, registry(), () => ({ loop: { hz: 50 } }), silent);
}

interface StateMsg {
  online: boolean;
  boot: string;
  seq: number;
}

/** The rule a consumer applies (README): per boot id, the state with the highest seq wins. */
function truth(messages: { topic: string; payload: string }[], boot: string): StateMsg | null {
  let best: StateMsg | null = null;
  for (const m of messages) {
    if (!m.topic.endsWith('/state')) continue;
    const s = JSON.parse(m.payload) as StateMsg;
    if (s.boot === boot && (best === null || s.seq > best.seq)) best = s;
  }
  return best;
}

const killSocket = (l: FleetLink) => (l as unknown as { client: { stream: { destroy(): void } } }).client.stream.destroy();

test('birth and retained state, telemetry, and the will when the link dies uncleanly', async () => {
  const b = await broker();
  const url = `mqtt://127.0.0.1:${b.port}`;
  const l = link(url, 'arm-01');
  await l.start();
  await until('online', () => l.status().state === 'online', 5000);
  const sub = await subscriber(url, 'reflex/v1/arm-01/#');
  try {
    await until('retained birth', () => sub.messages.some((m) => m.topic.endsWith('/state') && m.retain), 3000);
    const birth = JSON.parse(sub.messages.find((m) => m.topic.endsWith('/state'))!.payload) as StateMsg;
    assert.equal(birth.online, true);
    assert.equal(birth.boot, l.boot);
    await until('telemetry', () => sub.messages.some((m) => m.topic === 'reflex/v1/arm-01/telemetry'), 3000);
    const t = JSON.parse(sub.messages.find((m) => m.topic.endsWith('/telemetry'))!.payload) as { boot: string; loop: { hz: number } };
    assert.equal(t.loop.hz, 50);
    // An unclean death: the socket goes away without DISCONNECT. The broker publishes the will.
    killSocket(l);
    await until('will', () => sub.messages.some((m) => m.topic.endsWith('/state') && (JSON.parse(m.payload) as StateMsg).online === false), 30_000);
    const will = sub.messages.filter((m) => m.topic.endsWith('/state')).map((m) => JSON.parse(m.payload) as StateMsg).find((s) => !s.online)!;
    assert.equal(will.boot, l.boot);
    assert.ok(will.seq > birth.seq, 'the will is newer than the birth of its own connection: a dead robot shows offline');
  } finally {
    await l.stop();
    await sub.client.endAsync();
  }
});

test('every connection has a current will: after reconnects, highest seq per boot shows online, then offline after each death', async () => {
  const b = await broker();
  const url = `mqtt://127.0.0.1:${b.port}`;
  const sub = await subscriber(url, 'reflex/v1/arm-05/state');
  const l = link(url, 'arm-05', { backoff: { minMs: 100, maxMs: 1000, stableMs: 60_000 } });
  await l.start();
  try {
    for (let connection = 1; connection <= 3; connection++) {
      await until(`connection ${connection}: online`, () => l.status().state === 'online' && truth(sub.messages, l.boot)?.online === true, 10_000);
      killSocket(l);
      // Before: every will carried the first connect's seq, below every later birth, so the
      // dead robot stayed online for a consumer keeping the highest seq.
      await until(`connection ${connection}: its will wins`, () => truth(sub.messages, l.boot)?.online === false, 10_000);
    }
    const bySeq = sub.messages.map((m) => JSON.parse(m.payload) as StateMsg).filter((s) => s.boot === l.boot).sort((x, y) => x.seq - y.seq);
    assert.deepEqual(bySeq.map((s) => s.online), [true, false, true, false, true, false], 'in seq order: birth, its will, the next birth, its will, ...');
    await until('online again', () => l.status().state === 'online' && truth(sub.messages, l.boot)?.online === true, 10_000);
    await l.stop();
    await until('the clean goodbye wins', () => truth(sub.messages, l.boot)?.online === false, 5000);
  } finally {
    await l.stop();
    await sub.client.endAsync();
  }
});

test('events survive a broker kill and restart: all delivered, none duplicated after dedup on (boot, seq)', async () => {
  const b = await broker();
  const url = `mqtt://127.0.0.1:${b.port}`;
  const l = link(url, 'arm-02');
  await l.start();
  await until('online', () => l.status().state === 'online', 5000);
  await b.stop();
  await until('offline', () => l.status().state !== 'online', 5000);
  for (let i = 1; i <= 50; i++) await l.event('test', { i });
  assert.equal(l.status().outbox.pending, 50);
  await b.start();
  const sub = await subscriber(url, 'reflex/v1/arm-02/events/#');
  try {
    await until('reconnect and drain', () => l.status().outbox.pending === 0, 40_000);
    await until('all arrive', () => new Set(sub.messages.map((m) => m.payload)).size >= 50, 5000);
    const keys = new Set(sub.messages.map((m) => { const p = JSON.parse(m.payload) as { boot: string; seq: number }; return `${p.boot}/${p.seq}`; }));
    assert.equal(keys.size, 50);
    const is = sub.messages.map((m) => (JSON.parse(m.payload) as { data: { i: number } }).data.i);
    assert.deepEqual([...new Set(is)].sort((x, y) => x - y), Array.from({ length: 50 }, (_, k) => k + 1));
  } finally {
    await l.stop();
    await sub.client.endAsync();
  }
});

test('events appended before a kill -9 while offline are delivered by the next start', async () => {
  const outDir = join(dir, 'crash-01', 'outbox');
  const child = spawn(process.execPath, [new URL('./helpers/outbox-writer.js', import.meta.url).pathname, outDir, 'boot-a'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let acked = 0;
  await new Promise<void>((resolve) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      acked = Number(line.split(' ')[1]);
      if (acked >= 200) {
        child.kill('SIGKILL');
        resolve();
      }
    });
  });
  await new Promise((r) => child.once('exit', r));
  const b = await broker();
  const url = `mqtt://127.0.0.1:${b.port}`;
  const sub = await subscriber(url, 'reflex/v1/crash-01/events/#');
  const l = link(url, 'crash-01');
  await l.start();
  try {
    await until('drained', () => l.status().state === 'online' && l.status().outbox.pending === 0, 20_000);
    await sleep(200);
    const seqs = new Set(sub.messages.map((m) => (JSON.parse(m.payload) as { boot: string; seq: number }).seq));
    for (let s = 1; s <= acked; s++) assert.ok(seqs.has(s), `event ${s} (on disk before the kill) was lost`);
  } finally {
    await l.stop();
    await sub.client.endAsync();
  }
});

test('the outbox is bounded: the oldest go first, and every drop is counted', () => {
  const o = new Outbox(join(dir, 'bound', 'outbox'), 'boot-b', 10);
  for (let i = 1; i <= 25; i++) void o.append('t', { i });
  const { bytes: _b, ...stats } = o.stats();
  assert.deepEqual(stats, { pending: 10, appended: 25, delivered: 0, dropped: 15, error: null });
  assert.deepEqual(o.take(100).map((e) => (e.payload as { i: number }).i), [16, 17, 18, 19, 20, 21, 22, 23, 24, 25]);
  o.close();
  const again = new Outbox(join(dir, 'bound', 'outbox'), 'boot-c', 10);
  assert.equal(again.stats().dropped, 15, 'the drop count survives a restart');
  again.close();
});

test('remote commands: valid, malformed, expired and not allowed each get the right response', async () => {
  const b = await broker();
  const url = `mqtt://127.0.0.1:${b.port}`;
  const l = link(url, 'arm-03');
  await l.start();
  await until('online', () => l.status().state === 'online', 5000);
  const backend = await mqtt.connectAsync(url, { protocolVersion: 5 });
  const responses = new Map<string, unknown>();
  backend.on('message', (_t, p, packet) => responses.set(packet.properties?.correlationData?.toString() ?? '', JSON.parse(p.toString())));
  await backend.subscribeAsync('reflex/v1/arm-03/resp/backend', { qos: 1 });
  const ask = async (cmd: string, body: string, id: string) => {
    await backend.publishAsync(`reflex/v1/arm-03/cmd/${cmd}`, body, { qos: 1, properties: { responseTopic: 'reflex/v1/arm-03/resp/backend', correlationData: Buffer.from(id), messageExpiryInterval: 30 } });
    await until(`response ${id}`, () => responses.has(id), 5000);
    return responses.get(id);
  };
  try {
    assert.deepEqual(await ask('status', '{}', 'a'), { ok: true, result: { mode: 'hold' } });
    assert.deepEqual(await ask('log.level', '{"level":"debug"}', 'b'), { ok: true, result: { level: 'debug' } });
    assert.deepEqual(await ask('status', 'not json', 'c'), { ok: false, error: { code: 'BAD_REQUEST', message: 'payload must be a JSON object' } });
    assert.deepEqual(await ask('log.level', '{"level":"loud"}', 'd'), { ok: false, error: { code: 'BAD_REQUEST', message: 'args.level: got "loud"; want one of info, debug' } });
    const expired = (await ask('estop', JSON.stringify({ expiresAt: Date.now() - 5000 }), 'e')) as { ok: boolean; error: { code: string } };
    assert.equal(expired.ok, false);
    assert.equal(expired.error.code, 'EXPIRED');
    assert.deepEqual(await ask('debug.stall', '{}', 'f'), { ok: false, error: { code: 'NOT_ALLOWED', message: 'command "debug.stall" is not allowed over the fleet link' } });
    // An expiry that cannot be read is refused, not ignored (an ISO string ran, before).
    const unreadable = { ok: false, error: { code: 'BAD_REQUEST', message: 'expiresAt must be a number: milliseconds since the epoch' } };
    assert.deepEqual(await ask('estop', JSON.stringify({ expiresAt: new Date(Date.now() - 5000).toISOString() }), 'g'), unreadable);
    assert.deepEqual(await ask('estop', JSON.stringify({ expiresAt: null }), 'h'), unreadable);
    assert.deepEqual(await ask('estop', JSON.stringify({ expiresAt: new Date(Date.now() + 60_000).toISOString() }), 'i'), unreadable);
    assert.deepEqual(await ask('status', JSON.stringify({ expiresAt: Date.now() + 60_000 }), 'j'), { ok: true, result: { mode: 'hold' } });
    assert.equal(estops, 0, 'no e-stop ran: each was refused');
    assert.deepEqual(l.status().commands, { handled: 3, refused: 7 });
  } finally {
    await l.stop();
    await backend.endAsync();
  }
});

test('TLS with client certificates: the right certificate connects, a wrong one is refused', async () => {
  const certs = join(dir, 'tls');
  const ssl = (args: string[]) => {
    const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  };
  spawnSync('mkdir', ['-p', certs]);
  const p = (f: string) => join(certs, f);
  ssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=fleet-ca', '-keyout', p('ca.key'), '-out', p('ca.pem')]);
  for (const [name, ca] of [['server', 'ca'], ['device', 'ca'], ['rogue', 'rogue-ca']] as const) {
    if (ca === 'rogue-ca') ssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=rogue-ca', '-keyout', p('rogue-ca.key'), '-out', p('rogue-ca.pem')]);
    ssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name === 'server' ? '127.0.0.1' : name}`, '-keyout', p(`${name}.key`), '-out', p(`${name}.csr`)]);
    writeFileSync(p(`${name}.ext`), name === 'server' ? 'subjectAltName=IP:127.0.0.1\n' : 'extendedKeyUsage=clientAuth\n');
    ssl(['x509', '-req', '-in', p(`${name}.csr`), '-CA', p(`${ca}.pem`), '-CAkey', p(`${ca}.key`), '-CAcreateserial', '-days', '2', '-extfile', p(`${name}.ext`), '-out', p(`${name}.pem`)]);
  }
  const b = await broker([`cafile ${p('ca.pem')}`, `certfile ${p('server.pem')}`, `keyfile ${p('server.key')}`, 'require_certificate true']);
  const url = `mqtts://127.0.0.1:${b.port}`;
  const good = link(url, 'tls-01', { caFile: p('ca.pem'), certFile: p('device.pem'), keyFile: p('device.key') });
  const bad = link(url, 'tls-02', { caFile: p('ca.pem'), certFile: p('rogue.pem'), keyFile: p('rogue.key') });
  await good.start();
  await bad.start();
  try {
    await until('the right certificate connects', () => good.status().state === 'online', 5000);
    await sleep(1500);
    assert.notEqual(bad.status().state, 'online', 'a certificate from another CA is refused');
  } finally {
    await good.stop();
    await bad.stop();
  }
});

test('log shipping: repeats are counted, not sent, and a storm is capped', () => {
  const shipped: { msg: string; repeated: number; capped: number }[] = [];
  let now = 0;
  const s = new LogShipper((l) => shipped.push(l), 60_000, 3, () => now);
  for (let i = 0; i < 5; i++) s.take({ level: 50, mod: 'dxl', msg: 'servo 3 did not answer' });
  for (let i = 0; i < 5; i++) s.take({ level: 40, mod: 'camera', msg: `camera ${i} stale` });
  now = 61_000;
  s.take({ level: 50, mod: 'dxl', msg: 'servo 3 did not answer' });
  assert.deepEqual(shipped.map((l) => [l.msg, l.repeated, l.capped]), [
    ['servo 3 did not answer', 0, 0],
    ['camera 0 stale', 0, 0],
    ['camera 1 stale', 0, 0],
    ['servo 3 did not answer', 4, 3],
  ]);
});
