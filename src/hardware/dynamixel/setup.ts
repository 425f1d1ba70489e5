// Bringing servos up safely, and the technician's set-up operations. None of this runs per tick.
import { ReflexError } from '../../core/index.js';
import type { DynamixelBus, PingResult } from './bus.js';
import { TICK_READ, type GroupServo } from './group.js';
import { INDIRECT } from './tables.js';
import { modelByName, modelByNumber } from './tables.js';

const TORQUE_ENABLE = 64;
const GOAL_POSITION = 116;
const BUS_WATCHDOG = 98;
const PRESENT_POSITION = 132;

export interface ScanHit extends PingResult {
  baud: number;
}

/** Scan order: the usual rates first, so a typical arm is found fast. */
export const SCAN_BAUDS = [1_000_000, 57_600, 2_000_000, 3_000_000, 4_000_000, 4_500_000, 115_200] as const;

/** Finds every servo on the port at each baud rate (broadcast ping, then unicast to confirm). */
export async function scan(bus: DynamixelBus, bauds: readonly number[] = SCAN_BAUDS, windowMs = 60): Promise<ScanHit[]> {
  const hits: ScanHit[] = [];
  for (const baud of bauds) {
    await bus.setBaud(baud);
    for (const r of await bus.broadcastPing(windowMs)) hits.push({ ...r, baud });
  }
  return hits;
}

export interface ExpectedServo {
  id: number;
  /** Model name from the config, e.g. xm430-w350. */
  model: string;
}

export interface PrepareOptions {
  /** Write Return Delay Time = 0 (EEPROM: only while torque is off). */
  zeroReturnDelay: boolean;
}

export interface Prepared {
  servos: GroupServo[];
  /** Things a person should know (a return delay left alone because torque was on, say). */
  warnings: string[];
}

/**
 * Checks that every configured servo answers with the configured model, sets Return Delay
 * Time to 0 where allowed, and clears a tripped bus watchdog. Refuses, naming the servo, when
 * one is missing or is another model.
 */
export async function prepare(bus: DynamixelBus, expected: readonly ExpectedServo[], opts: PrepareOptions): Promise<Prepared> {
  const servos: GroupServo[] = [];
  const warnings: string[] = [];
  for (const e of expected) {
    const want = modelByName(e.model);
    if (!want) throw new ReflexError('BAD_REQUEST', `servo ${e.id}: unknown model ${e.model}`);
    const ping = await bus.ping(e.id, 2);
    if (ping === null) throw new ReflexError('BUS_ERROR', `servo ${e.id} (${e.model}) does not answer on ${bus.link.path}`, { timeout: true });
    const found = modelByNumber(ping.modelNumber);
    if (!found || found.number !== want.number) {
      throw new ReflexError('DEVICE_ERROR', `servo ${e.id} is a ${found?.name ?? `model ${ping.modelNumber}`}, config says ${want.name}`);
    }
    servos.push({ id: e.id, model: found, firmware: ping.firmware });
    const t = found.table;
    if (opts.zeroReturnDelay && (await bus.readField(e.id, t.returnDelayTime)) !== 0) {
      if ((await bus.readField(e.id, t.torqueEnable)) === 1) {
        warnings.push(`servo ${e.id}: Return Delay Time left as is because torque is on (EEPROM is locked)`);
      } else {
        await bus.writeField(e.id, t.returnDelayTime, 0);
      }
    }
    // A watchdog that tripped (0xFF) refuses goals until cleared.
    await bus.write(e.id, BUS_WATCHDOG, [0]);
  }
  return { servos, warnings };
}

/** Maps Indirect Data 1.. of each servo onto the registers a tick reads (TICK_READ). */
export async function mapTickRead(bus: DynamixelBus, ids: readonly number[]): Promise<void> {
  const addrs: number[] = [];
  for (const f of TICK_READ) for (let b = 0; b < f.size; b++) addrs.push(f.address + b);
  const bytes = addrs.flatMap((a) => [a & 0xff, a >> 8]);
  for (const id of ids) await bus.write(id, INDIRECT.addressBase, bytes);
}

/**
 * Torque on without a jerk: read where each servo is, make that its goal, then enable torque.
 * Refuses (enabling none) when a servo does not answer.
 */
export async function torqueOnInPlace(bus: DynamixelBus, ids: readonly number[]): Promise<void> {
  const present = await bus.syncRead(PRESENT_POSITION, 4, ids);
  const missing = ids.filter((id) => !present.has(id));
  if (missing.length > 0) throw new ReflexError('BUS_ERROR', `cannot read positions before torque on (missing ${missing.join(', ')})`);
  await bus.syncWrite(GOAL_POSITION, 4, ids.map((id) => ({ id, data: present.get(id)! })));
  await bus.syncWrite(TORQUE_ENABLE, 1, ids.map((id) => ({ id, data: [1] })));
  // Sync Write has no reply: read back, so a servo that refused (a hardware error shuts its
  // torque off) is named now rather than found limp later.
  const torque = await bus.syncRead(TORQUE_ENABLE, 1, ids);
  const limp = ids.filter((id) => torque.get(id)?.[0] !== 1);
  if (limp.length > 0) throw new ReflexError('DEVICE_ERROR', `torque did not come on for servo ${limp.join(', ')}`);
}

export async function torqueOff(bus: DynamixelBus, ids: readonly number[]): Promise<void> {
  await bus.syncWrite(TORQUE_ENABLE, 1, ids.map((id) => ({ id, data: [0] })));
}

/** Arms the servos' bus watchdog: with no packet for `ms`, they stop by themselves. 0 disarms. */
export async function setBusWatchdog(bus: DynamixelBus, ids: readonly number[], ms: number): Promise<void> {
  const units = ms === 0 ? 0 : Math.max(1, Math.min(127, Math.ceil(ms / 20)));
  await bus.syncWrite(BUS_WATCHDOG, 1, ids.map((id) => ({ id, data: [units] })));
}

