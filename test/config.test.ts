import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { parseConfig, loadConfig, ConfigError, MAX_CONFIG_BYTES } from '../src/config/index.js';
import { REPO } from '../tools/testkit/paths.js';
import { runReflex, tempDir, writeConfig } from '../tools/testkit/daemon.js';

const base = {
  deviceId: 'arm-7',
  buses: [{ name: 'arm', kind: 'dynamixel', port: '/dev/ttyUSB0' }],
  robot: { joints: [{ name: 'j1', bus: 'arm', id: 1, model: 'xm430-w350', limits: { min: -1, max: 1 } }] },
};

function problemsOf(raw: unknown, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parseConfig(raw, 'test.yaml', env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.equal(err.code, 'CONFIG_INVALID');
    return err.problems.map((p) => `${p.key}: got ${p.got}; want ${p.want}`);
  }
  assert.fail('config was accepted');
}

function withJoint(patch: Record<string, unknown>) {
  return { ...base, robot: { joints: [{ ...base.robot.joints[0], ...patch }] } };
}

test('a minimal config gets every default', () => {
  const c = parseConfig({ deviceId: 'arm-7' }, 'x');
  assert.equal(c.control.rateHz, 50);
  assert.equal(c.socket.path, '/run/reflex/control.sock');
  assert.equal(c.socket.mode, '0660');
  assert.equal(c.paths.stateDir, '/var/lib/reflex');
  assert.deepEqual(c.policy.providers, ['cpu']);
  assert.equal(c.fleet.enabled, false);
  assert.equal(c.log.level, 'info');
});

test('joint defaults fill in calibration and max velocity', () => {
  const j = parseConfig(base, 'x').robot.joints[0]!;
  assert.deepEqual(j.calibration, { offset: 0, direction: 1 });
  assert.equal(j.maxVelocity, 2);
});

test('the validated config is frozen, nested objects included', () => {
  const c = parseConfig(base, 'x');
  assert.throws(() => {
    (c.control as { rateHz: number }).rateHz = 1000;
  }, TypeError);
  assert.throws(() => {
    (c.robot.joints as unknown[]).push({});
  }, TypeError);
});

test('a missing device id names the key and says what it wants', () => {
  assert.deepEqual(problemsOf({}), ['deviceId: got nothing; want a string']);
});

test('a device id that cannot be an MQTT topic level is refused', () => {
  const [p] = problemsOf({ deviceId: 'arm/7' });
  assert.match(p!, /^deviceId: got "arm\/7"; want letters, digits/);
});

test('a wrong type names the nested key and the value it got', () => {
  assert.deepEqual(problemsOf({ ...base, control: { rateHz: 'fast' } }), ['control.rateHz: got "fast"; want a number']);
});

test('an out-of-range number says the bound', () => {
  assert.deepEqual(problemsOf({ ...base, control: { rateHz: 5000 } }), ['control.rateHz: got 5000; want a number <= 1000']);
});

test('a misspelt key is an error, not ignored', () => {
  assert.deepEqual(problemsOf({ ...base, control: { rateHZ: 100 } }), ['control.rateHZ: got 100; want no such key (a misspelling?)']);
});

test('an enum lists the allowed values', () => {
  assert.deepEqual(problemsOf({ ...base, log: { level: 'loud' } }), [
    'log.level: got "loud"; want one of fatal, error, warn, info, debug, trace, silent',
  ]);
});

test('an unsupported Dynamixel baud rate lists the supported ones', () => {
  const [p] = problemsOf({ ...base, buses: [{ name: 'arm', kind: 'dynamixel', port: '/dev/ttyUSB0', baud: 9600 }] });
  assert.equal(p, 'buses[0].baud: got 9600; want one of 57600, 115200, 1000000, 2000000, 3000000, 4000000, 4500000');
});

test('an unknown bus kind names the kinds there are', () => {
  const [p] = problemsOf({ ...base, buses: [{ name: 'arm', kind: 'rs485', port: 'x' }] });
  assert.equal(p, 'buses[0].kind: got "rs485"; want one of dynamixel, can');
});

test('a joint on a bus that does not exist names the buses that do', () => {
  assert.deepEqual(problemsOf(withJoint({ bus: 'leg' })), ['robot.joints[0].bus: got "leg"; want the name of a bus in buses (arm)']);
});

test('inverted joint limits are refused', () => {
  assert.deepEqual(problemsOf(withJoint({ limits: { min: 1, max: -1 } })), [
    'robot.joints[0].limits: got {"min":1,"max":-1}; want limits.min less than limits.max',
  ]);
});

test('two joints with one motor id on one bus are refused', () => {
  const j = base.robot.joints[0]!;
  const raw = { ...base, robot: { joints: [j, { ...j, name: 'j2' }] } };
  assert.deepEqual(problemsOf(raw), ['robot.joints[1].id: got 1; want an id not used by another joint on bus arm']);
});

test('a calibration direction other than 1 or -1 is refused', () => {
  assert.deepEqual(problemsOf(withJoint({ calibration: { direction: 2 } })), [
    'robot.joints[0].calibration.direction: got 2; want 1 or -1',
  ]);
});

test('fleet enabled without a broker URL is refused', () => {
  assert.deepEqual(problemsOf({ ...base, fleet: { enabled: true } }), ['fleet.url: got nothing; want a broker URL when fleet.enabled is true']);
});

test('every problem is reported at once, not just the first', () => {
  assert.equal(problemsOf({ deviceId: 'ok', control: { rateHz: 0, estop: 'maybe' }, socket: { mode: 'rw' } }).length, 3);
});

test('environment overrides apply, and a bad one is blamed on the variable', () => {
  const c = parseConfig(base, 'x', { REFLEX_DEVICE_ID: 'arm-8', REFLEX_LOG_LEVEL: 'debug', REFLEX_CONTROL_SOCKET: '/tmp/x.sock' });
  assert.equal(c.deviceId, 'arm-8');
  assert.equal(c.log.level, 'debug');
  assert.equal(c.socket.path, '/tmp/x.sock');
  assert.deepEqual(problemsOf(base, { REFLEX_LOG_LEVEL: 'chatty' }), [
    'log.level (from REFLEX_LOG_LEVEL): got "chatty"; want one of fatal, error, warn, info, debug, trace, silent',
  ]);
});

test('YAML syntax errors and non-mapping documents are config errors', () => {
  const dir = tempDir();
  assert.throws(() => loadConfig(writeConfig(dir, 'deviceId: [unclosed\n')), (e: unknown) => e instanceof ConfigError && /\(yaml\)/.test(e.message));
  assert.throws(() => loadConfig(writeConfig(dir, '- a\n- b\n')), (e: unknown) => e instanceof ConfigError && /want a mapping/.test(e.message));
  assert.throws(() => loadConfig(writeConfig(dir, 'deviceId: a\ndeviceId: b\n')), ConfigError);
  assert.throws(() => loadConfig(join(dir, 'missing.yaml')), (e: unknown) => e instanceof ConfigError && /a readable file/.test(e.message));
});

test('the shipped configs are valid', () => {
  for (const f of ['dev.yaml', 'example.yaml']) loadConfig(join(REPO, 'config', f), {});
});

test('reflex config check exits 78 and prints the key at fault', async () => {
  const dir = tempDir();
  const bad = writeConfig(dir, { ...base, control: { rateHz: -3 } });
  const r = await runReflex(['config', 'check', bad]);
  assert.equal(r.code, 78);
  assert.match(r.stderr, /control\.rateHz: got -3; want a number >= 1/);
  const good = await runReflex(['config', 'check', writeConfig(dir, base, 'good.yaml')]);
  assert.equal(good.code, 0, good.stderr);
  assert.match(good.stdout, /ok \(device arm-7, 1 joints, 1 buses, 0 cameras\)/);
});

test('CAN joints: an unknown motor model, two protocols on one bus and a bad interface name are refused', () => {
  const can = (over: Record<string, unknown> = {}) => ({ name: 'legs', kind: 'can', interface: 'can0', ...over });
  const joint = (name: string, id: number, model: string) => ({ name, bus: 'legs', id, model, limits: { min: -1, max: 1 } });
  assert.deepEqual(problemsOf({ ...base, buses: [can()], robot: { joints: [joint('hip', 1, 'xm430-w350')] } }), [
    'robot.joints[0].model: got "xm430-w350"; want a CAN motor model: ak60-6, ak70-10, ak80-9, ak10-9, dm-j4310, dm-j4340, or odrive',
  ]);
  const mixed = problemsOf({ ...base, buses: [can()], robot: { joints: [joint('hip', 1, 'ak80-9'), joint('knee', 2, 'odrive')] } });
  assert.ok(mixed.some((p) => p.startsWith('robot.joints[0].model: got "ak80-9"; want a model of one protocol per CAN bus (ak80-9 shares legs with odrive)')), mixed.join('\n'));
  assert.deepEqual(problemsOf({ ...base, buses: [can({ interface: 'a-very-long-can-interface' })], robot: { joints: [joint('hip', 1, 'ak80-9')] } }), [
    'buses[0].interface: got "a-very-long-can-interface"; want a network interface name (can0) of at most 15 characters',
  ]);
});

test('CAN bus and joint defaults: 1 ms reply timeout, 80 C, limp on stop, gains and effort limit', () => {
  const c = parseConfig({ ...base, buses: [{ name: 'legs', kind: 'can', interface: 'can0' }], robot: { joints: [{ name: 'hip', bus: 'legs', id: 1, model: 'dm-j4310', limits: { min: -1, max: 1 } }] } }, 'test.yaml', {});
  assert.deepEqual(c.buses[0], { name: 'legs', kind: 'can', interface: 'can0', transport: 'socketcan', bitrate: 1_000_000, replyTimeoutUs: 1000, maxTemperatureC: 80, onStop: 'disable', loadWarnPct: 70 });
  assert.deepEqual(c.robot.joints[0]!.can, { kp: 20, kd: 1, effortLimit: 5, gearRatio: 1 });
});

// Errors in what a config says are config errors, whatever part would have found them: exit 78,
// so systemd does not restart-loop on a problem only an edit can fix (the unit's
// RestartPreventExitStatus=78). Each through the real CLI, for `config check` and the daemon.
test('circular aliases, alias bombs, a missing socket.group, a stateDir that is a file and a missing caFile exit 78 naming the key', async () => {
  const dir = tempDir();
  const ok = `deviceId: arm-7\npaths: { stateDir: ${join(dir, 'state')} }\nsocket: { path: ${join(dir, 'control.sock')} }\n`;
  const laughs = ['a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]'];
  for (let i = 1; i < 9; i++) {
    const [p, q] = [String.fromCharCode(96 + i), String.fromCharCode(97 + i)];
    laughs.push(`${q}: &${q} [${Array(9).fill(`*${p}`).join(', ')}]`);
  }
  writeFileSync(join(dir, 'a-file'), 'not a directory\n');
  const cases: [string, string, RegExp][] = [
    ['circular', `${ok}robot: &r { name: arm, joints: [ *r ] }\n`, /robot\.joints\[0\]: got an alias to a node that contains it \(a cycle\); want an alias outside the node it names/],
    ['bomb', `${ok}x:\n${laughs.map((l) => `  ${l}`).join('\n')}\n`, /\(yaml\): got Excessive alias count indicates a resource exhaustion attack; want valid YAML of at most 100 alias expansions/],
    ['group', ok.replace('socket: {', 'socket: { group: no-such-group-here,'), /socket\.group: got "no-such-group-here"; want a group that exists \(none such in \/etc\/group\)/],
    ['statedir', ok.replace(join(dir, 'state'), join(dir, 'a-file')), /paths\.stateDir: got ".*a-file"; want a directory \(it is not one\)/],
    ['cafile', `${ok}fleet: { enabled: true, url: "mqtts://broker:8883", caFile: ${join(dir, 'no-ca.pem')} }\n`, /fleet\.caFile: got ".*no-ca\.pem"; want a file that exists/],
  ];
  await Promise.all(
    cases.map(async ([name, text, want]) => {
      const file = writeConfig(dir, text, `${name}.yaml`);
      for (const args of [['config', 'check', file], ['run', '--config', file]]) {
        const r = await runReflex(args);
        assert.equal(r.code, 78, `${name}: ${args[0]} exited ${r.code}: ${r.stderr}`);
        assert.match(r.stderr, want, name);
      }
    }),
  );
  const good = await runReflex(['config', 'check', writeConfig(dir, ok, 'ok.yaml')]);
  assert.equal(good.code, 0, good.stderr);
});

test('a config that is not a regular file of a config\'s size is refused without reading it', async () => {
  const dir = tempDir();
  const fifo = join(dir, 'fifo.yaml');
  execFileSync('mkfifo', [fifo]);
  const r = await runReflex(['config', 'check', fifo]);
  assert.equal(r.code, 78);
  assert.match(r.stderr, /\(file\): got .*fifo\.yaml; want a regular file/);
  const big = writeConfig(dir, `deviceId: a\n# ${'x'.repeat(MAX_CONFIG_BYTES)}\n`, 'big.yaml');
  assert.throws(() => loadConfig(big, {}), (e: unknown) => e instanceof ConfigError && /want a file of at most 1048576 bytes/.test(e.message));
});

test('a revoked key that names no trusted key and is no fingerprint is refused, not silently ignored', () => {
  const pem = '-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n';
  const ota = (revokedKeys: string[]) => ({ ...base, ota: { trustedKeys: [{ id: 'fleet-2026', publicKey: pem }], revokedKeys } });
  const [p] = problemsOf(ota(['fleet-2025']));
  assert.equal(p, 'ota.revokedKeys[0]: got "fleet-2025"; want the id of a trusted key or a key fingerprint (16 to 64 hex digits)');
  // By id, or by a fingerprint (of a key no longer listed, too), it is taken.
  assert.deepEqual(parseConfig(ota(['fleet-2026', 'a3f1c2d4e5b6a7980011223344556677']), 'x').ota.revokedKeys, ['fleet-2026', 'a3f1c2d4e5b6a7980011223344556677']);
});
