import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { stringify } from 'yaml';
import { CLI } from './paths.js';

export function tempDir(prefix = 'reflex-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A minimal valid config for a daemon under test, everything under `dir`. */
export function testConfig(dir: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    deviceId: 'test-01',
    log: { level: 'info', pretty: false },
    paths: { stateDir: join(dir, 'state') },
    socket: { path: join(dir, 'control.sock') },
    ...extra,
  };
}

export function writeConfig(dir: string, config: unknown, name = 'reflex.yaml'): string {
  const file = join(dir, name);
  writeFileSync(file, typeof config === 'string' ? config : stringify(config));
  return file;
}

export interface Spawned {
  proc: ChildProcess;
  /** JSON log lines seen on stdout, parsed. */
  logs: Record<string, unknown>[];
  stderr: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitForLog(match: (l: Record<string, unknown>) => boolean, timeoutMs: number): Promise<Record<string, unknown>>;
}

/** Runs `reflex ARGS...` as a real process. */
export function spawnReflex(args: string[], env: NodeJS.ProcessEnv = {}): Spawned {
  const proc = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: Record<string, unknown>[] = [];
  const stderr: string[] = [];
  let waiters: (() => void)[] = [];
  createInterface({ input: proc.stdout }).on('line', (line) => {
    try {
      logs.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      logs.push({ text: line });
    }
    for (const w of waiters) w();
  });
  createInterface({ input: proc.stderr }).on('line', (line) => stderr.push(line));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const waitForLog = (match: (l: Record<string, unknown>) => boolean, timeoutMs: number) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const check = () => {
        const hit = logs.find(match);
        if (!hit) return false;
        clearTimeout(timer);
        waiters = waiters.filter((w) => w !== check);
        resolve(hit);
        return true;
      };
      const timer = setTimeout(() => {
        waiters = waiters.filter((w) => w !== check);
        reject(new Error(`log line not seen in ${timeoutMs} ms; last: ${JSON.stringify(logs.slice(-5))} stderr: ${stderr.join('\n')}`));
      }, timeoutMs);
      if (!check()) waiters.push(check);
    });
  return { proc, logs, stderr, exited, waitForLog };
}

/** Runs `reflex ARGS...` to completion. */
export function runReflex(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    proc.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}
