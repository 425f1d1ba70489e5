// `reflex motors ...`: the technician's Dynamixel tools. They open the port themselves, so
// they work while the daemon is stopped (and refuse, by the port's lock, while it runs).
import { ReflexError } from '../core/index.js';
import {
  DynamixelBus, openSerial, scan, SCAN_BAUDS, baudCode, modelByNumber, OperatingMode, tuneLatency, type ScanHit,
} from '../hardware/dynamixel/index.js';

export interface MotorArgs {
  port?: string | undefined;
  baud?: string | undefined;
  id?: string | undefined;
  to?: string | undefined;
}

const MODES: Record<string, number> = {
  current: OperatingMode.CURRENT,
  velocity: OperatingMode.VELOCITY,
  position: OperatingMode.POSITION,
  'extended-position': OperatingMode.EXTENDED_POSITION,
  'current-position': OperatingMode.CURRENT_BASED_POSITION,
  pwm: OperatingMode.PWM,
};

function need(v: string | undefined, what: string): string {
  if (v === undefined) throw new ReflexError('BAD_REQUEST', `missing --${what}`);
  return v;
}

function int(v: string | undefined, what: string, min: number, max: number): number {
  const n = Number(need(v, what));
  if (!Number.isInteger(n) || n < min || n > max) throw new ReflexError('BAD_REQUEST', `--${what} ${v}: want an integer from ${min} to ${max}`);
  return n;
}

async function withBus<T>(args: MotorArgs, baud: number, fn: (bus: DynamixelBus) => Promise<T>): Promise<T> {
  const path = need(args.port, 'port');
  const link = await openSerial(path, baud).catch((err: unknown) => {
    // serialport's lock: another process has the port, on a robot the daemon that drives it.
    if (err instanceof ReflexError && /Cannot lock port/i.test(err.message)) {
      throw new ReflexError('NOT_CONNECTED', `${path} is in use by another program, most likely the reflex daemon, which drives it: stop it first (\`systemctl stop reflex\`), or ask the daemon (\`reflex hardware\`, \`reflex status\`)`, { disconnected: true, cause: err });
    }
    throw err;
  });
  const bus = new DynamixelBus(link, { baud, usbLatencyMs: 16 });
  try {
    const latency = await tuneLatency(link);
    if (latency.warning) process.stderr.write(`warning: ${latency.warning}\n`);
    return await fn(bus);
  } finally {
    await bus.close();
  }
}

export function formatScan(hits: readonly ScanHit[]): string {
  if (hits.length === 0) return 'no servos found\n';
  const rows = [['id', 'model', 'firmware', 'baud'], ...hits.map((h) => [String(h.id), h.modelName ?? `unknown (${h.modelNumber})`, String(h.firmware), String(h.baud)])];
  const w = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(w[c]!)).join('  ').trimEnd()).join('\n') + '\n';
}

/**
 * Writes a register that changes how the servo answers (its id, its baud), so its reply may
 * not come back as asked; success is judged by finding the servo as it now should be.
 */
async function writeThenVerify(bus: DynamixelBus, id: number, address: number, data: number[], find: () => Promise<unknown>): Promise<void> {
  try {
    await bus.write(id, address, data);
  } catch (err) {
    if (!(err instanceof ReflexError && err.timeout)) throw err;
  }
  if (!(await find())) throw new ReflexError('BUS_ERROR', `servo ${id} did not come back after the change`, { timeout: true });
}

async function requireTorqueOff(bus: DynamixelBus, id: number): Promise<void> {
  const [torque] = await bus.read(id, 64, 1);
  if (torque === 1) throw new ReflexError('REFUSED', `servo ${id} has torque on, which locks its EEPROM; run "reflex motors torque off --id ${id}" first (the joint will go limp)`);
}

/** Runs one `reflex motors VERB`; returns what to print. */
export async function motors(verb: string | undefined, rest: readonly string[], args: MotorArgs): Promise<string> {
  const baud = args.baud === undefined ? SCAN_BAUDS[0] : int(args.baud, 'baud', 9600, 4_500_000);
  switch (verb) {
    case 'scan': {
      const bauds = args.baud === undefined ? SCAN_BAUDS : [baud];
      return formatScan(await withBus(args, bauds[0], (bus) => scan(bus, bauds)));
    }
    case 'set-id': {
      const id = int(args.id, 'id', 0, 252);
      const to = int(args.to, 'to', 0, 252);
      return withBus(args, baud, async (bus) => {
        if (await bus.ping(to)) throw new ReflexError('REFUSED', `id ${to} is already taken on this bus`);
        await requireTorqueOff(bus, id);
        await writeThenVerify(bus, id, 7, [to], () => bus.ping(to, 2));
        return `servo ${id} is now id ${to}\n`;
      });
    }
    case 'set-baud': {
      const id = int(args.id, 'id', 0, 252);
      const to = int(args.to, 'to', 9600, 4_500_000);
      const code = baudCode(to);
      if (code === undefined) throw new ReflexError('BAD_REQUEST', `--to ${to}: not a Dynamixel baud rate`);
      return withBus(args, baud, async (bus) => {
        await requireTorqueOff(bus, id);
        await writeThenVerify(bus, id, 8, [code], async () => {
          await bus.setBaud(to);
          return bus.ping(id, 2);
        });
        return `servo ${id} now talks at ${to} baud\n`;
      });
    }
    case 'set-return-delay': {
      const id = int(args.id, 'id', 0, 252);
      const us = int(args.to, 'to', 0, 508);
      return withBus(args, baud, async (bus) => {
        await requireTorqueOff(bus, id);
        await bus.write(id, 9, [Math.round(us / 2)]);
        return `servo ${id} return delay ${Math.round(us / 2) * 2} us\n`;
      });
    }
    case 'set-mode': {
      const id = int(args.id, 'id', 0, 252);
      const mode = MODES[need(args.to, 'to')];
      if (mode === undefined) throw new ReflexError('BAD_REQUEST', `--to ${args.to}: want one of ${Object.keys(MODES).join(', ')}`);
      return withBus(args, baud, async (bus) => {
        await requireTorqueOff(bus, id);
        await bus.write(id, 11, [mode]);
        return `servo ${id} operating mode ${args.to}\n`;
      });
    }
    case 'reboot': {
      const id = int(args.id, 'id', 0, 252);
      return withBus(args, baud, async (bus) => {
        await bus.reboot(id);
        return `servo ${id} rebooted\n`;
      });
    }
    case 'torque': {
      const on = rest[0];
      if (on !== 'on' && on !== 'off') throw new ReflexError('BAD_REQUEST', 'usage: reflex motors torque on|off --port P --id N');
      const id = int(args.id, 'id', 0, 252);
      return withBus(args, baud, async (bus) => {
        if (on === 'on') {
          // Goal = present first, so the servo holds where it is instead of jumping.
          const pos = await bus.read(id, 132, 4);
          await bus.write(id, 116, pos);
        }
        await bus.write(id, 64, [on === 'on' ? 1 : 0]);
        return `servo ${id} torque ${on}\n`;
      });
    }
    case 'info': {
      const id = int(args.id, 'id', 0, 252);
      return withBus(args, baud, async (bus) => {
        const ping = await bus.ping(id, 1);
        if (!ping) throw new ReflexError('BUS_ERROR', `servo ${id} does not answer at ${baud} baud`, { timeout: true });
        const model = modelByNumber(ping.modelNumber);
        const b = await bus.read(id, 0, 148);
        const u = (a: number, n: number) => b.subarray(a, a + n).reduceRight((v, x) => v * 256 + x, 0);
        return [
          `id ${id}: ${model?.name ?? ping.modelNumber}, firmware ${ping.firmware}`,
          `baud code ${u(8, 1)}, return delay ${u(9, 1) * 2} us, operating mode ${u(11, 1)}`,
          `torque ${u(64, 1) ? 'on' : 'off'}, hardware error 0x${u(70, 1).toString(16)}, bus watchdog ${u(98, 1)}`,
          `position ${u(132, 4) | 0}, voltage ${u(144, 2) / 10} V, temperature ${u(146, 1)} C`,
        ].join('\n') + '\n';
      });
    }
    default:
      throw new ReflexError('BAD_REQUEST', 'usage: reflex motors scan|info|set-id|set-baud|set-return-delay|set-mode|reboot|torque --port PATH [--baud B] [--id N] [--to V]');
  }
}
