// The control socket under clients that misbehave: too many, idle, flooding without reading.
// Each test runs its own server, so one test's leftovers cannot help or hurt another.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import { CommandRegistry, ControlSocketServer, NO_ARGS, command, type ControlSocketOptions } from '../src/api/index.js';
import { request } from '../src/api/index.js';
import { tempDir } from '../tools/testkit/daemon.js';
import { until } from '../tools/testkit/mosquitto.js';

const silent = pino({ level: 'silent' });

interface Rig {
  path: string;
  server: ControlSocketServer;
  /** Commands run so far, by name. */
  runs: Map<string, number>;
  /** Resolves the `block` commands waiting. */
  unblock: () => void;
  estopped: () => boolean;
  close: () => Promise<void>;
}

async function rig(opts: Partial<ControlSocketOptions> = {}): Promise<Rig> {
  const path = join(tempDir(), 'control.sock');
  const runs = new Map<string, number>();
  const ran = (name: string) => runs.set(name, (runs.get(name) ?? 0) + 1);
  let estopped = false;
  let release: () => void = () => undefined;
  let gate = new Promise<void>((r) => (release = r));
  const catalog = {
    status: command<{ up: boolean }>()({ summary: 's', args: NO_ARGS, moves: false, fleet: false }),
    count: command<number>()({ summary: 'c', args: NO_ARGS, moves: false, fleet: false }),
    block: command<void>()({ summary: 'b', args: NO_ARGS, moves: false, fleet: false }),
    estop: command<{ mode: string }>()({ summary: 'e', args: NO_ARGS, moves: false, fleet: false }),
  };
  const commands = new CommandRegistry(catalog).add({
    status: () => (ran('status'), { up: true }),
    count: () => (ran('count'), runs.get('count') ?? 0),
    block: () => (ran('block'), gate),
    estop: () => {
      ran('estop');
      estopped = true;
      return { mode: 'estop' };
    },
  });
  const server = new ControlSocketServer({ path, mode: '0600', group: null, ...opts }, commands, silent);
  await server.start();
  return {
    path,
    server,
    runs,
    unblock: () => {
      release();
      gate = new Promise<void>((r) => (release = r));
    },
    estopped: () => estopped,
    close: () => server.stop(),
  };
}

/** A connected client that collects what it is sent (when it reads at all) and whether the server closed it. */
interface Client {
  sock: Socket;
  lines: () => Record<string, unknown>[];
  closed: () => boolean;
}

async function connect(path: string, read = true): Promise<Client> {
  const sock = createConnection(path);
  let buf = '';
  let closed = false;
  sock.setEncoding('utf8');
  sock.on('error', () => undefined);
  sock.on('close', () => (closed = true));
  // A client that never reads: its socket is paused before anything can arrive.
  if (read) sock.on('data', (d: string) => (buf += d));
  else sock.pause();
  await once(sock, 'connect');
  return {
    sock,
    lines: () =>
      buf
        .split('\n')
        .filter((l) => l.length > 0)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    closed: () => closed,
  };
}

/** One request on a fresh connection that the server then closes: its reply. */
async function oneShot(path: string, line: string): Promise<Record<string, unknown>> {
  const c = await connect(path);
  c.sock.write(`${line}\n`);
  await until('a reply', () => c.lines().length > 0, 5000);
  await until('the server to close the connection', () => c.closed(), 5000);
  return c.lines()[0]!;
}

/**
 * Waits until `value` has not changed for `quietMs`, and returns it. Used to read how far a
 * server got with a flood: if the machine is slow it may settle early and read low, which can
 * only make a test pass without the fix, never fail with it.
 */
async function settled(value: () => number, quietMs = 300): Promise<number> {
  let last = value();
  let since = Date.now();
  await until('the value to settle', () => {
    const v = value();
    if (v !== last) [last, since] = [v, Date.now()];
    return Date.now() - since >= quietMs;
  }, 15_000);
  return last;
}

test('every slot taken by idle clients and a client flooding without reading: estop still gets through and is answered', { timeout: 20_000 }, async () => {
  const r = await rig({ writeStallMs: 1000 });
  try {
    const idle: Client[] = [];
    for (let i = 0; i < 15; i++) idle.push(await connect(r.path));
    const flood = await connect(r.path, false);
    const batch = '{"cmd":"count"}\n'.repeat(4096);
    for (let i = 0; i < 64; i++) flood.sock.write(batch); // 4 MiB of requests, 262,144 of them
    await until('the flood to be served', () => (r.runs.get('count') ?? 0) > 100, 10_000);

    const reply = await oneShot(r.path, '{"id":"e","cmd":"estop"}');
    assert.deepEqual(reply, { id: 'e', ok: true, result: { mode: 'estop' } });
    assert.equal(r.estopped(), true);

    // Anything else from beyond the limit is refused, clearly, and the connection closed.
    const refused = await oneShot(r.path, '{"id":2,"cmd":"status"}');
    assert.deepEqual(refused, {
      id: 2,
      ok: false,
      error: { code: 'BUSY', message: 'too many clients (16): a connection beyond the limit may only send estop' },
    });
    assert.equal(r.runs.get('status'), undefined);

    // The server stopped reading the flooder, whose replies stay unread, and then disconnected
    // it: what it got run stayed bounded (the rest backed up in its own process).
    await until('the flooder to be disconnected', () => flood.closed(), 10_000);
    const counted = r.runs.get('count') ?? 0;
    assert.ok(counted < 20_000, `${counted} of 262,144 flooded requests were run`);

    // Its slot is free again for an ordinary client.
    assert.deepEqual(await request(r.path, 'status'), { up: true });
    for (const c of idle) assert.equal(c.closed(), false);
  } finally {
    await r.close();
  }
});

test('reserved connections that send nothing make way: a new estop still gets through', { timeout: 20_000 }, async () => {
  const r = await rig({ maxClients: 2, reservedSlots: 2 });
  try {
    for (let i = 0; i < 2; i++) await connect(r.path);
    const squatters: Client[] = [];
    for (let i = 0; i < 2; i++) squatters.push(await connect(r.path));
    const reply = await oneShot(r.path, '{"id":1,"cmd":"estop"}');
    assert.deepEqual(reply, { id: 1, ok: true, result: { mode: 'estop' } });
    // The oldest squatter made way, told why.
    await until('the oldest squatter to be closed', () => squatters[0]!.closed(), 5000);
    assert.equal((squatters[0]!.lines()[0]!.error as { code: string }).code, 'BUSY');
  } finally {
    await r.close();
  }
});

test('idle clients are disconnected, so they cannot hold every slot', { timeout: 20_000 }, async () => {
  const r = await rig({ maxClients: 4, idleTimeoutMs: 400 });
  try {
    const idle: Client[] = [];
    for (let i = 0; i < 4; i++) idle.push(await connect(r.path));
    assert.equal((await oneShot(r.path, '{"cmd":"status"}')).ok, false, 'every slot is taken');
    await until('idle clients to be disconnected', () => idle.every((c) => c.closed()), 10_000);
    assert.deepEqual(idle[0]!.lines(), [{ id: null, ok: false, error: { code: 'TIMEOUT', message: 'sent no request for 400 ms; closing' } }]);
    assert.deepEqual(await request(r.path, 'status'), { up: true });
  } finally {
    await r.close();
  }
});

test('a client that keeps sending requests is not idle', { timeout: 20_000 }, async () => {
  const r = await rig({ idleTimeoutMs: 400 });
  try {
    const c = await connect(r.path);
    for (let i = 0; i < 8; i++) {
      c.sock.write(`{"id":${i},"cmd":"status"}\n`);
      await until(`reply ${i}`, () => c.lines().length > i, 5000);
      await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(c.closed(), false);
    assert.ok(c.lines().every((l) => l.ok === true));
  } finally {
    await r.close();
  }
});

test('requests queue only up to a bound: the server stops reading, then answers every one in order', { timeout: 20_000 }, async () => {
  const r = await rig();
  try {
    const c = await connect(r.path);
    const pad = 'x'.repeat(1000);
    const n = 3000;
    const lines = ['{"id":"b","cmd":"block"}\n', ...Array.from({ length: n }, (_, i) => `{"id":${i},"cmd":"count","args":{"pad":"${pad}"}}\n`)];
    for (const l of lines) c.sock.write(l);
    // While a request blocks, the next ones wait in the client's socket, not in the daemon's heap:
    // the server takes a bounded part of the ~3 MB (the kernel's buffers and one read).
    const total = lines.reduce((sum, l) => sum + l.length, 0);
    const taken = await settled(() => total - c.sock.writableLength);
    assert.ok(taken < 1024 * 1024, `the server took ${taken} of ${total} bytes while blocked`);
    assert.equal(r.runs.get('count'), undefined);
    r.unblock();
    await until('every reply', () => c.lines().length === n + 1, 15_000);
    const ids = c.lines().map((l) => l.id);
    assert.deepEqual(ids, ['b', ...Array.from({ length: n }, (_, i) => i)]);
    assert.equal(r.runs.get('count'), n);
  } finally {
    await r.close();
  }
});
