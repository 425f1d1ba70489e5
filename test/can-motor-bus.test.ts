// The CAN motor bus against simulated motors on the in-process virtual bus: start-up, the
// per-tick exchange, torque bounds, reply timeouts and the error budget, motor faults, limp on
// stop, and bus load.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CanMotorBus, CanMotorFault, type CanBusConfig } from '../src/hardware/index.js';
import { VirtualCanHub, type CanMotorSpec } from '../src/hardware/can/index.js';
import { SimMitMotor, SimOdriveMotor } from '../src/sim/index.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function busConfig(motors: CanMotorSpec[], over: Partial<CanBusConfig> = {}): CanBusConfig {
  return {
    name: 'legs',
    interface: 'virtual',
    transport: 'virtual',
    bitrate: 1_000_000,
    motors,
    retries: 1,
    errorBudgetMs: 100,
    replyTimeoutUs: 1000,
    maxTemperatureC: 80,
    onStop: 'disable',
    loadWarnPct: 70,
    ...over,
  };
}

const spec = (id: number, model: string, over: Partial<CanMotorSpec> = {}): CanMotorSpec => ({ id, model, kp: 20, kd: 1, effortLimit: 5, maxVelocity: 4, gearRatio: 1, ...over });

/** Runs ticks (read, then write `target` to every motor) for `ms`, about every 20 ms. */
async function drive(bus: CanMotorBus, target: number[], ms: number): Promise<void> {
  const until = Date.now() + ms;
  const goal = Float64Array.from(target);
  while (Date.now() < until) {
    bus.read();
    bus.write(goal);
    await sleep(20);
  }
}

for (const model of ['ak80-9', 'dm-j4310'] as const) {
  test(`MIT (${model}): enables in place, tracks commands one exchange per motor per tick, goes limp on disable`, async () => {
    const hub = new VirtualCanHub();
    const motors = [1, 2, 3].map((id) => new SimMitMotor(hub, { id, model, position: 0.1 * id }));
    const bus = CanMotorBus.open(busConfig([1, 2, 3].map((id) => spec(id, model))), hub.endpoint('host'));
    try {
      assert.deepEqual(motors.map((m) => m.enabled), [true, true, true]);
      assert.ok(motors.every((m) => m.counts.enter === 1));
      bus.read();
      assert.deepEqual([...bus.fresh], [1, 1, 1]);
      assert.deepEqual([...bus.position].map((p) => Math.round(p * 100) / 100), [0.1, 0.2, 0.3], 'the pose found at start');
      await sleep(100);
      assert.ok(motors.every((m) => Math.abs(m.position - 0.1 * m.id) < 0.01), 'enabling does not move a motor');

      const before = motors[0]!.counts.command!;
      await drive(bus, [0.5, -0.2, 0.3], 600);
      for (const [i, want] of [0.5, -0.2, 0.3].entries()) assert.ok(Math.abs(motors[i]!.position - want) < 0.02, `motor ${i + 1} at ${motors[i]!.position}`);
      bus.read();
      assert.ok(Math.abs(bus.position[0]! - 0.5) < 0.02 && Math.abs(bus.position[1]! + 0.2) < 0.02);
      // Per tick: the exchange repeats the last command (its reply is the state), the write sends the new one.
      const ticks = (motors[0]!.counts.command! - before) / 2;
      assert.ok(ticks > 10, `${ticks} ticks`);
      assert.equal(bus.errors.failedReads, 0);
      assert.deepEqual([...bus.hardwareError], [0, 0, 0]);
      assert.ok(bus.temperature.every((t) => t >= 30 && t < 40), 'temperature reported');

      bus.disable();
      assert.deepEqual(motors.map((m) => m.enabled), [false, false, false], 'exit motor mode');
      const pos = motors[0]!.position;
      await drive(bus, [-1, -1, -1], 200);
      assert.ok(Math.abs(motors[0]!.position - pos) < 1e-6, 'a disabled bus sends no commands');
      assert.deepEqual([...bus.fresh], [1, 1, 1], 'state is still read while limp');
      bus.reset();
      assert.deepEqual(motors.map((m) => m.enabled), [true, true, true], 'reset enables in place');
      await drive(bus, [...bus.position], 100);
      assert.ok(Math.abs(motors[0]!.position - pos) < 0.01, 'and holds where it is');
    } finally {
      await bus.close();
    }
  });
}

test('MIT: a command never asks for more than the effort limit (the target stays within limit/kp)', async () => {
  const hub = new VirtualCanHub();
  const m = new SimMitMotor(hub, { id: 1, model: 'ak80-9', position: 0, tauMs: 400 });
  const bus = CanMotorBus.open(busConfig([spec(1, 'ak80-9', { kp: 50, effortLimit: 5 })]), hub.endpoint('host'));
  try {
    bus.read();
    bus.write(Float64Array.of(2));
    // The motor's PD target is at most 5 / 50 = 0.1 rad from where it was measured.
    await sleep(50);
    bus.read();
    assert.ok(m.torque <= 5.01, `torque ${m.torque}`);
    assert.ok(m.position < 0.11);
  } finally {
    await bus.close();
  }
});

test('a silent motor is retried within the tick, counted, and faults the bus past the error budget', async () => {
  const hub = new VirtualCanHub();
  const motors = [1, 2].map((id) => new SimMitMotor(hub, { id, model: 'ak80-9' }));
  const bus = CanMotorBus.open(busConfig([spec(1, 'ak80-9'), spec(2, 'ak80-9')], { errorBudgetMs: 100 }), hub.endpoint('host'));
  try {
    motors[1]!.inject({ silent: true });
    assert.equal(bus.read(), false);
    assert.deepEqual([...bus.fresh], [1, 0]);
    assert.equal(bus.errors.retries, 1);
    assert.equal(bus.errors.failedReads, 1);
    motors[1]!.clear();
    assert.equal(bus.read(), true, 'a motor that answers again is fine within the budget');
    motors[1]!.inject({ silent: true });
    const t0 = Date.now();
    await assert.rejects(
      (async () => {
        for (;;) {
          bus.read();
          await sleep(10);
        }
      })(),
      /CAN bus legs: reads failing for \d+ ms \(budget 100 ms\); no reply from motor 2/,
    );
    assert.ok(Date.now() - t0 >= 100);
    assert.throws(() => bus.read(), /BUS|reads failing/, 'latched until reset');
    motors[1]!.clear();
    bus.reset();
    assert.equal(bus.read(), true);
  } finally {
    await bus.close();
  }
});

test('over-temperature and the motor\'s own errors are hardware errors with their names', async () => {
  const hub = new VirtualCanHub();
  const cube = new SimMitMotor(hub, { id: 1, model: 'ak80-9' });
  const bus = CanMotorBus.open(busConfig([spec(1, 'ak80-9')], { maxTemperatureC: 80 }), hub.endpoint('host'));
  const hub2 = new VirtualCanHub();
  const dm = new SimMitMotor(hub2, { id: 2, model: 'dm-j4310' });
  const bus2 = CanMotorBus.open(busConfig([spec(2, 'dm-j4310')]), hub2.endpoint('host'));
  try {
    cube.inject({ temperatureC: 85 });
    bus.read();
    assert.equal(bus.hardwareError[0], CanMotorFault.OVER_TEMPERATURE);
    assert.match(bus.errorText(0), /over temperature \(85 C, limit 80 C\)/);
    cube.inject({ error: 1 });
    bus.read();
    assert.equal(bus.hardwareError[0] & CanMotorFault.MOTOR, CanMotorFault.MOTOR);
    assert.match(bus.errorText(0), /over-temperature \(code 0x1\)/);

    dm.inject({ error: 0xb, temperatureC: 90 });
    bus2.read();
    assert.match(bus2.errorText(0), /MOS over-temperature \(code 0xb\)/);
    dm.clear();
    // Damiao's status says "disabled" after its own fault: the bus sees the motor left motor mode.
    bus2.read();
    assert.equal(bus2.hardwareError[0], CanMotorFault.DISARMED);
    assert.match(bus2.errorText(0), /left motor mode/);
  } finally {
    await bus.close();
    await bus2.close();
  }
});

test('every Damiao fault status is a hardware error naming it, not only 8 and up', async () => {
  const hub = new VirtualCanHub();
  const dm = new SimMitMotor(hub, { id: 4, model: 'dm-j4310' });
  const bus = CanMotorBus.open(busConfig([spec(4, 'dm-j4310')]), hub.endpoint('host'));
  try {
    bus.read();
    assert.equal(bus.hardwareError[0], 0, 'enabled (status 1) is healthy');
    for (const [code, words] of [[3, 'fault status not in the DM-J table (code 0x3)'], [7, 'fault status not in the DM-J table (code 0x7)'], [0xe, 'overload (code 0xe)']] as const) {
      dm.inject({ error: code });
      bus.read();
      assert.equal(bus.hardwareError[0] & CanMotorFault.MOTOR, CanMotorFault.MOTOR, `status 0x${code.toString(16)}`);
      assert.equal(bus.errorText(0), words);
    }
  } finally {
    await bus.close();
  }
});

test('Damiao\'s motor-side timeout: silence from the host and the motor stops holding', async () => {
  const hub = new VirtualCanHub();
  const m = new SimMitMotor(hub, { id: 1, model: 'dm-j4310', timeoutMs: 100 });
  const bus = CanMotorBus.open(busConfig([spec(1, 'dm-j4310')]), hub.endpoint('host'));
  try {
    await drive(bus, [0.2], 200);
    assert.equal(m.enabled, true);
    await sleep(150);
    bus.read();
    assert.equal(m.enabled, false, 'disabled itself after 100 ms without a command');
    assert.equal(bus.hardwareError[0], CanMotorFault.DISARMED, 'and the next reply says so');
  } finally {
    await bus.close();
  }
});

test('ODrive: closed loop at the measured position, tracks input positions, idle on disable; the watchdog disarms a silent host', async () => {
  const hub = new VirtualCanHub();
  const drives = [1, 2].map((id) => new SimOdriveMotor(hub, { id, model: 'odrive', position: 0.5 * id, timeoutMs: 150 }));
  drives.forEach((d) => d.startHeartbeat(20));
  const bus = CanMotorBus.open(busConfig([spec(1, 'odrive', { effortLimit: 10 }), spec(2, 'odrive', { effortLimit: 10 })]), hub.endpoint('host'));
  try {
    assert.deepEqual(drives.map((d) => d.enabled), [true, true]);
    assert.equal(drives[0]!.limits.current, 10, 'current limit from effortLimit');
    assert.ok(Math.abs(drives[1]!.inputPos * 2 * Math.PI - 1.0) < 1e-3, 'input position set to where it stood before closed loop');
    await drive(bus, [0.2, 1.5], 700);
    assert.ok(Math.abs(drives[0]!.position - 0.2) < 0.02 && Math.abs(drives[1]!.position - 1.5) < 0.02);
    assert.ok(Math.abs(bus.position[1]! - 1.5) < 0.03);
    assert.ok(bus.temperature.every((t) => t === 35), 'temperatures polled');
    assert.deepEqual([...bus.hardwareError], [0, 0]);

    bus.disable();
    assert.deepEqual(drives.map((d) => d.enabled), [false, false], 'axis idle');
    bus.reset();
    assert.deepEqual(drives.map((d) => d.enabled), [true, true]);

    await sleep(250); // the host goes quiet past the drive's watchdog
    await drive(bus, [0.2, 1.5], 100);
    assert.equal(drives[0]!.enabled, false);
    assert.equal(bus.hardwareError[0]! & CanMotorFault.MOTOR, CanMotorFault.MOTOR);
    assert.match(bus.errorText(0), /axis error 0x800 \(WATCHDOG_TIMER_EXPIRED\)/);
  } finally {
    drives.forEach((d) => d.close());
    await bus.close();
  }
});

test('ODrive behind a gearbox: the bus speaks joint radians, the drive motor turns', async () => {
  const hub = new VirtualCanHub();
  const od = new SimOdriveMotor(hub, { id: 1, model: 'odrive', position: 0 });
  const bus = CanMotorBus.open(busConfig([spec(1, 'odrive', { gearRatio: 9, maxVelocity: 2 })]), hub.endpoint('host'));
  try {
    assert.ok(Math.abs(od.limits.vel - (2 * 9) / (2 * Math.PI)) < 1e-5, 'velocity limit in motor turns/s');
    await drive(bus, [0.3], 700);
    assert.ok(Math.abs(od.position - 0.3 * 9) < 0.05, `motor at ${od.position} rad`);
    assert.ok(Math.abs(bus.position[0]! - 0.3) < 0.01, `joint at ${bus.position[0]}`);
  } finally {
    od.close();
    await bus.close();
  }
});

test('a motor that does not answer at start is named; a mixed bus is refused', () => {
  const hub = new VirtualCanHub();
  new SimMitMotor(hub, { id: 1, model: 'ak80-9' });
  assert.throws(() => CanMotorBus.open(busConfig([spec(1, 'ak80-9'), spec(7, 'ak80-9')]), hub.endpoint('host')), /no reply from motor 7/);
  assert.throws(() => CanMotorBus.open(busConfig([spec(1, 'ak80-9'), spec(2, 'dm-j4310')]), hub.endpoint('host2')), /one MIT dialect/);
  assert.throws(() => CanMotorBus.open(busConfig([spec(17, 'dm-j4310')]), hub.endpoint('host3')), /motor id 17 does not fit the damiao reply \(at most 15\)/);
});

test('bus load: frames per second and percent of the bitrate, from the frames on the wire', async () => {
  const hub = new VirtualCanHub();
  const ids = Array.from({ length: 12 }, (_, i) => i + 1);
  ids.forEach((id) => new SimMitMotor(hub, { id, model: 'ak80-9' }));
  const bus = CanMotorBus.open(busConfig(ids.map((id) => spec(id, 'ak80-9'))), hub.endpoint('host'));
  try {
    await drive(bus, ids.map(() => 0), 1300);
    // 12 motors x (exchange: command + reply; write: command + reply) = 48 frames of 8 bytes a tick.
    const ticks = bus.load.framesPerS / 48;
    assert.ok(ticks > 25 && ticks < 60, `${bus.load.framesPerS} frames/s`);
    const expectPct = (bus.load.framesPerS * 135 * 100) / 1e6;
    assert.ok(Math.abs(bus.load.pct - expectPct) < 0.5, `${bus.load.pct}% (135 bits a frame: ${expectPct}%)`);
  } finally {
    await bus.close();
  }
});
