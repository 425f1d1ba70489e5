// `reflex top` in a real pseudo-terminal against the daemon on the simulated robot: the screen
// read back shows a joint's temperature and the loop's numbers, the lateness histogram, a silent
// motor's failed reads in its own joint's row (and in the fleet's telemetry), its keys e-stop and reset, q leaves the alternate
// screen, and a small terminal still gets a screen that fits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from '../src/api/index.js';
import { LOADED, startRig } from './helpers/cli-rig.js';
import { Mosquitto, freePort, subscriber } from '../tools/testkit/mosquitto.js';
import { tempDir } from '../tools/testkit/daemon.js';
import { plain, ptyReflex, ptyRun, type PtyRun } from './helpers/cli-pty.js';

const ESC = '\x1b';

test('reflex top: a joint\'s temperature, the loop\'s numbers, e-stop and reset keys, q restores the terminal', async () => {
  // The fleet watches too: the telemetry names the joint whose motor fails, as the screen does.
  const broker = new Mosquitto(tempDir('reflex-top-mqtt-'), await freePort());
  await broker.start();
  const url = `mqtt://127.0.0.1:${broker.port}`;
  const fleet = await subscriber(url, 'reflex/v1/test-01/telemetry');
  const e = await startRig({ policy: { bundle: null }, control: LOADED, fleet: { enabled: true, url, telemetryHz: 5 } }, 'reflex is running');
  const screens: PtyRun[] = [];
  try {
    // The CAN base reports a temperature the technician must see.
    await request(e.rigSocket, 'can.fault', { id: 1, temperatureC: 57 });
    const top = ptyReflex(['top', '--socket', e.socket, '--interval', '200'], { rows: 40, cols: 150 });
    screens.push(top);
    await top.waitFor(/reflex top {2}test-01/, 20_000);
    assert.ok(top.output().includes(`${ESC}[?1049h`), 'drew on the alternate screen');
    // The CAN motor reports no voltage: '-', not a made-up number.
    await top.waitFor(/base +-?\d+\.\d{3} .* 57 +- +ok/, 20_000);
    const screen = plain(top.output());
    assert.match(screen, /LOOP +lateness p50 \d+\.\d p99 \d+\.\d max \d+\.\d us +tick p50 \d+ p99 \d+ max \d+ us/);
    assert.match(screen, /ticks \d+ +missed \d+ +overruns \d+/);
    assert.match(screen, /shoulder +-?\d+\.\d{3}/);
    // The loop's numbers on screen are the daemon's: the tick count grows between refreshes.
    const ticks = () => [...plain(top.output()).matchAll(/ticks (\d+)/g)].map((m) => Number(m[1]));
    await top.waitFor(/ticks \d+/);
    const first = ticks().at(-1)!;
    await new Promise((r) => setTimeout(r, 1000));
    assert.ok(ticks().at(-1)! > first, 'the view refreshes');

    // The wake-up lateness as a small histogram: every bucket with its count.
    await top.waitFor(/WAKE +lateness histogram, \d+ ticks in the last \d+ s/);
    for (const edge of ['<=10 us', '<=50 us', '<=100 us', '<=500 us', '<=1 ms', '<=5 ms', '<=20 ms', '>20 ms']) {
      assert.match(plain(top.output()), new RegExp(`${edge} +[█▏▎▍▌▋▊▉ ]* +\\d+`), edge);
    }

    // The CAN base stops answering for a while: its failed reads show in its row of the
    // interventions table and of `reflex hardware`, the other joints' (on another bus) do not grow.
    const reads = async () => new Map((await request(e.socket, 'status')).loop.safety.byJoint.map((j) => [j.joint, j.failedReads]));
    const before = await reads();
    await request(e.rigSocket, 'can.fault', { id: 1, silent: true });
    let after = before;
    try {
      const end = Date.now() + 15_000;
      while ((after = await reads()).get('base')! - before.get('base')! < 40) {
        assert.ok(Date.now() < end, 'the silent motor\'s failed reads are counted');
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      await request(e.rigSocket, 'can.clear', { id: 1 });
    }
    const grew = (j: string, now: Map<string, number> = after) => now.get(j)! - before.get(j)!;
    // The servos may miss a reply now and then on a loaded machine; the silent motor is the base.
    for (const j of ['shoulder', 'elbow']) assert.ok(grew(j) < grew('base') / 4, `${j}: ${grew(j)} more failed reads, base ${grew('base')} more`);
    const onScreen = () => {
      const rows = new Map<string, number>();
      for (const m of plain(top.output()).matchAll(/^(base|shoulder|elbow) +\d+ +\d+ +\d+ +(\d+) *$/gm)) rows.set(m[1]!, Number(m[2]));
      return rows;
    };
    const end = Date.now() + 10_000;
    while (!((onScreen().get('base') ?? 0) >= after.get('base')!)) {
      assert.ok(Date.now() < end, `the base's ${after.get('base')} failed reads on the screen:\n${plain(top.output()).slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const screen2 = plain(top.output());
    assert.match(screen2, /INTERVENTIONS +limit +velocity +NaN\/Inf +failed reads +since start, \d+ s of policy/);
    for (const j of ['shoulder', 'elbow']) assert.ok(grew(j, onScreen()) < grew('base') / 4, `${j} on the screen: ${onScreen().get(j)}, before ${before.get(j)}`);
    const hw = await ptyRun(['hardware', '--socket', e.socket]);
    assert.equal(hw.code, 0, hw.text);
    const motors = new Map([...hw.text.matchAll(/^ {2}(base|shoulder|elbow) .* (\d+) failed reads {2}\S/gm)].map((m) => [m[1]!, Number(m[2])]));
    assert.ok(motors.get('base')! >= after.get('base')!, hw.text);
    for (const j of ['shoulder', 'elbow']) assert.ok(grew(j, motors) < grew('base') / 4, hw.text);
    assert.match(hw.text, /retries are counted per bus/);
    type Telemetry = { motors: { joint: string; failedReads: number; limitClamps: number; deltaClamps: number }[] };
    const telemetryReads = () => {
      const last = fleet.messages.at(-1);
      return new Map(last === undefined ? [] : (JSON.parse(last.payload) as Telemetry).motors.map((m) => [m.joint, m.failedReads]));
    };
    const tEnd = Date.now() + 10_000;
    while (!((telemetryReads().get('base') ?? 0) >= after.get('base')!)) {
      assert.ok(Date.now() < tEnd, `the base's failed reads in the fleet telemetry: ${fleet.messages.at(-1)?.payload}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const j of ['shoulder', 'elbow']) assert.ok(grew(j, telemetryReads()) < grew('base') / 4, `${j} in the telemetry: ${telemetryReads().get(j)}`);
    // The loop may have faulted meanwhile on a loaded machine (the base past its error budget): the keys below start from hold.
    if ((await request(e.socket, 'status')).loop.mode === 'fault') await request(e.socket, 'reset', {}, 20_000);

    top.type('e');
    await top.waitFor(/e-stop: the loop is in estop/);
    assert.equal((await request(e.socket, 'status')).loop.mode, 'estop');
    await top.waitFor(/FAULTS +e-stop engaged/);
    top.type('r');
    await top.waitFor(/reset: the loop is in hold/);
    assert.equal((await request(e.socket, 'status')).loop.mode, 'hold');

    top.type('q');
    assert.equal(await top.exited, 0);
    assert.ok(top.output().includes(`${ESC}[?1049l`), 'left the alternate screen');
    assert.doesNotMatch(top.output().slice(top.output().lastIndexOf(`${ESC}[?1049l`)), /LOOP/, 'nothing drawn after');

    // A small terminal: a screen that fits, what did not fit said, the keys still shown.
    const small = ptyReflex(['top', '--socket', e.socket], { rows: 12, cols: 60 });
    screens.push(small);
    await small.waitFor(/more lines: enlarge/);
    await small.waitFor(/q quit/);
    small.type('\x03'); // Ctrl-C
    assert.equal(await small.exited, 0);
    // Ink ends a frame without a newline: the next frame's first line follows it.
    for (const line of plain(small.output()).split(/\n|(?=reflex top {2})/)) assert.ok(line.length <= 60, `line wider than the terminal: ${line}`);
  } finally {
    for (const s of screens) s.kill();
    await e.stop();
    await fleet.client.endAsync();
    await broker.stop();
  }
});
