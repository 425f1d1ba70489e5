// `reflex sim dynamixel`: a simulated servo bus as its own process, for a technician without a
// robot, for benchmarks, and for the simulated robot.
import { ReflexError } from '../core/index.js';
import { RIG_CAN_BASE, SimCanBus, SimDynamixelBus, SimRig, simCameraSource } from '../sim/index.js';
import { pino } from 'pino';
import type { Command } from 'commander';
import { request } from '../api/wire.js';
import { print, jsonOption } from './program.js';

export interface SimArgs {
  link?: string | undefined;
  ids?: string | undefined;
  model?: string | undefined;
  baud?: string | undefined;
  firmware?: string | undefined;
  'camera-port'?: string | undefined;
  'can-link'?: string | undefined;
  socket?: string | undefined;
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

/** Runs until SIGTERM/SIGINT; prints the pty path once ready. */
export async function simDynamixel(args: SimArgs): Promise<void> {
  const ids = parseIds(args.ids ?? '1-6');
  const sim = new SimDynamixelBus({
    servos: ids.map((id) => ({ id, model: args.model ?? 'xm430-w350', firmware: args.firmware === undefined ? 48 : Number(args.firmware) })),
    baud: args.baud === undefined ? 1_000_000 : Number(args.baud),
    ...(args.link === undefined ? {} : { link: args.link }),
  });
  process.stdout.write(`${args.link ?? sim.path}\n`);
  await new Promise<void>((resolve) => {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => resolve());
  });
  sim.close();
}

/** `reflex sim can`: simulated CAN motors on a virtual bus served at --link; prints the path once ready. */
export async function simCan(args: SimArgs): Promise<void> {
  if (args.link === undefined) throw new ReflexError('BAD_REQUEST', 'sim can needs --link PATH (the bus socket)');
  const model = args.model ?? 'ak80-9';
  const bus = new SimCanBus(parseIds(args.ids ?? '1-6').map((id) => ({ id, model, timeoutMs: 500 })));
  process.stdout.write(`${await bus.listen(args.link)}\n`);
  await new Promise<void>((resolve) => {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => resolve());
  });
  await bus.close();
}

/**
 * `reflex sim rig`: the simulated robot (arm, camera, moving target, task score) as its own
 * process. Prints the servo port once ready; runs until SIGTERM/SIGINT.
 */
export async function simRig(args: SimArgs): Promise<void> {
  if (args.link === undefined) throw new ReflexError('BAD_REQUEST', 'sim rig needs --link PATH');
  const port = args['camera-port'] === undefined ? null : Number(args['camera-port']);
  const rig = new SimRig({ link: args.link, canLink: args['can-link'] ?? null, cameraPort: port, socket: args.socket ?? null });
  await rig.start(pino({ level: 'warn' }, pino.destination(2)));
  if (port !== null) process.stderr.write(`simulated camera: ${simCameraSource(port)}\n`);
  if (rig.can !== null) process.stderr.write(`simulated CAN base (${RIG_CAN_BASE.model}, id ${RIG_CAN_BASE.id}) on the virtual bus ${args['can-link']}\n`);
  process.stdout.write(`${args.link}\n`);
  await new Promise<void>((resolve) => {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => resolve());
  });
  await rig.close();
}

export function registerSim(program: Command): void {
  const sim = program.command('sim').description('the simulated robot, for working without one');
  sim
    .command('dynamixel')
    .description('a simulated servo bus on a pseudo-terminal; prints its path')
    .option('--link <path>', 'a symlink to the pty')
    .option('--ids <ids>', 'servo ids, e.g. 1-6 or 1,2,5', '1-6')
    .option('--model <m>', 'servo model', 'xm430-w350')
    .option('--firmware <f>', 'firmware version')
    .option('--baud <b>', 'baud rate')
    .action((o: SimArgs) => simDynamixel(o));
  sim
    .command('can')
    .description('simulated CAN motors on a virtual bus socket (a CAN bus with transport: virtual, interface: PATH)')
    .requiredOption('--link <path>', 'the bus socket')
    .option('--ids <ids>', 'motor ids', '1-6')
    .option('--model <m>', 'ak80-9, dm-j4310 or odrive', 'ak80-9')
    .action((o: SimArgs) => simCan(o));
  sim
    .command('rig')
    .description('the simulated robot: arm, CAN base, camera, moving target, task score and faults')
    .requiredOption('--link <path>', 'the servo bus pty')
    .option('--can-link <path>', 'the CAN base\'s virtual bus socket')
    .option('--camera-port <p>', 'MJPEG camera on this tcp port')
    .option('--socket <path>', 'the rig\'s own control socket')
    .action((o: SimArgs & { canLink?: string; cameraPort?: string }) =>
      simRig({ ...o, ...(o.canLink === undefined ? {} : { 'can-link': o.canLink }), ...(o.cameraPort === undefined ? {} : { 'camera-port': o.cameraPort }) }),
    );
  jsonOption(sim.command('score').description('the simulated rig\'s task score').option('--socket <path>', 'the rig\'s socket', '.run/sim/rig.sock')).action(
    async (o: { socket: string; json?: boolean }) => {
      const t = (await request(o.socket, 'task')) as { samples: number; meanErrorM: number; holdBaselineM: number };
      print(o, t, () => `task error ${(t.meanErrorM * 100).toFixed(1)} cm mean over ${t.samples} samples; holding still would score ${(t.holdBaselineM * 100).toFixed(1)} cm\n`);
    },
  );
  // A fault to practise on (README, The technician's shell): what an overloaded servo does.
  const rigSocket = (c: Command) => c.option('--socket <path>', 'the rig\'s socket', '.run/sim/rig.sock');
  rigSocket(
    sim
      .command('fault')
      .description('raise a hardware error on a simulated servo (it turns its torque off, the loop faults), as an overload would')
      .requiredOption('--id <n>', 'the servo (config/dev.yaml: shoulder 2, elbow 3)')
      .option('--bits <bits>', 'Hardware Error Status bits: 0x20 overload, 0x04 overheating, 0x01 input voltage', '0x20'),
  ).action(async (o: { socket: string; id: string; bits: string }) => {
    await request(o.socket, 'servo.fault', { id: Number(o.id), bits: Number(o.bits) });
    process.stdout.write(`servo ${o.id}: hardware error ${o.bits} raised; \`reflex sim clear --id ${o.id}\` clears it, as rebooting the servo would\n`);
  });
  rigSocket(sim.command('clear').description('clear a simulated servo\'s hardware error, as rebooting it would').requiredOption('--id <n>', 'the servo')).action(
    async (o: { socket: string; id: string }) => {
      await request(o.socket, 'servo.clear', { id: Number(o.id) });
      process.stdout.write(`servo ${o.id}: hardware error cleared\n`);
    },
  );
}
