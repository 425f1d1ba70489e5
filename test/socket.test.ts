import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createConnection } from 'node:net';
import { lstatSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { CommandRegistry, ControlSocketServer, MAX_LINE_BYTES, NO_ARGS, command, oneOf } from '../src/api/index.js';
import { request } from '../src/api/index.js';
import { tempDir } from '../tools/testkit/daemon.js';
import { until } from '../tools/testkit/mosquitto.js';

const silent = pino({ level: 'silent' });
const dir = tempDir();
const path = join(dir, 'control.sock');
const catalog = {
  status: command<{ up: boolean }>()({ summary: 's', args: NO_ARGS, moves: false, fleet: false }),
  'log.level': command<{ level: string }>()({ summary: 'l', args: NO_ARGS.extend({ level: oneOf(['info', 'debug']) }), moves: false, fleet: false }),
  explode: command<null>()({ summary: 'x', args: NO_ARGS, moves: false, fleet: false }),
  slow: command<string>()({ summary: 'answers after 200 ms', args: NO_ARGS, moves: false, fleet: false }),
};
let level = 'info';
const commands = new CommandRegistry(catalog).add({
  status: () => ({ up: true }),
  'log.level': (args) => {
    level = args.level;
    return { level };
  },
  explode: () => Promise.reject(new Error('driver on fire')),
  slow: () => sleep(200).then(() => 'slept'),
});
const server = new ControlSocketServer({ path, mode: '0660', group: null }, commands, silent);
await server.start();
after(() => server.stop());

/** Sends raw bytes on one connection and collects `n` response lines. */
function exchange(payload: string | string[], n: number): Promise<Record<string, unknown>[]> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(path);
    let buf = '';
    const out: Record<string, unknown>[] = [];
    const timer = setTimeout(() => reject(new Error(`only ${out.length} responses: ${buf}`)), 3000);
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        out.push(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
        buf = buf.slice(nl + 1);
      }
      if (out.length >= n) {
        clearTimeout(timer);
        sock.destroy();
        resolve(out);
      }
    });
    sock.on('connect', () => {
      for (const p of Array.isArray(payload) ? payload : [payload]) sock.write(p);
    });
  });
}

test('the socket file has the configured mode', () => {
  assert.equal(statSync(path).mode & 0o777, 0o660);
});

test('a request gets its result with its id', async () => {
  assert.deepEqual(await exchange('{"id":7,"cmd":"status"}\n', 1), [{ id: 7, ok: true, result: { up: true } }]);
});

test('the client helper returns the result', async () => {
  assert.deepEqual(await request(path, 'status'), { up: true });
});

test('several requests in one write, and one request split across writes, are all answered in order', async () => {
  const res = await exchange(['{"id":1,"cmd":"status"}\n{"id":2,"cmd":"sta', 'tus"}\n{"id":3,"cmd":"status"}\n'], 3);
  assert.deepEqual(res.map((r) => r.id), [1, 2, 3]);
});

test('malformed requests get error responses and the connection keeps working', async () => {
  const res = await exchange(
    ['not json\n', '[1,2]\n', '{"id":4}\n', '{"id":5,"cmd":"status","args":[1]}\n', '{"id":{"x":1},"cmd":"status"}\n', '{"id":6,"cmd":"status"}\n'],
    6,
  );
  assert.deepEqual(
    res.map((r) => [r.id, (r.error as { message?: string } | undefined)?.message ?? r.ok]),
    [
      [null, 'request is not valid JSON'],
      [null, 'request must be a JSON object'],
      [4, 'cmd must be a non-empty string'],
      [5, 'args must be a JSON object'],
      [null, 'id must be a string or a number'],
      [6, true],
    ],
  );
  assert.ok(res.slice(0, 5).every((r) => r.ok === false && (r.error as { code: string }).code === 'BAD_REQUEST'));
});

test('an unknown command is an error that lists the known ones', async () => {
  const [r] = await exchange('{"id":"a","cmd":"selfdestruct"}\n', 1);
  assert.deepEqual(r, { id: 'a', ok: false, error: { code: 'UNKNOWN_COMMAND', message: 'unknown command "selfdestruct"; known: explode, log.level, slow, status' } });
});

test('bad arguments are refused with what was wanted, and change nothing', async () => {
  const [r] = await exchange('{"id":1,"cmd":"log.level","args":{"level":"loud"}}\n', 1);
  assert.equal((r!.error as { message: string }).message, 'args.level: got "loud"; want one of info, debug');
  assert.equal(level, 'info');
});

test('a command that throws becomes an error response, not a crash', async () => {
  const [r] = await exchange('{"id":1,"cmd":"explode"}\n', 1);
  assert.deepEqual(r, { id: 1, ok: false, error: { code: 'COMMAND_FAILED', message: 'driver on fire' } });
  assert.deepEqual(await request(path, 'status'), { up: true });
});

test('an over-long line is refused and the connection closed, the server lives on', async () => {
  const [r] = await exchange('x'.repeat(MAX_LINE_BYTES + 10), 1);
  assert.equal((r!.error as { code: string }).code, 'BAD_REQUEST');
  assert.deepEqual(await request(path, 'status'), { up: true });
});

/** Leaves a socket file that nothing listens on, as a daemon killed by SIGKILL does. */
async function staleSocket(p: string): Promise<void> {
  const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(p)}, () => process.kill(process.pid, 'SIGKILL'))`]);
  await once(child, 'exit');
  assert.ok(lstatSync(p).isSocket());
}

test('a second server on a live socket refuses to start; a stale socket file is replaced', async () => {
  const other = new ControlSocketServer({ path, mode: '0660', group: null }, commands, silent);
  await assert.rejects(other.start(), /is in use/);
  const stalePath = join(dir, 'stale.sock');
  await staleSocket(stalePath);
  const s = new ControlSocketServer({ path: stalePath, mode: '0600', group: null }, commands, silent);
  await s.start();
  assert.deepEqual(await request(stalePath, 'status'), { up: true });
  await s.stop();
  await s.stop();
});

test('a missing daemon is reported as not connected', async () => {
  await assert.rejects(request(join(dir, 'nobody.sock'), 'status'), (e: unknown) => (e as { disconnected?: boolean }).disconnected === true);
});

test('the socket group is looked up by name, and a missing group is a clear start error', async () => {
  const { groupId } = await import('../src/api/index.js');
  const file = join(dir, 'group');
  writeFileSync(file, 'root:x:0:\nreflex:x:997:alice,bob\n');
  assert.equal(groupId('reflex', file), 997);
  assert.throws(() => groupId('robots', file), /group "robots" does not exist \(socket.group\)/);
});

test('a socket.path that is not a socket is never removed, and the start fails naming it', async () => {
  const file = join(dir, 'notes.txt');
  writeFileSync(file, 'calibration notes');
  await assert.rejects(new ControlSocketServer({ path: file, mode: '0600', group: null }, commands, silent).start(), (e: Error) => {
    assert.equal(e.message, `socket.path ${file} is a regular file, not a socket; refusing to replace it (remove it or choose another socket.path)`);
    return true;
  });
  assert.equal(readFileSync(file, 'utf8'), 'calibration notes');
  const folder = join(dir, 'folder');
  mkdirSync(folder);
  await assert.rejects(new ControlSocketServer({ path: folder, mode: '0600', group: null }, commands, silent).start(), /folder is a directory, not a socket/);
  assert.ok(statSync(folder).isDirectory());
  const link = join(dir, 'link.sock');
  symlinkSync(file, link);
  await assert.rejects(new ControlSocketServer({ path: link, mode: '0600', group: null }, commands, silent).start(), /link\.sock is a symbolic link, not a socket/);
  assert.ok(lstatSync(link).isSymbolicLink());
  assert.equal(readFileSync(file, 'utf8'), 'calibration notes');
});

test('a line is bounded as its bytes arrive: a long line whose newline comes in a later write is refused', { timeout: 10_000 }, async () => {
  const sock = createConnection(path);
  sock.setEncoding('utf8');
  let got = '';
  sock.on('data', (d: string) => (got += d));
  await once(sock, 'connect');
  // Just under the bound in several writes, then the rest of a ~125 KiB line with its newline:
  // no single read holds more than the bound, the line does.
  const head = '{"id":9,"cmd":"status","args":{"pad":"';
  sock.write(head);
  for (let i = 0; i < 7; i++) sock.write('x'.repeat(9000));
  // Lets the server read the first part on its own, as a slow link would deliver it.
  await sleep(50);
  const ended = once(sock, 'end');
  sock.write(`${'x'.repeat(60 * 1024)}"}}\n`);
  await until('a reply', () => got.includes('\n'), 5000);
  assert.deepEqual(JSON.parse(got), { id: null, ok: false, error: { code: 'BAD_REQUEST', message: `request longer than ${MAX_LINE_BYTES} bytes` } });
  await ended;
  sock.destroy();
  assert.deepEqual(await request(path, 'status'), { up: true });
});

test('a client that ends its side after sending gets every reply, slow commands included', { timeout: 10_000 }, async () => {
  // What `echo '{"cmd":"estop"}' | socat - UNIX:...` does: write, then end its side at once.
  const sock = createConnection(path);
  sock.setEncoding('utf8');
  let got = '';
  sock.on('data', (d: string) => (got += d));
  await once(sock, 'connect');
  sock.end('{"id":1,"cmd":"slow"}\n{"id":2,"cmd":"status"}\n{"id":3,"cmd":"slow"}');
  await once(sock, 'close');
  assert.deepEqual(
    got.trimEnd().split('\n').map((l) => JSON.parse(l) as unknown),
    [
      { id: 1, ok: true, result: 'slept' },
      { id: 2, ok: true, result: { up: true } },
      { id: 3, ok: true, result: 'slept' },
    ],
  );
});
