import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { ReflexError, errorMessage } from '../core/index.js';
import { configSchema, type Config } from './schema.js';
import { formatProblems, problemsOf, type ConfigProblem } from './errors.js';

export const DEFAULT_CONFIG_PATH = '/etc/reflex/reflex.yaml';

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

/** Validates a parsed config object (plus environment overrides); returns it frozen. */
export function parseConfig(raw: unknown, source: string, env: NodeJS.ProcessEnv = {}): Config {
  if (raw === null || raw === undefined) raw = {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    const p = { key: '(top level)', got: Array.isArray(raw) ? 'a list' : JSON.stringify(raw), want: 'a mapping of keys' };
    throw new ConfigError(formatProblems(source, [p]), [p]);
  }
  const input = structuredClone(raw) as Record<string, unknown>;
  const fromEnv = applyEnv(input, env);
  const result = configSchema.safeParse(input);
  if (!result.success) {
    const origin = (key: string) => (fromEnv.has(key) ? `${key} (from ${fromEnv.get(key)})` : key);
    const problems = problemsOf(result.error.issues, input, origin);
    throw new ConfigError(formatProblems(source, problems), problems);
  }
  return deepFreeze(result.data);
}

/** Reads, parses and validates a YAML config file. Throws ConfigError (code CONFIG_INVALID). */
export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const p = { key: '(file)', got: file, want: `a readable file (${errorMessage(err)})` };
    throw new ConfigError(formatProblems(file, [p]), [p]);
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const problems = doc.errors.map((e) => ({ key: '(yaml)', got: e.message.split('\n')[0] ?? e.message, want: 'valid YAML' }));
    throw new ConfigError(formatProblems(file, problems), problems);
  }
  return parseConfig(doc.toJS(), file, env);
}
