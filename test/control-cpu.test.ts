// With control.realtime.cpu set, the control thread has its CPU to itself: every other thread of
// the process (V8's, libuv's, the policy's and the cameras' workers) and every process it spawns
// (the recorder's ffmpeg) run on the other CPUs. In a file of its own: the test process itself
// is confined by what it tests.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { pino } from 'pino';
import { ControlLoop } from '../src/control/index.js';
import { armConfig } from '../tools/testkit/control.js';
import { SimHandle } from './helpers/sim.js';

/** A Cpus_allowed_list ("0-2,5") as the CPUs it names. */
function cpuList(list: string): number[] {
  return list.split(',').flatMap((part) => {
    const [a, b] = part.split('-').map(Number) as [number, number | undefined];
    return Array.from({ length: (b ?? a) - a + 1 }, (_, i) => a + i);
  });
}

const allowed = (status: string) => cpuList(/^Cpus_allowed_list:\s*(\S+)/m.exec(status)![1]!);

test('realtime.cpu: the control thread is alone on its CPU; the other threads and the processes they spawn stay off it', async (t) => {
  const mine = allowed(readFileSync('/proc/self/status', 'utf8'));
  if (mine.length < 2) {
    t.skip(`this process may run on ${mine.length} CPU only: setting one aside needs two`);
    return;
  }
  const cpu = mine.at(-1)!;
  const sim = await SimHandle.start({ servos: [1, 2].map((id) => ({ id, model: 'xm430-w350' })) });
  const config = armConfig(sim.path, { realtime: { priority: 0, cpu, lockMemory: false } }, [
    { name: 'base', bus: 'arm', id: 1, min: -1, max: 1, maxVelocity: 3, offset: 0, direction: 1 },
    { name: 'shoulder', bus: 'arm', id: 2, min: -1, max: 1, maxVelocity: 3, offset: 0, direction: 1 },
  ]);
  const loop = new ControlLoop(config, { stallMs: 500 }, pino({ level: 'silent' }));
  await loop.start(new AbortController().signal);
  try {
    const rt = loop.status().realtime!;
    assert.equal(rt.cpu, cpu);
    assert.deepEqual(rt.notes, []);
    const threads = readdirSync('/proc/self/task').map((tid) => ({ tid, cpus: allowed(readFileSync(`/proc/self/task/${tid}/status`, 'utf8')) }));
    const onIt = threads.filter((th) => th.cpus.includes(cpu));
    assert.deepEqual(onIt.map((th) => th.cpus), [[cpu]], `one thread (the control thread) may run on CPU ${cpu}, alone: ${JSON.stringify(threads)}`);
    assert.ok(threads.length > 5, `${threads.length} threads`);
    // What the daemon spawns (ffmpeg for the recorder, ffprobe, a shell) inherits the others' CPUs.
    const child = allowed(execFileSync('cat', ['/proc/self/status'], { encoding: 'utf8' }));
    assert.deepEqual(child, mine.slice(0, -1));
    assert.equal(loop.mode, 'hold');
    assert.ok(loop.status().ticks > 0, 'the loop ticks');
  } finally {
    await loop.stop();
    await sim.close();
  }
});
