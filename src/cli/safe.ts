// `reflex motors safe --config FILE`: what reflex-safe.service runs once the daemon has died for
// good (systemd/reflex.service, OnFailure=). Nothing commands the joints then, and a Dynamixel
// servo keeps holding its last goal with torque on; this opens each bus the config names (the
// dead daemon's lock on it is gone) and turns every configured servo's torque off.
import type { Config } from '../config/index.js';
import { errorMessage } from '../core/index.js';
import { dynamixelFamily } from '../hardware/index.js';
import { DynamixelBus, openSerial } from '../hardware/dynamixel/index.js';

const TORQUE_ENABLE = 64;

/** What was made safe, one line per servo or bus; `ok` only when every motor was. */
export async function motorsSafe(config: Config): Promise<{ text: string; ok: boolean }> {
  const lines: string[] = [];
  let ok = true;
  for (const { name, kind, ...rest } of config.buses) {
    const ids = config.robot.joints.filter((j) => j.bus === name).map((j) => j.id);
    if (ids.length === 0) continue;
    if (kind !== 'dynamixel') {
      // Disabling CAN motors needs their protocol's frames (hardware/can), which the CAN room
      // does not export yet; until then their own CAN timeout must stop them.
      ok = false;
      lines.push(`bus ${name} (${kind}): not made safe by this command; motors ${ids.join(', ')} rely on their own timeout`);
      continue;
    }
    const { port, baud } = dynamixelFamily.busSchema.parse(rest);
    let bus: DynamixelBus | null = null;
    try {
      bus = new DynamixelBus(await openSerial(port, baud), { baud, usbLatencyMs: 16 });
      for (const id of ids) {
        try {
          await bus.write(id, TORQUE_ENABLE, [0]);
          lines.push(`bus ${name}: servo ${id} torque off`);
        } catch (err) {
          ok = false;
          lines.push(`bus ${name}: servo ${id} FAILED: ${errorMessage(err)}`);
        }
      }
    } catch (err) {
      ok = false;
      lines.push(`bus ${name} (${port}) FAILED: ${errorMessage(err)}`);
    } finally {
      await bus?.close();
    }
  }
  if (lines.length === 0) lines.push('no motors configured');
  return { text: lines.join('\n') + '\n', ok };
}
