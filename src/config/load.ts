import { parseDocument } from 'yaml';
import { ReflexError, RefusedFile, errorMessage, readRegularFile } from '../core/index.js';
import type { MotorRegistry } from '../hardware/index.js';
import { configSchema, configSchemaFor, type Config } from './schema.js';
import { formatProblems, keyOf, problemsOf, type ConfigProblem } from './errors.js';
import { hostProblems } from './host.js';

export const DEFAULT_CONFIG_PATH = '/etc/reflex/reflex.yaml';

/** A config is a page of settings: anything bigger is not one. */
export const MAX_CONFIG_BYTES = 1024 * 1024;
/**
 * Bounds on what the YAML may expand to: aliases (yaml's own count, which weighs an alias by
 * the aliases inside what it names, so a "billion laughs" stops early), and the values and
 * nesting of the document once aliases are followed (what validation will walk).
 */
export const MAX_YAML_ALIASES = 100;
export const MAX_CONFIG_VALUES = 100_000;
export const MAX_CONFIG_DEPTH = 32;

/**
 * The few settings a deployment changes per robot without editing the file, and where each
 * lands in the config. Numbers and booleans are not needed here: all of these are strings.
 */
export const ENV_OVERRIDES: Readonly<Record<string, readonly string[]>> = {
  REFLEX_DEVICE_ID: ['deviceId'],
  REFLEX_LOG_LEVEL: ['log', 'level'],
  REFLEX_POLICY: ['policy', 'bundle'],
  REFLEX_FLEET_URL: ['fleet', 'url'],
  REFLEX_STATE_DIR: ['paths', 'stateDir'],
  REFLEX_CONTROL_SOCKET: ['socket', 'path'],
};

export class ConfigError extends ReflexError {
  constructor(
    message: string,
    readonly problems: readonly ConfigProblem[],
  ) {
    super('CONFIG_INVALID', message);
  }
}

function applyEnv(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): Map<string, string> {
  const fromEnv = new Map<string, string>();
  for (const [name, path] of Object.entries(ENV_OVERRIDES)) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    let node = raw;
    for (const key of path.slice(0, -1)) {
      const next = node[key];
      if (next === null || typeof next !== 'object' || Array.isArray(next)) node[key] = {};
      node = node[key] as Record<string, unknown>;
    }
    node[path[path.length - 1]!] = value;
    fromEnv.set(path.join('.'), name);
  }
  return fromEnv;
}

function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    for (const child of Object.values(v)) deepFreeze(child);
    Object.freeze(v);
  }
  return v;
}

/**
 * Validates a parsed config object (plus environment overrides); returns it frozen. Bus kinds
 * are those of `registry`'s motor families (the built-in ones unless given).
 */
export function parseConfig(raw: unknown, source: string, env: NodeJS.ProcessEnv = {}, registry?: MotorRegistry): Config {
  if (raw === null || raw === undefined) raw = {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    const p = { key: '(top level)', got: Array.isArray(raw) ? 'a list' : JSON.stringify(raw), want: 'a mapping of keys' };
    throw new ConfigError(formatProblems(source, [p]), [p]);
  }
  const input = structuredClone(raw) as Record<string, unknown>;
  const fromEnv = applyEnv(input, env);
  const result = (registry ? configSchemaFor(registry) : configSchema).safeParse(input);
  if (!result.success) {
    const origin = (key: string) => (fromEnv.has(key) ? `${key} (from ${fromEnv.get(key)})` : key);
    const problems = problemsOf(result.error.issues, input, origin);
    throw new ConfigError(formatProblems(source, problems), problems);
  }
  return deepFreeze(result.data);
}

export interface LoadOptions {
  /**
   * Also check what the config names on this machine (socket.group exists, fleet files are
   * there, stateDir and the socket's directory are or can be directories): for the daemon and
   * `reflex config check`, not for a tool that only wants the socket's path.
   */
  host?: boolean;
  /** The motor families bus kinds may name; the built-in ones unless given. */
  registry?: MotorRegistry;
}

/** Reads, parses and validates a YAML config file. Throws ConfigError (code CONFIG_INVALID). */
export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env, opts: LoadOptions = {}): Config {
  const fail = (problems: ConfigProblem[]): never => {
    throw new ConfigError(formatProblems(file, problems), problems);
  };
  const text = readConfigFile(file, fail);
  let raw: unknown;
  try {
    const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
    if (doc.errors.length > 0) {
      fail(doc.errors.map((e) => ({ key: '(yaml)', got: e.message.split('\n')[0] ?? e.message, want: 'valid YAML' })));
    }
    raw = doc.toJS({ maxAliasCount: MAX_YAML_ALIASES });
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    // yaml throws (ReferenceError) for an alias bomb and an alias to an anchor not yet set.
    fail([{ key: '(yaml)', got: errorMessage(err).split('\n')[0] ?? 'an error', want: `valid YAML of at most ${MAX_YAML_ALIASES} alias expansions` }]);
  }
  const shape = shapeProblem(raw);
  if (shape !== null) fail([shape]);
  const config = parseConfig(raw, file, env, opts.registry);
  if (opts.host) {
    const problems = hostProblems(config, envOrigin(env));
    if (problems.length > 0) fail(problems);
  }
  return config;
}

/** The file's text, when it is a regular file of a config's size (not a FIFO, a device, a 2 GB log). */
function readConfigFile(file: string, fail: (p: ConfigProblem[]) => never): string {
  try {
    return readRegularFile(file, MAX_CONFIG_BYTES).toString('utf8');
  } catch (err) {
    if (err instanceof RefusedFile && err.reason === 'kind') return fail([{ key: '(file)', got: file, want: 'a regular file' }]);
    if (err instanceof RefusedFile) return fail([{ key: '(file)', got: `${file} (it ${err.message})`, want: `a file of at most ${MAX_CONFIG_BYTES} bytes` }]);
    return fail([{ key: '(file)', got: file, want: `a readable file (${errorMessage(err)})` }]);
  }
}

/**
 * A YAML document is a graph once aliases are followed: an alias inside the node it names makes
 * a cycle, and aliases of aliases multiply. Walks it as validation will (every path), so that
 * a cycle is named by its key and the expanded size and depth are bounded before anything
 * else (zod, error messages) walks it.
 */
function shapeProblem(raw: unknown): ConfigProblem | null {
  const path: (string | number)[] = [];
  const ancestors: object[] = [];
  let values = 0;
  const walk = (v: unknown): ConfigProblem | null => {
    if (++values > MAX_CONFIG_VALUES) return { key: keyOf(path), got: `more than ${MAX_CONFIG_VALUES} values once aliases are expanded`, want: 'a config of ordinary size' };
    if (v === null || typeof v !== 'object') return null;
    if (ancestors.includes(v)) return { key: keyOf(path), got: 'an alias to a node that contains it (a cycle)', want: 'an alias outside the node it names' };
    if (ancestors.length >= MAX_CONFIG_DEPTH) return { key: keyOf(path), got: `nesting deeper than ${MAX_CONFIG_DEPTH} levels`, want: 'a config of ordinary depth' };
    ancestors.push(v);
    const entries: [string | number, unknown][] = Array.isArray(v) ? v.map((x, i) => [i, x]) : v instanceof Map ? [...v.entries()].map(([k, x]) => [String(k), x]) : Object.entries(v);
    for (const [k, x] of entries) {
      path.push(k);
      const p = walk(x);
      path.pop();
      if (p !== null) return p;
    }
    ancestors.pop();
    return null;
  };
  return walk(raw);
}

function envOrigin(env: NodeJS.ProcessEnv): (key: string) => string {
  return (key) => {
    for (const [name, path] of Object.entries(ENV_OVERRIDES)) {
      if (path.join('.') === key && env[name] !== undefined && env[name] !== '') return `${key} (from ${name})`;
    }
    return key;
  };
}
