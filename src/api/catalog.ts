// The daemon's commands: every one the control socket or the fleet link can ask for, with the
// type of what it returns. The parts answer them (see each part's `api()`); the daemon wires
// the answers in. README's "Commands" table lists the same.
import { LOG_LEVELS } from '../core/index.js';
import type { JogResult, LoopStatus, ModeName } from '../control/index.js';
import type { PolicyInfo, PolicyStatus } from '../policy/index.js';
import type { CameraStatus } from '../hardware/camera/index.js';
import type { FleetStatus } from '../fleet/index.js';
import type { RecordStatus } from '../record/index.js';
import type { JobReport, UpdaterStatus } from '../ota/index.js';
import { NO_ARGS, command, num, oneOf, str, type ArgsIn, type Catalog, type Handlers, type ResultOf } from './command.js';
import type { SocketStatus } from './server.js';
import type { FaultHistoryView } from './faults.js';
import type { Versions } from '../core/index.js';

/** One joint's motor, as its last read left it (MotorHealth record). */
export interface JointHealth {
  joint: string;
  temperatureC: number;
  voltageV: number;
  /** The motor's hardware error bits (Dynamixel Hardware Error Status; 0: none). */
  hardwareError: number;
}

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
  /** The flywheel recorder: recording or not, the episode being recorded, what was saved or dropped. */
  record: RecordStatus;
  socket: SocketStatus;
  systemd: { watchdogMs: number | null };
  /** Every part's faults, in words. */
  faults: string[];
  nativeAddon: { available: boolean; reason: string | null };
  logLevels: Record<string, string>;
  /** Which reflex, Node.js, ONNX Runtime and OpenCV binding run, on which kernel. */
  versions: Versions;
  /** Every joint's motor health (temperature, voltage, hardware error) from the last tick. */
  joints: JointHealth[];
}

/** What a command that changes the loop's mode answers: the mode it left the loop in. */
export interface ModeResult {
  mode: ModeName;
}

export const CATALOG = {
  status: command<DaemonStatus>()({ summary: 'uptime, loop, policy, cameras, fleet link, faults', args: NO_ARGS, moves: false, fleet: true, readOnly: true }),
  faults: command<FaultHistoryView>()({
    summary: 'the recent faults and e-stops: time, reason, joint, what cleared them (newest {limit}, default all kept)',
    args: NO_ARGS.extend({ limit: num(1, 10_000).optional() }),
    moves: false,
    fleet: true,
    readOnly: true,
  }),
  logs: command<{ lines: string[]; next: number; missed: number }>()({
    summary: 'the newest lines of the daemon\'s own log (JSON lines) from sequence number {since}, at most {limit}; for hosts without journald',
    args: NO_ARGS.extend({ since: num(0, Number.MAX_SAFE_INTEGER).optional(), limit: num(1, 2000).optional() }),
    moves: false,
    fleet: false,
    readOnly: true,
  }),
  ping: command<'pong'>()({ summary: 'answers pong', args: NO_ARGS, moves: false, fleet: false, readOnly: true }),
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
  // A running VLA policy does what the task says: a new task changes how the arm moves.
  'policy.task': command<{ task: string; seed: number }>()({
    summary: 'set the task instruction {text} VLA policies are given (tokenized once on the robot) and/or the noise {seed} (same seed, same chunk)',
    args: NO_ARGS.extend({ text: str().max(2000).optional(), seed: num(0, 2 ** 32 - 1).int().optional() }),
    moves: true,
    fleet: true,
  }),
  'ota.status': command<UpdaterStatus | { state: 'disabled' }>()({ summary: 'the policy update in progress (or the last), the committed active and previous policy, version floors', args: NO_ARGS, moves: false, fleet: true, readOnly: true }),
  // Only before activation; past it the trial decides (commit or roll back).
  'ota.cancel': command<JobReport | null>()({
    summary: 'cancel the policy update in progress {jobId?} (before its activation only)',
    args: NO_ARGS.extend({ jobId: str().optional() }),
    moves: false,
    fleet: true,
  }),
  'policy.start': command<ModeResult>()({ summary: 'run the active policy (soft start from hold)', args: NO_ARGS, moves: true, fleet: true }),
  // A technician's jog: moves one joint, so only an operator; never over the fleet link.
  jog: command<JogResult>()({
    summary: 'while holding, move joint {joint} to {to} or by {by} rad at {speed} rad/s; stops unless confirmed (sent again) within {ttlMs}',
    args: NO_ARGS.extend({ joint: str(), to: num(-100, 100).optional(), by: num(-10, 10).optional(), speed: num(0.001, 10).optional(), ttlMs: num(50, 2000).optional() }),
    moves: true,
    fleet: false,
  }),
  'jog.stop': command<ModeResult>()({ summary: 'end a jog now: the joint holds where it got to', args: NO_ARGS, moves: false, fleet: false }),
  'policy.stop': command<ModeResult>()({ summary: 'stop acting on the policy: hold where the arm is', args: NO_ARGS, moves: false, fleet: true }),
  'camera.snapshot': command<{ jpeg: string }>()({
    summary: 'the newest frame of camera {name}, as base64 JPEG',
    args: NO_ARGS.extend({ name: str() }),
    moves: false,
    fleet: true,
    readOnly: true,
  }),
  // Recording never moves the arm: episodes follow the policy's own start and stop.
  'record.start': command<RecordStatus>()({
    summary: 'record episodes (LeRobotDataset v3.0) while the policy runs, with task {task?}; another task starts a new episode',
    args: NO_ARGS.extend({ task: str().max(1000).optional() }),
    moves: false,
    fleet: true,
  }),
  'record.stop': command<RecordStatus>()({ summary: 'stop recording: the open episode is closed and saved', args: NO_ARGS, moves: false, fleet: true }),
  'record.mark': command<RecordStatus>()({
    summary: 'mark the episode {label}: success or failure (ends it), or intervention (flags it); with none open, the last saved one',
    args: NO_ARGS.extend({ label: oneOf(['success', 'failure', 'intervention'] as const) }),
    moves: false,
    fleet: true,
  }),
  'record.status': command<RecordStatus>()({ summary: 'the recorder: state, episode being recorded, episodes saved, dropped, disk', args: NO_ARGS, moves: false, fleet: true, readOnly: true }),
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
