// What a command of the daemon is, as data: its name (the catalog's key), what it takes (a zod
// schema), what it returns (a type), a one-line summary, whether it moves the robot and whether
// the fleet may send it. The control socket, the fleet link and the technician's client all
// read the same entry, so none of them keeps a list of its own.
import { z } from 'zod';
import type { Origin } from './access.js';

export interface CommandSpec<A extends z.ZodTypeAny = z.ZodTypeAny, R = unknown> {
  /** One line, for `help` and the README. */
  readonly summary: string;
  /** The args object; a request whose args fail it is refused with the schema's message. */
  readonly args: A;
  /**
   * Whether it can set the arm in motion or change how it moves (start a policy, swap the
   * policy that drives it, re-enable motors). Commands that only stop or hold the arm (estop,
   * policy.stop) do not: anyone who can reach the robot must always be able to stop it. The
   * fleet allowlist and, later, the technician's permissions read this.
   */
  readonly moves: boolean;
  /** Whether a command arriving over the fleet link may run it; the link refuses the rest. */
  readonly fleet: boolean;
  /** Fault injection for tests: answered only when the daemon's config turns it on. */
  readonly debug?: boolean;
  /** Only reads (status, a snapshot): not logged with who sent it. Every other command is. */
  readonly readOnly?: boolean;
  /** Never set: it carries the result's type to the handler and to the client. */
  readonly result?: R;
}

/** A set of commands by name. */
export type Catalog = Readonly<Record<string, CommandSpec>>;

/** An entry of a catalog with result type R: `command<R>()({ summary, args, moves, fleet })`. */
export function command<R>() {
  return <A extends z.ZodTypeAny>(spec: Omit<CommandSpec<A, R>, 'result'>): CommandSpec<A, R> => spec;
}

/** The args a handler gets (defaults applied). */
export type ArgsOf<S extends CommandSpec> = z.output<S['args']>;
/** The args a caller sends. */
export type ArgsIn<S extends CommandSpec> = z.input<S['args']>;
export type ResultOf<S extends CommandSpec> = Exclude<S['result'], undefined>;
/** `origin`: who sent it (a socket peer, the fleet link), for the audit trail and what they may hold. */
export type Handler<S extends CommandSpec> = (args: ArgsOf<S>, origin: Origin) => ResultOf<S> | Promise<ResultOf<S>>;
/** What a part contributes: handlers for some of a catalog's commands. */
export type Handlers<C extends Catalog> = { readonly [N in keyof C]?: Handler<C[N]> };

// Arg schemas whose message says what was wanted; the registry adds what it got and where.
const want = (message: string) => ({ errorMap: () => ({ message }) });

export const NO_ARGS = z.object({});

export function str() {
  return z.string(want('a string'));
}

export function num(min: number, max: number) {
  return z.number(want(`a number from ${min} to ${max}`)).finite().min(min).max(max);
}

export function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, want(`one of ${values.join(', ')}`));
}

export function bool() {
  return z.boolean(want('true or false'));
}

/** `args.level: got "loud"; want one of info, debug`: the first thing wrong, where, what came. */
export function argsMessage(error: z.ZodError, args: Record<string, unknown>): string {
  const issue = error.issues[0];
  if (issue === undefined) return 'args: invalid';
  let got: unknown = args;
  for (const key of issue.path) got = got !== null && typeof got === 'object' ? (got as Record<string | number, unknown>)[key] : undefined;
  const where = ['args', ...issue.path].join('.');
  return `${where}: got ${JSON.stringify(got) ?? 'nothing'}; want ${issue.message}`;
}
