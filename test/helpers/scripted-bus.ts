// A MotorBus in memory whose answers a test decides: which motors do not answer, its retry
// count, a lost port. For driving the control core tick by tick, without a thread or a clock.
import type { MotorBus } from '../../src/hardware/index.js';

/** Motors in memory whose answers the test decides: which did not answer, retries, a lost port. */
export class ScriptedBus implements MotorBus {
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
  lost: string | null = null;
  /** 1 for the motors (by index) that do not answer the next reads. */
  readonly silent: Uint8Array;

  constructor(
    readonly name: string,
    readonly ids: readonly number[],
  ) {
    const n = ids.length;
    this.position = new Float64Array(n);
    this.velocity = new Float64Array(n);
    this.current = new Float64Array(n);
    this.temperature = new Float64Array(n).fill(30);
    this.voltage = new Float64Array(n).fill(12);
    this.fresh = new Uint8Array(n);
    this.hardwareError = new Uint8Array(n);
    this.silent = new Uint8Array(n);
  }

  read(): boolean {
    if (this.lost !== null) throw new Error(this.lost);
    let ok = true;
    for (let i = 0; i < this.ids.length; i++) {
      this.fresh[i] = this.silent[i] === 1 ? 0 : 1;
      if (this.silent[i] === 1) ok = false;
    }
    return ok;
  }
  write(positions: Float64Array): void {
    this.position.set(positions);
  }
  disable(): void {}
  reset(): void {}
  errorText(): string {
    return 'no error';
  }
  reopen(): Promise<void> {
    return Promise.resolve();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}
