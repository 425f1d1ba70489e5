// The simulated robot rig, as its own process: an arm (base, shoulder, elbow) of Dynamixel
// servos on a pty, or with its base turned by a CAN motor (Damiao DM-J4310, MIT mode) on a
// virtual CAN bus, so that one loop drives both kinds of bus; a camera looking down at it, a
// target moving on a slow loop, and the task's score: how far the end effector is from the
// target, next to how far it would be had the arm held still. A control socket (the same
// protocol as the daemon's) reports the score and injects faults.
import { CommandRegistry, ControlSocketServer, NO_ARGS, bool, command, num, type Catalog } from '../api/index.js';
import { ReflexError, type Logger } from '../core/index.js';
import { ticksToRad } from '../hardware/dynamixel/index.js';
import { createServer } from 'node:net';
import { SimCamera } from './camera.js';
import { SimCanBus } from './can-bus.js';
import { SimDynamixelBus } from './dynamixel-bus.js';
import { endEffector } from './scene.js';

/**
 * What the rig's socket answers: the task's score and fault injection. A test rig's commands,
 * not the daemon's: none is for the fleet, and none moves the arm (a fault only stops a motor).
 */
const RIG_CATALOG = {
  task: command<TaskScore>()({ summary: 'the task score since the last reset', args: NO_ARGS, moves: false, fleet: false }),
  'task.reset': command<null>()({ summary: 'score afresh from now', args: NO_ARGS, moves: false, fleet: false }),
  joints: command<number[]>()({ summary: 'joint angles, radians', args: NO_ARGS, moves: false, fleet: false }),
  'servo.fault': command<null>()({
    summary: 'raise hardware error bits {id, bits} on a servo (it turns its torque off)',
    args: NO_ARGS.extend({ id: num(0, 252), bits: num(1, 255) }),
    moves: false,
    fleet: false,
  }),
  'servo.clear': command<null>()({ summary: 'clear a servo hardware error {id} (as a reboot does)', args: NO_ARGS.extend({ id: num(0, 252) }), moves: false, fleet: false }),
  'can.fault': command<null>()({
    summary: 'a CAN motor fault {id, silent?, error?, temperatureC?}: silence, its own error code, a temperature',
    args: NO_ARGS.extend({ id: num(0, 63), silent: bool().optional(), error: num(0, 0xffffffff).optional(), temperatureC: num(-40, 200).optional() }),
    moves: false,
    fleet: false,
  }),
  'can.clear': command<null>()({ summary: "clear a CAN motor's injected faults {id}", args: NO_ARGS.extend({ id: num(0, 63) }), moves: false, fleet: false }),
} as const satisfies Catalog;
type RigCatalog = typeof RIG_CATALOG;

export interface RigOptions {
  link: string;
  /** Serve the base as a CAN motor on a virtual bus here; null keeps it a Dynamixel servo. */
  canLink?: string | null;
  cameraPort: number | null;
  socket: string | null;
}

/** The CAN base: motor id and model (MIT mode), with its own timeout for a silent host. */
export const RIG_CAN_BASE = { id: 1, model: 'dm-j4310', timeoutMs: 500 } as const;

/** The target's slow loop in front of the arm (x > 0, within reach), at time `t` seconds. */
export function targetAt(t: number): { x: number; y: number } {
  return { x: 0.3 + 0.08 * Math.cos(0.25 * t), y: 0.18 * Math.sin(0.25 * t) };
}

export interface TaskScore {
  samples: number;
  /** Mean end-effector distance to the target, metres. */
  meanErrorM: number;
  /** The same, had the arm held the pose it had when scoring started. */
  holdBaselineM: number;
  lastErrorM: number;
}

/** Rejects when something already listens on 127.0.0.1:`port`. */
export function assertPortFree(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (err: NodeJS.ErrnoException) =>
      reject(new ReflexError('BAD_REQUEST', err.code === 'EADDRINUSE' ? `camera port ${port} on 127.0.0.1 is in use by another program: choose another with --camera-port` : `camera port ${port}: ${err.message}`)),
    );
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve()));
  });
}

export class SimRig {
  readonly bus: SimDynamixelBus;
  readonly can: SimCanBus | null;
  private camera: SimCamera | null = null;
  private server: ControlSocketServer | null = null;
  private readonly t0 = Date.now();
  private readonly sampler: NodeJS.Timeout;
  private score = { n: 0, sum: 0, sumHold: 0, last: 0 };
  private held: number[];

  constructor(private readonly opts: RigOptions) {
    const canBase = (opts.canLink ?? null) !== null;
    const servoIds = canBase ? [2, 3] : [1, 2, 3];
    this.bus = new SimDynamixelBus({ servos: servoIds.map((id) => ({ id, model: 'xm430-w350' })), link: opts.link });
    this.can = canBase ? new SimCanBus([RIG_CAN_BASE]) : null;
    this.held = this.joints();
    this.sampler = setInterval(() => this.sample(), 20);
  }

  async start(log: Logger): Promise<void> {
    if (this.can !== null) await this.can.listen(this.opts.canLink!);
    if (this.opts.cameraPort !== null) {
      // GStreamer's tcpserversink does not fail when its port is taken: it warns every few
      // milliseconds forever and serves nothing. Find out first, and fail saying so.
      await assertPortFree(this.opts.cameraPort);
      this.camera = new SimCamera({ port: this.opts.cameraPort, fps: 30, width: 640, height: 480 }, () => ({ joints: this.joints(), target: this.target() }));
    }
    if (this.opts.socket !== null) {
      this.server = new ControlSocketServer({ path: this.opts.socket, mode: '0600', group: null }, this.commands(), log);
      await this.server.start();
    }
  }

  joints(): number[] {
    const servo = (id: number) => ticksToRad(this.bus.servo(id).positionTicks);
    return [this.can === null ? servo(1) : this.can.position(RIG_CAN_BASE.id), servo(2), servo(3)];
  }

  target(): { x: number; y: number } {
    return targetAt((Date.now() - this.t0) / 1000);
  }

  private sample(): void {
    const t = this.target();
    const ee = endEffector(this.joints());
    const hold = endEffector(this.held);
    const err = Math.hypot(ee.x - t.x, ee.y - t.y);
    this.score.n++;
    this.score.sum += err;
    this.score.sumHold += Math.hypot(hold.x - t.x, hold.y - t.y);
    this.score.last = err;
  }

  task(): TaskScore {
    const s = this.score;
    return { samples: s.n, meanErrorM: s.n ? s.sum / s.n : 0, holdBaselineM: s.n ? s.sumHold / s.n : 0, lastErrorM: s.last };
  }

  /** Starts scoring afresh from now, the baseline holding the arm where it is now. */
  resetTask(): void {
    this.score = { n: 0, sum: 0, sumHold: 0, last: 0 };
    this.held = this.joints();
  }

  private commands(): CommandRegistry<RigCatalog> {
    return new CommandRegistry(RIG_CATALOG).add({
      task: () => this.task(),
      'task.reset': () => (this.resetTask(), null),
      joints: () => this.joints(),
      'servo.fault': ({ id, bits }) => (this.bus.servo(id).injectHardwareError(bits), null),
      'servo.clear': ({ id }) => (this.bus.servo(id).injectHardwareError(0), null),
      'can.fault': ({ id, silent, error, temperatureC }) => {
        const f: { silent?: boolean; error?: number; temperatureC?: number } = {};
        if (silent !== undefined) f.silent = silent;
        if (error !== undefined) f.error = error;
        if (temperatureC !== undefined) f.temperatureC = temperatureC;
        this.needCan().inject(id, f);
        return null;
      },
      'can.clear': ({ id }) => (this.needCan().clear(id), null),
    });
  }

  private needCan(): SimCanBus {
    if (this.can === null) throw new ReflexError('BAD_REQUEST', 'this rig has no CAN motors (start it with --can-link)');
    return this.can;
  }

  async close(): Promise<void> {
    clearInterval(this.sampler);
    this.camera?.close();
    await this.server?.stop();
    await this.can?.close();
    this.bus.close();
  }
}
