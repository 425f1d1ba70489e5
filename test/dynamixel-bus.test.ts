import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DynamixelBus, SyncGroup, openSerial, prepare, scan, mapTickRead, torqueOnInPlace, setBusWatchdog, tickIo,
  decodeHardwareErrors, radToTicks, ticksToRad, modelByName,
} from '../src/hardware/dynamixel/index.js';
import { SimHandle } from './helpers/sim.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const XM = modelByName('xm430-w350')!;
const u32 = (mem: number[], a: number) => mem[a]! | (mem[a + 1]! << 8) | (mem[a + 2]! << 16) | (mem[a + 3]! << 24);

async function rig(n: number, extra: Partial<{ firmware: number }> = {}) {
  const servos = Array.from({ length: n }, (_, i) => ({ id: i + 1, model: 'xm430-w350', firmware: extra.firmware ?? 48, ticks: 2048 + 100 * i }));
  const sim = await SimHandle.start({ servos, baud: 1_000_000 });
  const link = await openSerial(sim.path, 1_000_000);
  // A test machine is shared and loaded: a wider margin than a robot's keeps reads from timing
  // out for the wrong reason. The tests that are about timeouts make them happen on purpose.
  const bus = new DynamixelBus(link, { baud: 1_000_000, marginMs: 15 });
  const close = async () => {
    await bus.close();
    await sim.close();
  };
  return { sim, bus, close };
}

async function group(bus: DynamixelBus, n: number, opts: Partial<{ retries: number; errorBudgetMs: number; allowFast: boolean }> = {}) {
  const expected = Array.from({ length: n }, (_, i) => ({ id: i + 1, model: 'xm430-w350' }));
  const { servos } = await prepare(bus, expected, { zeroReturnDelay: true });
  await mapTickRead(bus, servos.map((s) => s.id));
  return new SyncGroup(tickIo(bus.link), servos, { retries: opts.retries ?? 1, errorBudgetMs: opts.errorBudgetMs ?? 100, allowFast: opts.allowFast ?? true }, bus.timing, 'arm');
}

test('scan finds every servo with its model, firmware and baud', async () => {
  const { bus, close } = await rig(6);
  try {
    const hits = await scan(bus, [57600, 1_000_000]);
    assert.deepEqual(hits.map((h) => [h.id, h.modelName, h.firmware, h.baud]), [1, 2, 3, 4, 5, 6].map((id) => [id, 'xm430-w350', 48, 1_000_000]));
  } finally {
    await close();
  }
});

test('read and write single registers, with the control table rules', async () => {
  const { sim, bus, close } = await rig(2);
  try {
    const t = XM.table;
    assert.equal(await bus.readField(1, t.modelNumber), 1020);
    assert.equal(await bus.readField(2, t.presentPosition), 2148);
    await bus.writeField(1, t.returnDelayTime, 0);
    assert.equal(await bus.readField(1, t.returnDelayTime), 0);
    await bus.writeField(1, t.torqueEnable, 1);
    // EEPROM is locked while torque is on: the servo answers with an access error.
    await assert.rejects(bus.writeField(1, t.returnDelayTime, 5), /servo 1: access error/);
    await assert.rejects(bus.write(1, 132, [0, 0, 0, 0]), /access error/);
    await assert.rejects(bus.write(1, 116, [0, 0]), /data length error/);
    assert.equal((await sim.servo(1)).mem[9], 0);
    assert.equal(await bus.ping(99), null);
  } finally {
    await close();
  }
});

test('prepare refuses a missing servo and a wrong model, naming it', async () => {
  const { bus, close } = await rig(2);
  try {
    await assert.rejects(prepare(bus, [{ id: 7, model: 'xm430-w350' }], { zeroReturnDelay: true }), /servo 7 \(xm430-w350\) does not answer/);
    await assert.rejects(prepare(bus, [{ id: 1, model: 'xl330-m288' }], { zeroReturnDelay: true }), /servo 1 is a xm430-w350, config says xl330-m288/);
  } finally {
    await close();
  }
});

for (const n of [6, 12]) {
  for (const fast of [false, true]) {
    test(`sync read and sync write of ${n} servos (${fast ? 'Fast ' : ''}Sync Read) move the servos`, async () => {
      const { sim, bus, close } = await rig(n);
      try {
        const g = await group(bus, n, { allowFast: fast });
        assert.equal(g.fast, fast);
        const ids = Array.from({ length: n }, (_, i) => i + 1);
        await torqueOnInPlace(bus, ids);
        // Torque on never jerks: each goal is where the servo already was.
        for (const id of ids) {
          const s = await sim.servo(id);
          assert.equal(s.mem[64], 1);
          assert.equal(u32(s.mem, 116), Math.round(s.ticks));
        }
        assert.equal(g.read(), true);
        for (let i = 0; i < n; i++) {
          assert.equal(g.state.rawPosition[i], 2048 + 100 * i);
          assert.ok(Math.abs(g.state.position[i]! - ticksToRad(2048 + 100 * i)) < 1e-9);
          assert.equal(g.state.voltage[i], 12);
          assert.equal(g.state.temperature[i], 34);
        }
        const goals = new Int32Array(n).map((_, i) => radToTicks(0.3 - 0.05 * i));
        for (let k = 0; k < 60; k++) {
          g.writeGoals(goals);
          assert.equal(g.read(), true);
          await sleep(10);
        }
        for (let i = 0; i < n; i++) assert.ok(Math.abs(g.state.position[i]! - (0.3 - 0.05 * i)) < 0.01, `servo ${i + 1} at ${g.state.position[i]}`);
        assert.equal(g.stats.failedReads, 0);
      } finally {
        await close();
      }
    });
  }
}

test('dropped and corrupted replies are retried within the tick, without a fault', async () => {
  const { sim, bus, close } = await rig(6);
  try {
    const g = await group(bus, 6, { retries: 2, errorBudgetMs: 200, allowFast: false });
    await sim.faults({ dropRate: 0.05, corruptRate: 0.05 });
    let ok = 0;
    for (let k = 0; k < 100; k++) {
      if (g.read()) ok++;
      await sleep(1);
    }
    assert.ok(g.stats.retries > 0, 'faults were injected and retried');
    assert.ok(ok >= 95, `${ok} of 100 reads complete`);
    assert.equal(g.fault, null);
  } finally {
    await close();
  }
});

test('late replies time out, and are not taken for a later read', async () => {
  const { sim, bus, close } = await rig(3);
  try {
    const g = await group(bus, 3, { retries: 0, errorBudgetMs: 1000 });
    await sim.faults({ lateMs: 30 });
    assert.equal(g.read(), false);
    await sleep(60); // the late replies (old positions) arrive now, with nobody waiting
    await sim.faults({ lateMs: 0 });
    await sim.setPosition(2, 3333);
    assert.equal(g.read(), true);
    assert.equal(g.state.rawPosition[1], 3333);
  } finally {
    await close();
  }
});

test('a dead bus faults within its error budget and stays faulted until reset', async () => {
  const { sim, bus, close } = await rig(4);
  try {
    const g = await group(bus, 4, { retries: 1, errorBudgetMs: 100 });
    await sim.faults({ silent: true });
    const t0 = Date.now();
    let fault: unknown = null;
    while (Date.now() - t0 < 2000) {
      try {
        g.read();
      } catch (err) {
        fault = err;
        break;
      }
      await sleep(5);
    }
    const elapsed = Date.now() - t0;
    assert.match(String((fault as Error)?.message), /^arm: reads failing for \d+ ms \(budget 100 ms\); missing 1, 2, 3, 4$/);
    assert.ok(elapsed >= 100 && elapsed < 600, `faulted after ${elapsed} ms`);
    await sim.faults({ silent: false });
    assert.throws(() => g.read(), /reads failing/);
    g.reset();
    assert.equal(g.read(), true);
  } finally {
    await close();
  }
});

test('a hardware error raises the alert bit and is reported by name', async () => {
  const { sim, bus, close } = await rig(3);
  try {
    const g = await group(bus, 3);
    await sim.hardwareError(2, 0x24);
    assert.equal(g.read(), true);
    assert.deepEqual([...g.state.alert], [0, 1, 0]);
    assert.deepEqual(decodeHardwareErrors(g.state.hardwareError[1]!), ['overheating', 'overload']);
  } finally {
    await close();
  }
});

test('the bus watchdog stops servos when the traffic stops', async () => {
  const { sim, bus, close } = await rig(2);
  try {
    const g = await group(bus, 2);
    await torqueOnInPlace(bus, [1, 2]);
    await setBusWatchdog(bus, [1, 2], 100);
    g.writeGoals(Int32Array.from([3000, 3000]));
    // reflex goes quiet (hung or dead): the servos stop short of the goal by themselves.
    await sleep(300);
    const s = await sim.servo(1);
    assert.ok(s.ticks < 3000, `servo stopped at ${s.ticks}`);
    assert.equal(s.mem[98], 0xff);
    await sleep(100);
    assert.ok(Math.abs((await sim.servo(1)).ticks - s.ticks) < 1, 'and stays stopped');
  } finally {
    await close();
  }
});
