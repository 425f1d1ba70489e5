// The simulated robot and the daemon for the CLI tests, started again (at most twice more, and
// said) when the daemon's start fails on a loaded machine before the test has begun: a servo
// that answers its first ping late is the harness's problem, not the verb under test's.
import { startE2E, type E2E } from '../../tools/testkit/e2e.js';

/** A loaded 2-core machine may stall the loop past the servos' 100 ms bus watchdog (they then refuse goals) or the bus's error budget: looser bounds, so only the faults the tests inject happen. */
export const LOADED = { bus: { errorBudgetMs: 2000, watchdogMs: 2000 } };

/** Rig and daemon, once the daemon logs `ready` (e.g. 'reflex is running', 'policy ready'). */
export async function startRig(extra: Record<string, unknown>, ready: string): Promise<E2E> {
  for (let attempt = 1; ; attempt++) {
    const e = await startE2E(extra);
    let line: Record<string, unknown>;
    try {
      line = await e.daemon.waitForLog((l) => l.msg === ready || l.msg === 'start failed', 60_000);
    } catch (err) {
      await e.stop();
      throw err;
    }
    if (line.msg === ready) return e;
    await e.stop();
    if (attempt === 3) throw new Error(`the daemon did not start 3 times: ${String(line.err)}`);
    process.stdout.write(`# the daemon did not start (${String(line.err)}); starting the rig again\n`);
  }
}
