import { ReflexError } from '../core/index.js';
import { argsMessage, type Catalog, type CommandSpec, type Handlers } from './command.js';
import { INTERNAL, type Origin } from './access.js';

/** What the control socket needs of the commands: run one by name. */
export interface CommandRunner {
  run(name: string, args: Record<string, unknown>, origin?: Origin): Promise<unknown>;
  /** The command's catalog entry, where the runner has a catalog (permissions and the audit trail read it). */
  spec?(name: string): CommandSpec | undefined;
}

export interface RegistryOptions {
  /** Answer the catalog's fault-injection commands (config debug.faultInjection). */
  debug?: boolean;
}

/**
 * The commands a server answers: a catalog, and the handlers the parts contributed at
 * composition time. Args are checked against the catalog's schema before a handler runs.
 */
export class CommandRegistry<C extends Catalog = Catalog> implements CommandRunner {
  private readonly handlers = new Map<string, (args: unknown, origin: Origin) => unknown>();

  constructor(
    readonly catalog: C,
    private readonly opts: RegistryOptions = {},
  ) {}

  /** Adds a part's handlers; a command answered twice, or one not in the catalog, is a wiring mistake. */
  add(handlers: Handlers<C>): this {
    for (const [name, run] of Object.entries(handlers) as [string, ((args: unknown, origin: Origin) => unknown) | undefined][]) {
      if (run === undefined) continue;
      const spec = this.spec(name);
      if (spec === undefined) throw new Error(`command ${name} is not in the catalog`);
      if (spec.debug === true && this.opts.debug !== true) continue;
      if (this.handlers.has(name)) throw new Error(`command ${name} registered twice`);
      this.handlers.set(name, run);
    }
    return this;
  }

  /** The commands answered, sorted. */
  names(): string[] {
    return [...this.handlers.keys()].sort();
  }

  /** The catalog's entry for `name`; never one of Object's own properties (`constructor`). */
  spec(name: string): CommandSpec | undefined {
    return Object.hasOwn(this.catalog, name) ? this.catalog[name] : undefined;
  }

  async run(name: string, args: Record<string, unknown>, origin: Origin = INTERNAL): Promise<unknown> {
    const run = this.handlers.get(name);
    const spec = this.spec(name);
    if (run === undefined || spec === undefined) {
      throw new ReflexError('UNKNOWN_COMMAND', `unknown command "${name}"; known: ${this.names().join(', ')}`);
    }
    const parsed = spec.args.safeParse(args);
    if (!parsed.success) throw new ReflexError('BAD_REQUEST', argsMessage(parsed.error, args));
    return await run(parsed.data, origin);
  }
}
