// `reflex jog` in a real pseudo-terminal against the daemon on the simulated robot: a jog that
// arrives, one that stops when its client is killed (the dead-man), one stopped by Ctrl-C,
// one after a servo's overload and reboot, refusals out of limits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { request } from '../src/api/index.js';
import { LOADED, startRig } from './helpers/cli-rig.js';
import { ptyReflex, ptyRun, type PtyRun } from './helpers/cli-pty.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, check: () => Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}`);
    await sleep(100);
  }
}

test('reflex jog: moves a held joint to its target; stops where it is when the client is killed or on Ctrl-C; moves a rebooted servo after a reset; a second overload while faulted is its own fault entry; refuses outside the limits', async () => {
  const e = await startRig({ policy: { bundle: null }, control: LOADED }, 'reflex is running');
  let jog: PtyRun | null = null;
  const elbow = async () => {
    const s = await request(e.socket, 'status');
    return s.loop.lastTick!.joints.find((j) => j.name === 'elbow')!.position;
  };
  try {
    const sock = ['--socket', e.socket];
    const start = await elbow();

    const done = await ptyRun(['jog', '--joint', 'elbow', '--by', '0.2', '--speed', '0.5', ...sock]);
    assert.equal(done.code, 0, done.text);
    assert.match(done.text, /elbow at -?\d+\.\d{3} rad \(target -?\d+\.\d{3}\); holding there/);
    assert.ok(Math.abs((await elbow()) - (start + 0.2)) < 0.02, `elbow at ${await elbow()}, wanted ${start + 0.2}`);

    // A long, slow jog whose client dies: the joint stops within the confirmation window.
    const from = await elbow();
    jog = ptyReflex(['jog', '--joint', 'elbow', '--to', String((from + 1.5).toFixed(3)), '--speed', '0.2', ...sock]);
    await jog.waitFor(/elbow: -?\d+\.\d{3} rad -> /);
    await until('the elbow moves', async () => (await elbow()) - from > 0.1, 20_000);
    const client = execFileSync('ps', ['-o', 'pid=', '--ppid', String(jog.proc.pid)], { encoding: 'utf8' }).trim();
    process.kill(Number(client), 'SIGKILL');
    await jog.exited;
    await sleep(800); // the daemon's 300 ms dead-man and the servo settling
    const a = await elbow();
    await sleep(1000);
    const b = await elbow();
    assert.ok(a - from > 0.1, `the jog moved the elbow (${from} -> ${a})`);
    assert.ok(Math.abs(b - a) < 0.005, `the elbow kept moving after its client died: ${a} -> ${b}`);
    assert.ok(b < from + 1.0, 'it did not go on to the target');

    // Ctrl-C in the technician's terminal: the command stops the joint where it is and exits 130.
    const back = await elbow();
    jog = ptyReflex(['jog', '--joint', 'elbow', '--to', String(Math.max(back - 1.5, -2).toFixed(3)), '--speed', '0.2', ...sock]);
    await jog.waitFor(/elbow: -?\d+\.\d{3} rad -> /);
    await until('the elbow moves', async () => back - (await elbow()) > 0.1, 20_000);
    jog.type('\x03');
    assert.equal(await jog.exited, 130, jog.output());
    await sleep(800); // the servo settling, as after the kill
    const c = await elbow();
    await sleep(1000);
    const d = await elbow();
    assert.ok(Math.abs(d - c) < 0.005, `the elbow kept moving after Ctrl-C: ${c} -> ${d}`);
    assert.ok(d > back - 1.0, 'it did not go on to the target');

    const far = await ptyRun(['jog', '--joint', 'elbow', '--to', '3', ...sock]);
    assert.equal(far.code, 1, far.text);
    assert.match(far.text, /joint elbow: 3\.000 rad is outside its limits -2\.2\.\.2\.2/);
    const nobody = await ptyRun(['jog', '--joint', 'wrist', '--by', '0.1', ...sock]);
    assert.equal(nobody.code, 64, nobody.text);
    assert.match(nobody.text, /no joint wrist \(joints: base, shoulder, elbow\)/);

    // The README's walk-through: an overload shuts the shoulder's servo down (torque off); once
    // it is rebooted (the rig's clear is that reboot) and the loop reset, a jog moves it again.
    const status = () => request(e.socket, 'status');
    const shoulder = async () => (await status()).loop.lastTick!.joints.find((j) => j.name === 'shoulder')!.position;
    await request(e.rigSocket, 'servo.fault', { id: 2, bits: 0x20 });
    await until('the loop faults', async () => (await status()).loop.mode === 'fault', 10_000);
    // A second servo overloading while the loop already holds is an entry of its own in
    // `reflex faults`, reported once; the first stays the cause status names.
    await request(e.rigSocket, 'servo.fault', { id: 3, bits: 0x20 });
    const history = () => request(e.socket, 'faults', {});
    await until('the elbow overload is in the fault history', async () => (await history()).entries.some((f) => f.joint === 'elbow'), 10_000);
    await sleep(300);
    const held = (await history()).entries.filter((f) => f.cleared === null);
    assert.deepEqual(held.map((f) => f.joint), ['shoulder', 'elbow'], JSON.stringify(held));
    assert.match((await status()).loop.fault ?? '', /joint shoulder/);
    await request(e.rigSocket, 'servo.clear', { id: 2 });
    await request(e.rigSocket, 'servo.clear', { id: 3 });
    await until('the daemon reads the errors cleared', async () => (await status()).joints.every((j) => j.hardwareError === 0), 10_000);
    await request(e.socket, 'reset', {}, 20_000);
    const s0 = await shoulder();
    const rebooted = await ptyRun(['jog', '--joint', 'shoulder', '--by', '0.1', '--speed', '0.5', ...sock]);
    assert.equal(rebooted.code, 0, rebooted.text);
    assert.ok(Math.abs((await shoulder()) - (s0 + 0.1)) < 0.02, `the rebooted shoulder moved (${s0} -> ${await shoulder()})`);

    await request(e.socket, 'estop');
    const stopped = await ptyRun(['jog', '--joint', 'elbow', '--by', '0.1', ...sock]);
    assert.equal(stopped.code, 1, stopped.text);
    assert.match(stopped.text, /jog only while holding; the loop is in estop/);
  } finally {
    jog?.kill();
    await e.stop();
  }
});
