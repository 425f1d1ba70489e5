// `reflex motors ...`: the verbs over the Dynamixel tools (motors.ts) and `motors safe` (safe.ts).
import { Argument, type Command } from 'commander';
import { EXIT } from '../core/index.js';
import { motors, type MotorArgs } from './motors.js';
import { motorsSafe } from './safe.js';
import { DEFAULT_CONFIG_PATH, jsonOption, print, readConfig } from './program.js';

type Opts = MotorArgs & { json?: boolean };

function port(cmd: Command, id: boolean, to: string | null): Command {
  cmd.requiredOption('--port <path>', 'the servo bus (e.g. /dev/ttyUSB0, /dev/reflex-dxl0)').option('--baud <b>', 'its baud rate (default 1000000)');
  if (id) cmd.requiredOption('--id <n>', 'the servo\'s id (0..252)');
  if (to !== null) cmd.requiredOption('--to <v>', to);
  return jsonOption(cmd);
}

async function run(verb: string, rest: string[], opts: Opts): Promise<void> {
  const text = await motors(verb, rest, opts);
  print(opts, { verb, ...(opts.id === undefined ? {} : { id: Number(opts.id) }), result: text.trimEnd().split('\n') }, () => text);
}

export function registerMotors(program: Command): void {
  const m = program.command('motors').description('Dynamixel servo tools (they open the bus themselves: stop the daemon first)');
  port(m.command('scan').description('find the servos on a bus (every usual baud unless --baud)'), false, null).action((o: Opts) => run('scan', [], o));
  port(m.command('info').description('model, firmware, mode, torque, errors, position, voltage, temperature of one servo'), true, null).action((o: Opts) => run('info', [], o));
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
