// A 640x480, 30 fps camera (GStreamer's videotestsrc, live) through the vision worker into a
// 224x224 tensor: capture-to-tensor time per frame, the age of the frame the inference side
// takes (sampled at 50 Hz, as a policy asking every tick would), and the frame rate.
import { pino } from 'pino';
import { parseConfig } from '../src/config/index.js';
import { VisionRuntime, specLength } from '../src/hardware/camera/index.js';
import { FrameSlot, monoMs } from '../src/rt/index.js';
import { argNumber, machine, progress, result, round, summary } from './_util.js';

const SECONDS = argNumber('seconds', 20, 2);
const spec = { height: 224, width: 224, mean: [0.485, 0.456, 0.406] as [number, number, number], std: [0.229, 0.224, 0.225] as [number, number, number] };
const cameras = parseConfig(
  { deviceId: 'bench', cameras: [{ name: 'top', source: 'videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=480,framerate=30/1', fps: 30 }] },
  'bench',
).cameras;
const vision = new VisionRuntime(cameras, new Map([['top', spec]]), pino({ level: 'warn' }, pino.destination(2)));
await vision.start();
while (vision.status()[0]!.state !== 'streaming') await new Promise((r) => setTimeout(r, 50));
await new Promise((r) => setTimeout(r, 1000));
const slot = new FrameSlot(vision.sources[0]!.buffer, specLength(spec));
const tensor = new Float32Array(specLength(spec));
const rec = new Float64Array(2);
while (vision.timings.pop(rec)) {
  // discard start-up
}
const frames0 = vision.status()[0]!.frames;
progress(`sampling for ${SECONDS} s...`);
const ages: number[] = [];
const pre: number[] = [];
const t0 = monoMs();
while (monoMs() - t0 < SECONDS * 1000) {
  await new Promise((r) => setTimeout(r, 20));
  const captured = slot.read(tensor);
  if (captured > 0) ages.push(monoMs() - captured);
  while (vision.timings.pop(rec)) pre.push(rec[1]!);
}
const s = vision.status()[0]!;
await vision.stop();
const periodMs = 1000 / 30;
const age = summary(ages, 2);
result({
  machine: machine(),
  seconds: SECONDS,
  capture_preprocess_ms: summary(pre, 2),
  frame_age_ms: age,
  fps: round((s.frames - frames0) / SECONDS, 2),
  frame_age_p99_in_periods: round(age.p99 / periodMs, 2),
  timings_dropped: vision.timings.dropped,
});
