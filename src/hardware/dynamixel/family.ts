// Dynamixel X-series servos as a motor family of the driver registry (hardware/registry.ts).
import { z } from 'zod';
import { defineMotorFamily, type MotorMadeSafe } from '../motor-family.js';
import { errorMessage } from '../../core/index.js';
import { DynamixelBus } from './bus.js';
import { DynamixelMotorBus } from './motor-bus.js';
import { openSerial } from './serial.js';
import { MODELS, modelByName } from './tables.js';

/** Dynamixel baud rates the X series supports (control table address 8). */
export const DYNAMIXEL_BAUDS = [57600, 115200, 1000000, 2000000, 3000000, 4000000, 4500000] as const;

export const dynamixelFamily = defineMotorFamily({
  kind: 'dynamixel',
  module: import.meta.url,
  busSchema: z.object({
    /** Serial device: /dev/ttyUSB0, or better a stable /dev/serial/by-id/... path. */
    port: z.string().min(1),
    baud: z
      .number()
      .refine((b) => (DYNAMIXEL_BAUDS as readonly number[]).includes(b), `one of ${DYNAMIXEL_BAUDS.join(', ')}`)
      .default(1000000),
    /** Write Return Delay Time = 0 at start, so every reply comes back at once. */
    zeroReturnDelay: z.boolean().default(true),
  }),
  checkModel: (model) => (modelByName(model) ? null : `a Dynamixel model: ${MODELS.map((m) => m.name).join(', ')}`),
  open: (b) =>
    DynamixelMotorBus.open({
      name: b.name,
      port: b.bus.port,
      baud: b.bus.baud,
      zeroReturnDelay: b.bus.zeroReturnDelay,
      servos: b.joints.map((j) => ({ id: j.id, model: j.model })),
      retries: b.retries,
      errorBudgetMs: b.errorBudgetMs,
      watchdogMs: b.watchdogMs,
    }),
  // A servo holds its last goal with torque on for as long as it has power: torque off, each.
  async makeSafe(b) {
    const bus = new DynamixelBus(await openSerial(b.bus.port, b.bus.baud), { baud: b.bus.baud, usbLatencyMs: 16 });
    try {
      const out: MotorMadeSafe[] = [];
      for (const { id } of b.joints) {
        try {
          await bus.write(id, TORQUE_ENABLE, [0]);
          out.push({ id, ok: true, detail: 'torque off' });
        } catch (err) {
          out.push({ id, ok: false, detail: errorMessage(err) });
        }
      }
      return out;
    } finally {
      await bus.close();
    }
  },
});

/** Control table address of Torque Enable (X series). */
const TORQUE_ENABLE = 64;
