// The trial's judge: the loop's and the inference workers' own counters, read when the new
// policy is swapped in and then every poll; a count past its threshold, a fault, an e-stop or
// the new policy's worker gone fails the trial. Time counts only while the policy drives the
// arm: a robot held by its technician neither passes nor fails a policy.
import type { LoopStatus } from '../control/index.js';
import type { PolicyStatus } from '../policy/index.js';
import type { TrialThresholds } from './settings.js';

export interface TrialCounts {
  missedDeadlines: number;
  starvedTicks: number;
  limitClamps: number;
  deltaClamps: number;
  nonFinite: number;
  inferenceErrors: number;
  overBudget: number;
  faults: number;
  estops: number;
}

export function countsOf(loop: LoopStatus, policy: PolicyStatus): TrialCounts {
  return {
    missedDeadlines: loop.missedDeadlines,
    starvedTicks: loop.starvedTicks,
    limitClamps: loop.safety.limitClamps,
    deltaClamps: loop.safety.deltaClamps,
    nonFinite: loop.safety.nonFinite,
    inferenceErrors: policy.inference.errors,
    overBudget: policy.inference.overBudget,
    faults: loop.safety.faults,
    estops: loop.safety.estops,
  };
}

const JUDGED = ['missedDeadlines', 'starvedTicks', 'limitClamps', 'deltaClamps', 'nonFinite', 'inferenceErrors', 'overBudget'] as const;

/** Why the trial fails now, or null while it holds up. `dir`: the policy on trial. */
export function verdict(base: TrialCounts, loop: LoopStatus, policy: PolicyStatus, dir: string, limits: TrialThresholds): string | null {
  const now = countsOf(loop, policy);
  if (policy.active === null || policy.active.dir !== dir) return `the new policy stopped serving (${policy.error ?? 'its worker ended'})`;
  if (loop.mode === 'fault' || now.faults > base.faults) return `the loop faulted${loop.fault ? `: ${loop.fault}` : ''}`;
  if (loop.mode === 'estop' || now.estops > base.estops) return 'an e-stop during the trial';
  for (const k of JUDGED) {
    const d = now[k] - base[k];
    if (d > limits[k]) return `${k}: ${d} during the trial (at most ${limits[k]})`;
  }
  return null;
}
