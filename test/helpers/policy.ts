import { writeBundle, offsetModel } from '../../tools/models/index.js';
import { tempDir } from '../../tools/testkit/daemon.js';

export const ARM = ['base', 'shoulder', 'elbow'] as [string, ...string[]];

/**
 * A bundle for the three-joint arm whose action is the state plus (i + 1) * step, with identity
 * normalization: step 0 holds the arm where it is, so a daemon can run it on the simulated arm.
 */
export function holdBundle(name: string, over: { step?: number; horizon?: number; version?: string } = {}): string {
  const dir = tempDir(`reflex-policy-${name}-`);
  const horizon = over.horizon ?? 20;
  writeBundle(
    dir,
    {
      name,
      version: over.version ?? '1',
      fps: 50,
      joints: ARM,
      features: { 'observation.state': { shape: [3], normalization: 'identity' }, action: { shape: [horizon, 3], normalization: 'identity' } },
    },
    offsetModel({ joints: ARM, horizon, step: over.step ?? 0 }),
  );
  return dir;
}

/** Daemon config for the simulated arm (three XM430s on the pty at `port`). */
export function armDaemonConfig(port: string): Record<string, unknown> {
  return {
    buses: [{ name: 'arm', kind: 'dynamixel', port }],
    robot: { joints: ARM.map((name, i) => ({ name, bus: 'arm', id: i + 1, model: 'xm430-w350', limits: { min: -1.5, max: 1.5 } })) },
  };
}
