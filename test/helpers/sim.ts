import { Worker } from 'node:worker_threads';
import type { SimBusOptions, SimBusFaults } from '../../src/sim/index.js';
import type { SimRequest } from './sim-worker.js';

export interface ServoSnapshot {
  mem: number[];
  ticks: number;
}

/** A simulated servo bus in a worker thread, driven from the test by messages. */
export class SimHandle {
  private seq = 0;
  private pending = new Map<number, (v: unknown) => void>();

  private constructor(
    private readonly worker: Worker,
    readonly path: string,
  ) {
    worker.on('message', (m: { seq?: number; result?: unknown }) => {
      if (m.seq === undefined) return;
      this.pending.get(m.seq)?.(m.result);
      this.pending.delete(m.seq);
    });
  }

  static async start(opts: SimBusOptions): Promise<SimHandle> {
    const worker = new Worker(new URL('./sim-worker.js', import.meta.url), { workerData: opts });
    const path = await new Promise<string>((resolve, reject) => {
      worker.once('message', (m: { path: string }) => resolve(m.path));
      worker.once('error', reject);
    });
    return new SimHandle(worker, path);
  }

  private call(req: SimRequest): Promise<unknown> {
    const seq = ++this.seq;
    return new Promise((resolve) => {
      this.pending.set(seq, resolve);
      this.worker.postMessage({ seq, req });
    });
  }

  faults(f: Partial<SimBusFaults>): Promise<unknown> {
    return this.call({ op: 'faults', faults: f });
  }
  async servo(id: number): Promise<ServoSnapshot> {
    return (await this.call({ op: 'servo', id })) as ServoSnapshot;
  }
  hardwareError(id: number, bits: number): Promise<unknown> {
    return this.call({ op: 'hardwareError', id, bits });
  }
  setPosition(id: number, ticks: number): Promise<unknown> {
    return this.call({ op: 'setPosition', id, ticks });
  }
  async close(): Promise<void> {
    const exited = new Promise((r) => this.worker.once('exit', r));
    void this.call({ op: 'close' });
    await exited;
  }
}
