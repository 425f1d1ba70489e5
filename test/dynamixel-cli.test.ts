import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { REPO } from '../tools/testkit/paths.js';
import { runReflex, spawnReflex, tempDir } from '../tools/testkit/daemon.js';

/** Starts `reflex sim dynamixel` as its own process; resolves once its port exists. */
async function simProcess(args: string[]) {
  const link = join(tempDir(), 'dxl0');
  const d = spawnReflex(['sim', 'dynamixel', '--link', link, ...args]);
  await d.waitForLog((l) => l.text === link, 10_000);
  return { link, stop: async () => (d.proc.kill('SIGTERM'), await d.exited) };
}

test('reflex motors scan lists the simulated servos with model, firmware and baud', async () => {
  const sim = await simProcess(['--ids', '1-3,7']);
  try {
    const r = await runReflex(['motors', 'scan', '--port', sim.link, '--baud', '1000000']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, ['id  model       firmware  baud', ...[1, 2, 3, 7].map((id) => `${id}   xm430-w350  48        1000000`)].join('\n') + '\n');
  } finally {
    await sim.stop();
  }
});

test('set-up verbs: change an id and a baud, refuse EEPROM writes with torque on', async () => {
  const sim = await simProcess(['--ids', '1-2']);
  try {
    const port = ['--port', sim.link];
    assert.equal((await runReflex(['motors', 'set-id', ...port, '--id', '2', '--to', '5'])).stdout, 'servo 2 is now id 5\n');
    assert.equal((await runReflex(['motors', 'set-baud', ...port, '--id', '1', '--to', '57600'])).code, 0);
    const on = await runReflex(['motors', 'torque', 'on', ...port, '--id', '5']);
    assert.equal(on.code, 0, on.stderr);
    const refused = await runReflex(['motors', 'set-mode', ...port, '--id', '5', '--to', 'velocity']);
    assert.equal(refused.code, 1, 'a refused operation, not a usage error');
    assert.match(refused.stderr, /servo 5 has torque on, which locks its EEPROM/);
    const scan = await runReflex(['motors', 'scan', ...port]);
    assert.match(scan.stdout, /^5 +xm430-w350 +48 +1000000$/m);
    assert.match(scan.stdout, /^1 +xm430-w350 +48 +57600$/m);
    assert.doesNotMatch(scan.stdout, /^2 /m);
    const bad = await runReflex(['motors', 'set-mode', ...port, '--id', '5', '--to', 'warp']);
    assert.equal(bad.code, 64);
    assert.match(bad.stderr, /want one of current, velocity, position/);
  } finally {
    await sim.stop();
  }
});

test('a master that is not reflex gets the e-manual reply byte for byte from the simulated bus', async () => {
  const sim = await simProcess(['--ids', '1-2', '--model', 'xm430-w210', '--firmware', '38']);
  try {
    const master = join(REPO, 'test', 'helpers', 'raw_master.py');
    const ping = spawnSync('python3', [master, sim.link, 'FFFFFD0001030001194E'], { encoding: 'utf8' });
    assert.equal(ping.stdout.trim(), 'FF FF FD 00 01 07 00 55 00 06 04 26 65 5D');
    const broadcast = spawnSync('python3', [master, sim.link, 'FFFFFD00FE0300013142'], { encoding: 'utf8' });
    assert.equal(broadcast.stdout.trim(), 'FF FF FD 00 01 07 00 55 00 06 04 26 65 5D FF FF FD 00 02 07 00 55 00 06 04 26 6F 6D');
  } finally {
    await sim.stop();
  }
});

test('motors commands on a port that does not exist fail with a clear message', async () => {
  const r = await runReflex(['motors', 'scan', '--port', '/dev/does-not-exist']);
  assert.equal(r.code, 69);
  assert.match(r.stderr, /cannot open \/dev\/does-not-exist/);
});

