import type { ControlConfig, JointSpec } from '../../src/control/index.js';

/**
 * A control-worker config for one Dynamixel bus of XM430s at `port`, joint i on servo i + 1.
 * Without `joints`, three joints (base, shoulder, elbow) with limits of +-1.5 rad.
 */
export function armConfig(port: string, over: Partial<ControlConfig> = {}, joints?: JointSpec[]): ControlConfig {
  const js = joints ?? ['base', 'shoulder', 'elbow'].map((name, i) => ({ name, bus: 'arm', id: i + 1, min: -1.5, max: 1.5, maxVelocity: 3, offset: 0, direction: 1 as const }));
  return {
    rateHz: 50,
    spinUs: 1500,
    estop: 'hold',
    softStartTicks: 10,
    starvationLimitTicks: 25,
    firstChunkTicks: 25,
    chunk: { blend: 'crossfade', overlapTicks: 5, ensembleDecay: 0.01, refillTicks: 20 },
    realtime: { priority: 0, cpu: null, lockMemory: false },
    joints: js,
    dynamixel: [
      {
        name: 'arm',
        port,
        baud: 1_000_000,
        zeroReturnDelay: true,
        servos: js.map((j) => ({ id: j.id, model: 'xm430-w350' })),
        retries: 1,
        errorBudgetMs: 200,
        watchdogMs: 200,
      },
    ],
    can: [],
    ...over,
  };
}
