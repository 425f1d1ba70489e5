// `reflex hardware`: every bus, motor and camera the daemon drives, with what the config says
// they are (kind, model, id, source) and what the daemon sees now (state, errors, health).
import type { Command } from 'commander';
import { request, type DaemonStatus } from '../api/wire.js';
import type { Config } from '../config/index.js';
import { hardwareErrorText } from './format.js';
import { daemonOptions, optionalConfig, print, socketPath, type DaemonOptions } from './program.js';

export interface HardwareView {
  /** failedReads: ticks a read of the bus failed; retries: the bus's retries (null: a daemon that does not count them per bus). */
  buses: { name: string; kind: string | null; port: string | null; state: string; reason: string | null; failedReads: number | null; retries: number | null }[];
  /** failedReads: ticks the motor gave no fresh value. Retries are not split by motor: a retry asks again every motor that has not answered. */
  motors: { joint: string; bus: string | null; id: number | null; model: string | null; temperatureC: number | null; voltageV: number | null; hardwareError: number; position: number | null; failedReads: number | null }[];
  cameras: { name: string; source: string | null; state: string; fps: number; frames: number; failures: number; reopens: number; ageMs: number | null }[];
  /** The loop's totals: ticks some motor did not answer, retries on every bus. */
  errors: { failedReads: number; retries: number; canLoadPct: number };
}

export function hardwareView(s: DaemonStatus, config: Config | null): HardwareView {
  const busCfg = (name: string) => config?.buses.find((b) => b.name === name) as { kind?: string; port?: string; interface?: string } | undefined;
  const joint = (name: string) => config?.robot.joints.find((j) => j.name === name);
  const last = s.loop.lastTick?.joints ?? [];
  // Optional: a daemon older than this client has no split.
  const byBus = s.loop.bus.byBus as DaemonStatus['loop']['bus']['byBus'] | undefined;
  const byJoint = s.loop.safety.byJoint as DaemonStatus['loop']['safety']['byJoint'] | undefined;
  return {
    buses: s.loop.buses.map((b) => {
      const c = busCfg(b.name);
      const e = byBus?.find((x) => x.name === b.name);
      return { name: b.name, kind: c?.kind ?? null, port: c?.port ?? c?.interface ?? null, state: b.state, reason: b.reason, failedReads: e?.failedReads ?? null, retries: e?.retries ?? null };
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
        failedReads: byJoint?.find((x) => x.joint === h.joint)?.failedReads ?? null,
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

const count = (x: number | null) => (x === null ? '-' : String(x));
const n = (x: number | null, d: number, unit: string) => (x === null || !Number.isFinite(x) ? '-' : `${x.toFixed(d)}${unit}`);

export function formatHardware(h: HardwareView): string {
  const out = ['BUSES'];
  for (const b of h.buses) {
    out.push(`  ${b.name.padEnd(10)} ${(b.kind ?? '?').padEnd(10)} ${(b.port ?? '?').padEnd(28)} ${count(b.failedReads).padStart(6)} failed reads ${count(b.retries).padStart(6)} retries  ${b.state}${b.reason ? `: ${b.reason}` : ''}`);
  }
  if (h.buses.length === 0) out.push('  (none)');
  out.push(`  errors since start: ${h.errors.failedReads} ticks with a failed read, ${h.errors.retries} retries; CAN load ${h.errors.canLoadPct}%`);
  out.push('  (retries are counted per bus: a retry asks again every motor that has not answered; failed reads are per motor below)');
  out.push('MOTORS');
  for (const m of h.motors) {
    out.push(`  ${m.joint.padEnd(10)} bus ${(m.bus ?? '?').padEnd(8)} id ${String(m.id ?? '?').padEnd(4)} ${(m.model ?? '?').padEnd(12)} ${n(m.position, 3, ' rad').padStart(11)} ${n(m.temperatureC, 0, ' C').padStart(5)} ${n(m.voltageV, 1, ' V').padStart(7)} ${count(m.failedReads).padStart(6)} failed reads  ${hardwareErrorText(m.hardwareError)}`);
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
