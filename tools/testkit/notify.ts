import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { REPO } from './paths.js';

/** A real Unix datagram socket, owned by the test, standing in for systemd's NOTIFY_SOCKET. */
export class NotifyListener {
  readonly messages: string[] = [];
  /** Date.now() at which each message arrived. */
  readonly times: number[] = [];
  private readonly proc: ChildProcess;
  private waiters: (() => void)[] = [];

  private constructor(readonly path: string) {
    this.proc = spawn('python3', [join(REPO, 'tools', 'testkit', 'notify_listener.py'), path], { stdio: ['ignore', 'pipe', 'inherit'] });
    createInterface({ input: this.proc.stdout! }).on('line', (line) => {
      this.messages.push(JSON.parse(line) as string);
      this.times.push(Date.now());
      for (const w of this.waiters) w();
    });
  }

  static async open(path: string): Promise<NotifyListener> {
    const l = new NotifyListener(path);
    await l.waitFor((m) => m === 'LISTENING', 5000);
    l.messages.length = 0;
    l.times.length = 0;
    return l;
  }

  /** Resolves with the first message (seen so far or later) that matches. */
  waitFor(match: (m: string) => boolean, timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const m = this.messages.find(match);
        if (m === undefined) return false;
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
        resolve(m);
        return true;
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(new Error(`no matching notify message in ${timeoutMs} ms; got ${JSON.stringify(this.messages.slice(-10))}`));
      }, timeoutMs);
      if (!check()) this.waiters.push(check);
    });
  }

  close(): void {
    this.proc.kill();
  }
}
