import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { request } from '../src/api/index.js';
import type { DaemonStatus } from '../src/daemon.js';
import { NotifyListener } from '../tools/testkit/notify.js';
import { runReflex, spawnReflex, tempDir, testConfig, writeConfig } from '../tools/testkit/daemon.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a spawned daemon reports READY, feeds the watchdog, answers status, and stops cleanly on SIGTERM', async () => {
  const dir = tempDir();
  const notify = await NotifyListener.open(join(dir, 'notify.sock'));
  const sock = join(dir, 'control.sock');
  const d = spawnReflex(['run', '--config', writeConfig(dir, testConfig(dir))], { NOTIFY_SOCKET: notify.path, WATCHDOG_USEC: '400000' });
  try {
    const ready = await notify.waitFor((m) => m.startsWith('READY=1'), 10_000);
    assert.match(ready, /^READY=1\nSTATUS=hold /);
    await notify.waitFor((m) => m === 'WATCHDOG=1', 3000);
    await sleep(1000);

    const s = await request(sock, 'status');
    assert.equal(s.deviceId, 'test-01');
    assert.equal(s.loop.state, 'running');
    assert.equal(s.loop.mode, 'hold');
    assert.equal(s.loop.healthy, true);
    assert.ok(s.loop.ticks >= 40, `ticks ${s.loop.ticks}`);
    assert.ok(s.loop.rateHz > 35 && s.loop.rateHz < 65, `rate ${s.loop.rateHz}`);
    assert.deepEqual(s.faults, []);

    const table = await runReflex(['status', '--socket', sock]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^device\s+test-01$/m);
    assert.match(table.stdout, /^loop\s+hold, \d+\.\d Hz of 50 Hz/m);
    const json = await runReflex(['status', '--json', '--socket', sock]);
    assert.equal((JSON.parse(json.stdout) as DaemonStatus).deviceId, 'test-01');

    d.proc.kill('SIGTERM');
    const t0 = Date.now();
    const { code } = await d.exited;
    assert.equal(code, 0);
    assert.ok(Date.now() - t0 < 5000, 'stopped within the bound');
    await notify.waitFor((m) => m.startsWith('STOPPING=1'), 2000);
    const stops = d.logs.filter((l) => (l.msg === 'made safe' || l.msg === 'stopped') && l.part !== undefined).map((l) => `${String(l.msg)} ${String(l.part)}`);
    // Motors safe first; then the way in closes before what it reaches; the loop stops last.
    assert.deepEqual(stops, ['made safe control-loop', 'stopped systemd-health', 'stopped control-socket', 'stopped ota', 'stopped recorder', 'stopped policy', 'stopped cameras', 'stopped control-loop']);
    assert.equal(existsSync(sock), false, 'socket file removed');
  } finally {
    d.proc.kill('SIGKILL');
    notify.close();
  }
});

test('WATCHDOG=1 stops while the control loop is stalled and resumes after', async () => {
  const dir = tempDir();
  const notify = await NotifyListener.open(join(dir, 'notify.sock'));
  const sock = join(dir, 'control.sock');
  const config = testConfig(dir, { control: { stallMs: 200 }, debug: { faultInjection: true } });
  const d = spawnReflex(['run', '--config', writeConfig(dir, config)], { NOTIFY_SOCKET: notify.path, WATCHDOG_USEC: '200000' });
  try {
    await notify.waitFor((m) => m.startsWith('READY=1'), 10_000);
    await notify.waitFor((m) => m === 'WATCHDOG=1', 3000);
    const stallAt = Date.now();
    await request(sock, 'debug.stall', { ms: 2500 });
    await sleep(800);
    const during = await request(sock, 'status');
    assert.equal(during.loop.healthy, false);
    assert.deepEqual(during.faults, ['control loop stalled']);
    await notify.waitFor((m) => m.startsWith('STATUS=STALLED'), 2000);

    await sleep(2500);
    const pings = notify.times.filter((t, i) => notify.messages[i] === 'WATCHDOG=1');
    const silent = pings.filter((t) => t > stallAt + 500 && t < stallAt + 2300);
    assert.deepEqual(silent, [], 'no WATCHDOG=1 while stalled');
    assert.ok(pings.some((t) => t > stallAt + 2600), 'WATCHDOG=1 resumed after the stall');
    const after = await request(sock, 'status');
    assert.equal(after.loop.healthy, true);
    assert.ok(after.loop.missedDeadlines >= 100, `missed ${after.loop.missedDeadlines}`);
  } finally {
    d.proc.kill('SIGTERM');
    await d.exited;
    notify.close();
  }
});

test('the log level changes at run time through the control socket', async () => {
  const dir = tempDir();
  const sock = join(dir, 'control.sock');
  const d = spawnReflex(['run', '--config', writeConfig(dir, testConfig(dir))]);
  try {
    await d.waitForLog((l) => l.msg === 'reflex is running', 10_000);
    await request(sock, 'status');
    await sleep(200);
    assert.equal(d.logs.filter((l) => l.msg === 'request').length, 0, 'no debug lines at info');
    const r = await runReflex(['log', 'level', 'debug', '--socket', sock]);
    assert.equal(r.code, 0, r.stderr);
    await request(sock, 'status');
    const line = await d.waitForLog((l) => l.msg === 'request' && l.cmd === 'status', 3000);
    assert.equal(line.mod, 'socket');
    assert.equal(line.level, 20);
  } finally {
    d.proc.kill('SIGINT');
    assert.equal((await d.exited).code, 0);
  }
});

test('a bad config makes the daemon exit 78 naming the key', async () => {
  const dir = tempDir();
  const d = spawnReflex(['run', '--config', writeConfig(dir, testConfig(dir, { control: { estop: 'maybe' } }))]);
  const { code } = await d.exited;
  assert.equal(code, 78);
  assert.match(d.stderr.join('\n'), /control\.estop: got "maybe"; want one of hold, torque_off/);
});

test('a part that fails to start stops what started and exits non-zero with the reason', async () => {
  const dir = tempDir();
  const sock = join(dir, 'control.sock');
  const squatter = createServer();
  await new Promise<void>((r) => squatter.listen(sock, r));
  try {
    const d = spawnReflex(['run', '--config', writeConfig(dir, testConfig(dir))]);
    const { code } = await d.exited;
    assert.equal(code, 1);
    const fatal = d.logs.find((l) => l.msg === 'start failed');
    assert.match(String(fatal?.err), /^control-socket: .*control\.sock is in use/);
    assert.ok(d.logs.some((l) => l.msg === 'stopped' && l.part === 'control-loop'), 'control loop was stopped');
  } finally {
    squatter.close();
  }
});

test('reflex status without a daemon exits 69 and says so', async () => {
  const r = await runReflex(['status', '--socket', join(tempDir(), 'none.sock')]);
  assert.equal(r.code, 69);
  assert.match(r.stderr, /cannot reach the daemon/);
});

test('unknown commands and bad usage exit 64', async () => {
  assert.equal((await runReflex(['frobnicate'])).code, 64);
  assert.equal((await runReflex(['log', 'level', 'loud'])).code, 64);
  assert.equal((await runReflex(['--bogus'])).code, 64);
});

test('e-stop and reset through the control socket', async () => {
  const dir = tempDir();
  const sock = join(dir, 'control.sock');
  const d = spawnReflex(['run', '--config', writeConfig(dir, testConfig(dir))]);
  try {
    await d.waitForLog((l) => l.msg === 'reflex is running', 10_000);
    assert.deepEqual(await request(sock, 'estop'), { mode: 'estop' });
    const s = await request(sock, 'status');
    assert.deepEqual(s.faults, ['e-stop engaged (reset to clear)']);
    assert.equal(s.loop.safety.estops, 1);
    assert.deepEqual(await request(sock, 'reset'), { mode: 'hold' });
    assert.deepEqual((await request(sock, 'status')).faults, []);
  } finally {
    d.proc.kill('SIGTERM');
    assert.equal((await d.exited).code, 0);
  }
});
