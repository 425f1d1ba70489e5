// `reflex run` (the daemon), `config check`, `status` and `log level`.
import { Argument, type Command } from 'commander';
import { EXIT, Logging, acquireInstanceLock, errorMessage, lockPathFor, LOG_LEVELS } from '../core/index.js';
import { request } from '../api/wire.js';
import { formatStatus } from './format.js';
import { DEFAULT_CONFIG_PATH, daemonOptions, fail, jsonOption, print, readConfig, socketPath, type DaemonOptions } from './program.js';

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
  const { exitAfter } = await import('../rt/index.js');
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

export function registerDaemonVerbs(program: Command): void {
  program
    .command('run')
    .description('run the daemon')
    .option('-c, --config <file>', 'the config', DEFAULT_CONFIG_PATH)
    .action((opts: { config: string }) => runDaemon(opts.config));

  const config = program.command('config').description('work with config files');
  jsonOption(config.command('check').description('validate a config file; exit 78 when it is invalid').argument('<file>')).action((file: string, opts: { json?: boolean }) => {
    const c = readConfig(file, true);
    const summary = { file, deviceId: c.deviceId, joints: c.robot.joints.length, buses: c.buses.length, cameras: c.cameras.length };
    print(opts, summary, () => `${file}: ok (device ${c.deviceId}, ${summary.joints} joints, ${summary.buses} buses, ${summary.cameras} cameras)\n`);
  });

  daemonOptions(program.command('status').description('what the running daemon is doing')).action(async (opts: DaemonOptions) => {
    const status = await request(socketPath(opts), 'status');
    print(opts, status, () => formatStatus(status));
  });

  const log = program.command('log').description('the daemon\'s logging');
  daemonOptions(
    log
      .command('level')
      .description('change the daemon\'s log level, for every module or one')
      .addArgument(new Argument('<level>').choices(LOG_LEVELS))
      .option('--module <mod>', 'only this module (e.g. control, policy, fleet)'),
  ).action(async (level: (typeof LOG_LEVELS)[number], opts: DaemonOptions & { module?: string }) => {
    const levels = await request(socketPath(opts), 'log.level', opts.module === undefined ? { level } : { level, module: opts.module });
    print(opts, levels, () => `${JSON.stringify(levels)}\n`);
  });
}
