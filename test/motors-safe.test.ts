// `reflex motors safe`: what reflex-safe.service runs when the daemon has died for good.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { runReflex, spawnReflex, tempDir, testConfig, writeConfig } from '../tools/testkit/daemon.js';
import { VirtualCanHub, VirtualCanServer } from '../src/hardware/can/index.js';
import { SimMitMotor } from '../src/sim/index.js';

async function simProcess(ids: string) {
  const link = join(tempDir(), 'dxl0');
  const d = spawnReflex(['sim', 'dynamixel', '--link', link, '--ids', ids]);
  await d.waitForLog((l) => l.text === link, 10_000);
  return { link, stop: async () => (d.proc.kill('SIGTERM'), await d.exited) };
}

const joint = (name: string, bus: string, id: number, model: string) => ({ name, bus, id, model, limits: { min: -1, max: 1 } });

async function torque(link: string, id: number): Promise<string> {
  const r = await runReflex(['motors', 'info', '--port', link, '--id', String(id)]);
  assert.equal(r.code, 0, r.stderr);
  return /torque (on|off)/.exec(r.stdout)?.[1] ?? r.stdout;
}

test('motors safe turns off the torque of every servo the config names, and only those', async () => {
  const sim = await simProcess('1-3');
  try {
    for (const id of [1, 2, 3]) assert.equal((await runReflex(['motors', 'torque', 'on', '--port', sim.link, '--id', String(id)])).code, 0);
    const dir = tempDir();
    const config = writeConfig(dir, testConfig(dir, {
      buses: [{ name: 'arm', kind: 'dynamixel', port: sim.link, baud: 1000000 }],
      robot: { name: 'arm', joints: [joint('shoulder', 'arm', 1, 'xm430-w350'), joint('elbow', 'arm', 2, 'xm430-w350')] },
    }));
    const r = await runReflex(['motors', 'safe', '--config', config]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'bus arm: motor 1 torque off\nbus arm: motor 2 torque off\n');
    assert.deepEqual([await torque(sim.link, 1), await torque(sim.link, 2), await torque(sim.link, 3)], ['off', 'off', 'on']);
  } finally {
    await sim.stop();
  }
});

test('motors safe fails, saying which, when a servo or a bus cannot be made safe', async () => {
  const sim = await simProcess('1');
  try {
    const dir = tempDir();
    // A CAN bus nobody serves: its motors cannot be reached.
    const config = writeConfig(dir, testConfig(dir, {
      buses: [
        { name: 'arm', kind: 'dynamixel', port: sim.link },
        { name: 'gone', kind: 'dynamixel', port: join(dir, 'no-such-port') },
        { name: 'base', kind: 'can', transport: 'virtual', interface: join(dir, 'can.sock') },
      ],
      robot: { name: 'arm', joints: [joint('a', 'arm', 1, 'xm430-w350'), joint('b', 'arm', 9, 'xm430-w350'), joint('c', 'gone', 1, 'xm430-w350'), joint('d', 'base', 1, 'dm-j4310')] },
    }));
    const r = await runReflex(['motors', 'safe', '--config', config]);
    assert.equal(r.code, 1);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines[0], 'bus arm: motor 1 torque off');
    assert.match(lines[1]!, /^bus arm: motor 9 FAILED: /);
    assert.match(lines[2]!, /^bus gone \(dynamixel\) FAILED: .*cannot open/);
    assert.match(lines[3]!, /^bus base \(can\) FAILED: /);
    assert.equal(await torque(sim.link, 1), 'off');
  } finally {
    await sim.stop();
  }
});

test('motors safe on an invalid config exits 78 like the daemon', async () => {
  const dir = tempDir();
  const r = await runReflex(['motors', 'safe', '--config', writeConfig(dir, 'deviceId: "bad id/"\n')]);
  assert.equal(r.code, 78);
});

test('motors safe sends each CAN motor its disable frame, without enabling any first', async () => {
  const dir = tempDir();
  const hub = new VirtualCanHub();
  const server = await VirtualCanServer.listen(hub, join(dir, 'legs.sock'));
  const hip = new SimMitMotor(hub, { id: 1, model: 'dm-j4310', position: 0.2 });
  const knee = new SimMitMotor(hub, { id: 2, model: 'dm-j4310', position: -0.1 });
  const other = new SimMitMotor(hub, { id: 3, model: 'dm-j4310', position: 0 });
  try {
    // As a daemon that died left them: enabled, holding.
    for (const m of [hip, knee, other]) m.enabled = true;
    const config = writeConfig(dir, testConfig(dir, {
      buses: [{ name: 'legs', kind: 'can', transport: 'virtual', interface: server.path }],
      robot: { joints: [joint('hip', 'legs', 1, 'dm-j4310'), joint('knee', 'legs', 2, 'dm-j4310')] },
    }));
    const r = await runReflex(['motors', 'safe', '--config', config]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(r.stdout, 'bus legs: motor 1 disable sent\nbus legs: motor 2 disable sent\n');
    const until = Date.now() + 5000;
    while ((hip.enabled || knee.enabled) && Date.now() < until) await new Promise((res) => setTimeout(res, 20));
    assert.deepEqual([hip.enabled, knee.enabled, other.enabled], [false, false, true], 'the configured motors limp, the others untouched');
    assert.equal(hip.counts.enter, 0, "nothing was enabled on the way");
  } finally {
    await server.close();
  }
});
