// `reflex diag [--out FILE]`: one archive for a support ticket: versions, the effective config
// with its secrets redacted, status, the fault history, recent logs and the motors' state. What
// cannot be had (a daemon that is down) is said inside the archive, never a reason to fail it.
import { spawnSync } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { machine, release, type, version } from 'node:os';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import tar from 'tar-stream';
import type { Command } from 'commander';
import { errorMessage, versions } from '../core/index.js';
import { request } from '../api/wire.js';
import { formatStatus } from './format.js';
import { formatFaults } from './inspect.js';
import { formatHardware, hardwareView } from './hardware.js';
import { daemonOptions, optionalConfig, socketPath, type DaemonOptions } from './program.js';

const SECRET_KEY = /(password|secret|token|apikey|credential)(?!file)/i;

/** A copy of `v` with secret values and the passwords in URLs replaced by <redacted>. */
export function redact(v: unknown, key = ''): unknown {
  if (typeof v === 'string') {
    if (SECRET_KEY.test(key)) return '<redacted>';
    return v.replace(/(\/\/[^/:@\s]+):[^@/\s]+@/g, '$1:<redacted>@');
  }
  if (Array.isArray(v)) return v.map((x) => redact(x, key));
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, redact(x, k)]));
  return v;
}

function journal(): string | null {
  const r = spawnSync('journalctl', ['-u', 'reflex', '-o', 'cat', '--no-pager', '-n', '2000'], { encoding: 'utf8', timeout: 10_000, maxBuffer: 32 * 1024 * 1024 });
  return r.status === 0 && r.stdout.trim() !== '' ? r.stdout : null;
}

async function collect(opts: DaemonOptions): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const note = (what: string, err: unknown) => files.set(`${what}.unavailable.txt`, `${errorMessage(err)}\n`);
  files.set('versions.json', `${JSON.stringify({ client: versions(), machine: `${type()} ${release()} ${version()} ${machine()}` }, null, 2)}\n`);
  try {
    const config = optionalConfig(opts);
    files.set('config.json', `${JSON.stringify(config === null ? null : redact(config), null, 2)}\n`);
  } catch (err) {
    note('config', err);
  }
  const path = socketPath(opts);
  try {
    const status = await request(path, 'status');
    files.set('status.json', `${JSON.stringify(status, null, 2)}\n`);
    files.set('status.txt', formatStatus(status));
    const hw = hardwareView(status, optionalConfig(opts));
    files.set('hardware.json', `${JSON.stringify(hw, null, 2)}\n`);
    files.set('hardware.txt', formatHardware(hw));
  } catch (err) {
    note('status', err);
  }
  try {
    const faults = await request(path, 'faults', {});
    files.set('faults.json', `${JSON.stringify(faults, null, 2)}\n`);
    files.set('faults.txt', formatFaults(faults));
  } catch (err) {
    note('faults', err);
  }
  const fromJournal = journal();
  if (fromJournal !== null) files.set('logs.jsonl', fromJournal);
  else {
    try {
      files.set('logs.jsonl', `${(await request(path, 'logs', { limit: 2000 })).lines.join('\n')}\n`);
    } catch (err) {
      note('logs', err);
    }
  }
  return files;
}

async function writeArchive(out: string, files: Map<string, string>): Promise<void> {
  const pack = tar.pack();
  const dir = out.replace(/^.*\//, '').replace(/\.tar\.gz$|\.tgz$/, '');
  const mtime = new Date();
  for (const [name, text] of files) pack.entry({ name: `${dir}/${name}`, mtime, mode: 0o644 }, text);
  pack.finalize();
  await pipeline(pack, createGzip(), createWriteStream(out, { mode: 0o600 }));
}

export function registerDiag(program: Command): void {
  daemonOptions(
    program
      .command('diag')
      .description('one tar.gz for a support ticket: versions, config (secrets redacted), status, faults, logs, motors')
      .option('-o, --out <file>', 'where to write it (default reflex-diag-<device>-<time>.tar.gz here)'),
  ).action(async (opts: DaemonOptions & { out?: string }) => {
    const files = await collect(opts);
    let device = 'unknown';
    try {
      device = (JSON.parse(files.get('status.json') ?? '{}') as { deviceId?: string }).deviceId ?? device;
    } catch {
      // no status: the name says unknown
    }
    const out = opts.out ?? `reflex-diag-${device}-${new Date().toISOString().replace(/[:.]/g, '-')}.tar.gz`;
    await writeArchive(out, files);
    const missing = [...files.keys()].filter((f) => f.endsWith('.unavailable.txt')).map((f) => f.replace('.unavailable.txt', ''));
    if (opts.json) process.stdout.write(`${JSON.stringify({ file: out, files: [...files.keys()], missing }, null, 2)}\n`);
    else process.stdout.write(`${out}: ${files.size} files${missing.length > 0 ? ` (not available: ${missing.join(', ')}; see *.unavailable.txt inside)` : ''}\n`);
  });
}
