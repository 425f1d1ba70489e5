import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { VisionRuntime } from '../src/hardware/camera/index.js';
import { tempDir } from '../tools/testkit/daemon.js';
import { cameras, logger, small } from './helpers/camera.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// One VisionRuntime per test file: OpenCV can be loaded by one thread of a process, once.
test('a video file is read; at its end the camera goes stale, is reported, and comes back', async () => {
  const file = join(tempDir(), 'clip.avi');
  const made = spawnSync('gst-launch-1.0', ['-q', 'videotestsrc', 'num-buffers=30', '!', 'video/x-raw,width=320,height=240,framerate=30/1', '!', 'jpegenc', '!', 'avimux', '!', 'filesink', `location=${file}`]);
  assert.equal(made.status, 0, made.stderr.toString());
  const { log, lines } = logger();
  const vision = new VisionRuntime(cameras([{ name: 'file', source: file }]), new Map([['file', small]]), log);
  await vision.start();
  try {
    await sleep(2500);
    const [s] = vision.status();
    assert.ok(s!.frames >= 60, `frames ${s!.frames}: the file was read more than once`);
    assert.ok(s!.reopens >= 1);
    const stale = lines.find((l) => l.msg === 'camera stale: the policy holds; retrying');
    assert.match(String(stale?.reason), /reads in a row gave no frame/);
    assert.ok(lines.filter((l) => l.msg === 'camera streaming').length >= 2, 'streaming again after the end');
  } finally {
    await vision.stop();
  }
});

