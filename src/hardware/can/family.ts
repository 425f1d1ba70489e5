// CAN motors as a motor family of the driver registry (hardware/registry.ts): one bus kind,
// `can`, for both protocols it speaks (MIT mode, in the CubeMars and Damiao dialects, and
// ODrive's CANSimple). The joint's model picks the protocol, and a bus speaks one; the config
// file has always said `kind: can` for either, so they stay one family rather than two kinds.
import { z } from 'zod';
import { defineMotorFamily } from '../motor-family.js';
import { CanMotorBus } from './motor-bus.js';
import { protocolFor, type Send } from './protocols.js';
import { MIT_MODELS } from './mit.js';
import { SocketCan } from './socket.js';

/** The protocol a CAN motor model speaks: an MIT dialect, or ODrive's CANSimple; null for none. */
export function canProtocolOf(model: string): 'odrive' | 'damiao' | 'cubemars' | null {
  const m = model.toLowerCase();
  if (m.startsWith('odrive')) return 'odrive';
  return MIT_MODELS[m] ? (m.startsWith('dm') ? 'damiao' : 'cubemars') : null;
}

export const canFamily = defineMotorFamily({
  kind: 'can',
  module: import.meta.url,
  busSchema: z.object({
    /** SocketCAN interface (can0), or for the virtual bus the path of its socket (the simulated robot's). */
    interface: z.string().min(1),
    transport: z.enum(['socketcan', 'virtual']).default('socketcan'),
    /** What the interface was brought up with (bus load is reckoned against it). */
    bitrate: z.number().int().min(10_000).max(8_000_000).default(1_000_000),
    /** How long one exchange waits for the motors' replies before retrying the silent ones. */
    replyTimeoutUs: z.number().int().min(100).max(20_000).default(1000),
    /** A motor at or above this temperature faults the loop. */
    maxTemperatureC: z.number().min(20).max(150).default(80),
    /** On e-stop, fault and shutdown: go limp (exit motor mode, axis idle) or hold position. */
    onStop: z.enum(['disable', 'hold']).default('disable'),
    /** The loop warns when the frames take more than this percent of the bitrate. */
    loadWarnPct: z.number().min(1).max(100).default(70),
  }),
  /** A joint's `can:` block: the MIT-mode gains, and the effort a command may ask for. */
  jointSchema: z.object({
    /** Position gain, N m/rad (MIT mode). */
    kp: z.number().min(0).max(500).default(20),
    /** Damping, N m s/rad (MIT mode). */
    kd: z.number().min(0).max(5).default(1),
    /** N m for MIT motors (the target is bounded so the position term asks no more); A for ODrive (its current limit). */
    effortLimit: z.number().positive().default(5),
    /** ODrive: motor turns per joint turn, for a gearbox after the drive's encoder. */
    gearRatio: z.number().positive().max(1000).default(1),
  }),
  checkModel: (model) => (canProtocolOf(model) ? null : `a CAN motor model: ${Object.keys(MIT_MODELS).join(', ')}, or odrive`),
  validate(bus, joints, report) {
    if (bus.transport === 'socketcan' && !/^[a-zA-Z0-9_.-]{1,15}$/.test(bus.interface)) {
      report.bus('interface', 'a network interface name (can0) of at most 15 characters');
    }
    joints.forEach((j, i) => {
      const protocol = canProtocolOf(j.model);
      const other = joints.find((o) => canProtocolOf(o.model) !== null && canProtocolOf(o.model) !== protocol);
      if (protocol !== null && other) report.joint(i, 'model', `a model of one protocol per CAN bus (${j.model} shares ${bus.name} with ${other.model})`);
    });
  },
  open(b) {
    const transport = b.bus.transport === 'socketcan' ? SocketCan.open(b.bus.interface) : SocketCan.connectVirtual(b.bus.interface);
    return CanMotorBus.open(
      {
        name: b.name,
        interface: b.bus.interface,
        transport: b.bus.transport,
        bitrate: b.bus.bitrate,
        motors: b.joints.map((j) => ({ id: j.id, model: j.model, maxVelocity: j.maxVelocity, ...j.options })),
        retries: b.retries,
        errorBudgetMs: b.errorBudgetMs,
        replyTimeoutUs: b.bus.replyTimeoutUs,
        maxTemperatureC: b.bus.maxTemperatureC,
        onStop: b.bus.onStop,
        loadWarnPct: b.bus.loadWarnPct,
      },
      transport,
    );
  },
  // MIT motors hold their last command (and ODrive axes their closed loop) while powered: the
  // protocol's own disable frame to each, sent without enabling anything first.
  makeSafe(b) {
    const transport = b.bus.transport === 'socketcan' ? SocketCan.open(b.bus.interface) : SocketCan.connectVirtual(b.bus.interface);
    try {
      const motors = b.joints.map((j) => ({ id: j.id, model: j.model, maxVelocity: j.maxVelocity, ...j.options }));
      const protocol = protocolFor(motors);
      const sent = new Uint8Array(motors.length);
      const send: Send = (id, data, length, flags) => {
        if (transport.send(id, data, length, flags)) sent[current] = 1;
      };
      let current = 0;
      for (current = 0; current < motors.length; current++) protocol.disable(current, send);
      return Promise.resolve(motors.map((m, i) => ({ id: m.id, ok: sent[i] === 1, detail: sent[i] === 1 ? 'disable sent' : `the bus refused the frame (${transport.state})` })));
    } finally {
      transport.close();
    }
  },
});
