// `reflex hardware`: every bus, motor and camera the daemon drives, with what the config says
// they are (kind, model, id, source) and what the daemon sees now (state, errors, health).
import type { Command } from 'commander';
import { request, type DaemonStatus } from '../api/index.js';
import type { Config } from '../config/index.js';
import { hardwareErrorText } from './format.js';
import { daemonOptions, optionalConfig, print, socketPath, type DaemonOptions } from './program.js';

export interface HardwareView {
  buses: { name: string; kind: string | null; port: string | null; state: string; reason: string | null }[];
  motors: { joint: string; bus: string | null; id: number | null; model: string | null; temperatureC: number | null; voltageV: number | null; hardwareError: number; position: number | null }[];
  cameras: { name: string; source: string | null; state: string; fps: number; frames: number; failures: number; reopens: number; ageMs: number | null }[];
  /** The loop's totals (the daemon does not split them by bus yet). */
  errors: { failedReads: number; retries: number; canLoadPct: number };
}

export function hardwareView(s: DaemonStatus, config: Config | null): HardwareView {
  const busCfg = (name: string) => config?.buses.find((b) => b.name === name) as { kind?: string; port?: string; interface?: string } | undefined;
  const joint = (name: string) => config?.robot.joints.find((j) => j.name === name);
  const last = s.loop.lastTick?.joints ?? [];
  return {
    buses: s.loop.buses.map((b) => {
      const c = busCfg(b.name);
      return { name: b.name, kind: c?.kind ?? null, port: c?.port ?? c?.interface ?? null, state: b.state, reason: b.reason };
    }),
    motors: s.joints.map((h) => {
      const j = joint(h.joint);
      return {
        joint: h.joint,
        bus: j?.bus ?? null,
        id: j?.id ?? null,
        model: j?.model ?? null,
        temperatureC: h.temperatureC,
        voltageV: h.voltageV,
        hardwareError: h.hardwareError,
        position: last.find((x) => x.name === h.joint)?.position ?? null,
      };
    }),
    cameras: s.cameras.map((c) => ({
      name: c.name,
      source: String(config?.cameras.find((x) => x.name === c.name)?.source ?? '') || null,
      state: c.state,
      fps: c.fps,
      frames: c.frames,
      failures: c.failures,
      reopens: c.reopens,
      ageMs: c.ageMs,
    })),
    errors: { failedReads: s.loop.bus.failedReads, retries: s.loop.bus.retries, canLoadPct: s.loop.bus.loadPct },
  };
}

const n = (x: number | null, d: number, unit: string) => (x === null || !Number.isFinite(x) ? '-' : `${x.toFixed(d)}${unit}`);

export function formatHardware(h: HardwareView): string {
  const out = ['BUSES'];
  for (const b of h.buses) out.push(`  ${b.name.padEnd(10)} ${(b.kind ?? '?').padEnd(10)} ${(b.port ?? '?').padEnd(28)} ${b.state}${b.reason ? `: ${b.reason}` : ''}`);
  if (h.buses.length === 0) out.push('  (none)');
  out.push(`  errors since start: ${h.errors.failedReads} failed reads, ${h.errors.retries} retries; CAN load ${h.errors.canLoadPct}%`);
  out.push('MOTORS');
  for (const m of h.motors) {
    out.push(`  ${m.joint.padEnd(10)} bus ${(m.bus ?? '?').padEnd(8)} id ${String(m.id ?? '?').padEnd(4)} ${(m.model ?? '?').padEnd(12)} ${n(m.position, 3, ' rad').padStart(11)} ${n(m.temperatureC, 0, ' C').padStart(5)} ${n(m.voltageV, 1, ' V').padStart(7)}  ${hardwareErrorText(m.hardwareError)}`);
  }
  if (h.motors.length === 0) out.push('  (none)');
  out.push('CAMERAS');
  for (const c of h.cameras) out.push(`  ${c.name.padEnd(10)} ${(c.source ?? '?').padEnd(40)} ${c.state}, ${c.fps.toFixed(1)} fps, ${c.frames} frames, ${c.failures} failures, ${c.reopens} reopens`);
  if (h.cameras.length === 0) out.push('  (none)');
  return `${out.join('\n')}\n`;
}

export function registerHardware(program: Command): void {
  daemonOptions(program.command('hardware').description('every bus, motor and camera the daemon drives: model, id, state, errors, health')).action(async (opts: DaemonOptions) => {
    const s = await request(socketPath(opts), 'status');
    const view = hardwareView(s, optionalConfig(opts));
    print(opts, view, () => formatHardware(view));
  });
}
