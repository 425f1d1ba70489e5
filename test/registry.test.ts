// The driver registry: a motor family registered by the test itself (test/helpers/fake-family.ts,
// added the way a user adds one) is accepted by the config, opened by the control worker in its
// own thread, and driven by the loop: the joints follow the policy, and e-stop holds them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { ConfigError, parseConfig } from '../src/config/index.js';
import { ControlLoop, controlConfigFrom } from '../src/control/index.js';
import { MotorRegistry, defaultRegistry } from '../src/hardware/index.js';
import { ScriptedChunks } from '../tools/testkit/chunks.js';
import { armConfig } from '../tools/testkit/control.js';
import { lagFamily, plantMemory, plantPosition } from './helpers/fake-family.js';
import { until } from '../tools/testkit/mosquitto.js';

const silent = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function robot(plant: SharedArrayBuffer | undefined, joints: Record<string, unknown>[] = []) {
  return {
    deviceId: 'lag-1',
    control: { softStartS: 0.2 },
    buses: [{ name: 'arm', kind: 'lag', lagMs: 40, ...(plant ? { plant } : {}) }],
    robot: {
      joints: joints.length
        ? joints
        : [
            { name: 'shoulder', bus: 'arm', id: 1, model: 'lag-1', limits: { min: -1, max: 1 }, lag: { start: 0.1 } },
            { name: 'elbow', bus: 'arm', id: 2, model: 'lag-1', limits: { min: -1, max: 1 } },
          ],
    },
  };
}

function problems(raw: unknown, registry: MotorRegistry): string[] {
  try {
    parseConfig(raw, 'test.yaml', {}, registry);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems.map((p) => `${p.key}: got ${p.got}; want ${p.want}`);
  }
  return [];
}

test("a family the test registers is a bus kind of the config, with its keys, its joint block and its model check; the built-in registry does not know it", () => {
  const registry = defaultRegistry().register(lagFamily);
  const c = parseConfig(robot(undefined), 'test.yaml', {}, registry);
  assert.deepEqual(c.buses[0], { name: 'arm', kind: 'lag', lagMs: 40 });
  assert.deepEqual(c.robot.joints[0]!.lag, { start: 0.1 });
  assert.deepEqual(c.robot.joints[1]!.lag, { start: 0 }, 'the block gets its defaults');

  assert.deepEqual(problems(robot(undefined), defaultRegistry()), [
    'robot.joints[0].lag: got {"start":0.1}; want no such key (a misspelling?)',
    'buses[0].kind: got "lag"; want one of dynamixel, can',
  ]);
  assert.deepEqual(problems({ ...robot(undefined), buses: [{ name: 'arm', kind: 'rs485' }] }, registry), ['buses[0].kind: got "rs485"; want one of dynamixel, can, lag']);
  assert.deepEqual(problems({ ...robot(undefined), buses: [{ name: 'arm', kind: 'lag', lagMs: -1 }] }, registry), ['buses[0].lagMs: got -1; want a number > 0']);
  const joint = { name: 'wrist', bus: 'arm', id: 3, limits: { min: -1, max: 1 } };
  assert.deepEqual(problems(robot(undefined, [{ ...joint, model: 'xm430-w350' }]), registry), ['robot.joints[0].model: got "xm430-w350"; want lag-1']);
  assert.deepEqual(problems(robot(undefined, [{ ...joint, model: 'lag-1', lag: { stat: 1 } }]), registry), ['robot.joints[0].lag.stat: got 1; want no such key (a misspelling?)']);
  // The family's own check across its bus.
  assert.deepEqual(problems(robot(plantMemory(1)), registry), ['buses[0].plant: got {}; want shared memory of at least 32 bytes']);
});

test('the built-in families check their models at config time; a kind is registered once and may not shadow a joint key', () => {
  const joint = { name: 'j1', bus: 'arm', id: 1, model: 'xm999', limits: { min: -1, max: 1 } };
  assert.deepEqual(problems({ deviceId: 'a', buses: [{ name: 'arm', kind: 'dynamixel', port: '/dev/ttyUSB0' }], robot: { joints: [joint] } }, defaultRegistry()), [
    'robot.joints[0].model: got "xm999"; want a Dynamixel model: xl330-m077, xl330-m288, xl430-w250, 2xl430-w250, xc430-w150, xc430-w240, xm430-w210, xm430-w350, xh430-w210, xh430-w350, xh430-v210, xh430-v350, xm540-w150, xm540-w270, xh540-w150, xh540-w270, xh540-v150, xh540-v270',
  ]);
  assert.throws(() => defaultRegistry().register(lagFamily).register(lagFamily), /motor family "lag" is registered already/);
  assert.throws(() => new MotorRegistry().register({ ...lagFamily, kind: 'limits' }), /want a lower-case name that is not a joint key/);
});

test('the control worker opens a bus of the test\'s family through the registry; the joints follow the policy, e-stop holds them, and only a start moves them again', async () => {
  const registry = defaultRegistry().register(lagFamily);
  const plant = plantMemory(2);
  const config = controlConfigFrom(parseConfig(robot(plant), 'test.yaml', {}, registry), registry);
  assert.deepEqual(config.buses.map((b) => [b.kind, b.name, b.module]), [['lag', 'arm', lagFamily.module]]);
  const loop = new ControlLoop(config, { stallMs: 500 }, silent);
  await loop.start(new AbortController().signal);
  const target = [0.5, -0.3];
  const source = new ScriptedChunks(loop, 2, (_t, _i, out) => out.set(target));
  const at = () => [plantPosition(plant, 0), plantPosition(plant, 1)];
  const near = (want: number[], tol: number) => at().every((p, i) => Math.abs(p - want[i]!) < tol);
  try {
    assert.ok(near([0.1, 0], 0.01), `opened where they stand: ${at().join(', ')}`);
    await sleep(300);
    assert.ok(near([0.1, 0], 0.01), `hold does not move them: ${at().join(', ')}`);

    await loop.startPolicy();
    await until(`the joints to reach ${target.join(', ')}`, () => near(target, 0.02), 5000);
    assert.equal(loop.status().mode, 'policy');

    await loop.estop();
    const held = at();
    target[0] = -0.5;
    target[1] = 0.3;
    await sleep(500);
    assert.ok(near(held, 0.02), `e-stop holds: ${at().join(', ')} from ${held.join(', ')}`);
    await loop.reset();
    await sleep(300);
    assert.ok(near(held, 0.02), `a reset alone does not move them: ${at().join(', ')}`);

    await loop.startPolicy();
    await until('the joints to follow the new target', () => near(target, 0.02), 5000);
  } finally {
    await source.stop();
    await loop.stop();
  }
});

test('a family module that does not export the family fails the start, saying so', async () => {
  const cfg = armConfig('unused');
  const loop = new ControlLoop({ ...cfg, buses: [{ ...cfg.buses[0]!, kind: 'lag', module: new URL('../tools/testkit/chunks.js', import.meta.url).href }] }, { stallMs: 500 }, silent);
  await assert.rejects(loop.start(new AbortController().signal), /motor family "lag": .*chunks\.js exports no such family/);
  await loop.stop();
});
