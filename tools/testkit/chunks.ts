import { MAX_HORIZON } from '../../src/rt/index.js';
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
    const link = this.loop.shared.link;
    const obs = link.observationRecord();
    const rec = link.chunkRecord();
    const action = new Float64Array(this.joints);
    let seen = link.request.seq;
    while (this.running) {
      const seq = await link.request.wait(seen, 50);
      if (seq === seen || this.paused) {
        seen = seq;
        continue;
      }
      seen = seq;
      link.observation.read(obs.data);
      const obsTick = obs.tick;
      await new Promise((res) => setTimeout(res, this.latencyMs));
      rec.obsTick = obsTick;
      rec.horizon = Math.min(this.horizon, MAX_HORIZON);
      rec.generation = 0;
      for (let i = 0; i < rec.horizon; i++) {
        this.policy(obsTick, i, action);
        rec.actions.set(action, i * this.joints);
      }
      link.chunk.write(rec.data);
      this.answered++;
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}
