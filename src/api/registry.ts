import { ReflexError } from '../core/index.js';

/** A command of the control socket. `run` validates its own args and throws BAD_REQUEST on bad ones. */
export interface Command {
  readonly summary: string;
  run(args: Record<string, unknown>): unknown;
}

/** The commands the daemon answers; each part registers its own at composition time. */
export class CommandRegistry {
  private readonly commands = new Map<string, Command>();

  register(name: string, command: Command): void {
    if (this.commands.has(name)) throw new Error(`command ${name} registered twice`);
    this.commands.set(name, command);
  }

  names(): string[] {
    return [...this.commands.keys()].sort();
  }

  async run(name: string, args: Record<string, unknown>): Promise<unknown> {
    const command = this.commands.get(name);
    if (!command) throw new ReflexError('UNKNOWN_COMMAND', `unknown command "${name}"; known: ${this.names().join(', ')}`);
    return await command.run(args);
  }
}

export function stringArg(args: Record<string, unknown>, key: string, allowed?: readonly string[]): string {
  const v = args[key];
  if (typeof v !== 'string' || (allowed && !allowed.includes(v))) {
    const want = allowed ? `one of ${allowed.join(', ')}` : 'a string';
    throw new ReflexError('BAD_REQUEST', `args.${key}: got ${JSON.stringify(v) ?? 'nothing'}; want ${want}`);
  }
  return v;
}

export function numberArg(args: Record<string, unknown>, key: string, min: number, max: number): number {
  const v = args[key];
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
    throw new ReflexError('BAD_REQUEST', `args.${key}: got ${JSON.stringify(v) ?? 'nothing'}; want a number from ${min} to ${max}`);
  }
  return v;
}
