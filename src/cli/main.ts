// The `reflex` command: `reflex run` is the daemon itself; the other verbs are the technician's
// tools, which talk to a running daemon through its control socket.
import { parseArgs } from 'node:util';
import { existsSync } from 'node:fs';
import { DEFAULT_CONFIG_PATH, loadConfig, ConfigError, type Config } from '../config/index.js';
import { EXIT, Logging, acquireInstanceLock, errorMessage, isLogLevel, lockPathFor, LOG_LEVELS, ReflexError } from '../core/index.js';
import { request } from '../api/index.js';
import { formatStatus } from './format.js';
import { motors } from './motors.js';
import { motorsSafe } from './safe.js';
import { simCan, simDynamixel, simRig } from './sim.js';
import { cameraList, cameraSnapshot } from './camera.js';
import { exitAfter } from '../rt/index.js';

const USAGE = `usage: reflex <command> [options]

  run [--config FILE]                 run the daemon (default config ${DEFAULT_CONFIG_PATH})
  status [--json]                     what the running daemon is doing
  log level LEVEL [--module MOD]      change the daemon's log level (${LOG_LEVELS.join(', ')})
  config check FILE                   validate a config file; exit 78 when it is invalid
  motors scan --port PATH [--baud B]  find Dynamixel servos (all usual bauds unless --baud)
  motors info|reboot --port PATH --id N [--baud B]
  motors torque on|off --port PATH --id N [--baud B]
  motors safe [--config FILE]         torque off every servo the config names (what
                                      reflex-safe.service runs when the daemon has died)
  motors set-id|set-baud|set-return-delay|set-mode --port PATH --id N --to V [--baud B]
                                      (EEPROM: torque must be off; modes: position,
                                      extended-position, velocity, current, current-position, pwm)
  camera list [--config FILE]         configured cameras and the video devices present
  camera snapshot NAME FILE           what camera NAME sees now, as a JPEG or PNG
  sim dynamixel [--link PATH] [--ids 1-6] [--model M] [--firmware F]
                                      a simulated servo bus on a pseudo-terminal
  sim can --link PATH [--ids 1-6] [--model ak80-9|dm-j4310|odrive]
                                      simulated CAN motors on a virtual bus socket
                                      (a CAN bus with transport: virtual, interface: PATH)
  sim score [--socket PATH]           the simulated rig's task score (default .run/sim/rig.sock)
  sim rig --link PATH [--can-link PATH] [--camera-port P] [--socket PATH]
                                      the simulated robot: arm (its base a CAN motor on a
                                      virtual bus at --can-link), camera (MJPEG on tcp port P),
                                      moving target, task score and faults on the socket

options for commands that talk to the daemon:
  --socket PATH                       its control socket (else REFLEX_CONTROL_SOCKET, else the config's)
  --config FILE                       read the socket path from this config
`;

function fail(code: number, message: string): never {
  process.stderr.write(`reflex: ${message}\n`);
  process.exit(code);
}

/** The config; `host`: also what it names on this machine (for the daemon and `config check`). */
function readConfig(file: string, host = false): Config {
  try {
    return loadConfig(file, process.env, { host });
  } catch (err) {
    if (err instanceof ConfigError) fail(EXIT.CONFIG, err.message);
    throw err;
  }
}

function socketPath(opts: { socket?: string | undefined; config?: string | undefined }): string {
  if (opts.socket) return opts.socket;
  if (process.env.REFLEX_CONTROL_SOCKET) return process.env.REFLEX_CONTROL_SOCKET;
  const file = opts.config ?? (existsSync(DEFAULT_CONFIG_PATH) ? DEFAULT_CONFIG_PATH : null);
  return file === null ? '/run/reflex/control.sock' : readConfig(file).socket.path;
}

async function runDaemon(configFile: string): Promise<never> {
  const config = readConfig(configFile, true);
  // One daemon per robot, settled before anything opens a bus: a second one must not enable,
  // command or disable the motors the first one drives. Held until the process ends.
  try {
    acquireInstanceLock(lockPathFor(config.socket.path));
  } catch (err) {
    fail(EXIT.FAILURE, errorMessage(err));
  }
  // Loaded here, not at the top: every other verb starts without the daemon's dependencies.
  const { Daemon } = await import('../daemon.js');
  const logging = new Logging({ level: config.log.level, pretty: config.log.pretty });
  const daemon = new Daemon({ config, logging, env: process.env });
  const log = logging.child('daemon');

  for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => daemon.shutdown(sig));
  process.on('SIGHUP', () => log.info('SIGHUP ignored: restart the service to apply a new config'));
  process.on('uncaughtException', (err) => {
    log.fatal({ err: err.stack ?? err.message }, 'uncaught exception');
    daemon.shutdown('uncaught exception', EXIT.FAILURE);
  });
  process.on('unhandledRejection', (err) => {
    log.fatal({ err: errorMessage(err) }, 'unhandled rejection');
    daemon.shutdown('unhandled rejection', EXIT.FAILURE);
  });
  // A stop that overruns every part's bound still ends the process: systemd restarts it, and
  // the servos' own watchdog has already stopped them.
  const hardStopMs = 15_000;
  process.once('SIGTERM', () => {
    if (!exitAfter(hardStopMs, EXIT.FAILURE)) setTimeout(() => process.exit(EXIT.FAILURE), hardStopMs).unref();
  });

  const code = await daemon.run();
  // Every part has stopped or was given up on within its bound; a worker thread given up on
  // (stuck in a system call) would hold process.exit() forever, so _exit follows if it must.
  exitAfter(2000, code);
  process.exit(code);
}

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      socket: { type: 'string' },
      json: { type: 'boolean', default: false },
      module: { type: 'string' },
      port: { type: 'string' },
      baud: { type: 'string' },
      id: { type: 'string' },
      to: { type: 'string' },
      link: { type: 'string' },
      ids: { type: 'string' },
      model: { type: 'string' },
      firmware: { type: 'string' },
      'camera-port': { type: 'string' },
      'can-link': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const [verb, ...rest] = positionals;
  if (values.help || verb === undefined || verb === 'help') {
    process.stdout.write(USAGE);
    process.exit(verb === undefined && !values.help ? EXIT.USAGE : EXIT.OK);
  }

  switch (verb) {
    case 'run':
      return runDaemon(values.config ?? DEFAULT_CONFIG_PATH);
    case 'config': {
      const [sub, file] = rest;
      if (sub !== 'check' || file === undefined) fail(EXIT.USAGE, 'usage: reflex config check FILE');
      const config = readConfig(file, true);
      process.stdout.write(`${file}: ok (device ${config.deviceId}, ${config.robot.joints.length} joints, ${config.buses.length} buses, ${config.cameras.length} cameras)\n`);
      return;
    }
    case 'status': {
      const status = await request(socketPath(values), 'status');
      process.stdout.write(values.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status));
      return;
    }
    case 'log': {
      const [sub, level] = rest;
      if (sub !== 'level' || !isLogLevel(level)) fail(EXIT.USAGE, `usage: reflex log level ${LOG_LEVELS.join('|')} [--module MOD]`);
      const levels = await request(socketPath(values), 'log.level', values.module === undefined ? { level } : { level, module: values.module });
      process.stdout.write(`${JSON.stringify(levels)}\n`);
      return;
    }
    case 'motors': {
      if (rest[0] === 'safe') {
        const r = await motorsSafe(readConfig(values.config ?? DEFAULT_CONFIG_PATH));
        process.stdout.write(r.text);
        if (!r.ok) process.exit(EXIT.FAILURE);
        return;
      }
      process.stdout.write(await motors(rest[0], rest.slice(1), values));
      return;
    }
    case 'camera': {
      const [sub, name, file] = rest;
      const configFile = values.config ?? (existsSync(DEFAULT_CONFIG_PATH) ? DEFAULT_CONFIG_PATH : null);
      const config = configFile === null ? null : readConfig(configFile);
      if (sub === 'list') {
        process.stdout.write(cameraList(config));
        return;
      }
      if (sub !== 'snapshot' || name === undefined || file === undefined) fail(EXIT.USAGE, 'usage: reflex camera list | snapshot NAME FILE [--config FILE]');
      if (config === null) fail(EXIT.USAGE, 'camera snapshot needs a config (--config FILE)');
      process.stdout.write(await cameraSnapshot(name, file, config, socketPath(values)));
      return;
    }
    case 'sim':
      if (rest[0] === 'rig') return simRig(values);
      if (rest[0] === 'can') return simCan(values);
      if (rest[0] === 'score') {
        const t = (await request(values.socket ?? '.run/sim/rig.sock', 'task')) as { samples: number; meanErrorM: number; holdBaselineM: number };
        process.stdout.write(`task error ${(t.meanErrorM * 100).toFixed(1)} cm mean over ${t.samples} samples; holding still would score ${(t.holdBaselineM * 100).toFixed(1)} cm\n`);
        return;
      }
      if (rest[0] !== 'dynamixel') fail(EXIT.USAGE, 'usage: reflex sim dynamixel|can|rig|score ...');
      return simDynamixel(values);
    default:
      fail(EXIT.USAGE, `unknown command "${verb}"\n${USAGE}`);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof ReflexError && err.code === 'BAD_REQUEST') fail(EXIT.USAGE, err.message);
  if (err instanceof ReflexError && (err.disconnected || err.timeout)) fail(EXIT.UNAVAILABLE, err.message);
  if (err instanceof ReflexError) fail(EXIT.FAILURE, err.message);
  if (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS')) fail(EXIT.USAGE, err.message);
  fail(EXIT.FAILURE, errorMessage(err));
});
