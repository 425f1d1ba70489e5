// `reflex camera list|snapshot`: what cameras the robot has, and what one sees now. Through
// the daemon when it runs (it owns the cameras); straight from the device when it does not.
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ReflexError } from '../core/index.js';
import type { Config } from '../config/index.js';
import { loadOpenCv, openCapture } from '../hardware/camera/index.js';
import { request } from '../api/wire.js';
import type { Command } from 'commander';
import { daemonOptions, fail, optionalConfig, print, socketPath, type DaemonOptions } from './program.js';
import { EXIT } from '../core/index.js';

function devices(): string[] {
  const out: string[] = [];
  const byId = '/dev/v4l/by-id';
  if (existsSync(byId)) for (const e of readdirSync(byId)) out.push(join(byId, e));
  for (const e of readdirSync('/dev')) if (/^video\d+$/.test(e)) out.push(join('/dev', e));
  return out;
}

export function cameraList(config: Config | null): string {
  const lines = ['configured:'];
  for (const c of config?.cameras ?? []) lines.push(`  ${c.name}  ${String(c.source)}  ${c.width}x${c.height} ${c.format} @ ${c.fps} fps`);
  if ((config?.cameras.length ?? 0) === 0) lines.push('  (none)');
  lines.push('devices:');
  const found = devices();
  lines.push(...(found.length > 0 ? found.map((d) => `  ${d}`) : ['  (no /dev/video* devices)']));
  return `${lines.join('\n')}\n`;
}

/** Writes camera `name`'s current view to `file` (JPEG or PNG by extension). */
export async function cameraSnapshot(name: string, file: string, config: Config, socket: string): Promise<string> {
  try {
    const r = await request(socket, 'camera.snapshot', { name });
    writeFileSync(file, Buffer.from(r.jpeg, 'base64'));
    return `${file}: from the running daemon\n`;
  } catch (err) {
    if (!(err instanceof ReflexError && (err.disconnected || err.timeout))) throw err;
  }
  const cam = config.cameras.find((c) => c.name === name);
  if (!cam) throw new ReflexError('BAD_REQUEST', `no camera ${name} in the config (${config.cameras.map((c) => c.name).join(', ') || 'none'})`);
  const cv = loadOpenCv();
  const cap = openCapture(cv, cam);
  try {
    for (let i = 0; i < 10; i++) {
      const frame = cap.read();
      if (!frame.empty) {
        cv.imwrite(file, frame);
        return `${file}: ${frame.cols}x${frame.rows} from ${String(cam.source)}\n`;
      }
    }
    throw new ReflexError('BUS_ERROR', `camera ${name} (${String(cam.source)}) gave no frame`, { timeout: true });
  } finally {
    cap.release();
  }
}

export function registerCamera(program: Command): void {
  const c = program.command('camera').description('the robot\'s cameras');
  daemonOptions(c.command('list').description('configured cameras, the daemon\'s view of them, and the video devices present')).action(async (opts: DaemonOptions) => {
    const config = optionalConfig(opts);
    const live = await request(socketPath(opts), 'status', {}, 2000).then((s) => s.cameras, () => null);
    print(opts, { configured: config?.cameras ?? [], daemon: live, devices: devices() }, () => {
      const rows = live === null ? ['daemon: not reachable'] : ['daemon:', ...(live.length === 0 ? ['  (none)'] : live.map((s) => `  ${s.name}  ${s.state}, ${s.fps.toFixed(1)} fps, age ${s.ageMs === null ? '-' : `${s.ageMs.toFixed(0)} ms`}`))];
      return `${cameraList(config)}${rows.join('\n')}\n`;
    });
  });
  daemonOptions(c.command('snapshot').description('what camera NAME sees now, written to FILE (JPEG or PNG by its extension)').argument('<name>').argument('<file>')).action(
    async (name: string, file: string, opts: DaemonOptions) => {
      const config = optionalConfig(opts);
      if (config === null) fail(EXIT.USAGE, 'camera snapshot needs a config (--config FILE)');
      const text = await cameraSnapshot(name, file, config, socketPath(opts));
      print(opts, { name, file }, () => text);
    },
  );
}
