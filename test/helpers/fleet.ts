// A fleet link for tests, with a command registry that counts what ran.
import { join } from 'node:path';
import { pino } from 'pino';
import { CATALOG, CommandRegistry, type DaemonHandlers } from '../../src/api/index.js';
import { FleetLink, type FleetOptions } from '../../src/fleet/index.js';
import type { Logger } from '../../src/core/index.js';

/** How many times each command ran. */
export type Ran = Record<string, number>;

/**
 * The daemon's catalog (so the link allows what the daemon's allows), answered by stubs for the
 * commands that matter here; each counts its runs in `ran`.
 */
export function countingRegistry(ran: Ran): CommandRegistry {
  const count = (name: string, result: unknown) => () => ((ran[name] = (ran[name] ?? 0) + 1), result);
  // Stub results, not the daemon's: the link hands a result back without reading it.
  const stubs = { status: count('status', { mode: 'hold' }), estop: count('estop', { mode: 'estop' }), reset: count('reset', { mode: 'hold' }), 'policy.start': count('policy.start', { mode: 'policy' }), 'log.level': count('log.level', {}) };
  return new CommandRegistry(CATALOG).add(stubs as unknown as DaemonHandlers);
}

export function fleetOptions(url: string, deviceId: string, stateDir: string, over: Partial<FleetOptions> = {}): FleetOptions {
  return {
    deviceId,
    url,
    username: null,
    passwordFile: null,
    caFile: null,
    certFile: null,
    keyFile: null,
    telemetryHz: 10,
    stateDir: join(stateDir, deviceId),
    maxOutbox: 1000,
    drainPerSecond: 1000,
    ...over,
  };
}

export function testLink(opts: FleetOptions, commands: CommandRegistry, log: Logger = pino({ level: 'silent' })): FleetLink {
  return new FleetLink(opts, commands, () => ({ loop: { hz: 50 } }), log);
}

/** Drops the link's socket without a DISCONNECT, as a pulled cable would. */
export function killSocket(l: FleetLink): void {
  (l as unknown as { client: { stream: { destroy(): void } } }).client.stream.destroy();
}
