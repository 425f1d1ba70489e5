// Bringing servos up safely, and the technician's set-up operations. None of this runs per tick.
import { ReflexError } from '../../core/index.js';
import type { DynamixelBus, PingResult } from './bus.js';
import type { SyncGroup, GroupServo } from './group.js';
import { BAUD_CODES, modelByName, modelByNumber, type ServoModel } from './tables.js';

const TORQUE_ENABLE = 64;
const GOAL_POSITION = 116;
const BUS_WATCHDOG = 98;

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

/**
 * Torque on without a jerk: read where each servo is, make that its goal, then enable torque.
 * A servo that does not answer is not enabled.
 */
export async function torqueOnInPlace(bus: DynamixelBus, group: SyncGroup, ids: readonly number[]): Promise<void> {
  if (!(await group.read())) throw new ReflexError('BUS_ERROR', `cannot read positions before torque on (missing ${group.missingIds()})`);
  const raw = group.state.rawPosition;
  await bus.syncWrite(GOAL_POSITION, 4, ids.map((id, i) => ({ id, data: le32(raw[i]!) })));
  await bus.syncWrite(TORQUE_ENABLE, 1, ids.map((id) => ({ id, data: [1] })));
}

export async function torqueOff(bus: DynamixelBus, ids: readonly number[]): Promise<void> {
  await bus.syncWrite(TORQUE_ENABLE, 1, ids.map((id) => ({ id, data: [0] })));
}

/** Arms the servos' bus watchdog: with no packet for `ms`, they stop by themselves. 0 disarms. */
export async function setBusWatchdog(bus: DynamixelBus, ids: readonly number[], ms: number): Promise<void> {
  const units = ms === 0 ? 0 : Math.max(1, Math.min(127, Math.ceil(ms / 20)));
  await bus.syncWrite(BUS_WATCHDOG, 1, ids.map((id) => ({ id, data: [units] })));
}

export function baudOfCode(code: number): number | undefined {
  return BAUD_CODES[code];
}

export function modelOf(id: number, servos: readonly GroupServo[]): ServoModel {
  const s = servos.find((x) => x.id === id);
  if (!s) throw new ReflexError('BAD_REQUEST', `no servo ${id}`);
  return s.model;
}

function le32(v: number): number[] {
  return [v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff];
}
