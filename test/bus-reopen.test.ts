// A serial bus that disappears (the USB cable pulled: the port answers errno 5) and comes back.
// The simulated servos serve a real pty behind a stable link, as a by-id path would: closing
// the simulator hangs the pty up under the daemon; a new one at the same link is the adapter
// plugged back in.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { SimDynamixelBus, type SimServoSpec } from '../src/sim/index.js';
import { request } from '../src/api/index.js';
import { spawnReflex, tempDir, testConfig, writeConfig } from '../tools/testkit/daemon.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(get: () => Promise<T>, ok: (v: T) => boolean, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await get();
    if (ok(v)) return v;
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}; last: ${JSON.stringify(v)}`);
    await sleep(20);
  }
}

test('a serial bus that disappears is reported lost; reset reopens it once it is back and the loop holds where the servos are; while gone, reset fails saying why', async () => {
  const dir = tempDir();
  const link = join(dir, 'ttyDXL');
  const servos: SimServoSpec[] = [{ id: 1 }, { id: 2 }];
  let sim = new SimDynamixelBus({ servos, link });
  const joint = (name: string, id: number) => ({ name, bus: 'arm', id, model: 'xm430-w350', limits: { min: -1.5, max: 1.5 } });
  const sock = join(dir, 'control.sock');
  const d = spawnReflex([
    'run',
    '--config',
    writeConfig(dir, testConfig(dir, { buses: [{ name: 'arm', kind: 'dynamixel', port: link }], robot: { joints: [joint('base', 1), joint('shoulder', 2)] } })),
  ]);
  const status = () => request(sock, 'status');
  try {
    await d.waitForLog((l) => l.msg === 'reflex is running', 15_000);
    assert.deepEqual((await status()).loop.buses, [{ name: 'arm', state: 'ok', reason: null }]);

    // Pulled: the loop faults naming the bus and why, holds, and keeps ticking (the loop is
    // alive; what is gone is one bus, and status says which).
    sim.close();
    let s = await until(status, (x) => x.loop.mode === 'fault', 3000, 'the fault');
    assert.match(s.loop.fault ?? '', /^bus arm \(.*ttyDXL\) lost: .*ttyDXL: errno 5 \(EIO\); a reset reopens it$/);
    assert.deepEqual(s.loop.buses, [{ name: 'arm', state: 'lost', reason: s.loop.fault }]);
    const faults = s.loop.safety.faults;
    await until(status, (x) => x.loop.ticks > s.loop.ticks + 10, 2000, 'ticks while the bus is gone');

    // Still gone: reset tries with backoff, then fails with the reason instead of answering hold.
    await assert.rejects(request(sock, 'reset', {}, 20_000), /BUS_FAULT: bus arm could not be reopened \(5 tries\): .*ttyDXL.*(ENOENT|no such file)/i);
    s = await status();
    assert.equal(s.loop.mode, 'fault');
    assert.equal(s.loop.buses[0]?.state, 'lost');
    assert.match(s.loop.buses[0]?.reason ?? '', /^bus arm could not be reopened/);
    assert.equal(s.loop.fault, s.loop.buses[0]?.reason, 'the fault (and the fleet fault event) says so too');
    assert.ok(d.logs.some((l) => l.msg === 'control loop fault: holding; reset to clear' && /could not be reopened/.test(String(l.reason))));

    // Plugged back in, the arm having sagged while unpowered: reset reopens the bus, torque
    // comes on where the servos are, and the loop holds there without a new fault.
    sim = new SimDynamixelBus({ servos: servos.map((x) => ({ ...x, ticks: 2300 })), link });
    assert.deepEqual(await request(sock, 'reset', {}, 20_000), { mode: 'hold' });
    s = await status();
    assert.deepEqual(s.loop.buses, [{ name: 'arm', state: 'ok', reason: null }]);
    const ticks = s.loop.ticks;
    await sleep(500);
    s = await status();
    assert.equal(s.loop.mode, 'hold');
    assert.equal(s.loop.fault, null);
    assert.equal(s.loop.safety.faults, faults, 'no new fault');
    assert.ok(s.loop.ticks > ticks + 10, 'ticking');
    for (const id of [1, 2]) {
      const servo = sim.servo(id);
      assert.ok(servo.torqueOn, `servo ${id} torque on`);
      assert.ok(Math.abs(servo.positionTicks - 2300) < 3, `servo ${id} held where it was found, at ${servo.positionTicks}`);
    }
  } finally {
    d.proc.kill('SIGINT');
    await d.exited;
    sim.close();
  }
});
