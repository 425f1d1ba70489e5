import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { SimCanBus } from '../src/sim/index.js';
import { runReflex, spawnReflex, tempDir } from '../tools/testkit/daemon.js';

/** Starts `reflex sim can` as its own process; resolves once its socket is served. */
async function simProcess(args: string[]) {
  const link = join(tempDir(), 'can.sock');
  const d = spawnReflex(['sim', 'can', '--link', link, ...args]);
  await d.waitForLog((l) => l.text === link, 10_000);
  return { link, stop: async () => (d.proc.kill('SIGTERM'), await d.exited) };
}

/** The simulated motors in this process, so a test can see what a verb did to them; no motor-side timeout. */
async function simBus(model: string, positions: Record<number, number>) {
  const bus = new SimCanBus(Object.entries(positions).map(([id, position]) => ({ id: Number(id), model, position, timeoutMs: 0 })));
  const link = await bus.listen(join(tempDir(), 'can.sock'));
  return { bus, link };
}

const json = (stdout: string) => JSON.parse(stdout) as { result: Record<string, unknown> & { motors?: { id: number }[] } };

test('scan lists exactly the simulated ids; a missing id times out clearly; bad protocol and missing options are usage errors', async () => {
  const sim = await simProcess(['--ids', '2-4', '--model', 'dm-j4310']);
  try {
    const can = ['--can', sim.link, '--protocol', 'mit', '--model', 'dm-j4310'];
    const r = await runReflex(['motors', 'scan', ...can]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual([...r.stdout.matchAll(/^(\d+) +dm-j4310 +disabled /gm)].map((m) => Number(m[1])), [2, 3, 4], r.stdout);
    const j = await runReflex(['motors', 'scan', ...can, '--json']);
    assert.deepEqual(json(j.stdout).result.motors!.map((m) => m.id), [2, 3, 4]);
    const missing = await runReflex(['motors', 'info', ...can, '--id', '9']);
    assert.equal(missing.code, 69, missing.stderr);
    assert.match(missing.stderr, /motor 9 does not answer on .*no reply in 500 ms/);
  } finally {
    await sim.stop();
  }
  const bad = await runReflex(['motors', 'scan', '--can', 'can0', '--protocol', 'canopen']);
  assert.equal(bad.code, 64);
  assert.match(bad.stderr, /--protocol canopen: want mit .* or odrive/);
  const none = await runReflex(['motors', 'enable', '--id', '1', '--protocol', 'mit']);
  assert.equal(none.code, 64);
  assert.match(none.stderr, /missing --can IFACE/);
});

test('MIT: scan and info move nothing; enable and disable change the motor mode; zero is refused while enabled, then makes the position 0', async () => {
  const { bus, link } = await simBus('dm-j4310', { 1: 0.8, 2: -0.5 });
  try {
    const can = ['--can', link, '--virtual', '--protocol', 'mit', '--model', 'dm-j4310'];
    const scan = await runReflex(['motors', 'scan', ...can, '--ids', '1-8']);
    assert.equal(scan.code, 0, scan.stderr);
    assert.match(scan.stdout, /^1 +dm-j4310 +disabled +0\.800 rad +30 C +none$/m);
    assert.match(scan.stdout, /^2 +dm-j4310 +disabled +-0\.500 rad/m);
    const info = await runReflex(['motors', 'info', ...can, '--id', '1', '--json']);
    assert.equal(info.code, 0, info.stderr);
    const m = json(info.stdout).result;
    assert.ok(Math.abs((m.position as number) - 0.8) < 1e-3, String(m.position));
    assert.equal(m.temperatureC, 30);
    assert.equal(m.enabled, false);
    for (const id of [1, 2]) {
      assert.equal(bus.motor(id).enabled, false);
      assert.equal(bus.motor(id).counts.enter, 0, 'nothing was enabled');
    }
    assert.ok(Math.abs(bus.position(1) - 0.8) < 1e-9 && Math.abs(bus.position(2) + 0.5) < 1e-9, 'nothing moved');

    const on = await runReflex(['motors', 'enable', ...can, '--id', '1']);
    assert.equal(on.code, 0, on.stderr);
    assert.match(on.stdout, /motor 1 entered motor mode/);
    assert.equal(bus.motor(1).enabled, true);
    assert.match((await runReflex(['motors', 'info', ...can, '--id', '1'])).stdout, /^motor 1: dm-j4310, enabled$/m);
    const refused = await runReflex(['motors', 'zero', ...can, '--id', '1']);
    assert.equal(refused.code, 1, 'refused, not a usage error');
    assert.match(refused.stderr, /motor 1 is enabled: disable it first/);
    assert.ok(Math.abs(bus.position(1) - 0.8) < 1e-9);

    const off = await runReflex(['motors', 'disable', ...can, '--id', '1']);
    assert.equal(off.code, 0, off.stderr);
    assert.equal(bus.motor(1).enabled, false);
    const zero = await runReflex(['motors', 'zero', ...can, '--id', '1']);
    assert.equal(zero.code, 0, zero.stderr);
    assert.match(zero.stdout, /position 0\.(79|80)\d\d rad is now zero/);
    assert.match((await runReflex(['motors', 'info', ...can, '--id', '1'])).stdout, /^position -?0\.000\d rad/m);
    assert.ok(Math.abs(bus.position(2) + 0.5) < 1e-9, 'the other motor kept its position');
  } finally {
    await bus.close();
  }
});

test('ODrive: scan and info by RTR only; enable holds where the axis is; disable idles it; zero is refused', async () => {
  const { bus, link } = await simBus('odrive', { 3: 1.5 });
  try {
    const can = ['--can', link, '--protocol', 'odrive'];
    const scan = await runReflex(['motors', 'scan', ...can, '--ids', '0-7']);
    assert.equal(scan.code, 0, scan.stderr);
    assert.deepEqual([...scan.stdout.matchAll(/^(\d+) +odrive /gm)].map((m) => Number(m[1])), [3]);
    assert.equal(bus.motor(3).enabled, false);
    const info = await runReflex(['motors', 'info', ...can, '--id', '3']);
    assert.match(info.stdout, /^motor 3: odrive, disabled\nposition 1\.5000 rad/m);
    const on = await runReflex(['motors', 'enable', ...can, '--id', '3']);
    assert.equal(on.code, 0, on.stderr);
    assert.equal(bus.motor(3).enabled, true);
    assert.ok(Math.abs(bus.position(3) - 1.5) < 1e-4, 'enable holds where the axis is');
    assert.equal((await runReflex(['motors', 'disable', ...can, '--id', '3'])).code, 0);
    assert.equal(bus.motor(3).enabled, false);
    const zero = await runReflex(['motors', 'zero', ...can, '--id', '3']);
    assert.equal(zero.code, 1);
    assert.match(zero.stderr, /zero is not offered for ODrive/);
  } finally {
    await bus.close();
  }
});

test('a running daemon that may drive the interface is a refusal, and nothing is sent', async () => {
  const { bus, link } = await simBus('ak80-9', { 1: 0.3 });
  const sock = join(tempDir(), 'control.sock');
  const daemon = createServer((c) => c.once('data', () => c.end(`${JSON.stringify({ id: 1, ok: true, result: { loop: { buses: [{ name: 'arm' }] } } })}\n`)));
  await new Promise<void>((resolve) => daemon.listen(sock, resolve));
  try {
    const r = await runReflex(['motors', 'enable', '--can', link, '--protocol', 'mit', '--id', '1', '--socket', sock]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /the reflex daemon .* runs and may drive .*Stop it first/);
    assert.equal(bus.motor(1).counts.enter, 0);
  } finally {
    daemon.close();
    await bus.close();
  }
});
