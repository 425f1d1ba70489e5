// `reflex motors ...`: the verbs over the Dynamixel tools (motors.ts) and `motors safe` (safe.ts).
import { Argument, type Command } from 'commander';
import { EXIT, ReflexError } from '../core/index.js';
import { motors, type MotorArgs } from './motors.js';
import { motorsSafe } from './safe.js';
import { canMotors, type CanMotorArgs } from './can-motors.js';
import { DEFAULT_CONFIG_PATH, jsonOption, print, readConfig } from './program.js';

type Opts = MotorArgs & { json?: boolean };
type CanOpts = CanMotorArgs & { json?: boolean };

/** The CAN motor options (can-motors.ts); `scan` and `info` take them or --port. */
function canOptions(cmd: Command, id: boolean): Command {
  cmd
    .option('--can <iface>', 'a CAN interface (can0), or the virtual bus socket (with --virtual, or any path)')
    .option('--protocol <p>', 'CAN motors: mit (CubeMars AK, Damiao DM-J) or odrive')
    .option('--model <m>', 'MIT model, for the reply\'s scaling and dialect (default ak80-9)')
    .option('--virtual', 'the simulator\'s virtual CAN bus (`reflex sim can`, `npm start`)')
    .option('--socket <path>', 'the daemon\'s control socket, to check it does not drive the bus')
    .option('-c, --config <file>', 'the daemon\'s config, to tell which interface it drives');
  if (id) cmd.option('--id <n>', 'the motor\'s id (ODrive: node id)');
  return cmd;
}

async function runCan(verb: string, o: CanOpts): Promise<void> {
  const r = await canMotors(verb, o);
  print(o, { verb, result: r.value }, () => r.text);
}

async function runEither(verb: string, o: Opts & CanOpts): Promise<void> {
  if (o.can !== undefined) return runCan(verb, o);
  if (o.port === undefined) throw new ReflexError('BAD_REQUEST', `reflex motors ${verb} needs --port PATH (Dynamixel) or --can IFACE --protocol P (CAN motors)`);
  return run(verb, [], o);
}

function port(cmd: Command, id: boolean, to: string | null, either = false): Command {
  cmd[either ? 'option' : 'requiredOption']('--port <path>', 'the servo bus (e.g. /dev/ttyUSB0, /dev/reflex-dxl0)').option('--baud <b>', 'its baud rate (default 1000000)');
  if (id && !either) cmd.requiredOption('--id <n>', 'the servo\'s id (0..252)');
  if (to !== null) cmd.requiredOption('--to <v>', to);
  return jsonOption(cmd);
}

async function run(verb: string, rest: string[], opts: Opts): Promise<void> {
  const text = await motors(verb, rest, opts);
  print(opts, { verb, ...(opts.id === undefined ? {} : { id: Number(opts.id) }), result: text.trimEnd().split('\n') }, () => text);
}

export function registerMotors(program: Command): void {
  const m = program.command('motors').description('Dynamixel servo and CAN motor tools (they open the bus themselves: stop the daemon first)');
  port(canOptions(m.command('scan'), false), false, null, true)
    .description('find the servos on a bus (every usual baud unless --baud), or the CAN motors that answer (--can; nothing is enabled or moved)')
    .option('--ids <ids>', 'CAN: ids to try, e.g. 1-32 (default 1-32; ODrive 0-63)')
    .option('--allow-enable', 'CAN MIT: ask motors silent to the query with enter+exit motor mode (CubeMars reads state only so)')
    .action((o: Opts & CanOpts) => runEither('scan', o));
  port(canOptions(m.command('info'), true), true, null, true)
    .description('one servo: model, firmware, mode, torque, errors, position, voltage, temperature; or one CAN motor (--can): position, velocity, torque, temperature, errors')
    .action((o: Opts & CanOpts) => runEither('info', o));
  for (const [verb, what] of [
    ['enable', 'a CAN motor: MIT motor mode with no torque until commanded; ODrive closed loop holding where it is'],
    ['disable', 'a CAN motor: leave motor mode / axis idle (the joint goes limp)'],
    ['zero', 'a CAN motor\'s present position becomes zero (MIT; refused while enabled)'],
  ] as const) {
    jsonOption(canOptions(m.command(verb).description(what), false).requiredOption('--id <n>', 'the motor\'s id (ODrive: node id)'))
      .action((o: CanOpts) => runCan(verb, o));
  }
  port(m.command('reboot').description('reboot one servo (clears its hardware error)'), true, null).action((o: Opts) => run('reboot', [], o));
  port(m.command('torque').description('torque on (holding where it is) or off (the joint goes limp)').addArgument(new Argument('<state>').choices(['on', 'off'])), true, null)
    .action((state: string, o: Opts) => run('torque', [state], o));
  const eeprom = 'EEPROM: torque must be off';
  port(m.command('set-id').description(`give a servo a new id (${eeprom})`), true, 'the new id').action((o: Opts) => run('set-id', [], o));
  port(m.command('set-baud').description(`change a servo's baud rate (${eeprom})`), true, 'the new baud rate').action((o: Opts) => run('set-baud', [], o));
  port(m.command('set-return-delay').description(`a servo's return delay in us (${eeprom})`), true, 'microseconds, 0..508').action((o: Opts) => run('set-return-delay', [], o));
  port(m.command('set-mode').description(`a servo's operating mode (${eeprom})`), true, 'position, extended-position, velocity, current, current-position or pwm')
    .action((o: Opts) => run('set-mode', [], o));
  jsonOption(
    m
      .command('safe')
      .description('torque off every motor the config names (what reflex-safe.service runs when the daemon has died)')
      .option('-c, --config <file>', 'the config', DEFAULT_CONFIG_PATH),
  ).action(async (o: { config: string; json?: boolean }) => {
    const r = await motorsSafe(readConfig(o.config));
    print(o, { ok: r.ok, result: r.text.trimEnd().split('\n') }, () => r.text);
    if (!r.ok) process.exit(EXIT.FAILURE);
  });
}
