// One daemon with a camera per test file (OpenCV loads once per process; each daemon is its own).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { request } from '../src/api/index.js';
import { writeBundle, imageOffsetModel } from '../tools/models/index.js';
import { runReflex, spawnReflex, tempDir, testConfig, writeConfig } from '../tools/testkit/daemon.js';
import { SimHandle } from './helpers/sim.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const LIVE = 'videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=480,framerate=30/1';

function cameraPolicy(dir: string): string {
  const bundle = join(dir, 'policy');
  const joints = ['base', 'shoulder', 'elbow'] as [string, ...string[]];
  writeBundle(
    bundle,
    {
      name: 'looks',
      version: '1',
      fps: 50,
      joints,
      cameras: ['top'],
      features: {
        'observation.state': { shape: [3], normalization: 'identity' },
        'observation.images.top': { shape: [3, 16, 16], normalization: 'mean_std' },
        action: { shape: [20, 3], normalization: 'identity' },
      },
      stats: { 'observation.images.top': { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] } },
    },
    imageOffsetModel({ joints, horizon: 20, step: 0, camera: 'top', size: 16, imageWeight: 0 }),
  );
  return bundle;
}

test('a camera feeds the policy through the vision worker; camera list and snapshot work with and without the daemon', async (t) => {
  const dir = tempDir();
  const sim = await SimHandle.start({ servos: [1, 2, 3].map((id) => ({ id, model: 'xm430-w350' })) });
  // Closed whatever fails below: an open simulator would keep this file's process alive.
  t.after(() => sim.close());
  const config = testConfig(dir, {
    buses: [{ name: 'arm', kind: 'dynamixel', port: sim.path }],
    robot: { joints: ['base', 'shoulder', 'elbow'].map((name, i) => ({ name, bus: 'arm', id: i + 1, model: 'xm430-w350', limits: { min: -1, max: 1 } })) },
    // Bounds a loaded, shared test machine can keep; the stale path has its own test.
    cameras: [{ name: 'top', source: LIVE, maxAgeMs: 500 }],
    policy: { bundle: cameraPolicy(dir) },
    control: { realtime: { priority: 0 }, starvationLimitMs: 3000 },
  });
  const file = writeConfig(dir, config);
  const sock = join(dir, 'control.sock');

  // Without a daemon, the CLI opens the camera itself.
  const direct = await runReflex(['camera', 'snapshot', 'top', join(dir, 'direct.png'), '--config', file]);
  assert.equal(direct.code, 0, `${direct.stdout}${direct.stderr}` || `exit ${direct.code}, no output`);
  assert.match(direct.stdout, /direct\.png: 640x480 from videotestsrc/);
  assert.deepEqual([...readFileSync(join(dir, 'direct.png')).subarray(1, 4)], [...Buffer.from('PNG')]);
  const list = await runReflex(['camera', 'list', '--config', file]);
  assert.match(list.stdout, /^ {2}top {2}videotestsrc .* 640x480 MJPG @ 30 fps$/m);

  const d = spawnReflex(['run', '--config', file]);
  let checked = false;
  try {
    await d.waitForLog((l) => l.msg === 'policy ready', 15_000);
    await d.waitForLog((l) => l.msg === 'reflex is running', 15_000); // the socket may come up after the policy
    // The policy starts once the camera streams; a loaded machine may take a while to get there.
    let s = await request(sock, 'status');
    for (let i = 0; i < 150 && !(s.loop.mode !== 'hold' && s.loop.chunks.received >= 5); i++) {
      await sleep(100);
      s = await request(sock, 'status');
    }
    await sleep(1200); // a full window for the frame rate
    s = await request(sock, 'status');
    assert.equal(s.cameras[0]!.state, 'streaming');
    assert.ok(s.cameras[0]!.fps > 10, `fps ${s.cameras[0]!.fps}`);
    assert.equal(s.loop.mode, 'policy', `loop fault: ${s.loop.fault ?? 'none'}`);
    assert.ok(s.loop.chunks.received >= 5, `chunks ${s.loop.chunks.received}`);
    // A frame late now and then on a loaded machine is refused (and the loop holds); most are not.
    assert.ok(s.policy.inference.errors * 2 < s.policy.inference.count, `${s.policy.inference.errors} errors in ${s.policy.inference.count} runs`);

    const viaDaemon = await runReflex(['camera', 'snapshot', 'top', join(dir, 'daemon.jpg'), '--socket', sock, '--config', file]);
    assert.equal(viaDaemon.code, 0, viaDaemon.stderr);
    assert.match(viaDaemon.stdout, /from the running daemon/);
    assert.ok(existsSync(join(dir, 'daemon.jpg')));
    checked = true;
  } finally {
    d.proc.kill('SIGTERM');
    const { code } = await d.exited;
    // Only after the checks above passed: their own failure must not be masked by this one.
    if (checked) assert.equal(code, 0, `the daemon exited ${code} on SIGTERM: ${d.stderr.join('\n')}\n${d.logs.slice(-8).map((l) => JSON.stringify(l)).join('\n')}`);
  }
});
