// `reflex sim dynamixel`: a simulated servo bus as its own process, for a technician without a
// robot, for benchmarks, and for the simulated robot.
import { ReflexError } from '../core/index.js';
import { SimCamera, SimDynamixelBus, simCameraSource } from '../sim/index.js';
import { ticksToRad } from '../hardware/dynamixel/index.js';

export interface SimArgs {
  link?: string | undefined;
  ids?: string | undefined;
  model?: string | undefined;
  baud?: string | undefined;
  firmware?: string | undefined;
  'camera-port'?: string | undefined;
}

/** "1-6" or "1,2,5" or "1-3,7". */
export function parseIds(spec: string): number[] {
  const ids: number[] = [];
  for (const part of spec.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw new ReflexError('BAD_REQUEST', `--ids ${spec}: want e.g. 1-6 or 1,2,5`);
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    for (let i = a; i <= b; i++) ids.push(i);
  }
  if (ids.some((i) => i > 252) || new Set(ids).size !== ids.length) throw new ReflexError('BAD_REQUEST', `--ids ${spec}: ids must be distinct, 0..252`);
  return ids;
}

/** The target's slow loop in front of the arm (x > 0, within reach), at time `t` seconds. */
export function targetAt(t: number): { x: number; y: number } {
  return { x: 0.3 + 0.08 * Math.cos(0.25 * t), y: 0.18 * Math.sin(0.25 * t) };
}

/** Runs until SIGTERM/SIGINT; prints the pty path once ready. */
export async function simDynamixel(args: SimArgs): Promise<void> {
  const ids = parseIds(args.ids ?? '1-6');
  const sim = new SimDynamixelBus({
    servos: ids.map((id) => ({ id, model: args.model ?? 'xm430-w350', firmware: args.firmware === undefined ? 48 : Number(args.firmware) })),
    baud: args.baud === undefined ? 1_000_000 : Number(args.baud),
    ...(args.link === undefined ? {} : { link: args.link }),
  });
  // A camera looking down at the arm (servos 1, 2, 3 as base, shoulder, elbow) and a target.
  const port = args['camera-port'] === undefined ? null : Number(args['camera-port']);
  let camera: SimCamera | null = null;
  if (port !== null) {
    const joint = (id: number) => (sim.servos.some((s) => s.id === id) ? ticksToRad(sim.servo(id).positionTicks) : 0);
    const t0 = Date.now();
    camera = new SimCamera({ port, fps: 30, width: 640, height: 480 }, () => ({
      joints: [joint(1), joint(2), joint(3)],
      target: targetAt((Date.now() - t0) / 1000),
    }));
    process.stderr.write(`simulated camera: ${simCameraSource(port)}\n`);
  }
  process.stdout.write(`${args.link ?? sim.path}\n`);
  await new Promise<void>((resolve) => {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => resolve());
  });
  camera?.close();
  sim.close();
}
