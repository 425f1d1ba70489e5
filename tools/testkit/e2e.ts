import { join } from 'node:path';
import { simCameraSource } from '../../src/sim/index.js';
import { spawnReflex, tempDir, testConfig, writeConfig, type Spawned } from './daemon.js';
import { REPO } from './paths.js';
import { freePort } from './mosquitto.js';

export interface E2E {
  dir: string;
  rig: Spawned;
  rigSocket: string;
  daemon: Spawned;
  /** Date.now() just before the daemon's process was spawned. */
  daemonSpawnedAt: number;
  socket: string;
  stop(): Promise<{ daemon: number | null }>;
}

/** The simulated rig and the daemon, as separate processes, wired as `npm start` wires them. */
export async function startE2E(extra: Record<string, unknown> = {}, env: NodeJS.ProcessEnv = {}): Promise<E2E> {
  const dir = tempDir('reflex-e2e-');
  const link = join(dir, 'dxl0');
  const canLink = join(dir, 'can0.sock');
  const rigSocket = join(dir, 'rig.sock');
  const port = await freePort();
  const rig = spawnReflex(['sim', 'rig', '--link', link, '--can-link', canLink, '--camera-port', String(port), '--socket', rigSocket]);
  await rig.waitForLog((l) => l.text === link, 15_000);
  const config = testConfig(dir, {
    // As config/dev.yaml: the base a CAN motor on the rig's virtual bus, the rest Dynamixel.
    buses: [
      { name: 'arm', kind: 'dynamixel', port: link },
      { name: 'base', kind: 'can', transport: 'virtual', interface: canLink },
    ],
    robot: {
      joints: [
        { name: 'base', bus: 'base', id: 1, model: 'dm-j4310', limits: { min: -2.6, max: 2.6 }, can: { kp: 20, kd: 1, effortLimit: 5 } },
        { name: 'shoulder', bus: 'arm', id: 2, model: 'xm430-w350', limits: { min: -1.6, max: 1.6 } },
        { name: 'elbow', bus: 'arm', id: 3, model: 'xm430-w350', limits: { min: -2.2, max: 2.2 } },
      ],
    },
    cameras: [{ name: 'top', source: simCameraSource(port), maxAgeMs: 400 }],
    policy: { bundle: join(REPO, 'models', 'reach') },
    debug: { faultInjection: true },
    ...extra,
  });
  const socket = join(dir, 'control.sock');
  const file = writeConfig(dir, config);
  const daemonSpawnedAt = Date.now();
  const daemon = spawnReflex(['run', '--config', file], env);
  return {
    dir,
    rig,
    rigSocket,
    daemon,
    daemonSpawnedAt,
    socket,
    stop: async () => {
      daemon.proc.kill('SIGTERM');
      const { code } = await daemon.exited;
      rig.proc.kill('SIGTERM');
      await rig.exited;
      return { daemon: code };
    },
  };
}
