// A motor family added the way a user adds one: a bus kind with its keys, a check of the
// joints' model, and a factory, registered in one line (`defaultRegistry().register(lagFamily)`).
// Its motors live in memory: each follows its command with a first-order lag. The plant's state
// can sit in shared memory, so the thread that built the robot can watch the motors move while
// the bus itself lives in the control worker.
import { z } from 'zod';
import { defineMotorFamily, type MotorBus, type OpenBus } from '../../src/hardware/index.js';

/** Per motor in the plant's shared memory: where it is, and what it was last told. */
export const PLANT_POSITION = 0;
export const PLANT_COMMAND = 1;
const PLANT_SLOTS = 2;

/** Shared memory for a fake bus of `motors` motors, to put in its config (`plant`) and read with plantPosition(). */
export function plantMemory(motors: number): SharedArrayBuffer {
  return new SharedArrayBuffer(motors * PLANT_SLOTS * Float64Array.BYTES_PER_ELEMENT);
}

export function plantPosition(plant: SharedArrayBuffer, motor: number): number {
  return new Float64Array(plant)[motor * PLANT_SLOTS + PLANT_POSITION]!;
}

const busSchema = z.object({
  /** Time constant of every joint's lag behind its command, ms. */
  lagMs: z.number().positive().max(10_000).default(50),
  /** Where the plant's state is kept (plantMemory()); a bus of its own when absent. */
  plant: z.instanceof(SharedArrayBuffer).optional(),
});
const jointSchema = z.object({
  /** Where the joint stands when the bus opens, radians. */
  start: z.number().finite().default(0),
});

export const lagFamily = defineMotorFamily({
  kind: 'lag',
  module: import.meta.url,
  busSchema,
  jointSchema,
  checkModel: (model) => (model === 'lag-1' ? null : 'lag-1'),
  validate(bus, joints, report) {
    const need = joints.length * PLANT_SLOTS * Float64Array.BYTES_PER_ELEMENT;
    if (bus.plant !== undefined && bus.plant.byteLength < need) report.bus('plant', `shared memory of at least ${need} bytes`);
  },
  open: (b) => new LagBus(b),
});

/** A MotorBus whose motors follow their commands with a first-order lag, advanced on each read. */
class LagBus implements MotorBus {
  readonly name: string;
  readonly ids: readonly number[];
  readonly position: Float64Array;
  readonly velocity: Float64Array;
  readonly current: Float64Array;
  readonly temperature: Float64Array;
  readonly voltage: Float64Array;
  readonly fresh: Uint8Array;
  readonly hardwareError: Uint8Array;
  readonly errors = { failedReads: 0, retries: 0 };
  readonly disableOnStop = false;
  readonly load = null;
  readonly warnings: readonly string[] = [];
  readonly lost = null;
  private readonly plant: Float64Array;
  private readonly lagMs: number;
  private readonly t = new Float64Array(1);
  private limp = false;

  constructor(b: OpenBus<z.output<typeof busSchema>, z.output<typeof jointSchema>>) {
    const n = b.joints.length;
    this.name = b.name;
    this.lagMs = b.bus.lagMs;
    this.ids = b.joints.map((j) => j.id);
    this.plant = new Float64Array(b.bus.plant ?? plantMemory(n), 0, n * PLANT_SLOTS);
    b.joints.forEach((j, i) => {
      this.plant[i * PLANT_SLOTS + PLANT_POSITION] = j.options.start;
      this.plant[i * PLANT_SLOTS + PLANT_COMMAND] = j.options.start;
    });
    this.position = new Float64Array(n);
    this.velocity = new Float64Array(n);
    this.current = new Float64Array(n).fill(NaN);
    this.temperature = new Float64Array(n).fill(NaN);
    this.voltage = new Float64Array(n).fill(NaN);
    this.fresh = new Uint8Array(n);
    this.hardwareError = new Uint8Array(n);
    this.t[0] = performance.now();
    this.read();
  }

  read(): boolean {
    const now = performance.now();
    const a = this.limp ? 0 : 1 - Math.exp(-(now - this.t[0]!) / this.lagMs);
    const dt = (now - this.t[0]!) / 1000;
    this.t[0] = now;
    for (let i = 0; i < this.ids.length; i++) {
      const at = i * PLANT_SLOTS;
      const before = this.plant[at + PLANT_POSITION]!;
      const after = before + (this.plant[at + PLANT_COMMAND]! - before) * a;
      this.plant[at + PLANT_POSITION] = after;
      this.position[i] = after;
      this.velocity[i] = dt > 0 ? (after - before) / dt : 0;
      this.fresh[i] = 1;
    }
    return true;
  }

  write(positions: Float64Array): void {
    this.limp = false;
    for (let i = 0; i < this.ids.length; i++) this.plant[i * PLANT_SLOTS + PLANT_COMMAND] = positions[i]!;
  }

  /** Limp: the motors stay where they are (no gravity here). */
  disable(): void {
    this.limp = true;
  }

  reset(): void {}

  errorText(): string {
    return 'no error';
  }

  async reopen(): Promise<void> {}

  async close(): Promise<void> {}
}
