// Policy activation, swap and rollback through the daemon's control socket, on the simulated arm.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { request } from '../src/api/index.js';
import type { DaemonStatus } from '../src/daemon.js';
import type { PolicyInfo } from '../src/policy/index.js';
import { SimHandle } from './helpers/sim.js';
import { spawnReflex, tempDir, testConfig, writeConfig, type Spawned } from '../tools/testkit/daemon.js';
import { armDaemonConfig, holdBundle } from './helpers/policy.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Rig {
  d: Spawned;
  status(): Promise<DaemonStatus>;
  when(what: string, ok: (s: DaemonStatus) => boolean, ms: number): Promise<DaemonStatus>;
  cmd(name: string, args?: Record<string, unknown>): Promise<unknown>;
  close(): Promise<void>;
}

/** The simulated arm and a daemon driving it, booted with policy `boot` (autostart on). */
async function start(boot: string): Promise<Rig> {
  const sim = await SimHandle.start({ servos: [1, 2, 3].map((id) => ({ id, model: 'xm430-w350' })) });
  const dir = tempDir();
  const sock = join(dir, 'control.sock');
  const config = testConfig(dir, { ...armDaemonConfig(sim.path), policy: { bundle: boot }, debug: { faultInjection: true } });
  const d = spawnReflex(['run', '--config', writeConfig(dir, config)]);
  const status = async () => await request(sock, 'status');
  return {
    d,
    status,
    when: async (what, ok, ms) => {
      const end = Date.now() + ms;
      for (;;) {
        const s = await status();
        if (ok(s)) return s;
        if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}; last status ${JSON.stringify({ loop: s.loop.mode, fault: s.loop.fault, policy: s.policy.state, error: s.policy.error })}`);
        await sleep(50);
      }
    },
    cmd: (name, args = {}) => request(sock, name, args, 20_000),
    close: async () => {
      d.proc.kill('SIGTERM');
      const { code } = await d.exited;
      await sim.close();
      assert.equal(code, 0, 'the daemon stops cleanly');
    },
  };
}

async function booted(r: Rig): Promise<void> {
  await r.d.waitForLog((l) => l.msg === 'reflex is running', 15_000);
  await r.when('the boot policy runs and feeds the loop', (s) => s.loop.mode === 'policy' && s.loop.chunks.received >= 3, 15_000);
}

test('activating a policy whose load blocks its thread for seconds does not starve the running robot; the new one takes over', { timeout: 60_000 }, async () => {
  const r = await start(holdBundle('a'));
  try {
    await booted(r);
    const before = await r.status();
    await r.cmd('debug.policy.slowLoad', { ms: 3000 });
    const swap = r.cmd('policy.activate', { path: holdBundle('b') }) as Promise<PolicyInfo>;
    const during = await r.when('b is loading', (s) => s.policy.loading !== null, 5000);
    assert.equal(during.policy.active?.name, 'a');
    const b = await swap;
    assert.equal(b.name, 'b');
    const after = await r.when('b serves', (s) => s.policy.inference.count > during.policy.inference.count + 5, 5000);
    assert.equal(after.loop.mode, 'policy');
    assert.equal(after.loop.starvedTicks - before.loop.starvedTicks, 0, 'no starved tick while b loaded');
    assert.equal(after.loop.safety.faults, 0);
    assert.equal(after.policy.active?.name, 'b');
    assert.equal(after.policy.previous?.name, 'a');
  } finally {
    await r.close();
  }
});

test('after policy.stop, e-stop or reset, neither policy.activate nor policy.rollback moves the arm: only policy.start does', { timeout: 60_000 }, async () => {
  const r = await start(holdBundle('a'));
  try {
    await booted(r);
    assert.deepEqual(await r.cmd('policy.stop'), { mode: 'hold' });
    assert.equal(((await r.cmd('policy.activate', { path: holdBundle('b') })) as PolicyInfo).name, 'b');
    // The old daemon started the loop before answering, or at once after (its ready hook):
    // give that time to show, then check that the robot still holds.
    await sleep(300);
    let s = await r.status();
    assert.equal(s.policy.active?.name, 'b');
    assert.equal(s.loop.mode, 'hold', 'policy.activate after policy.stop must not start the policy');

    assert.equal(((await r.cmd('policy.rollback')) as PolicyInfo).name, 'a');
    await sleep(300);
    assert.equal((await r.status()).loop.mode, 'hold', 'policy.rollback must not start the policy');

    assert.deepEqual(await r.cmd('policy.start'), { mode: 'policy' });
    assert.deepEqual(await r.cmd('estop'), { mode: 'estop' });
    assert.deepEqual(await r.cmd('reset'), { mode: 'hold' });
    await r.cmd('policy.activate', { path: holdBundle('c') });
    await sleep(300);
    s = await r.status();
    assert.equal(s.policy.active?.name, 'c');
    assert.equal(s.loop.mode, 'hold', 'policy.activate after e-stop and reset must not start the policy');
    await assert.rejects(r.cmd('policy.rollback').then(() => r.cmd('policy.rollback')), /no previous policy/);
    s = await r.status();
    assert.equal(s.policy.active?.name, 'a', 'a second rollback does not bring back the policy rolled back from');
    assert.equal(s.loop.mode, 'hold');
    const rolled = r.d.logs.filter((l) => l.msg === 'policy rolled back').map((l) => `${(l.from as PolicyInfo).name} -> ${(l.to as PolicyInfo).name}`);
    assert.deepEqual(rolled, ['b -> a', 'c -> a']);
  } finally {
    await r.close();
  }
});
