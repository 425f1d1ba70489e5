// The daemon's recent faults and e-stops, kept so a technician arriving after the fact can see
// what happened, to which joint, and what cleared it (`reflex faults`). Bounded: the oldest
// entries make way, and how many did is counted.
import type { Origin } from './access.js';

export interface FaultEntry {
  /** Wall-clock time, ISO 8601 (what a technician compares with their watch and the journal). */
  at: string;
  kind: 'fault' | 'estop';
  reason: string;
  /** The joint the reason names, if it names one. */
  joint: string | null;
  /** What cleared it, and when; null while it holds. */
  cleared: { at: string; by: string } | null;
}

export interface FaultHistoryView {
  entries: FaultEntry[];
  /** Older entries dropped to keep the bound. */
  dropped: number;
}

/** Who sent a command, in words for the history and the log. */
export function describeOrigin(origin: Origin): string {
  if (origin.via === 'fleet') return `the fleet (${origin.from})`;
  if (origin.via === 'internal') return 'reflex';
  return origin.peer === null ? 'a local client' : `${origin.peer.user} (uid ${origin.peer.uid})`;
}

export class FaultHistory {
  private readonly entries: FaultEntry[] = [];
  private dropped = 0;

  constructor(
    private readonly max = 200,
    private readonly now: () => Date = () => new Date(),
  ) {}

  add(kind: FaultEntry['kind'], reason: string): void {
    const joint = /\bjoint (\S+?)[\s:,)]/.exec(`${reason} `)?.[1] ?? null;
    this.entries.push({ at: this.now().toISOString(), kind, reason, joint, cleared: null });
    if (this.entries.length > this.max) {
      this.entries.shift();
      this.dropped++;
    }
  }

  /** Marks every entry still holding as cleared by `by`; returns how many. */
  clear(by: string): number {
    const at = this.now().toISOString();
    let n = 0;
    for (const e of this.entries) {
      if (e.cleared !== null) continue;
      e.cleared = { at, by };
      n++;
    }
    return n;
  }

  /** The newest `limit` entries, oldest first. */
  view(limit = this.max): FaultHistoryView {
    return { entries: this.entries.slice(-limit).map((e) => ({ ...e, cleared: e.cleared && { ...e.cleared } })), dropped: this.dropped };
  }
}
