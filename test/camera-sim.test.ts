// One VisionRuntime per test file: OpenCV can be loaded by one thread of a process, once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { pino } from 'pino';
import { parseConfig } from '../src/config/index.js';
import { VisionRuntime, specLength } from '../src/hardware/camera/index.js';
import { FrameSlot } from '../src/rt/index.js';
import { simCameraSource } from '../src/sim/index.js';
import { spawnReflex, tempDir } from '../tools/testkit/daemon.js';
import { freePort } from '../tools/testkit/mosquitto.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('the simulated camera streams the arm and the target as real pixels through the real capture path', async () => {
  const port = await freePort();
  const link = join(tempDir(), 'dxl0');
  const sim = spawnReflex(['sim', 'rig', '--link', link, '--camera-port', String(port)]);
  await sim.waitForLog((l) => l.text === link, 10_000);
  const spec = { height: 48, width: 64, mean: [0, 0, 0] as [number, number, number], std: [1, 1, 1] as [number, number, number] };
  const cams = parseConfig({ deviceId: 't', cameras: [{ name: 'sim', source: simCameraSource(port) }] }, 'test').cameras;
  const vision = new VisionRuntime(cams, new Map([['sim', spec]]), pino({ level: 'silent' }));
  await vision.start();
  try {
    // Streaming within a bound (GStreamer and the rig's renderer start slowly on a loaded
    // machine), then a fps sample over the next 2 s.
    const until = Date.now() + 20_000;
    while (vision.status()[0]!.state !== 'streaming' && Date.now() < until) await sleep(100);
    await sleep(2000);
    const [s] = vision.status();
    assert.equal(s!.state, 'streaming');
    assert.ok(s!.fps > 10, `fps ${s!.fps} (30 sent; a loaded machine renders fewer)`);
    const px = new Float32Array(specLength(spec));
    assert.ok(new FrameSlot(vision.sources[0]!.buffer, px.length).read(px) > 0);
    // The red target moves on its loop (targetAt): wherever it is, it must be on that loop.
    const plane = 48 * 64;
    const red: [number, number][] = [];
    for (let y = 0; y < 48; y++) {
      for (let x = 0; x < 64; x++) {
        const i = y * 64 + x;
        if (px[i]! > 0.7 && px[plane + i]! < 0.3 && px[2 * plane + i]! < 0.3) red.push([x, y]);
      }
    }
    assert.ok(red.length > 0, 'the target is in the picture');
    const cx = red.reduce((a, [x]) => a + x, 0) / red.length;
    const cy = red.reduce((a, [, y]) => a + y, 0) / red.length;
    const perM = 64 / 1.2;
    const x = (cx - 32) / perM;
    const y = (24 - cy) / perM;
    const onLoop = Math.hypot((x - 0.3) / 0.08, y / 0.18);
    assert.ok(Math.abs(onLoop - 1) < 0.35, `target seen at ${x.toFixed(3)} m, ${y.toFixed(3)} m: off its loop (${onLoop.toFixed(2)})`);
  } finally {
    await vision.stop();
    sim.proc.kill('SIGTERM');
    await sim.exited;
  }
});

test('the simulated rig refuses to start when its camera port is taken, and says so', async () => {
  const port = await freePort();
  const holder = createServer();
  await new Promise<void>((resolve) => holder.listen(port, '127.0.0.1', resolve));
  try {
    const link = join(tempDir(), 'dxl0');
    const sim = spawnReflex(['sim', 'rig', '--link', link, '--camera-port', String(port)]);
    const timer = setTimeout(() => sim.proc.kill('SIGKILL'), 15_000);
    const { code } = await sim.exited;
    clearTimeout(timer);
    assert.notEqual(code, 0, 'a rig without its camera must not keep running');
    assert.notEqual(code, null, 'it exits by itself, not by our kill');
    assert.match(sim.stderr.join('\n'), new RegExp(`camera port ${port} .*in use`));
  } finally {
    holder.close();
  }
});
