// One daemon with a camera per test file (OpenCV loads once per process; each daemon is its own).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { request } from '../src/api/index.js';
import { writeBundle, imageOffsetModel } from '../tools/models/index.js';
import { spawnReflex, tempDir, testConfig, writeConfig } from '../tools/testkit/daemon.js';
import { SimHandle } from './helpers/sim.js';

test('frames older than the camera bound are never acted on: inference refuses them and the loop holds', async () => {
  const dir = tempDir();
  const sim = await SimHandle.start({ servos: [1, 2, 3].map((id) => ({ id, model: 'xm430-w350' })) });
  const joints = ['base', 'shoulder', 'elbow'] as [string, ...string[]];
  writeBundle(
    join(dir, 'policy'),
    {
      name: 'looks',
      version: '1',
      fps: 50,
      joints,
      cameras: ['top'],
      features: { 'observation.state': { shape: [3], normalization: 'identity' }, 'observation.images.top': { shape: [3, 16, 16], normalization: 'identity' }, action: { shape: [20, 3], normalization: 'identity' } },
    },
    imageOffsetModel({ joints, horizon: 20, step: 0, camera: 'top', size: 16, imageWeight: 0 }),
  );
  // A 2 fps camera with a 100 ms bound: most of the time its newest frame is too old.
  const config = testConfig(dir, {
    buses: [{ name: 'arm', kind: 'dynamixel', port: sim.path }],
    robot: { joints: joints.map((name, i) => ({ name, bus: 'arm', id: i + 1, model: 'xm430-w350', limits: { min: -1, max: 1 } })) },
    cameras: [{ name: 'top', source: 'videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=2/1', maxAgeMs: 100 }],
    policy: { bundle: join(dir, 'policy') },
    control: { realtime: { priority: 0 }, starvationLimitMs: 5000 },
  });
  const d = spawnReflex(['run', '--config', writeConfig(dir, config)]);
  try {
    await d.waitForLog((l) => l.msg === 'policy ready', 15_000);
    await d.waitForLog((l) => l.msg === 'reflex is running', 15_000); // the socket may come up after the policy
    const err = await d.waitForLog((l) => l.msg === 'inference failed; the loop holds until a good chunk comes' && /old/.test(String(l.err)), 10_000);
    assert.match(String(err.err), /^camera top: newest frame is \d+ ms old \(limit 100 ms\)$/);
    const s = await request(join(dir, 'control.sock'), 'status');
    assert.ok(s.policy.inference.errors >= 1);
  } finally {
    d.proc.kill('SIGTERM');
    assert.equal((await d.exited).code, 0);
    await sim.close();
  }
});
