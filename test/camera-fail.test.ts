import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VisionRuntime } from '../src/hardware/camera/index.js';
import { cameras, logger } from './helpers/camera.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// One VisionRuntime per test file: OpenCV can be loaded by one thread of a process, once.
test('a camera that cannot be opened is stale, retried with backoff, and does not take the others down', async () => {
  const { log } = logger();
  const vision = new VisionRuntime(
    cameras([
      { name: 'gone', source: '/dev/video99' },
      { name: 'live', source: 'videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1' },
    ]),
    new Map(),
    log,
  );
  await vision.start();
  try {
    await sleep(1500);
    const [gone, live] = vision.status();
    assert.equal(gone!.state, 'stale');
    assert.ok(gone!.reopens >= 2 && gone!.reopens <= 6, `reopens ${gone!.reopens} (backoff doubles from 100 ms)`);
    assert.equal(gone!.ageMs, null);
    assert.equal(live!.state, 'streaming');
    const jpeg = await vision.snapshot('live');
    assert.deepEqual([...jpeg.subarray(0, 2)], [0xff, 0xd8], 'a JPEG');
    await assert.rejects(vision.snapshot('gone'), /camera gone has no frame yet/);
  } finally {
    await vision.stop();
  }
});
