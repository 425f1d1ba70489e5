// The files under systemd/: the units pass `systemd-analyze verify`, say what the robot needs
// (README, "On a robot"), and agree with the config's defaults; the udev rules are well formed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { REPO } from '../tools/testkit/paths.js';
import { tempDir } from '../tools/testkit/daemon.js';
import { parseConfig, DEFAULT_CONFIG_PATH } from '../src/config/index.js';
import { FTDI_UDEV_RULE, tuneLatency, type SerialLink } from '../src/hardware/dynamixel/index.js';

const SYSTEMD = join(REPO, 'systemd');
const UNITS = readdirSync(SYSTEMD).filter((f) => f.endsWith('.service'));
const read = (rel: string) => readFileSync(join(SYSTEMD, rel), 'utf8');
const defaults = parseConfig({ deviceId: 'unit-test' }, 'defaults');

type Unit = Map<string, [string, string][]>;

/** systemd's unit syntax as far as these files use it: [Section], Key=value, # and ; comments. */
function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section: [string, string][] | null = null;
  for (const [n, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    assert.ok(!line.endsWith('\\'), `line ${n + 1}: continuation lines are not expected here`);
    const head = /^\[(\w+)\]$/.exec(line);
    if (head) {
      section = [];
      unit.set(head[1]!, section);
      continue;
    }
    const eq = line.indexOf('=');
    assert.ok(section !== null && eq > 0, `line ${n + 1} is neither a section nor Key=value: ${line}`);
    section.push([line.slice(0, eq).trim(), line.slice(eq + 1).trim()]);
  }
  return unit;
}

/** Every value of `key` in `section` (a key may repeat: ExecStart= in a oneshot). */
function all(unit: Unit, section: string, key: string): string[] {
  return (unit.get(section) ?? []).filter(([k]) => k === key).map(([, v]) => v);
}

function one(unit: Unit, section: string, key: string): string {
  const v = all(unit, section, key);
  assert.equal(v.length, 1, `[${section}] ${key}= should be set once, is set ${v.length} times`);
  return v[0]!;
}

/** systemd time spans as these units write them: 5s, 30min, 300 (seconds). */
function seconds(span: string): number {
  const m = /^(\d+)\s*(s|min|h)?$/.exec(span);
  assert.ok(m, `not a time span this test reads: ${span}`);
  return Number(m[1]) * ({ s: 1, min: 60, h: 3600 }[m[2] ?? 's'] ?? 1);
}

const reflex = parseUnit(read('reflex.service'));
const safe = parseUnit(read('reflex-safe.service'));

function systemdAnalyze(): string | null {
  const r = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? null : 'systemd-analyze is not installed (Debian: systemd; scripts/bootstrap.mjs installs it as root)';
}

/**
 * A root for `systemd-analyze verify --root`: the system's own units (verify resolves
 * sysinit.target and friends there), ours in /etc/systemd/system, and a stub at every absolute
 * path an Exec*= line runs (verify fails a unit whose binary is missing, and /opt/reflex/node
 * exists only on a robot). The stubs come from the units themselves, so a new ExecStart is
 * checked too.
 */
function verifyRoot(units: Record<string, string>): string {
  const root = tempDir('reflex-units-');
  const system = ['/usr/lib/systemd/system', '/lib/systemd/system'].find((d) => existsSync(join(d, 'sysinit.target')));
  assert.ok(system, 'no sysinit.target under /usr/lib/systemd/system or /lib/systemd/system');
  cpSync(system, join(root, 'usr/lib/systemd/system'), { recursive: true, verbatimSymlinks: true });
  mkdirSync(join(root, 'etc/systemd/system'), { recursive: true });
  for (const [name, text] of Object.entries(units)) {
    writeFileSync(join(root, 'etc/systemd/system', name), text);
    for (const [, value] of [...parseUnit(text).values()].flat().filter(([k]) => k.startsWith('Exec'))) {
      const bin = value.replace(/^[-@:+!]+/, '').split(/\s+/)[0]!;
      if (!bin.startsWith('/')) continue;
      mkdirSync(join(root, dirname(bin)), { recursive: true });
      writeFileSync(join(root, bin), '#!/bin/sh\n');
      chmodSync(join(root, bin), 0o755);
    }
  }
  return root;
}

function verify(root: string, names: string[]) {
  return spawnSync('systemd-analyze', ['verify', '--man=no', `--root=${root}`, ...names], { encoding: 'utf8' });
}

/** Templates are verified as an instance of themselves. */
const instance = (name: string) => name.replace('@.service', '@can0.service');

test('systemd-analyze verify passes on every unit with nothing to say about any of them', (t) => {
  const missing = systemdAnalyze();
  if (missing) return t.skip(missing);
  const texts = Object.fromEntries(UNITS.map((u) => [u, read(u)]));
  const r = verify(verifyRoot(texts), UNITS.map(instance));
  assert.equal(r.status, 0, r.stderr);
  // verify exits 0 on an unknown key or a bad value (it ignores them, as systemd would), so
  // anything it prints is a failure.
  assert.equal(r.stderr.trim(), '');
  for (const u of ['can-up@.service', 'reflex-safe.service', 'reflex.service']) assert.ok(UNITS.includes(u), u);
});

test('the verify check fails on a misspelt key, a bad value and a missing binary', (t) => {
  const missing = systemdAnalyze();
  if (missing) return t.skip(missing);
  const broken = read('reflex.service').replace('WatchdogSec=', 'WatchdogSecs=').replace('Type=notify', 'Type=notifyy');
  const root = verifyRoot({ 'reflex.service': broken, 'reflex-safe.service': read('reflex-safe.service') });
  const r = verify(root, ['reflex.service']);
  assert.match(r.stderr, /Unknown key 'WatchdogSecs'/);
  assert.match(r.stderr, /Failed to parse service type.*notifyy/);
  // No stubs: /opt/reflex/node/bin/node does not exist here.
  const bare = tempDir('reflex-units-');
  cpSync(verifyRoot({}), bare, { recursive: true, verbatimSymlinks: true });
  writeFileSync(join(bare, 'etc/systemd/system/reflex.service'), read('reflex.service'));
  writeFileSync(join(bare, 'etc/systemd/system/reflex-safe.service'), read('reflex-safe.service'));
  const noBin = verify(bare, ['reflex.service']);
  assert.notEqual(noBin.status, 0);
  assert.match(noBin.stderr, /\/opt\/reflex\/node\/bin\/node is not executable/);
});

test('reflex.service: notify with a watchdog the daemon feeds, restarts that stop on a bad config', () => {
  assert.equal(one(reflex, 'Service', 'Type'), 'notify');
  assert.equal(one(reflex, 'Service', 'NotifyAccess'), 'main');
  // The daemon pings every min(WatchdogSec/2, 1 s) while the loop ticks (src/daemon.ts): the
  // timeout must leave at least two pings of slack, and also outlast a stalled loop's stallMs.
  const watchdog = seconds(one(reflex, 'Service', 'WatchdogSec'));
  const pingS = Math.min(watchdog / 2, 1);
  assert.ok(watchdog >= 2 * pingS && watchdog * 1000 > defaults.control.stallMs, `WatchdogSec=${watchdog}`);
  assert.ok(watchdog <= 10, 'a stuck loop should not go unnoticed for long');
  assert.ok(seconds(one(reflex, 'Service', 'TimeoutStartSec')) >= 15 * 60, 'a TensorRT engine build takes minutes');
  assert.ok(seconds(one(reflex, 'Service', 'TimeoutStopSec')) >= 30);
  assert.equal(one(reflex, 'Service', 'Restart'), 'on-failure');
  assert.equal(one(reflex, 'Service', 'RestartPreventExitStatus'), '78');
  assert.ok(Number(one(reflex, 'Unit', 'StartLimitBurst')) > 1);
  assert.ok(seconds(one(reflex, 'Unit', 'StartLimitIntervalSec')) > 0);
  assert.equal(one(reflex, 'Unit', 'OnFailure'), 'reflex-safe.service');
});

test('reflex.service runs the pinned Node on the current release with the default config', () => {
  const argv = one(reflex, 'Service', 'ExecStart').split(/\s+/);
  assert.deepEqual(argv, ['/opt/reflex/node/bin/node', '/opt/reflex/current/bin/reflex.js', 'run', '--config', DEFAULT_CONFIG_PATH]);
  assert.ok(existsSync(join(REPO, 'bin', 'reflex.js')), 'the release layout puts bin/reflex.js under current/');
  // reflex-safe reads the same config with the same runtime.
  assert.deepEqual(one(safe, 'Service', 'ExecStart').split(/\s+/), [...argv.slice(0, 2), 'motors', 'safe', '--config', DEFAULT_CONFIG_PATH]);
  assert.equal(one(safe, 'Service', 'Type'), 'oneshot');
  // Where OnFailure= also fires between restarts, the restart must wait for it, not be cancelled.
  assert.equal(one(safe, 'Unit', 'Before'), 'reflex.service');
  assert.deepEqual(all(safe, 'Unit', 'Conflicts'), []);
});

test('reflex.service: real-time limits for the control thread, never for the whole process', () => {
  assert.ok(Number(one(reflex, 'Service', 'LimitRTPRIO')) >= defaults.control.realtime.priority);
  assert.equal(one(reflex, 'Service', 'LimitMEMLOCK'), 'infinity');
  for (const unit of [reflex, safe]) {
    for (const key of ['CPUSchedulingPolicy', 'CPUSchedulingPriority', 'MemoryDenyWriteExecute', 'PrivateDevices', 'RestrictRealtime', 'DevicePolicy', 'DeviceAllow', 'ProtectClock', 'ProtectKernelTunables']) {
      assert.deepEqual(all(unit, 'Service', key), [], `${key}= breaks the robot (see the comment in reflex.service)`);
    }
  }
});

test('reflex.service: its directories are the config defaults, its user is in the device groups', () => {
  const stateDir = one(reflex, 'Service', 'StateDirectory');
  assert.equal(`/var/lib/${stateDir}`, defaults.paths.stateDir);
  assert.equal(`/run/${one(reflex, 'Service', 'RuntimeDirectory')}`, dirname(defaults.socket.path));
  assert.equal(one(reflex, 'Service', 'CacheDirectory'), stateDir);
  assert.equal(one(reflex, 'Service', 'LogsDirectory'), stateDir);
  assert.equal(one(reflex, 'Service', 'User'), 'reflex');
  assert.deepEqual(one(reflex, 'Service', 'SupplementaryGroups').split(/\s+/).sort(), ['dialout', 'render', 'video']);
  // sysusers.d creates that user, with the same groups and its home where its state is.
  const sysusers = read('sysusers.d/reflex.conf').split('\n').filter((l) => l.trim() && !l.startsWith('#'));
  assert.match(sysusers[0]!, new RegExp(`^u reflex - ".+" ${defaults.paths.stateDir} /usr/sbin/nologin$`));
  assert.deepEqual(sysusers.slice(1).map((l) => l.split(/\s+/)[2]).sort(), ['dialout', 'render', 'video']);
});

test('systemd-sysusers creates the reflex user in the device groups from sysusers.d/reflex.conf', (t) => {
  if (spawnSync('systemd-sysusers', ['--version']).status !== 0) return t.skip('systemd-sysusers is not installed (Debian: systemd)');
  const root = tempDir('reflex-sysusers-');
  mkdirSync(join(root, 'etc'));
  const r = spawnSync('systemd-sysusers', [`--root=${root}`, join(SYSTEMD, 'sysusers.d', 'reflex.conf')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const passwd = readFileSync(join(root, 'etc', 'passwd'), 'utf8');
  assert.match(passwd, new RegExp(`^reflex:x:\\d+:\\d+:[^:]*:${defaults.paths.stateDir}:/usr/sbin/nologin$`, 'm'));
  const group = readFileSync(join(root, 'etc', 'group'), 'utf8');
  for (const g of one(reflex, 'Service', 'SupplementaryGroups').split(/\s+/)) assert.match(group, new RegExp(`^${g}:x:\\d+:reflex$`, 'm'));
});

test('reflex.service: hardened, with the address families the robot uses', () => {
  assert.equal(one(reflex, 'Service', 'ProtectSystem'), 'strict');
  for (const key of ['ProtectHome', 'PrivateTmp', 'NoNewPrivileges']) assert.equal(one(reflex, 'Service', key), 'yes', key);
  assert.deepEqual(one(reflex, 'Service', 'RestrictAddressFamilies').split(/\s+/).sort(), ['AF_CAN', 'AF_INET', 'AF_INET6', 'AF_NETLINK', 'AF_UNIX']);
});

test('can-up@.service takes bitrate and restart-ms from an optional env file, with defaults', () => {
  const can = parseUnit(read('can-up@.service'));
  assert.equal(one(can, 'Service', 'EnvironmentFile'), '-/etc/reflex/can-%i.env');
  const env = one(can, 'Service', 'Environment');
  assert.match(env, /\bCAN_BITRATE=1000000\b/);
  assert.match(env, /\bCAN_RESTART_MS=\d+\b/);
  assert.deepEqual(all(can, 'Service', 'ExecStart'), ['/sbin/ip link set %i type can bitrate ${CAN_BITRATE} restart-ms ${CAN_RESTART_MS}', '/sbin/ip link set %i up']);
  assert.equal(one(can, 'Unit', 'Before'), 'reflex.service');
});

test('modules-load.d loads SocketCAN and the Jetson CAN controller', () => {
  const modules = read('modules-load.d/reflex-can.conf').split('\n').filter((l) => l.trim() && !l.startsWith('#'));
  assert.deepEqual(modules, ['can', 'can_raw', 'mttcan']);
});

// udev's rule syntax (udev(7)): comma-separated KEY[{attr}] OP "value" pairs. The keys below are
// those this file may use; a match key takes == or !=, an assignment =, +=, -= or :=.
const MATCH_KEYS = new Set(['ACTION', 'DEVPATH', 'KERNEL', 'NAME', 'SYMLINK', 'SUBSYSTEM', 'DRIVER', 'ATTR', 'SYSCTL', 'KERNELS', 'SUBSYSTEMS', 'DRIVERS', 'ATTRS', 'TAGS', 'ENV', 'CONST', 'TAG', 'TEST', 'PROGRAM', 'RESULT']);
const ASSIGN_KEYS = new Set(['NAME', 'SYMLINK', 'OWNER', 'GROUP', 'MODE', 'SECLABEL', 'ATTR', 'SYSCTL', 'ENV', 'TAG', 'RUN', 'LABEL', 'GOTO', 'IMPORT', 'OPTIONS']);
const WITH_ATTR = new Set(['ATTR', 'ATTRS', 'SYSCTL', 'ENV', 'CONST', 'TEST', 'SECLABEL', 'RUN', 'IMPORT']);

function udevProblems(text: string): string[] {
  const problems: string[] = [];
  for (const [n, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const pair = /^([A-Z_]+)(?:\{([^}]+)\})?\s*(==|!=|\+=|-=|:=|=)\s*"((?:[^"\\]|\\.)*)"\s*(,\s*|$)/;
    let rest = line;
    let matches = 0;
    let assigns = 0;
    while (rest.length > 0) {
      const m = pair.exec(rest);
      if (!m) {
        problems.push(`line ${n + 1}: cannot read "${rest}"`);
        break;
      }
      const [all, key, attr, op] = m as unknown as [string, string, string | undefined, string];
      const isMatch = op === '==' || op === '!=';
      if (!(isMatch ? MATCH_KEYS : ASSIGN_KEYS).has(key)) problems.push(`line ${n + 1}: ${key} cannot take ${op}`);
      if ((attr !== undefined) !== WITH_ATTR.has(key) && !(key === 'IMPORT' || key === 'RUN')) problems.push(`line ${n + 1}: ${key} ${attr === undefined ? 'needs' : 'takes no'} {attr}`);
      if (key === 'ACTION' && !['add', 'remove', 'change', 'bind', 'unbind', 'move', 'online', 'offline'].includes(m[4]!)) problems.push(`line ${n + 1}: no action ${m[4]}`);
      if (isMatch) matches++;
      else assigns++;
      rest = rest.slice(all.length);
      if (rest.length > 0 && !m[5]!.includes(',')) problems.push(`line ${n + 1}: missing comma before "${rest}"`);
    }
    if (matches === 0 || assigns === 0) problems.push(`line ${n + 1}: a rule needs both a match and an assignment`);
  }
  return problems;
}

test('the udev rules are well formed (udevadm verify where udev has it, else a syntax check here)', (t) => {
  const rules = read('udev/99-reflex.rules');
  assert.deepEqual(udevProblems(rules), []);
  // The checker can fail: a typo'd operator, an unknown key, a missing comma, a lone match.
  for (const bad of ['SUBSYSTEM="tty", MODE="0660"', 'FOO=="x", MODE="1"', 'KERNEL=="x" MODE="1"', 'KERNEL=="x"', 'ATTR=="1", MODE="1"', 'KERNEL=="x", MODE="1', 'ACTION=="plug", MODE="1"']) {
    assert.notDeepEqual(udevProblems(bad), [], bad);
  }
  const udevadm = spawnSync('udevadm', ['verify', '--help'], { encoding: 'utf8' });
  if (udevadm.status !== 0) {
    // systemd 252 (Debian 12) has no `udevadm verify` (it came in 254).
    t.diagnostic('udevadm verify is not available here (it needs systemd 254 or later); checked the syntax in this test only');
    return;
  }
  const dir = tempDir('reflex-udev-');
  writeFileSync(join(dir, '99-reflex.rules'), rules);
  const r = spawnSync('udevadm', ['verify', '--no-style', join(dir, '99-reflex.rules')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

test('the udev rules hold the FTDI latency rule, and the daemon\'s warning points at them', async () => {
  const rules = read('udev/99-reflex.rules').split('\n');
  assert.ok(rules.includes(FTDI_UDEV_RULE));
  assert.ok(rules.some((l) => /^SUBSYSTEM=="tty",.*ID_VENDOR_ID}=="0403".*SYMLINK\+="reflex\/ftdi-\$env\{ID_SERIAL_SHORT\}"/.test(l)));
  assert.ok(rules.some((l) => /^SUBSYSTEM=="video4linux",.*SYMLINK\+="reflex\/camera-\$env\{ID_PATH_TAG\}"/.test(l)));
  // An FTDI adapter left at 16 ms that the daemon may not change (not root), as sysfs shows it.
  const dir = tempDir();
  writeFileSync(join(dir, 'ttyUSB3'), '');
  mkdirSync(join(dir, 'sys', 'ttyUSB3'), { recursive: true });
  writeFileSync(join(dir, 'sys', 'ttyUSB3', 'latency_timer'), '16\n');
  const link = { path: join(dir, 'ttyUSB3'), setLowLatency: () => Promise.resolve(false) } as unknown as SerialLink;
  const refuse = () => {
    throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
  };
  const r = await tuneLatency(link, { root: join(dir, 'sys'), write: refuse });
  assert.match(r.warning ?? '', /latency_timer of .* is 16 ms; install the udev rules \(systemd\/udev\/99-reflex\.rules as \/etc\/udev\/rules\.d\/99-reflex\.rules/);
  assert.ok(existsSync(join(SYSTEMD, 'udev', '99-reflex.rules')));
});
