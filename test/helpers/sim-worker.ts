// Runs a simulated servo bus in its own thread, so that a test can block in the control
// thread's synchronous reads while the simulated servos answer.
import { parentPort, workerData } from 'node:worker_threads';
import { SimDynamixelBus, type SimBusOptions, type SimBusFaults } from '../../src/sim/index.js';

export type SimRequest =
  | { op: 'faults'; faults: Partial<SimBusFaults> }
  | { op: 'servo'; id: number }
  | { op: 'hardwareError'; id: number; bits: number }
  | { op: 'setPosition'; id: number; ticks: number }
  | { op: 'close' };

const sim = new SimDynamixelBus(workerData as SimBusOptions);
parentPort!.postMessage({ path: sim.path });
parentPort!.on('message', (m: { seq: number; req: SimRequest }) => {
  const r = m.req;
  let result: unknown = null;
  switch (r.op) {
    case 'faults':
      Object.assign(sim.faults, r.faults);
      break;
    case 'servo': {
      const s = sim.servo(r.id);
      result = { mem: Array.from(s.mem.subarray(0, 256)), ticks: s.positionTicks };
      break;
    }
    case 'hardwareError':
      sim.servo(r.id).injectHardwareError(r.bits);
      break;
    case 'setPosition':
      sim.servo(r.id).setPosition(r.ticks);
      break;
    case 'close':
      sim.close();
      parentPort!.postMessage({ seq: m.seq, result });
      process.exit(0);
  }
  parentPort!.postMessage({ seq: m.seq, result });
});
