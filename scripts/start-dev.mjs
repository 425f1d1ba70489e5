#!/usr/bin/env node
// `npm start`: the development setup. Starts the simulated robot that config/dev.yaml points
// at (servos on a pty, the CAN base on a virtual bus, the camera), then the daemon; Ctrl-C stops the daemon (motors safe first), then the simulator.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
const cli = join(root, 'dist', 'src', 'cli', 'main.js');
const link = join(root, '.run', 'sim', 'dxl0');
const canLink = join(root, '.run', 'sim', 'can0.sock');

// Its own process group: Ctrl-C in the terminal must reach the daemon, not pull the simulated
// robot out from under it while it is still making the motors safe.
const sim = spawn(process.execPath, [cli, 'sim', 'rig', '--link', link, '--can-link', canLink, '--camera-port', '5600', '--socket', join(root, '.run', 'sim', 'rig.sock')], {
  cwd: root,
  stdio: ['ignore', 'pipe', 'inherit'],
  detached: true,
});
await new Promise((resolve, reject) => {
  createInterface({ input: sim.stdout }).once('line', resolve);
  sim.once('exit', (code) => reject(new Error(`simulated servo bus exited (${code})`)));
});
process.stderr.write(`simulated rig: servos on ${link}, CAN base on ${canLink}, camera on tcp 5600, task score: npx reflex sim score\n`);

const daemon = spawn(process.execPath, [cli, 'run', '--config', 'config/dev.yaml'], { cwd: root, stdio: 'inherit' });

// A live line every two seconds: what the robot is doing, from the daemon's and the rig's sockets.
const { request } = await import(join(root, 'dist', 'src', 'cli', 'client.js'));
const live = setInterval(async () => {
  try {
    const s = await request(join(root, '.run', 'control.sock'), 'status', {}, 1000);
    const t = await request(join(root, '.run', 'sim', 'rig.sock'), 'task', {}, 1000);
    const l = s.loop;
    const p = s.policy;
    const cam = s.cameras.map((c) => `${c.name} ${c.state} ${c.ageMs === null ? '-' : c.ageMs.toFixed(0)} ms`).join(', ');
    process.stderr.write(
      `[live] ${l.mode} ${l.rateHz.toFixed(1)} Hz, lateness p99 ${l.latenessUs.p99.toFixed(0)} us, missed ${l.missedDeadlines}, CAN load ${l.bus.loadPct}%` +
        ` | task error ${(t.lastErrorM * 100).toFixed(1)} cm (mean ${(t.meanErrorM * 100).toFixed(1)}, holding still ${(t.holdBaselineM * 100).toFixed(1)})` +
        ` | policy ${p.active ? `${p.active.name} on ${p.active.provider}` : p.state}, ${p.inference.p50Ms} ms` +
        ` | camera ${cam} | faults ${s.faults.length ? s.faults.join('; ') : 'none'}\n`,
    );
  } catch {
    // the daemon is starting or stopping
  }
}, 2000);
// Ctrl-C reaches the daemon from the terminal itself; a SIGTERM sent to us is passed on.
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => daemon.kill(sig));
const code = await new Promise((resolve) => daemon.once('exit', (c, s) => resolve(c ?? (s ? 1 : 0))));
clearInterval(live);
sim.kill('SIGTERM');
await new Promise((resolve) => sim.once('exit', resolve));
process.exit(code);
