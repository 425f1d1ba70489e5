// `reflex motors safe --config FILE`: what reflex-safe.service runs once the daemon has died for
// good (systemd/reflex.service, OnFailure=). Nothing commands the joints then: a Dynamixel servo
// keeps holding its last goal with torque on, a CAN motor its last command. This opens each bus
// the config names (the dead daemon's lock on it is gone) and has each motor family make its
// motors safe (hardware MotorFamily.makeSafe: torque off, motor mode exited, axis idle).
import type { Config } from '../config/index.js';
import { controlConfigFrom } from '../control/index.js';
import { errorMessage } from '../core/index.js';
import { safeBus } from '../hardware/index.js';

/** What was made safe, one line per motor or bus; `ok` only when every motor was. */
export async function motorsSafe(config: Config): Promise<{ text: string; ok: boolean }> {
  const lines: string[] = [];
  let ok = true;
  for (const spec of controlConfigFrom(config).buses) {
    if (spec.joints.length === 0) continue;
    try {
      const motors = await safeBus(spec);
      if (motors === null) {
        ok = false;
        lines.push(`bus ${spec.name} (${spec.kind}): its family cannot make motors safe without the daemon; motors ${spec.joints.map((j) => j.id).join(', ')} rely on their own timeout`);
        continue;
      }
      for (const m of motors) {
        if (!m.ok) ok = false;
        lines.push(`bus ${spec.name}: motor ${m.id} ${m.ok ? m.detail : `FAILED: ${m.detail}`}`);
      }
    } catch (err) {
      ok = false;
      lines.push(`bus ${spec.name} (${spec.kind}) FAILED: ${errorMessage(err)}`);
    }
  }
  if (lines.length === 0) lines.push('no motors configured');
  return { text: lines.join('\n') + '\n', ok };
}
