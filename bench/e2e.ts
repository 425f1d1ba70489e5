// The whole agent on the simulated robot: the rig and the daemon as separate processes, the
// default policy reaching for the moving target through the camera, for --seconds (default 60);
// the arm on a Dynamixel bus, its base on a CAN bus, both driven by the one loop.
import { request } from '../src/cli/index.js';
import type { DaemonStatus } from '../src/daemon.js';
import type { TaskScore } from '../src/sim/index.js';
import { startE2E } from '../test/helpers/e2e.js';
import { argNumber, machine, progress, result, round } from './_util.js';

const SECONDS = argNumber('seconds', 60);
const e = await startE2E({ debug: { faultInjection: false } });
const status = async () => (await request(e.socket, 'status')) as DaemonStatus;
try {
  await e.daemon.waitForLog((l) => l.msg === 'policy ready', 30_000);
  while ((await status()).loop.mode !== 'policy') await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 3000));
  const s0 = await status();
  await request(e.rigSocket, 'task.reset');
  progress(`running the reaching task for ${SECONDS} s...`);
  for (let t = 0; t < SECONDS; t += 10) {
    await new Promise((r) => setTimeout(r, Math.min(10, SECONDS - t) * 1000));
    const sc = (await request(e.rigSocket, 'task')) as TaskScore;
    progress(`  ${Math.min(t + 10, SECONDS)} s: task error ${(sc.meanErrorM * 100).toFixed(2)} cm (holding still: ${(sc.holdBaselineM * 100).toFixed(2)} cm)`);
  }
  const score = (await request(e.rigSocket, 'task')) as TaskScore;
  const s = await status();
  result({
    seconds: SECONDS,
    machine: machine(),
    task_error: { mean: round(score.meanErrorM, 4), hold_baseline: round(score.holdBaselineM, 4), unit: 'm', samples: score.samples },
    lateness_us: s.loop.latenessUs,
    missed_deadlines: s.loop.missedDeadlines - s0.loop.missedDeadlines,
    inference_ms: { p50: s.policy.inference.p50Ms, p99: s.policy.inference.p99Ms, max: s.policy.inference.maxMs },
    camera_age_ms: s.policy.frameAgeMs,
    starved_ticks: s.loop.starvedTicks - s0.loop.starvedTicks,
    // The CAN base's bus (the rig's virtual bus, reckoned at 1 Mbit/s) and failed reads on all buses.
    can_load_pct: s.loop.bus.loadPct,
    bus_failed_reads: s.loop.bus.failedReads - s0.loop.bus.failedReads,
    ticks: s.loop.ticks - s0.loop.ticks,
    provider: s.policy.active?.provider ?? null,
    realtime: s.loop.realtime,
  });
} finally {
  await e.stop();
}
