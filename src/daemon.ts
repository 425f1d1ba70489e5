// The composition root: builds every part from the config, starts them in order, stops them
// in reverse (motors made safe first), and turns the outcome into an exit status. Status,
// telemetry, the STATUS= line and the command surface are composed from what the parts report.
import { join } from 'node:path';
import type { Config } from './config/index.js';
import { EXIT, Lifecycle, Report, errorMessage, groupIdOf, versions, type Logging, type Part, type Reporter, type Versions } from './core/index.js';
import { ControlLoop, controlConfigFrom } from './control/index.js';
import { CATALOG, CommandRegistry, ControlSocketServer, FaultHistory, describeOrigin, type AccessOptions, type DaemonCatalog, type DaemonHandlers, type DaemonStatus } from './api/index.js';
import { SystemdNotifier, nativeUnavailableReason, monoMs, type NotifySend } from './rt/index.js';
import { PolicyRuntime, imageSpecs, loadBundle } from './policy/index.js';
import { VisionRuntime, type ImageSpec } from './hardware/camera/index.js';
import { FleetLink, LogShipper } from './fleet/index.js';
import { Updater, parseDesired, topics } from './ota/index.js';
import { Recorder, Uploader, defaultRecordDir, uploadTopics } from './record/index.js';

export type { DaemonStatus } from './api/index.js';

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

/** Feeds the systemd watchdog; reports how often. */
type HealthPart = Part & { status(): { watchdogMs: number | null } };

/** Stands in for the fleet link in status and STATUS= when the config turns it off. */
const FLEET_DISABLED = {
  name: 'fleet',
  status: () => ({ state: 'disabled' as const }),
  headline: () => 'fleet disabled',
} satisfies Reporter;

/** Stands in for the update engine when the config turns it off (ota.enabled: false). */
const OTA_DISABLED = {
  name: 'ota',
  status: () => ({ state: 'disabled' as const }),
} satisfies Reporter;

export class Daemon {
  readonly loop: ControlLoop;
  readonly policy: PolicyRuntime;
  readonly vision: VisionRuntime;
  readonly fleet: FleetLink | null;
  readonly updater: Updater | null;
  readonly recorder: Recorder;
  readonly commands: CommandRegistry<DaemonCatalog>;
  private readonly lifecycle: Lifecycle;
  private readonly report: Report<{
    loop: ControlLoop;
    policy: PolicyRuntime;
    cameras: VisionRuntime;
    fleet: FleetLink | typeof FLEET_DISABLED;
    ota: Updater | typeof OTA_DISABLED;
    record: Recorder;
    socket: ControlSocketServer;
    systemd: HealthPart;
  }>;
  private readonly notifier: SystemdNotifier;
  private readonly startedMs = monoMs();
  private watchdogTimer: NodeJS.Timeout | null = null;
  private exitCode: number = EXIT.OK;
  private resolveDone!: (code: number) => void;
  private readonly done = new Promise<number>((r) => (this.resolveDone = r));
  private shuttingDown = false;
  /** policy.stop was asked: the boot policy does not start by itself after it. */
  private holdAsked = false;
  /** Recent faults and e-stops, and what cleared them (`reflex faults`). */
  readonly faultHistory = new FaultHistory();
  private readonly versions: Versions = versions();

  constructor(private readonly deps: DaemonDeps) {
    const { config, logging } = deps;
    this.notifier = new SystemdNotifier(deps.env, deps.notifySend);
    this.loop = new ControlLoop(controlConfigFrom(config), { stallMs: config.control.stallMs }, logging.child('control'));
    this.loop.on('died', (err: Error) => {
      logging.child('daemon').fatal({ err: err.message }, 'control loop died; stopping so systemd restarts reflex');
      this.shutdown('control loop died', EXIT.FAILURE);
    });
    // The committed policy (persisted by the update engine) boots, not the config's: the
    // config's bundle is only the first boot's.
    this.updater = config.ota.enabled ? this.makeUpdater() : null;
    const boot = this.updater?.bootPolicies(config.policy.bundle) ?? { bundle: config.policy.bundle, previous: null };
    // Raw frames (for the recorder's videos) are published only while it records.
    this.vision = new VisionRuntime(config.cameras, startupSpecs(boot.bundle), logging.child('camera'), { raw: config.record.enabled });
    this.policy = new PolicyRuntime(
      {
        bundle: boot.bundle,
        previous: boot.previous,
        onnxruntimePath: config.policy.onnxruntimePath,
        providers: config.policy.providers,
        stateDir: config.paths.stateDir,
        robot: { rateHz: config.control.rateHz, joints: config.robot.joints.map((j) => j.name), cameras: config.cameras.map((c) => c.name) },
        frames: this.vision.sources.map((f) => ({ name: f.name, buffer: f.buffer, height: f.spec.height, width: f.spec.width, maxAgeMs: f.maxAgeMs })),
        task: config.policy.task,
        seed: config.policy.seed,
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
    this.recorder = this.makeRecorder();
    this.recorder.followPolicyTask(config.policy.task);
    this.commands = new CommandRegistry(CATALOG, { debug: config.debug.faultInjection });
    const socket = new ControlSocketServer({ ...config.socket, access: accessOptions(config.control.operatorGroup, logging) }, this.commands, logging.child('socket'));
    this.loop.on('fault', (reason: string) => this.faultHistory.add('fault', reason));
    this.fleet = config.fleet.enabled && config.fleet.url !== null ? this.fleetLink(config.fleet.url) : null;
    this.updater?.attach({ runtime: this.policy, loop: this.loop });
    if (this.updater && this.fleet) this.followUpdates(this.updater, this.fleet);
    const uploader = this.fleet ? this.makeUploader(this.fleet) : null;
    const health = this.healthPart();
    // Status shows the parts under these keys, in this order; STATUS= and telemetry follow it.
    this.report = new Report({ loop: this.loop, policy: this.policy, cameras: this.vision, fleet: this.fleet ?? FLEET_DISABLED, ota: this.updater ?? OTA_DISABLED, record: this.recorder, socket, systemd: health });
    this.commands.add(this.ownCommands());
    for (const part of [this.loop, this.policy, this.vision]) this.commands.add(this.noteHolds(this.throughUpdates(part.api())));
    this.commands.add(this.updateCommands());
    this.commands.add(this.recorder.api());
    // The update engine recovers an interrupted update before the fleet can send a new one.
    const parts: Part[] = [this.loop, this.vision, this.policy, this.recorder, ...(this.updater ? [this.updater] : []), socket, ...(this.fleet ? [this.fleet] : []), ...(uploader ? [uploader] : []), health];
    this.lifecycle = new Lifecycle(parts, logging.child('lifecycle'), { stopTimeoutMs: deps.stopTimeoutMs ?? 3000 });
  }

  /** Starts everything, reports READY=1, and resolves with the exit status once stopped. */
  async run(): Promise<number> {
    const log = this.deps.logging.child('daemon');
    try {
      await this.lifecycle.start();
    } catch (err) {
      // Stopped while starting (SIGTERM, `systemctl stop`): that is a stop, with its exit status.
      if (this.shuttingDown) return this.done;
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
      () => this.report.telemetry(),
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

  /**
   * The update engine, or none when its directory cannot be made or read (a failing disk):
   * the robot then runs on the config's policy without updates, and says why, rather than not
   * start.
   */
  private makeUpdater(): Updater | null {
    const { config, logging } = this.deps;
    try {
      return new Updater(
        {
          deviceId: config.deviceId,
          stateDir: config.paths.stateDir,
          settings: config.ota,
          robotType: config.robot.name,
          limits: config.robot.joints.map((j) => j.limits),
        },
        logging.child('ota'),
      );
    } catch (err) {
      logging.child('ota').error({ err: errorMessage(err) }, 'updates disabled: the update directory cannot be used');
      return null;
    }
  }

  /**
   * The desired policy (the device's own document and its group's) goes to the update engine;
   * its job reports go out retained. A document that cannot be read is logged, never acted on.
   */
  private followUpdates(updater: Updater, link: FleetLink): void {
    const log = this.deps.logging.child('ota');
    const follow = (payload: Buffer) => {
      if (payload.length === 0) return; // a retained document cleared
      const r = parseDesired(payload);
      if (r.ok) updater.desired(r.doc);
      else log.warn({ err: r.reason }, 'desired policy document refused');
    };
    link.watch(topics.desired(this.deps.config.deviceId), follow);
    const group = this.deps.config.ota.group;
    if (group !== null) link.watch(topics.groupDesired(group), follow);
    updater.onReport((topic, report) => link.publishRetained(topic, report));
  }

  /**
   * With an update engine, the technician's policy.activate and policy.rollback go through it
   * (the same shadow run, trial and rollback as a fleet update) instead of the bare swap.
   */
  private throughUpdates(handlers: DaemonHandlers): DaemonHandlers {
    if (this.updater === null) return handlers;
    const { 'policy.activate': _a, 'policy.rollback': _r, ...rest } = handlers;
    return rest;
  }

  /** ota.status and ota.cancel, and the technician's swaps through the update engine. */
  private updateCommands(): DaemonHandlers {
    const u = this.updater;
    if (u === null) return { 'ota.status': () => ({ state: 'disabled' as const }), 'ota.cancel': () => null };
    return {
      'ota.status': () => u.status(),
      'ota.cancel': ({ jobId }) => u.cancel(jobId),
      'policy.activate': ({ path }) => u.activateLocal(path),
      'policy.rollback': () => u.rollback(),
    };
  }

  /**
   * Store and forward: the recorder's committed episodes go to object storage through the URLs
   * the fleet grants. None without record.upload.origins (a robot uploads nowhere it was not told).
   */
  private makeUploader(link: FleetLink): Uploader | null {
    const { config, logging } = this.deps;
    const u = config.record.upload;
    if (!config.record.enabled || u.origins.length === 0) return null;
    const id = config.deviceId;
    const dir = join(this.recorder.dir, '.reflex', 'uploads');
    const log = logging.child('uploads');
    let uploader: Uploader | null = null;
    const source = this.recorder.uploadSource(() => uploader!.status());
    uploader = new Uploader(
      { deviceId: id, dir, origins: u.origins, maxBytesPerS: u.maxKBps * 1024 },
      source,
      {
        publishPending: (doc) => link.publishRetained(uploadTopics.pending(id), doc),
        event: (kind, data) => void link.event(kind, data).catch((err: unknown) => log.warn({ err: errorMessage(err), kind }, 'upload event not stored')),
      },
      log,
    );
    link.watch(uploadTopics.grant(id), (payload) => uploader.onGrant(payload));
    return uploader;
  }

  /** The flywheel recorder: the loop's tick records and the recorded cameras' raw frames. */
  private makeRecorder(): Recorder {
    const { config, logging } = this.deps;
    const r = config.record;
    const wanted = r.cameras ?? config.cameras.map((c) => c.name);
    // The policy an episode is recorded under: the active one, else the last that became ready.
    let ready: { name: string; version: string } | null = null;
    this.policy.onReady((info) => (ready = { name: info.name, version: info.version }));
    return new Recorder(
      {
        dir: r.dir ?? defaultRecordDir(config.paths.stateDir),
        fps: r.fps ?? config.control.rateHz,
        rateHz: config.control.rateHz,
        robotType: config.robot.name,
        joints: config.robot.joints.map((j) => j.name),
        cameras: this.vision.raw.filter((c) => wanted.includes(c.name)),
        rawWanted: this.vision.rawWanted,
        task: r.task,
        maxDiskMb: r.maxDiskMb,
        minFreeMb: r.minFreeMb,
        highlightS: r.highlightS,
        disabled: r.enabled ? null : 'record.enabled is false in the config',
      },
      this.loop.ticks,
      () => {
        const active = this.policy.status().active;
        return active === null ? ready : { name: active.name, version: active.version };
      },
      logging.child('record'),
    );
  }

  private async camerasStreaming(timeoutMs: number): Promise<void> {
    const until = monoMs() + timeoutMs;
    while (this.vision.status().some((c) => c.state !== 'streaming') && monoMs() < until && !this.shuttingDown) {
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  status(): DaemonStatus {
    const reason = nativeUnavailableReason();
    return {
      deviceId: this.deps.config.deviceId,
      pid: process.pid,
      uptimeS: Math.round((monoMs() - this.startedMs) / 100) / 10,
      ...this.report.status(),
      faults: this.report.faults(),
      nativeAddon: { available: reason === null, reason },
      logLevels: this.deps.logging.levels(),
      versions: this.versions,
      joints: this.loop.motors(),
    };
  }

  /** One line for systemctl status (STATUS=). */
  summary(): string {
    return this.report.headline();
  }

  /**
   * Feeds the systemd watchdog only while the loop ticks, so a stuck loop gets reflex
   * restarted; keeps STATUS= current; and logs the loop's numbers once a minute.
   */
  private healthPart(): HealthPart {
    const log = this.deps.logging.child('control');
    let lastLog = monoMs();
    return {
      name: 'systemd-health',
      status: () => ({ watchdogMs: this.notifier.watchdogIntervalMs }),
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

  /** The daemon's own commands: its status, a ping, the log level. */
  private ownCommands(): DaemonHandlers {
    const { logging } = this.deps;
    return {
      status: () => this.status(),
      ping: () => 'pong',
      faults: ({ limit }) => this.faultHistory.view(limit),
      logs: ({ since, limit }) => logging.recentLines(since, limit),
      'log.level': ({ level, module }) => {
        logging.setLevel(level, module);
        return logging.levels();
      },
    };
  }

  /**
   * policy.stop is a deliberate hold: the boot policy must not start by itself after it (see
   * the autostart above), so the daemon notes it before the loop is asked.
   */
  private noteHolds(handlers: DaemonHandlers): DaemonHandlers {
    const { 'policy.stop': stop, estop, reset } = handlers;
    const out = { ...handlers };
    if (stop !== undefined) {
      out['policy.stop'] = (args, origin) => {
        this.holdAsked = true;
        return stop(args, origin);
      };
    }
    // The fault history records who e-stopped and who cleared what.
    if (estop !== undefined) {
      out.estop = async (args, origin) => {
        const r = await estop(args, origin);
        this.faultHistory.add('estop', `e-stop by ${describeOrigin(origin)}`);
        return r;
      };
    }
    if (reset !== undefined) {
      out.reset = async (args, origin) => {
        const r = await reset(args, origin);
        this.faultHistory.clear(`reset by ${describeOrigin(origin)}`);
        return r;
      };
    }
    // The recorder records each episode under the task the policy was given.
    const task = handlers['policy.task'];
    if (task !== undefined) {
      out['policy.task'] = async (args, origin) => {
        const r = await task(args, origin);
        this.recorder.followPolicyTask(r.task);
        return r;
      };
    }
    return out;
  }
}

/** Who may move the robot through the socket: the operator group's gid, when it exists here. */
function accessOptions(group: string | null, logging: Logging): AccessOptions {
  let gid: number | null = null;
  try {
    gid = group === null ? null : groupIdOf(group);
  } catch {
    gid = null;
  }
  if (group !== null && gid === null) logging.child('socket').warn({ operatorGroup: group }, 'operator group does not exist: only root and the daemon\'s user may send commands that move the robot');
  return { operatorGid: gid, operatorGroup: group, ownUid: process.getuid?.() ?? 0 };
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
