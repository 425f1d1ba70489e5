#!/usr/bin/env node
// `npm start`: the development setup. Starts the simulated robot that config/dev.yaml points
// at (servos on a pty, the CAN base on a virtual bus, the camera), then the daemon; Ctrl-C stops the daemon (motors safe first), then the simulator.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { pinnedNode } from './node-pin.mjs';

// The simulator and the daemon run on the pinned Node (the bootstrap, npm's prestart, has it).
const node = pinnedNode();
const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
const cli = join(root, 'dist', 'src', 'cli', 'main.js');
const link = join(root, '.run', 'sim', 'dxl0');
const canLink = join(root, '.run', 'sim', 'can0.sock');

// The simulated camera listens on 5600, the port config/dev.yaml reads it from. When another
// program holds that port, take a free one and run the daemon on a copy of the config that
// points at it, rather than fail.
function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}
let cameraPort = 5600;
let config = 'config/dev.yaml';
const { assertPortFree } = await import(join(root, 'dist', 'src', 'sim', 'index.js'));
if (!(await assertPortFree(cameraPort).then(() => true, () => false))) {
  cameraPort = await freePort();
  mkdirSync(join(root, '.run'), { recursive: true });
  config = '.run/dev.yaml';
  writeFileSync(join(root, config), readFileSync(join(root, 'config', 'dev.yaml'), 'utf8').replaceAll('port=5600', `port=${cameraPort}`));
  process.stderr.write(`port 5600 is in use by another program: the simulated camera uses ${cameraPort} instead (config ${config})\n`);
}

// Its own process group: Ctrl-C in the terminal must reach the daemon, not pull the simulated
// robot out from under it while it is still making the motors safe.
const sim = spawn(node, [cli, 'sim', 'rig', '--link', link, '--can-link', canLink, '--camera-port', String(cameraPort), '--socket', join(root, '.run', 'sim', 'rig.sock')], {
  cwd: root,
  stdio: ['ignore', 'pipe', 'inherit'],
  detached: true,
});
await new Promise((resolve, reject) => {
  createInterface({ input: sim.stdout }).once('line', resolve);
  sim.once('exit', (code) => reject(new Error(`simulated servo bus exited (${code})`)));
});
process.stderr.write(`simulated rig: servos on ${link}, CAN base on ${canLink}, camera on tcp ${cameraPort}, task score: npx reflex sim score\n`);

const daemon = spawn(node, [cli, 'run', '--config', config], { cwd: root, stdio: 'inherit' });

// A live line every two seconds: what the robot is doing, from the daemon's and the rig's sockets.
const { request } = await import(join(root, 'dist', 'src', 'api', 'index.js'));
const { loopHeadline } = await import(join(root, 'dist', 'src', 'control', 'index.js'));
const live = setInterval(async () => {
  try {
    const s = await request(join(root, '.run', 'control.sock'), 'status', {}, 1000);
    const t = await request(join(root, '.run', 'sim', 'rig.sock'), 'task', {}, 1000);
    const l = s.loop;
    const p = s.policy;
    const cam = s.cameras.map((c) => `${c.name} ${c.state} ${c.ageMs === null ? '-' : c.ageMs.toFixed(0)} ms`).join(', ');
    process.stderr.write(
      `[live] ${l.mode} ${loopHeadline(l)}, CAN load ${l.bus.loadPct}%` +
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
