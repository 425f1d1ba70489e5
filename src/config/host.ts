// What a config names on the machine it runs on, checked once at load: a group that must
// exist, files that must be there, directories that must be (or can become) directories. A
// config that names something absent is a config error (exit 78), found before any part
// starts: found later, by the part that needs it, it used to stop a running start with exit 1,
// and systemd restart-looped on a problem only an edit can fix.
import { accessSync, constants, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { errorMessage, groupIdOf } from '../core/index.js';
import { show, type ConfigProblem } from './errors.js';
import type { Config } from './schema.js';

/** Where host facts come from; tests substitute files. */
export interface HostFacts {
  groupFile: string;
}

const HOST: HostFacts = { groupFile: '/etc/group' };


function code(err: unknown): string {
  return typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : errorMessage(err);
}

/** Null when `path` is a directory, or does not exist but the nearest existing parent is a writable directory. */
function directoryProblem(path: string): string | null {
  let at = path;
  for (;;) {
    try {
      const st = statSync(at);
      if (at === path) return st.isDirectory() ? null : 'a directory (it is not one)';
      if (!st.isDirectory()) return `a directory or one that can be made (${at} is not a directory)`;
      accessSync(at, constants.W_OK | constants.X_OK);
      return null;
    } catch (err) {
      const c = code(err);
      if (c === 'EACCES' || c === 'EPERM') return `a directory or one that can be made (${at} is not writable)`;
      if (c !== 'ENOENT' && c !== 'ENOTDIR') return `a directory or one that can be made (${at}: ${c})`;
    }
    const up = dirname(at);
    if (up === at) return 'a directory or one that can be made';
    at = up;
  }
}

function fileProblem(path: string): string | null {
  try {
    if (!statSync(path).isFile()) return 'a regular file (it is not one)';
    accessSync(path, constants.R_OK);
    return null;
  } catch (err) {
    const c = code(err);
    return c === 'ENOENT' ? 'a file that exists' : `a readable file (${c})`;
  }
}

/**
 * Checks what the config names on this machine. `origin` turns a key into how the problem is
 * blamed (a key set from an environment variable says so).
 */
export function hostProblems(c: Config, origin: (key: string) => string = (k) => k, facts: HostFacts = HOST): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const add = (key: string, got: unknown, want: string | null) => {
    if (want !== null) out.push({ key: origin(key), got: show(got), want });
  };
  if (c.socket.group !== null) {
    let want: string | null;
    try {
      want = groupIdOf(c.socket.group, facts.groupFile) === null ? `a group that exists (none such in ${facts.groupFile})` : null;
    } catch (err) {
      want = `a group in ${facts.groupFile}, which cannot be read (${code(err)})`;
    }
    add('socket.group', c.socket.group, want);
  }
  add('paths.stateDir', c.paths.stateDir, directoryProblem(c.paths.stateDir));
  const runDir = dirname(c.socket.path);
  const runWant = directoryProblem(runDir);
  add('socket.path', c.socket.path, runWant === null ? null : `a path in a directory: ${runDir} must be ${runWant}`);
  if (c.fleet.enabled) {
    for (const key of ['caFile', 'certFile', 'keyFile', 'passwordFile'] as const) {
      const file = c.fleet[key];
      if (file !== null) add(`fleet.${key}`, file, fileProblem(file));
    }
  }
  return out;
}
