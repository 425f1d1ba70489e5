// `reflex jog --joint NAME (--to RAD | --by RAD) [--speed RAD/S]`: moves one joint while the
// robot holds. The client is the dead-man: it confirms the jog every CONFIRM_MS over one
// connection, and the daemon moves the joint only while confirmations come (each gives the jog
// another TTL_MS), so a client that is killed, hangs or loses its connection stops the joint.
import type { Command } from 'commander';
import { ReflexError } from '../core/index.js';
import type { JogResult } from '../control/index.js';
import { Session } from './session.js';
import { daemonOptions, socketPath, type DaemonOptions } from './program.js';

const CONFIRM_MS = 100;
const TTL_MS = 300;
/** How close the measured position must come to the target to call the jog done, rad. */
const SETTLED_RAD = 0.01;

interface JogOptions extends DaemonOptions {
  joint: string;
  to?: string;
  by?: string;
  speed?: string;
  timeout: string;
}

function number(v: string | undefined, what: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new ReflexError('BAD_REQUEST', `--${what} ${v}: want a number`);
  return n;
}

async function jog(opts: JogOptions): Promise<JogResult> {
  const to = number(opts.to, 'to');
  const by = number(opts.by, 'by');
  const speed = number(opts.speed, 'speed');
  const timeoutS = number(opts.timeout, 'timeout') ?? 30;
  if ((to === undefined) === (by === undefined)) throw new ReflexError('BAD_REQUEST', 'give one of --to RAD or --by RAD');
  const session = await Session.connect(socketPath(opts));
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await session.request('jog.stop').catch(() => undefined);
    session.close();
  };
  // Ctrl-C stops the joint at once (and would anyway, when confirmations stop).
  const onSignal = () => void stop().then(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const first = await session.request('jog', { joint: opts.joint, ...(to === undefined ? { by: by! } : { to }), ...(speed === undefined ? {} : { speed }), ttlMs: TTL_MS });
    const target = first.target;
    const deadline = Date.now() + timeoutS * 1000;
    let r = first;
    const tty = process.stdout.isTTY && !opts.json;
    while (!(r.reached && Math.abs(r.position - target) < SETTLED_RAD)) {
      if (Date.now() > deadline) throw new ReflexError('REFUSED', `joint ${r.joint} did not reach ${target.toFixed(3)} rad in ${timeoutS} s (at ${r.position.toFixed(3)}): stopped there`);
      if (tty) process.stdout.write(`\r${r.joint}: ${r.position.toFixed(3)} rad -> ${target.toFixed(3)} rad at ${r.speed.toFixed(2)} rad/s   `);
      await new Promise((res) => setTimeout(res, CONFIRM_MS));
      r = await session.request('jog', { joint: opts.joint, to: target, ...(speed === undefined ? {} : { speed }), ttlMs: TTL_MS });
    }
    if (tty) process.stdout.write('\n');
    return r;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await stop();
  }
}

export function registerJog(program: Command): void {
  daemonOptions(
    program
      .command('jog')
      .description('move one joint while the robot holds, within its limits and velocity limit; it stops when this command stops')
      .requiredOption('--joint <name>', 'the joint (as the config names it)')
      .option('--to <rad>', 'go to this position')
      .option('--by <rad>', 'go this far from where it is held')
      .option('--speed <rad/s>', 'at most this fast (default 0.2, never past the joint\'s velocity limit)')
      .option('--timeout <s>', 'give up (stopping the joint) after this long', '30'),
  ).action(async (opts: JogOptions) => {
    const r = await jog(opts);
    process.stdout.write(opts.json ? `${JSON.stringify(r, null, 2)}\n` : `${r.joint} at ${r.position.toFixed(3)} rad (target ${r.target.toFixed(3)}); holding there\n`);
  });
}
