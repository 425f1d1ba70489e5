// What every verb of the `reflex` command shares: the options that reach the daemon, reading a
// config, printing text or JSON, and turning a failure into a sysexits status with a message a
// technician can act on. Each verb group registers itself on the program (`register(program)`).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Command, CommanderError } from 'commander';
import type { Config } from '../config/index.js';
import { EXIT, ReflexError, errorMessage } from '../core/index.js';

/** config/load.ts's DEFAULT_CONFIG_PATH, spelt here so that no verb loads the config schema to print its help. */
export const DEFAULT_CONFIG_PATH = '/etc/reflex/reflex.yaml';

/**
 * The config room, loaded when a verb first reads a config (zod and every family's schema: the
 * slowest part of starting the command), synchronously so the helpers below stay plain functions.
 */
function configRoom(): typeof import('../config/index.js') {
  return createRequire(import.meta.url)('../config/index.js') as typeof import('../config/index.js');
}

/** Exit statuses of the command (sysexits.h), beyond the daemon's own. */
export const CLI_EXIT = {
  ...EXIT,
  /** Refused by the daemon's permissions (the caller is not in the group a command needs). */
  NOPERM: 77,
  /** The daemon refused the operation in its current state (reset with nothing to reset...). */
  REFUSED: 1,
} as const;

/** Options of every verb that talks to a running daemon. */
export interface DaemonOptions {
  socket?: string;
  config?: string;
  json?: boolean;
}

/** Adds --socket, --config and --json to a verb that talks to the daemon. */
export function daemonOptions(cmd: Command): Command {
  return cmd
    .option('--socket <path>', 'the daemon\'s control socket (else $REFLEX_CONTROL_SOCKET, else the config\'s)')
    .option('-c, --config <file>', `read the socket path from this config (default ${DEFAULT_CONFIG_PATH} when it exists)`)
    .option('--json', 'print JSON for scripts');
}

/**
 * `reflex -c FILE VERB ...`: --config before the verb too, as `systemctl`-style muscle memory
 * types it. It is handed to the verb's own --config (which wins when both are given); a verb
 * that reads no config refuses it rather than ignoring a file the technician meant to use.
 */
export function globalConfig(program: Command): Command {
  return program.option('-c, --config <file>', 'the config, for every verb that reads one (same as the verb\'s own --config)').hook('preAction', (_program, verb) => {
    const file = program.getOptionValue('config') as string | undefined;
    if (file === undefined) return;
    if (!verb.options.some((o) => o.attributeName() === 'config')) throw new ReflexError('BAD_REQUEST', `\`reflex ${verbPath(verb)}\` reads no config: drop --config ${file}`);
    const own = verb.getOptionValueSource('config');
    if (own === undefined || own === 'default') verb.setOptionValueWithSource('config', file, 'cli');
  });
}

/** `policy start` for the command `start` under `policy`. */
function verbPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** Adds --json alone (verbs that do not need the daemon). */
export function jsonOption(cmd: Command): Command {
  return cmd.option('--json', 'print JSON for scripts');
}

export function fail(code: number, message: string): never {
  process.stderr.write(`reflex: ${message}\n`);
  process.exit(code);
}

/** The config; `host`: also what it names on this machine (for the daemon and `config check`). */
export function readConfig(file: string, host = false): Config {
  const { loadConfig, ConfigError } = configRoom();
  try {
    return loadConfig(file, process.env, { host });
  } catch (err) {
    if (err instanceof ConfigError) fail(EXIT.CONFIG, err.message);
    throw err;
  }
}

/** The config named by --config, else the default one when it exists, else null. */
export function optionalConfig(opts: { config?: string | undefined }): Config | null {
  const file = opts.config ?? (existsSync(DEFAULT_CONFIG_PATH) ? DEFAULT_CONFIG_PATH : null);
  return file === null ? null : readConfig(file);
}

/** Where the daemon listens, and how that was decided (for the hint when it is not there). */
export function socketPath(opts: DaemonOptions): string {
  if (opts.socket) return opts.socket;
  if (process.env.REFLEX_CONTROL_SOCKET) return process.env.REFLEX_CONTROL_SOCKET;
  return optionalConfig(opts)?.socket.path ?? '/run/reflex/control.sock';
}

/** Prints `value` as JSON with --json, else the text. */
export function print(opts: { json?: boolean | undefined }, value: unknown, text: () => string): void {
  process.stdout.write(opts.json ? `${JSON.stringify(value, null, 2)}\n` : text());
}

/** What to do when the daemon cannot be reached; in a checkout where `npm start` runs one, where it is. */
function unavailableHint(): string {
  if (existsSync('.run/control.sock') && existsSync('config/dev.yaml')) return 'a daemon from `npm start` listens at .run/control.sock here: add --config config/dev.yaml';
  return 'is the daemon running? Start it (`systemctl start reflex`; in a checkout, `npm start`), or point at it with --config FILE or --socket PATH';
}

/** The exit status and message for a failure; one table for every verb. */
export function exitFor(err: unknown): { code: number; message: string } {
  if (err instanceof ReflexError) {
    if (err.disconnected || err.timeout) return { code: EXIT.UNAVAILABLE, message: /the daemon/.test(err.message) ? `${err.message}\n${unavailableHint()}` : err.message };
    if (err.code === 'BAD_REQUEST') return { code: EXIT.USAGE, message: err.message };
    if (err.code === 'FORBIDDEN') return { code: CLI_EXIT.NOPERM, message: err.message };
    if (err.code === 'BUS_ERROR' || err.code === 'BUS_FAULT') return { code: EXIT.UNAVAILABLE, message: err.message };
    return { code: CLI_EXIT.REFUSED, message: err.message };
  }
  return { code: EXIT.FAILURE, message: errorMessage(err) };
}

/**
 * The program with the settings every verb inherits (set before any verb is added): usage
 * errors exit 64 with a suggestion for a typo, help and version exit 0.
 */
export function createProgram(): Command {
  return new Command('reflex')
    .description('reflex: the on-robot runtime of a learned robot policy, and the technician\'s tools for it')
    .showSuggestionAfterError(true)
    .showHelpAfterError('(add --help for usage)')
    .exitOverride((err: CommanderError) => {
      process.exit(err.exitCode === 0 ? EXIT.OK : EXIT.USAGE);
    });
}
