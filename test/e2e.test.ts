import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from '../src/api/index.js';
import type { TaskScore } from '../src/sim/index.js';
import { startE2E } from '../tools/testkit/e2e.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, check: () => Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}`);
    await sleep(50);
  }
}

test('end to end: the default policy reaches the moving target from camera and joint state; faults and e-stop are handled safely', async () => {
  // The stall test below relies on the 500 ms starvation bound; the camera bound is loosened for
  // a loaded, shared test machine.
  const e = await startE2E();
  const status = async () => await request(e.socket, 'status');
  const joints = async () => (await request(e.rigSocket, 'joints')) as number[];
  try {
    await e.daemon.waitForLog((l) => l.msg === 'policy ready', 20_000);
    // The policy can be ready before the later parts (recorder, updates, the socket) are up.
    await e.daemon.waitForLog((l) => l.msg === 'reflex is running', 20_000);
    await until('the policy runs', async () => (await status()).loop.mode === 'policy', 15_000);
    await sleep(2000); // the arm gets to the target
    // Scored over 8 s. A machine busy with something else for a while slows the policy and the
    // camera enough to lag the target: a window that misses is scored once more, and a policy
    // that does not track misses both.
    let score: TaskScore | null = null;
    for (let window = 1; window <= 2; window++) {
      await request(e.rigSocket, 'task.reset');
      await sleep(8000);
      score = (await request(e.rigSocket, 'task')) as TaskScore;
      if (score.meanErrorM < 0.04 && score.meanErrorM < 0.5 * score.holdBaselineM) break;
      if (window === 1) process.stdout.write(`# window 1: mean task error ${(score.meanErrorM * 100).toFixed(1)} cm (hold ${(score.holdBaselineM * 100).toFixed(1)} cm); scoring again\n`);
    }
    score = score!;
    // Threshold: 4 cm mean while the target moves about 5 cm/s, and under half of holding still.
    assert.ok(score.samples > 300, `samples ${score.samples}`);
    assert.ok(score.meanErrorM < 0.04, `mean task error ${(score.meanErrorM * 100).toFixed(1)} cm`);
    assert.ok(score.meanErrorM < 0.5 * score.holdBaselineM, `task error ${score.meanErrorM} vs hold ${score.holdBaselineM}`);
    let s = await status();
    // Late wake-ups are this machine's load (the benchmarks measure them); one tick in four is a broken loop.
    assert.ok(s.loop.missedDeadlines <= s.loop.ticks * 0.25, `${s.loop.missedDeadlines} missed deadlines in ${s.loop.ticks} ticks`);
    assert.equal(s.cameras[0]!.state, 'streaming');

    // E-stop: taken at the next tick; from then on the goal is where the joints are, so they stop.
    await request(e.socket, 'estop');
    await sleep(60);
    const a = await joints();
    await sleep(500);
    const b = await joints();
    const moved = Math.max(...a.map((v, i) => Math.abs(v - b[i]!)));
    assert.ok(moved < 0.005, `moved ${moved} rad after the e-stop`);
    assert.equal((await status()).loop.mode, 'estop');
    await request(e.socket, 'reset');
    await request(e.socket, 'policy.start');
    await until('the policy runs again', async () => (await status()).loop.mode === 'policy', 5000);

    // A servo fault (overload on the shoulder): the loop faults and holds; reset after clearing.
    await request(e.rigSocket, 'servo.fault', { id: 2, bits: 0x20 });
    await until('the loop faults', async () => (await status()).loop.mode === 'fault', 2000);
    s = await status();
    assert.ok(s.faults.some((f) => /joint shoulder \(bus arm, motor 2\): overload/.test(f)), JSON.stringify(s.faults));
    const heldA = await joints();
    await sleep(300);
    const heldB = await joints();
    assert.ok(Math.abs(heldA[0]! - heldB[0]!) < 0.005, 'the other joints hold');
    await request(e.rigSocket, 'servo.clear', { id: 2 });
    await request(e.socket, 'reset');
    assert.equal((await status()).loop.mode, 'hold');

    // The CAN base overheats: the loop faults naming the joint, and the CAN motor goes limp.
    await request(e.rigSocket, 'can.fault', { id: 1, temperatureC: 95 });
    await until('the loop faults on the CAN motor', async () => (await status()).faults.some((f) => f.startsWith('joint base')), 2000);
    s = await status();
    assert.equal(s.loop.mode, 'fault');
    assert.ok(s.faults.some((f) => /joint base \(bus base, motor 1\): over temperature \(95 C, limit 80 C\)/.test(f)), JSON.stringify(s.faults));
    await request(e.rigSocket, 'can.clear', { id: 1 });
    await request(e.socket, 'reset');
    assert.equal((await status()).loop.mode, 'hold');

    // A stalled policy: the loop holds the last safe command and counts, then faults past its bound.
    await request(e.socket, 'policy.start');
    const chunks0 = (await status()).loop.chunks.received;
    await until('chunks flow again', async () => (await status()).loop.chunks.received > chunks0 + 2, 5000);
    const starved0 = (await status()).loop.starvedTicks;
    await request(e.socket, 'debug.policy.stall', { ms: 3000 });
    await until('starvation faults the loop', async () => (await status()).loop.mode === 'fault', 3000);
    s = await status();
    assert.ok(s.loop.starvedTicks - starved0 >= 20, `starved ${s.loop.starvedTicks - starved0}`);
    assert.match(s.loop.fault ?? '', /^policy starved/);
    assert.equal(s.loop.healthy, true);
  } finally {
    const { daemon } = await e.stop();
    assert.equal(daemon, 0, 'the daemon stops cleanly');
  }
});
