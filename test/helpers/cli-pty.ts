// Runs `reflex ...` in a real pseudo-terminal (util-linux `script`), as a technician's terminal
// would run it, optionally as another user (setpriv), and reads back what it drew.
import { spawn, type ChildProcess } from 'node:child_process';
import { CLI } from '../../tools/testkit/paths.js';

export interface PtyOptions {
  rows?: number;
  cols?: number;
  /** Run as this uid/gid with exactly these supplementary groups (setpriv); the tests run as root. */
  user?: { uid: number; gid: number; groups: number[] };
  env?: NodeJS.ProcessEnv;
}

export interface PtyRun {
  proc: ChildProcess;
  /** Everything the terminal was sent so far (escape sequences included). */
  output(): string;
  /** Types into the terminal. */
  type(text: string): void;
  /** Ends it (and what runs in it) if it still runs. */
  kill(): void;
  /** Resolves once the output (escape sequences removed) matches; rejects after `timeoutMs` with what was seen. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  exited: Promise<number | null>;
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** `reflex ARGS` in a pty of `rows` x `cols`. */
export function ptyReflex(args: string[], opts: PtyOptions = {}): PtyRun {
  const u = opts.user;
  const asUser = u === undefined ? '' : `setpriv --reuid=${u.uid} --regid=${u.gid} ${u.groups.length === 0 ? '--clear-groups' : `--groups=${u.groups.join(',')}`} `;
  const inner = `stty rows ${opts.rows ?? 40} cols ${opts.cols ?? 160}; exec ${asUser}${quote(process.execPath)} ${quote(CLI)} ${args.map(quote).join(' ')}`;
  const proc = spawn('script', ['-qfec', inner, '/dev/null'], { env: { ...process.env, TERM: 'xterm-256color', ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  /** What the terminal showed, escape sequences removed (what a reader of the screen sees). */
  let shown = '';
  let waiters: (() => void)[] = [];
  const onData = (d: Buffer) => {
    const text = d.toString('utf8');
    out += text;
    shown += plain(text);
    for (const w of waiters) w();
  };
  proc.stdout.on('data', onData);
  proc.stderr.on('data', onData);
  const exited = new Promise<number | null>((resolve) => proc.once('close', (code) => resolve(code)));
  return {
    proc,
    output: () => out,
    type: (text) => proc.stdin.write(text),
    kill: () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    },
    exited,
    waitFor: (re, timeoutMs = 20_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          // A full-screen view redraws everything each refresh: the newest screens are enough.
          const m = shown.slice(-65536).match(re);
          if (m === null) return false;
          clearTimeout(timer);
          waiters = waiters.filter((w) => w !== check);
          resolve(m);
          return true;
        };
        const timer = setTimeout(() => {
          waiters = waiters.filter((w) => w !== check);
          reject(new Error(`${re} not seen in ${timeoutMs} ms; the terminal showed:\n${shown.slice(-3000)}`));
        }, timeoutMs);
        if (!check()) waiters.push(check);
      }),
  };
}

/** Runs to the end; the exit status and what the terminal showed, escape sequences removed. */
export async function ptyRun(args: string[], opts: PtyOptions = {}): Promise<{ code: number | null; text: string }> {
  const r = ptyReflex(args, opts);
  const code = await r.exited;
  return { code, text: plain(r.output()) };
}

/** Terminal output without escape sequences and carriage returns. */
export function plain(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/\x1b\[[0-9;?<>=]*[ -/]*[@-~]/g, '').replace(/\x1b[()][0-9A-Za-z]/g, '').replace(/\x1b[=>78]/g, '').replace(/\r/g, '');
}
