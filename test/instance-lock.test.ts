// One daemon per robot: a second one started on the same run directory exits before it touches
// any bus, so the first one's motors keep holding. CAN-only, the case that made the first
// robot's motors go limp: the second daemon used to open the bus, enable the motors, then find
// the first one's socket and disable them on its way out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { VirtualCanHub, VirtualCanServer } from '../src/hardware/can/index.js';
import { SimMitMotor } from '../src/sim/index.js';
import { request } from '../src/api/index.js';
import { spawnReflex, tempDir, testConfig, writeConfig } from '../tools/testkit/daemon.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a second daemon on the same run directory exits naming the first, before it opens the CAN bus; the lock dies with its holder', async () => {
  const dir = tempDir();
  const hub = new VirtualCanHub();
  const server = await VirtualCanServer.listen(hub, join(dir, 'legs.sock'));
  const hip = new SimMitMotor(hub, { id: 1, model: 'dm-j4310', position: 0.2 });
  const knee = new SimMitMotor(hub, { id: 2, model: 'dm-j4310', position: -0.1 });
  const joint = (name: string, id: number) => ({ name, bus: 'legs', id, model: 'dm-j4310', limits: { min: -1, max: 1 } });
  const file = writeConfig(
    dir,
    testConfig(dir, {
      // Generous: the motors answer from this test's event loop, on a shared machine.
      buses: [{ name: 'legs', kind: 'can', interface: server.path, transport: 'virtual', replyTimeoutUs: 5000 }],
      robot: { joints: [joint('hip', 1), joint('knee', 2)] },
      control: { bus: { errorBudgetMs: 1000 } },
    }),
  );
  const sock = join(dir, 'control.sock');
  const first = spawnReflex(['run', '--config', file]);
  try {
    await first.waitForLog((l) => l.msg === 'reflex is running', 15_000);
    assert.deepEqual([hip.enabled, knee.enabled, hip.counts.enter, server.connections], [true, true, 1, 1]);
    // (The first daemon polls with exit frames until it enables: those are counted already.)
    const before = [hip.counts.enter, hip.counts.exit, knee.counts.enter, knee.counts.exit];

    const second = spawnReflex(['run', '--config', file]);
    const { code } = await second.exited;
    // Nothing reached the motors from the second daemon: no enable, no disable.
    assert.deepEqual([hip.counts.enter, hip.counts.exit, knee.counts.enter, knee.counts.exit], before);
    assert.notEqual(code, 0);
    assert.equal(second.stderr.join('\n'), `reflex: another reflex (pid ${first.proc.pid}) holds ${join(dir, 'reflex.lock')}`);
    await sleep(200);
    assert.deepEqual([hip.enabled, knee.enabled], [true, true], 'torque still on');
    const s = await request(sock, 'status');
    assert.equal(s.loop.mode, 'hold');
    assert.deepEqual(s.faults, []);
    assert.ok(Math.abs(hip.position - 0.2) < 0.01 && Math.abs(knee.position + 0.1) < 0.01, 'still holding where they were');

    // The kernel drops the lock with its holder, however it ends: no stale lock to clean up.
    first.proc.kill('SIGKILL');
    await first.exited;
    const third = spawnReflex(['run', '--config', file]);
    try {
      await third.waitForLog((l) => l.msg === 'reflex is running', 15_000);
    } finally {
      third.proc.kill('SIGINT');
      assert.equal((await third.exited).code, 0);
    }
  } finally {
    first.proc.kill('SIGKILL');
    await first.exited;
    await server.close();
  }
});
