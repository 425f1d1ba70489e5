#!/usr/bin/env node
// `npm start`: the development setup. Starts the simulated servo bus that config/dev.yaml
// points at, then the daemon; Ctrl-C stops the daemon (motors safe first), then the simulator.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
const cli = join(root, 'dist', 'src', 'cli', 'main.js');
const link = join(root, '.run', 'sim', 'dxl0');

// Its own process group: Ctrl-C in the terminal must reach the daemon, not pull the simulated
// robot out from under it while it is still making the motors safe.
const sim = spawn(process.execPath, [cli, 'sim', 'rig', '--link', link, '--camera-port', '5600', '--socket', join(root, '.run', 'sim', 'rig.sock')], {
  cwd: root,
  stdio: ['ignore', 'pipe', 'inherit'],
  detached: true,
});
await new Promise((resolve, reject) => {
  createInterface({ input: sim.stdout }).once('line', resolve);
  sim.once('exit', (code) => reject(new Error(`simulated servo bus exited (${code})`)));
});
process.stderr.write(`simulated rig: servos on ${link}, camera on tcp 5600, task score: npx reflex sim score\n`);

const daemon = spawn(process.execPath, [cli, 'run', '--config', 'config/dev.yaml'], { cwd: root, stdio: 'inherit' });
// Ctrl-C reaches the daemon from the terminal itself; a SIGTERM sent to us is passed on.
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => daemon.kill(sig));
const code = await new Promise((resolve) => daemon.once('exit', (c, s) => resolve(c ?? (s ? 1 : 0))));
sim.kill('SIGTERM');
await new Promise((resolve) => sim.once('exit', resolve));
process.exit(code);
