// The control worker: its own thread and V8 heap, so the main thread's garbage collection and
// I/O never delay a tick. It opens the buses (async, before the loop), then runs the loop
// synchronously: sleep to just before the deadline (clock_nanosleep, absolute), spin the rest,
// tick. It never yields to an event loop while it runs (but while a lost bus is reopened, see
// reopen.ts); commands arrive in shared memory.
import { workerData } from 'node:worker_threads';
import { getHeapStatistics } from 'node:v8';
import { readFileSync } from 'node:fs';
import { openBus, type MotorBus } from '../hardware/index.js';
import { hostPort, monoMs, setupRealtime, tickClock, unlockMemory, type RealtimeReport } from '../rt/index.js';
import type { ControlConfig } from './config.js';
import { ControlCore } from './core.js';
import { BusReopener, type BusStateName } from './reopen.js';
import { Command, LoopState, viewShared, type LoopBuffers } from './shared.js';

export interface ControlWorkerData {
  buffers: LoopBuffers;
  config: ControlConfig;
}

/** Events to the main thread: rare ones only. */
export type ControlEvent =
  /** `further`: reported while the loop already held in fault. */
  | { type: 'fault'; reason: string; further?: boolean }
  | { type: 'warning'; message: string }
  /** A bus was lost, is being reopened, is back (ok), or could not be reopened (lost, with why). */
  | { type: 'bus'; name: string; state: BusStateName; reason: string | null };

/** The outcome of one reset command: not ok when a lost bus could not be reopened. */
export interface ResetOutcome {
  ok: boolean;
  reason: string | null;
}

/**
 * What the control worker and its host say (rt/worker-host.ts). Commands travel in shared
 * memory, since the worker reads no messages while it ticks; a reset carries its request id
 * there (commandArg) and is answered by id.
 */
export interface ControlProtocol {
  ready: { realtime: RealtimeReport; warnings: string[] };
  event: ControlEvent;
  post: never;
  request: never;
  reply: ResetOutcome;
}

/** What main() posts: its start (ready or error) and events. */
type WorkerMessage = ({ type: 'ready' } & ControlProtocol['ready']) | { type: 'error'; message: string } | ControlEvent;

const data = workerData as ControlWorkerData;
const cfg = data.config;
const shared = viewShared(data.buffers);
const { words, counters, lateness, duration } = shared;
const periodMs = 1000 / cfg.rateHz;
const spinMs = cfg.spinUs / 1000;
const port = hostPort<ControlProtocol>();
const post = (m: WorkerMessage) => {
  if (m.type === 'ready') port.ready({ realtime: m.realtime, warnings: m.warnings });
  else if (m.type === 'error') port.failed(m.message);
  else port.event(m);
};

/** mlockall is only safe with an unlimited RLIMIT_MEMLOCK: past a limit, V8's later mmaps fail fatally. */
function memlockUnlimited(): boolean {
  try {
    return /^Max locked memory\s+unlimited/m.test(readFileSync('/proc/self/limits', 'utf8'));
  } catch {
    return false;
  }
}

function busyFor(ms: number): void {
  const until = monoMs() + ms;
  while (monoMs() < until) {
    // Fault injection: a driver that hangs holds the thread exactly like this.
  }
}

/** Sleeps on this thread's event loop until `untilMs` (at least one turn), so a reopen's I/O runs. */
function yieldUntil(untilMs: number): Promise<void> {
  const ms = untilMs - monoMs();
  return new Promise((r) => (ms >= 2 ? setTimeout(r, ms - 1) : setImmediate(r)));
}

async function run(core: ControlCore, buses: readonly MotorBus[], reopener: BusReopener): Promise<void> {
  words.store('state', LoopState.RUNNING);
  counters.set('startedMs', monoMs());
  const clock = tickClock();
  const t = new Float64Array(2); // [woke, done]: times written in place, no heap numbers
  let k = 0;
  let deadline = monoMs() + periodMs;
  let heapUsed = getHeapStatistics().used_heap_size;
  let stallMs = 0;
  /** E-stops counted when a reset began reopening: one pressed meanwhile wins over that reset. */
  let estopsAtReset = 0;
  /** Reset requests waiting for a reopen, by id: each is answered once it is done. */
  const resetIds: number[] = [];

  for (;;) {
    const cmd = words.load('command');
    if (cmd !== Command.NONE) {
      if (cmd === Command.STOP) break;
      switch (cmd) {
        case Command.SAFE:
          core.makeSafe();
          words.store('state', LoopState.SAFE);
          break;
        case Command.STALL:
          stallMs = words.load('commandArg');
          break;
        case Command.ESTOP:
          core.estop();
          break;
        case Command.RESET:
          if (!reopener.anyLost()) {
            core.reset();
            port.reply(words.load('commandArg'), { ok: true, reason: null });
            break;
          }
          // Answered when the reopen is done (below); the loop holds and ticks meanwhile.
          if (!reopener.busy) estopsAtReset = counters.get('estops');
          resetIds.push(words.load('commandArg'));
          reopener.request();
          break;
        case Command.POLICY_START:
          core.startPolicy();
          break;
        case Command.POLICY_STOP:
          core.stopPolicy();
          break;
      }
      words.store('command', Command.NONE);
    }

    const reopened = reopener.take();
    if (reopened !== null) {
      let { ok, reason } = reopened.result;
      const again = buses.find((b) => b.lost !== null);
      if (ok && again !== undefined) {
        ok = false;
        reason = again.lost;
      }
      if (!ok) post({ type: 'fault', reason: reason ?? 'a bus could not be reopened' });
      else if (counters.get('estops') !== estopsAtReset) {
        ok = false;
        reason = 'e-stop engaged while the bus was reopened; reset again to clear it';
      } else core.reset();
      // Every reset asked while the reopen ran gets this outcome (reopened.resets of them).
      for (const id of resetIds.splice(0)) port.reply(id, { ok, reason });
    }

    // Sleep (clock_nanosleep, absolute) to just before the deadline, then spin the last
    // stretch in C: a sleep wakes up to a timer slack late; spinning does not. While a bus is
    // reopened, the sleep is on the event loop instead, where the reopen's I/O completes.
    if (reopener.busy) await yieldUntil(deadline - spinMs);
    clock.sleepThenSpin(deadline, spinMs, t);
    const woke = t[0]!;
    const latenessUs = (woke - deadline) * 1000;

    core.tick(k, woke);
    if (stallMs > 0) {
      // Inside the tick, where a driver that hangs would hold it.
      busyFor(stallMs);
      stallMs = 0;
    }

    clock.into(t, 1);
    const done = t[1]!;
    const durationUs = (done - woke) * 1000;
    counters.add('ticks');
    counters.set('lastTickMs', woke);
    counters.set('lastDeadlineMs', deadline);
    counters.set('lastTickDurationUs', durationUs);
    lateness.record(latenessUs);
    duration.record(durationUs);

    // Once a second, look for garbage collections in this thread's heap (a drop in use).
    if (k % cfg.rateHz === 0) {
      const used = getHeapStatistics().used_heap_size;
      if (used < heapUsed) counters.add('gcEvents');
      heapUsed = used;
    }

    k++;
    deadline += periodMs;
    if (done > deadline) {
      // Skip the periods already gone rather than bunching ticks to catch up.
      const missed = Math.ceil((done - deadline) / periodMs);
      deadline += missed * periodMs;
      k += missed;
      counters.add('missedDeadlines', missed);
      counters.add('overruns');
    }
  }
}

async function main(): Promise<void> {
  const buses: MotorBus[] = [];
  const warnings: string[] = [];
  try {
    // Each through its family's factory, imported in this thread (hardware/registry.ts).
    for (const spec of cfg.buses) {
      const bus = await openBus(spec);
      buses.push(bus);
      warnings.push(...bus.warnings);
    }
  } catch (err) {
    for (const b of buses) await b.close();
    post({ type: 'error', message: err instanceof Error ? err.message : String(err) });
    return;
  }
  const report = (name: string, state: BusStateName, reason: string | null) => post({ type: 'bus', name, state, reason });
  const core = new ControlCore(cfg, buses, shared, {
    fault: (reason, further) => post({ type: 'fault', reason, further: further === true }),
    warning: (message) => post({ type: 'warning', message }),
    lost: (name, reason) => report(name, 'lost', reason),
  });
  const reopener = new BusReopener(buses, report);
  // Real-time priority only now: threads started before this (libuv's pool, used while
  // opening the ports) keep their ordinary priority, as they must.
  const rt = cfg.realtime;
  const lock = rt.lockMemory && memlockUnlimited();
  const realtime = setupRealtime(rt.priority, rt.cpu ?? -1, lock);
  if (rt.lockMemory && !lock) realtime.notes.push('mlockall skipped: RLIMIT_MEMLOCK is not unlimited (LimitMEMLOCK=infinity)');
  post({ type: 'ready', realtime, warnings });
  try {
    await run(core, buses, reopener);
  } finally {
    reopener.stop();
    core.makeSafe();
    if (realtime.memoryLocked) unlockMemory();
    for (const b of buses) await b.close();
    words.store('state', LoopState.STOPPED);
  }
}

void main();
