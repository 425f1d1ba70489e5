// The daemon's commands: every one the control socket or the fleet link can ask for, with the
// type of what it returns. The parts answer them (see each part's `api()`); the daemon wires
// the answers in. README's "Commands" table lists the same.
import { LOG_LEVELS } from '../core/index.js';
import type { LoopStatus, ModeName } from '../control/index.js';
import type { PolicyInfo, PolicyStatus } from '../policy/index.js';
import type { CameraStatus } from '../hardware/camera/index.js';
import type { FleetStatus } from '../fleet/index.js';
import type { JobReport, UpdaterStatus } from '../ota/index.js';
import { NO_ARGS, command, num, oneOf, str, type ArgsIn, type Catalog, type Handlers, type ResultOf } from './command.js';
import type { SocketStatus } from './server.js';

/** `reflex status --json`: the daemon's own numbers, then each part's status under its key. */
export interface DaemonStatus {
  deviceId: string;
  pid: number;
  uptimeS: number;
  loop: LoopStatus;
  policy: PolicyStatus;
  cameras: CameraStatus[];
  fleet: FleetStatus | { state: 'disabled' };
  /** The update engine: the job in progress (or the last), the committed policies, the floors. */
  ota: UpdaterStatus | { state: 'disabled' };
  socket: SocketStatus;
  systemd: { watchdogMs: number | null };
  /** Every part's faults, in words. */
  faults: string[];
  nativeAddon: { available: boolean; reason: string | null };
  logLevels: Record<string, string>;
}

/** What a command that changes the loop's mode answers: the mode it left the loop in. */
export interface ModeResult {
  mode: ModeName;
}

export const CATALOG = {
  status: command<DaemonStatus>()({ summary: 'uptime, loop, policy, cameras, fleet link, faults', args: NO_ARGS, moves: false, fleet: true }),
  ping: command<'pong'>()({ summary: 'answers pong', args: NO_ARGS, moves: false, fleet: false }),
  // Stops motion, never starts it: always allowed, even on a control socket that is full.
  estop: command<ModeResult>()({ summary: 'e-stop: hold (or torque off) where the arm is, latched until reset', args: NO_ARGS, moves: false, fleet: true }),
  // Re-enables motors that an e-stop or a fault turned off (torque on where they are).
  reset: command<ModeResult>()({ summary: 'clear e-stop or a fault; the loop goes back to hold', args: NO_ARGS, moves: true, fleet: true }),
  // A running policy keeps running on the new one: the swap changes how the arm moves.
  'policy.activate': command<PolicyInfo>()({
    summary: 'load a policy bundle {path}, warm it up, and swap it in at a chunk boundary',
    args: NO_ARGS.extend({ path: str() }),
    moves: true,
    fleet: true,
  }),
  'policy.rollback': command<PolicyInfo>()({
    summary: 'swap back to the previous policy (the one rolled back from is released); the mode is kept',
    args: NO_ARGS,
    moves: true,
    fleet: true,
  }),
  'ota.status': command<UpdaterStatus | { state: 'disabled' }>()({ summary: 'the policy update in progress (or the last), the committed active and previous policy, version floors', args: NO_ARGS, moves: false, fleet: true }),
  // Only before activation; past it the trial decides (commit or roll back).
  'ota.cancel': command<JobReport | null>()({
    summary: 'cancel the policy update in progress {jobId?} (before its activation only)',
    args: NO_ARGS.extend({ jobId: str().optional() }),
    moves: false,
    fleet: true,
  }),
  'policy.start': command<ModeResult>()({ summary: 'run the active policy (soft start from hold)', args: NO_ARGS, moves: true, fleet: true }),
  'policy.stop': command<ModeResult>()({ summary: 'stop acting on the policy: hold where the arm is', args: NO_ARGS, moves: false, fleet: true }),
  'camera.snapshot': command<{ jpeg: string }>()({
    summary: 'the newest frame of camera {name}, as base64 JPEG',
    args: NO_ARGS.extend({ name: str() }),
    moves: false,
    fleet: true,
  }),
  'log.level': command<Record<string, string>>()({
    summary: 'set the log level: {level, module?}',
    args: NO_ARGS.extend({ level: oneOf(LOG_LEVELS), module: str().optional() }),
    moves: false,
    fleet: true,
  }),
  // Fault injection stalls or slows a thread; the loop then holds or faults, never moves.
  'debug.policy.slowLoad': command<null>()({
    summary: 'fault injection: the next policy load blocks its thread for {ms}, as a large model or a TensorRT build does',
    args: NO_ARGS.extend({ ms: num(1, 600_000) }),
    moves: false,
    fleet: false,
    debug: true,
  }),
  'debug.policy.stall': command<null>()({
    summary: 'fault injection: the policy answers nothing for {ms}',
    args: NO_ARGS.extend({ ms: num(1, 60_000) }),
    moves: false,
    fleet: false,
    debug: true,
  }),
  'debug.stall': command<null>()({
    summary: 'fault injection: block the control loop for {ms}',
    args: NO_ARGS.extend({ ms: num(1, 60_000) }),
    moves: false,
    fleet: false,
    debug: true,
  }),
} as const satisfies Catalog;

export type DaemonCatalog = typeof CATALOG;
export type DaemonCommand = keyof DaemonCatalog;
/** What a part of the daemon contributes to its command surface. */
export type DaemonHandlers = Handlers<DaemonCatalog>;
export type DaemonArgs<N extends DaemonCommand> = ArgsIn<DaemonCatalog[N]>;
export type DaemonResult<N extends DaemonCommand> = ResultOf<DaemonCatalog[N]>;

export function isDaemonCommand(name: string): name is DaemonCommand {
  return Object.hasOwn(CATALOG, name);
}
