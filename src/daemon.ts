// The composition root: builds every part from the config, starts them in order, stops them
// in reverse (motors made safe first), and turns the outcome into an exit status.
import type { Config } from './config/index.js';
import { EXIT, Lifecycle, errorMessage, isLogLevel, LOG_LEVELS, ReflexError, type Logging, type Part } from './core/index.js';
import { ControlLoop, controlConfigFrom, loopHeadline } from './control/index.js';
import { CommandRegistry, ControlSocketServer, numberArg, stringArg } from './cli/index.js';
import { SystemdNotifier, nativeUnavailableReason, monoMs, type NotifySend } from './rt/index.js';
import { PolicyRuntime, imageSpecs, loadBundle, type PolicyStatus } from './policy/index.js';
import { VisionRuntime, type CameraStatus, type ImageSpec } from './hardware/camera/index.js';
import { FleetLink, LogShipper, type FleetStatus } from './fleet/index.js';

/** How often the loop's numbers go to the log. */
const STATS_LOG_MS = 60_000;

export interface DaemonDeps {
  config: Config;
  logging: Logging;
  env: NodeJS.ProcessEnv;
  /** How sd_notify messages are sent; the native addon unless a test substitutes one. */
  notifySend?: NotifySend;
  /** Bound on each part's stop. */
  stopTimeoutMs?: number;
}

export interface DaemonStatus {
  deviceId: string;
  pid: number;
  uptimeS: number;
  loop: ReturnType<ControlLoop['status']>;
  policy: PolicyStatus;
  cameras: CameraStatus[];
  fleet: FleetStatus | { state: 'disabled' };
  faults: string[];
  nativeAddon: { available: boolean; reason: string | null };
  logLevels: Record<string, string>;
}

export class Daemon {
  readonly loop: ControlLoop;
  readonly policy: PolicyRuntime;
  readonly vision: VisionRuntime;
  readonly fleet: FleetLink | null;
  readonly commands = new CommandRegistry();
  private readonly lifecycle: Lifecycle;
  private readonly notifier: SystemdNotifier;
  private readonly startedMs = monoMs();
  private watchdogTimer: NodeJS.Timeout | null = null;
  private exitCode: number = EXIT.OK;
  private resolveDone!: (code: number) => void;
  private readonly done = new Promise<number>((r) => (this.resolveDone = r));
  private shuttingDown = false;
  /** policy.stop was asked: the boot policy does not start by itself after it. */
  private holdAsked = false;

  constructor(private readonly deps: DaemonDeps) {
    const { config, logging } = deps;
    this.notifier = new SystemdNotifier(deps.env, deps.notifySend);
    this.loop = new ControlLoop(controlConfigFrom(config), { stallMs: config.control.stallMs }, logging.child('control'));
    this.loop.on('died', (err: Error) => {
      logging.child('daemon').fatal({ err: err.message }, 'control loop died; stopping so systemd restarts reflex');
      this.shutdown('control loop died', EXIT.FAILURE);
    });
    this.vision = new VisionRuntime(config.cameras, startupSpecs(config.policy.bundle), logging.child('camera'));
    this.policy = new PolicyRuntime(
      {
        bundle: config.policy.bundle,
        onnxruntimePath: config.policy.onnxruntimePath,
        providers: config.policy.providers,
        stateDir: config.paths.stateDir,
        robot: { rateHz: config.control.rateHz, joints: config.robot.joints.map((j) => j.name), cameras: config.cameras.map((c) => c.name) },
        frames: this.vision.sources.map((f) => ({ name: f.name, buffer: f.buffer, height: f.spec.height, width: f.spec.width, maxAgeMs: f.maxAgeMs })),
      },
      this.loop.buffers,
      logging.child('policy'),
    );
    // The loop starts in hold; the policy configured at boot takes over with a soft start once
    // it is ready and the cameras it looks through are streaming (or after a bound: then the
    // loop holds and reports, rather than wait forever). Only that one, and only if nobody held
    // the robot meanwhile (an e-stop, a fault, policy.stop): after a deliberate hold, and for
    // any policy activated or rolled back to later, only an explicit policy.start moves the arm.
    this.policy.onReady((_info, cause) => {
      if (cause !== 'boot' || !config.policy.autostart) return;
      const undisturbed = () => {
        const s = this.loop.status();
        return !this.holdAsked && s.mode === 'hold' && s.safety.estops === 0 && s.safety.faults === 0;
      };
      void this.camerasStreaming(10_000)
        .then(() => (undisturbed() && !this.shuttingDown ? this.loop.startPolicy() : undefined))
        .catch(() => undefined);
    });
    const socket = new ControlSocketServer(config.socket, this.commands, logging.child('socket'));
    this.registerCommands();
    this.fleet = config.fleet.enabled && config.fleet.url !== null ? this.fleetLink(config.fleet.url) : null;
    const parts: Part[] = [this.loop, this.vision, this.policy, socket, ...(this.fleet ? [this.fleet] : []), this.healthPart()];
    this.lifecycle = new Lifecycle(parts, logging.child('lifecycle'), { stopTimeoutMs: deps.stopTimeoutMs ?? 3000 });
  }

  /** Starts everything, reports READY=1, and resolves with the exit status once stopped. */
  async run(): Promise<number> {
    const log = this.deps.logging.child('daemon');
    try {
      await this.lifecycle.start();
    } catch (err) {
      log.fatal({ err: errorMessage(err) }, 'start failed');
      return EXIT.FAILURE;
    }
    if (this.shuttingDown) return this.done;
    this.notifier.ready(this.summary());
    log.info({ deviceId: this.deps.config.deviceId, socket: this.deps.config.socket.path }, 'reflex is running');
    return this.done;
  }

  /** Stops everything (idempotent): STOPPING=1, motors safe, parts in reverse. */
  shutdown(reason: string, exitCode: number = EXIT.OK): void {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    this.exitCode = exitCode;
    const log = this.deps.logging.child('daemon');
    log.info({ reason }, 'stopping');
    this.notifier.stopping(`stopping: ${reason}`);
    void this.lifecycle.stop().then((clean) => {
      if (!clean && this.exitCode === EXIT.OK) this.exitCode = EXIT.FAILURE;
      log.info({ exitCode: this.exitCode }, 'stopped');
      this.resolveDone(this.exitCode);
    });
  }

  /** The fleet link: telemetry from status, warnings and errors and loop faults as events. */
  private fleetLink(url: string): FleetLink {
    const { config, logging } = this.deps;
    const f = config.fleet;
    const link = new FleetLink(
      {
        deviceId: config.deviceId,
        url,
        username: f.username,
        passwordFile: f.passwordFile,
        caFile: f.caFile,
        certFile: f.certFile,
        keyFile: f.keyFile,
        telemetryHz: f.telemetryHz,
        stateDir: config.paths.stateDir,
        maxOutbox: f.outboxMax,
        maxOutboxBytes: f.outboxMaxBytes,
        drainPerSecond: f.drainPerSecond,
      },
      this.commands,
      () => this.telemetry(),
      logging.child('fleet'),
    );
    const shipper = new LogShipper((log) => void link.event('log', log).catch(() => undefined));
    const minLevel = { warn: 40, error: 50, fatal: 60 }[f.shipLogLevel];
    logging.setTap((record) => {
      // The fleet link's own complaints about the broker would only queue behind the outage.
      if (record.mod !== 'fleet' && Number(record.level) >= minLevel) shipper.take(record);
    });
    this.loop.on('fault', (reason: string) => void link.event('fault', { reason }).catch(() => undefined));
    return link;
  }

  /** One telemetry record: loop timing, motors, inference, policy version, cameras. */
  private telemetry(): object {
    const l = this.loop.status();
    const p = this.policy.status();
    return {
      loop: { mode: l.mode, hz: l.rateHz, latenessUs: l.latenessUs, tickUs: { p50: l.tickDurationUs.p50, p99: l.tickDurationUs.p99, max: l.tickDurationUs.max }, missed: l.missedDeadlines, overruns: l.overruns, starved: l.starvedTicks, faults: l.safety.faults, busFailedReads: l.bus.failedReads, canLoadPct: l.bus.loadPct },
      motors: this.loop.motors(),
      inference: { meanMs: p.inference.meanMs, p99Ms: p.inference.p99Ms, errors: p.inference.errors },
      policy: p.active ? { name: p.active.name, version: p.active.version, provider: p.active.provider } : null,
      cameras: this.vision.status().map((c) => ({ name: c.name, state: c.state, fps: c.fps, ageMs: c.ageMs })),
    };
  }

  private async camerasStreaming(timeoutMs: number): Promise<void> {
    const until = monoMs() + timeoutMs;
    while (this.vision.status().some((c) => c.state !== 'streaming') && monoMs() < until && !this.shuttingDown) {
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  status(): DaemonStatus {
    const loop = this.loop.status();
    const faults: string[] = [];
    if (!loop.healthy && loop.state !== 'stopped') faults.push('control loop stalled');
    if (loop.fault !== null) faults.push(loop.fault);
    if (loop.mode === 'estop') faults.push('e-stop engaged (reset to clear)');
    const reason = nativeUnavailableReason();
    return {
      deviceId: this.deps.config.deviceId,
      pid: process.pid,
      uptimeS: Math.round((monoMs() - this.startedMs) / 100) / 10,
      loop,
      policy: this.policy.status(),
      cameras: this.vision.status(),
      fleet: this.fleet?.status() ?? { state: 'disabled' },
      faults,
      nativeAddon: { available: reason === null, reason },
      logLevels: this.deps.logging.levels(),
    };
  }

  /** One line for systemctl status (STATUS=). */
  summary(): string {
    const s = this.loop.status();
    const health = !s.healthy ? 'STALLED' : s.mode === 'fault' ? 'FAULT' : s.mode === 'estop' ? 'ESTOP' : s.mode;
    const p = this.policy.status();
    const policy = p.active ? `${p.active.name} ${p.active.version} on ${p.active.provider}` : p.state;
    return `${health} ${loopHeadline(s)}, policy ${policy}, fleet ${this.fleet?.status().state ?? 'disabled'}`;
  }

  /**
   * Feeds the systemd watchdog only while the loop ticks, so a stuck loop gets reflex
   * restarted; keeps STATUS= current; and logs the loop's numbers once a minute.
   */
  private healthPart(): Part {
    const log = this.deps.logging.child('control');
    let lastLog = monoMs();
    return {
      name: 'systemd-health',
      start: () => {
        const every = Math.min(this.notifier.watchdogIntervalMs ?? 1000, 1000);
        this.watchdogTimer = setInterval(() => {
          if (this.loop.healthy()) this.notifier.watchdog();
          this.notifier.status(this.summary());
          if (monoMs() - lastLog >= STATS_LOG_MS) {
            lastLog = monoMs();
            const s = this.loop.status();
            log.info({ mode: s.mode, hz: s.rateHz, latenessUs: s.latenessUs, tickUs: s.tickDurationUs, missed: s.missedDeadlines, overruns: s.overruns, starved: s.starvedTicks, safety: s.safety, bus: s.bus, gc: s.gcEvents }, 'loop');
          }
        }, every);
        return Promise.resolve();
      },
      stop: () => {
        if (this.watchdogTimer !== null) clearInterval(this.watchdogTimer);
        this.watchdogTimer = null;
        return Promise.resolve();
      },
    };
  }

  private registerCommands(): void {
    const { logging, config } = this.deps;
    this.commands.register('status', { summary: 'uptime, loop, policy, faults, fleet link', run: () => this.status() });
    this.commands.register('ping', { summary: 'answers pong', run: () => 'pong' });
    this.commands.register('estop', {
      summary: 'e-stop: hold (or torque off) where the arm is, latched until reset',
      run: async () => {
        await this.loop.estop();
        return { mode: this.loop.mode };
      },
    });
    this.commands.register('reset', {
      summary: 'clear e-stop or a fault; the loop goes back to hold',
      run: async () => {
        await this.loop.reset();
        return { mode: this.loop.mode };
      },
    });
    this.commands.register('policy.activate', {
      summary: 'load a policy bundle {path}, warm it up, and swap it in at a chunk boundary',
      run: async (args) => {
        // A policy running keeps running, on the new one; a robot held stays held (policy.start moves it).
        return await this.policy.activate(stringArg(args, 'path'));
      },
    });
    this.commands.register('policy.rollback', {
      summary: 'swap back to the previous policy (the one rolled back from is released); the mode is kept',
      run: () => this.policy.rollback(),
    });
    this.commands.register('policy.start', {
      summary: 'run the active policy (soft start from hold)',
      run: async () => {
        await this.loop.startPolicy();
        return { mode: this.loop.mode };
      },
    });
    this.commands.register('policy.stop', {
      summary: 'stop acting on the policy: hold where the arm is',
      run: async () => {
        this.holdAsked = true;
        await this.loop.stopPolicy();
        return { mode: this.loop.mode };
      },
    });
    this.commands.register('camera.snapshot', {
      summary: 'the newest frame of camera {name}, as base64 JPEG',
      run: async (args) => ({ jpeg: Buffer.from(await this.vision.snapshot(stringArg(args, 'name'))).toString('base64') }),
    });
    this.commands.register('log.level', {
      summary: 'set the log level: {level, module?}',
      run: (args) => {
        const level = stringArg(args, 'level', LOG_LEVELS);
        if (!isLogLevel(level)) throw new ReflexError('BAD_REQUEST', 'bad level');
        const mod = args.module === undefined ? undefined : stringArg(args, 'module');
        logging.setLevel(level, mod);
        return logging.levels();
      },
    });
    if (config.debug.faultInjection) {
      this.commands.register('debug.policy.slowLoad', {
        summary: 'fault injection: the next policy load blocks its thread for {ms}, as a large model or a TensorRT build does',
        run: (args) => (this.policy.slowNextLoad(numberArg(args, 'ms', 1, 600_000)), null),
      });
      this.commands.register('debug.policy.stall', {
        summary: 'fault injection: the policy answers nothing for {ms}',
        run: (args) => (this.policy.stall(numberArg(args, 'ms', 1, 60_000)), null),
      });
      this.commands.register('debug.stall', {
        summary: 'fault injection: block the control loop for {ms}',
        run: async (args) => {
          await this.loop.stall(numberArg(args, 'ms', 1, 60_000));
          return null;
        },
      });
    }
  }
}

/**
 * Pre-processing sizes for the cameras, from the policy configured at start. Frames are sized
 * once; a policy swapped in later must want the same sizes (the swap says so if not).
 */
function startupSpecs(bundle: string | null): Map<string, ImageSpec> {
  if (bundle === null) return new Map();
  try {
    return imageSpecs(loadBundle(bundle));
  } catch {
    return new Map(); // the policy runtime reports the bundle's problem when it loads it
  }
}
