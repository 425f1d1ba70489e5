import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VisionRuntime, specLength } from '../src/hardware/camera/index.js';
import { FrameSlot, monoMs } from '../src/rt/index.js';
import { cameras, logger, small } from './helpers/camera.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// One VisionRuntime per test file: OpenCV can be loaded by one thread of a process, once.
test('frames from GStreamer videotestsrc arrive fresh, timestamped on the shared clock, pre-processed to the spec', async () => {
  // Solid red (ARGB 0xffff0000): after RGB, /255 and (x - 0.5) / 0.25, R is 2 and G, B are -2.
  const source = 'videotestsrc is-live=true pattern=solid-color foreground-color=0xffff0000 ! video/x-raw,width=640,height=480,framerate=30/1';
  const { log } = logger();
  const vision = new VisionRuntime(cameras([{ name: 'top', source }]), new Map([['top', small]]), log);
  await vision.start();
  try {
    // GStreamer starts slowly on a loaded machine: count frames from when it streams.
    const until = Date.now() + 20_000;
    while (vision.status()[0]!.state !== 'streaming' && Date.now() < until) await sleep(50);
    const frames0 = vision.status()[0]!.frames;
    await sleep(2000);
    const [s] = vision.status();
    assert.equal(s!.state, 'streaming');
    assert.ok(s!.frames - frames0 >= 30, `frames ${s!.frames - frames0} in 2 s`);
    assert.ok(s!.fps > 15 && s!.fps < 35, `fps ${s!.fps} (a live 30 fps source; fewer on a loaded machine)`);
    const slot = new FrameSlot(vision.sources[0]!.buffer, specLength(small));
    const px = new Float32Array(specLength(small));
    const captured = slot.read(px);
    const age = monoMs() - captured;
    assert.ok(captured > 0 && age >= 0 && age < 100, `frame age ${age} ms`);
    const plane = 32 * 48;
    for (const [c, want] of [[0, 2], [1, -2], [2, -2]] as const) {
      const v = px[c * plane + 100]!;
      assert.ok(Math.abs(v - want) < 0.05, `channel ${c}: ${v}, want ${want}`);
    }
    assert.ok(s!.preprocessMs.mean < 20);
  } finally {
    await vision.stop();
  }
});

