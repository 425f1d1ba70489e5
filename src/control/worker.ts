// The control worker: its own thread and V8 heap, so the main thread's garbage collection and
// I/O never delay a tick. Everything the loop touches is allocated before the first tick.
import { workerData } from 'node:worker_threads';
import { monoMs } from '../rt/index.js';
import { Command, F, I, LoopState, bucketOf, viewShared } from './shared.js';

export interface ControlWorkerData {
  buffers: SharedArrayBuffer[];
  rateHz: number;
  spinUs: number;
}

const data = workerData as ControlWorkerData;
const { ints, floats, hist } = viewShared(data.buffers);
const periodMs = 1000 / data.rateHz;
const spinMs = data.spinUs / 1000;

function sleepUntil(deadline: number): void {
  const wait = deadline - spinMs - monoMs();
  if (wait > 0) Atomics.wait(ints, I.WAKE, 0, wait);
  while (monoMs() < deadline) {
    // Spin the last stretch: Atomics.wait wakes up to a timer slack late; spinning does not.
  }
}

function busyFor(ms: number): void {
  const until = monoMs() + ms;
  while (monoMs() < until) {
    // Fault injection: a driver that hangs holds the thread exactly like this.
  }
}

function tick(): void {
  // Buses, the chunk executor and the safety filter hook in here (control-loop and motor issues).
}

function run(): void {
  let state: number = LoopState.RUNNING;
  Atomics.store(ints, I.STATE, state);
  floats[F.STARTED_MS] = monoMs();
  let deadline = monoMs() + periodMs;

  for (;;) {
    const cmd = Atomics.load(ints, I.COMMAND);
    if (cmd !== Command.NONE) {
      if (cmd === Command.STOP) break;
      if (cmd === Command.SAFE) {
        // Motors to their safe state happens here once buses exist; the loop keeps ticking in hold.
        state = LoopState.SAFE;
        Atomics.store(ints, I.STATE, state);
      } else if (cmd === Command.STALL) {
        busyFor(Atomics.load(ints, I.COMMAND_ARG));
      }
      Atomics.store(ints, I.COMMAND, Command.NONE);
    }

    sleepUntil(deadline);
    const woke = monoMs();
    const latenessUs = (woke - deadline) * 1000;

    tick();

    const done = monoMs();
    const durationUs = (done - woke) * 1000;
    floats[F.TICKS]! += 1;
    floats[F.LAST_TICK_MS] = woke;
    floats[F.LAST_TICK_DURATION_US] = durationUs;
    if (latenessUs > floats[F.LATENESS_MAX_US]!) floats[F.LATENESS_MAX_US] = latenessUs;
    if (durationUs > floats[F.TICK_DURATION_MAX_US]!) floats[F.TICK_DURATION_MAX_US] = durationUs;
    hist[bucketOf(latenessUs)]! += 1;

    deadline += periodMs;
    if (done > deadline) {
      // Skip the periods already gone rather than bunching ticks to catch up.
      const missed = Math.ceil((done - deadline) / periodMs);
      deadline += missed * periodMs;
      floats[F.MISSED_DEADLINES]! += missed;
      floats[F.OVERRUNS]! += 1;
    }
  }
  Atomics.store(ints, I.STATE, LoopState.STOPPED);
}

run();
