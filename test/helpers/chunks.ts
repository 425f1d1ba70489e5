import { CHUNK_HEADER, MAX_HORIZON } from '../../src/control/index.js';
import type { ControlLoop } from '../../src/control/index.js';

/**
 * A scripted policy standing in for the inference worker: whenever the loop asks for a chunk,
 * it answers (after `latencyMs`) with `horizon` actions from `policy(obsTick, i)`.
 */
export class ScriptedChunks {
  answered = 0;
  paused = false;
  private running = true;
  private readonly done: Promise<void>;

  constructor(
    private readonly loop: ControlLoop,
    private readonly joints: number,
    private readonly policy: (obsTick: number, i: number, out: Float64Array) => void,
    private readonly horizon = 50,
    private readonly latencyMs = 30,
  ) {
    this.done = this.serve();
  }

  private async serve(): Promise<void> {
    const { request, observation, chunk } = this.loop.shared;
    const obs = new Float64Array(observation.length);
    const rec = new Float64Array(chunk.length);
    const action = new Float64Array(this.joints);
    let seen = Atomics.load(request, 0);
    while (this.running) {
      const r = Atomics.waitAsync(request, 0, seen, 50);
      if (r.async) await r.value;
      const seq = Atomics.load(request, 0);
      if (seq === seen || this.paused) {
        seen = seq;
        continue;
      }
      seen = seq;
      observation.read(obs);
      const obsTick = obs[0]!;
      await new Promise((res) => setTimeout(res, this.latencyMs));
      rec[0] = obsTick;
      rec[1] = Math.min(this.horizon, MAX_HORIZON);
      rec[2] = 0;
      for (let i = 0; i < rec[1]; i++) {
        this.policy(obsTick, i, action);
        for (let j = 0; j < this.joints; j++) rec[CHUNK_HEADER + i * this.joints + j] = action[j]!;
      }
      chunk.write(rec);
      this.answered++;
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}
