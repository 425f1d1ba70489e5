import type { Reporter } from './lifecycle.js';

/** Each part's status under its key. */
export type Statuses<R extends Record<string, Reporter>> = { [K in keyof R]: ReturnType<R[K]['status']> };

/**
 * The parts' own reports composed, in the order of the keys: status by key, every fault, one
 * telemetry record (each part's fields merged), and one headline. The keys are what status
 * shows the parts as (`loop`, `policy`, ...), not their lifecycle names.
 */
export class Report<R extends Record<string, Reporter>> {
  private readonly list: Reporter[];

  constructor(readonly parts: R) {
    this.list = Object.values(parts);
  }

  status(): Statuses<R> {
    const out: Record<string, unknown> = {};
    for (const [key, part] of Object.entries(this.parts)) out[key] = part.status();
    return out as Statuses<R>;
  }

  faults(): string[] {
    return this.list.flatMap((p) => p.faults?.() ?? []);
  }

  telemetry(): Record<string, unknown> {
    return Object.assign({}, ...this.list.map((p) => p.telemetry?.() ?? {})) as Record<string, unknown>;
  }

  headline(): string {
    return this.list.flatMap((p) => (p.headline ? [p.headline()] : [])).join(', ');
  }
}
