// A Recorder fed as the daemon feeds it, for the recorder's own tests: a tick ring written here
// as the control thread writes it, a raw camera FrameSlot written as the vision worker writes it,
// real ffmpeg and real files; and the dataset's parquet read back with hyparquet.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parquetReadObjects } from 'hyparquet';
import { pino } from 'pino';
import { FrameSlot, Tick, TickRing } from '../../src/rt/index.js';
import { rawSlotLength } from '../../src/hardware/camera/index.js';
import { Recorder, type RecorderOptions } from '../../src/record/index.js';
import { until as waitUntil } from '../../tools/testkit/mosquitto.js';

export interface RigShape {
  /** The dataset goes to <dir>/dataset. */
  dir: string;
  width: number;
  height: number;
  /** Ticks the ring holds. */
  ringTicks?: number;
}

export function recorderRig(shape: RigShape, over: Partial<RecorderOptions> = {}) {
  const { dir, width, height } = shape;
  const ring = new TickRing(3, shape.ringTicks ?? 512);
  const t = Tick.view(3);
  const slot = FrameSlot.create(rawSlotLength(width, height));
  let tick = 0;
  const recorder = new Recorder(
    {
      dir: join(dir, 'dataset'),
      fps: 10,
      rateHz: 50,
      robotType: 'test',
      joints: ['a', 'b', 'c'],
      cameras: [{ name: 'top', buffer: slot.buffer, width, height }],
      rawWanted: null,
      task: 'test task',
      maxDiskMb: 1000,
      minFreeMb: 0,
      ...over,
    },
    ring,
    () => ({ name: 'scripted', version: '7' }),
    pino({ level: 'silent' }),
  );
  return {
    dir,
    recorder,
    /** n ticks in `mode`, as the loop writes them; q is `marker` when given (to tell episodes apart), else tick / 100. */
    ticks(mode: number, n: number, marker?: number, interventions = 0) {
      for (let i = 0; i < n; i++) {
        t.tick = tick++;
        t.timeMs = performance.now();
        t.mode = mode;
        t.interventions = interventions;
        t.generation = 1;
        t.q.fill(marker ?? tick / 100);
        t.action.fill(0.5);
        t.command.fill(0.25);
        ring.push(t);
      }
    },
    frame(value: number) {
      slot.write(performance.now(), (into) => new Uint8Array(into.buffer, into.byteOffset, width * height * 3).fill(value));
    },
  };
}

/** The testkit's wait for a condition, with the recorder tests' bound. */
export function until(what: string, check: () => boolean, ms = 30_000): Promise<void> {
  return waitUntil(what, check, ms);
}

export async function readParquet(file: string): Promise<Record<string, unknown>[]> {
  const b = readFileSync(file);
  return (await parquetReadObjects({ file: b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) })) as Record<string, unknown>[];
}
