import { pino } from 'pino';
import { parseConfig } from '../../src/config/index.js';
import type { ImageSpec } from '../../src/hardware/camera/index.js';

/** Camera configs as the schema completes them. */
export function cameras(list: { name: string; source: string; maxAgeMs?: number }[]) {
  return parseConfig({ deviceId: 't', cameras: list }, 'test').cameras;
}

/** A logger whose records the test can read. */
export function logger() {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, lines };
}

/** A small pre-processing spec: quick to check by hand. */
export const small: ImageSpec = { height: 32, width: 48, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] };
