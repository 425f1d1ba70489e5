import type { DaemonStatus } from '../api/wire.js';

type JointInterventions = DaemonStatus['loop']['safety']['byJoint'][number];

function table(rows: readonly (readonly [string, string])[]): string {
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n') + '\n';
}

function duration(s: number): string {
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.floor(s % 60);
  return h > 0 ? `${h}h ${m}m ${sec}s` : m > 0 ? `${m}m ${sec}s` : `${s.toFixed(1)}s`;
}

/**
 * Whether the failed reads are worth a look: a read that fails now and then (a retry saves it)
 * is normal on a long cable; in more than 1 tick in 100 it is not.
 */
function busHint(failed: number, ticks: number): string {
  if (ticks === 0 || failed === 0) return '';
  const pct = (failed / ticks) * 100;
  return pct > 1
    ? ` (${pct.toFixed(1)}% of ticks: more than 1%, check the cabling, the adapter's latency and the baud; \`reflex hardware\` shows which bus)`
    : ` (${pct.toFixed(2)}% of ticks: normal under 1%)`;
}

/** Per minute of policy time; null without any. */
export function perMinute(count: number, policyTimeS: number): number | null {
  return policyTimeS > 0 ? (count * 60) / policyTimeS : null;
}

function rate(count: number, policyTimeS: number): string {
  const r = perMinute(count, policyTimeS);
  return r === null ? 'no policy time yet' : `${r < 10 ? r.toFixed(1) : r.toFixed(0)} a minute of policy time`;
}

/**
 * Whether a joint's interventions are worth a look. A clamp now and then at the edge of the
 * range is the filter doing its job; a policy that keeps asking past a joint's limit (more than
 * one a minute) was trained on another range or the limits are wrong; velocity clamps come
 * with every soft start, but more than one a second means jerky chunks or a limit set too low;
 * NaN/Inf is never normal; failed reads are normal under 1 tick in 100.
 */
export function jointInterventionText(j: JointInterventions, policyTimeS: number, ticks: number): string {
  const parts: string[] = [];
  if (j.limitClamps > 0) {
    const r = perMinute(j.limitClamps, policyTimeS);
    const hint = r === null ? '' : r > 1 ? `: often, the policy asks past this joint's limits; check robot.joints limits against the range it was trained on` : ': rare';
    parts.push(`${j.limitClamps} limit clamps (${rate(j.limitClamps, policyTimeS)}${hint})`);
  }
  if (j.deltaClamps > 0) {
    const r = perMinute(j.deltaClamps, policyTimeS);
    const hint = r === null ? '' : r > 60 ? ": often, the policy asks for more speed than maxVelocity allows (jerky chunks, or a limit set too low)" : ': normal with soft starts and chunk switches';
    parts.push(`${j.deltaClamps} velocity clamps (${rate(j.deltaClamps, policyTimeS)}${hint})`);
  }
  if (j.nonFinite > 0) parts.push(`${j.nonFinite} NaN/Inf commands (never normal: check the policy's model and its normalization)`);
  if (j.failedReads > 0) {
    const pct = ticks > 0 ? (j.failedReads / ticks) * 100 : 0;
    const hint = pct > 1 ? 'more than 1%: check this motor\'s cable and connector, then the bus (`reflex hardware`)' : 'normal under 1%';
    parts.push(`${j.failedReads} failed reads (${pct.toFixed(pct < 1 ? 2 : 1)}% of ticks: ${hint})`);
  }
  return parts.join('; ');
}

function byJointRows(l: DaemonStatus['loop']): [string, string][] {
  const by = l.safety.byJoint ?? [];
  const busy = by.filter((j) => j.limitClamps + j.deltaClamps + j.nonFinite + j.failedReads > 0);
  const head: [string, string] = [
    'by joint',
    `${busy.length === 0 ? 'no clamps or failed reads on any joint' : `clamps and failed reads since start, ${duration(l.policyTimeS ?? 0)} of policy time`}; retries are counted per bus (a retry asks again every motor that has not answered)`,
  ];
  return [head, ...busy.map((j): [string, string] => [`  ${j.joint}`, jointInterventionText(j, l.policyTimeS ?? 0, l.ticks)])];
}

function busRows(l: DaemonStatus['loop']): [string, string][] {
  const errors = new Map((l.bus.byBus ?? []).map((b) => [b.name, b]));
  return l.buses.map((b) => {
    const e = errors.get(b.name);
    const state = b.state === 'ok' ? 'ok' : `${b.state.toUpperCase()}${b.reason ? `: ${b.reason}` : ''}`;
    return [`bus ${b.name}`, e === undefined ? state : `${state}, ${e.failedReads} failed reads, ${e.retries} retries`];
  });
}

/** `reflex status` as a technician reads it. */
export function formatStatus(s: DaemonStatus): string {
  const l = s.loop;
  return table([
    ['device', s.deviceId],
    ['uptime', duration(s.uptimeS)],
    ['loop', `${l.healthy ? l.mode : 'STALLED'}, ${l.rateHz.toFixed(1)} Hz of ${l.targetHz} Hz, ${l.ticks} ticks`],
    ['wake lateness', `p50 ${l.latenessUs.p50.toFixed(1)} us, p99 ${l.latenessUs.p99.toFixed(1)} us, max ${l.latenessUs.max.toFixed(1)} us`],
    ['tick duration', `p50 ${l.tickDurationUs.p50.toFixed(0)} us, p99 ${l.tickDurationUs.p99.toFixed(0)} us, max ${l.tickDurationUs.max.toFixed(0)} us`],
    ['missed', `${l.missedDeadlines} deadlines, ${l.overruns} overruns, ${l.starvedTicks} starved ticks`],
    ['safety', `${l.safety.limitClamps} limit clamps, ${l.safety.deltaClamps} velocity clamps, ${l.safety.nonFinite} NaN/Inf, ${l.safety.estops} e-stops, ${l.safety.faults} faults`],
    ['buses', `${l.bus.failedReads} failed reads, ${l.bus.retries} retries, CAN load ${l.bus.loadPct}% of bitrate${busHint(l.bus.failedReads, l.ticks)}`],
    ...busRows(l),
    ...byJointRows(l),
    ['real time', l.realtime === null ? 'unknown' : l.realtime.fifoPriority !== null ? `SCHED_FIFO ${l.realtime.fifoPriority}${l.realtime.memoryLocked ? ', memory locked' : ''}` : `not real time (${l.realtime.notes.join('; ')})`],
    ['policy', s.policy.active ? `${s.policy.active.name} ${s.policy.active.version} on ${s.policy.active.provider}` : s.policy.state],
    ['inference', `${s.policy.inference.count} runs, mean ${s.policy.inference.meanMs} ms (ONNX Runtime ${s.policy.inference.meanOrtMs} ms), max ${s.policy.inference.maxMs} ms, ${s.policy.inference.errors} errors`],
    ...s.cameras.map((c): [string, string] => [`camera ${c.name}`, `${c.state}, ${c.fps.toFixed(1)} fps, age ${c.ageMs === null ? '-' : `${c.ageMs.toFixed(0)} ms`}, ${c.reopens} reopens`]),
    ['fleet link', 'error' in s.fleet && s.fleet.error ? `${s.fleet.state} (${s.fleet.error})` : s.fleet.state],
    ['faults', s.faults.length === 0 ? 'none' : s.faults.join('; ')],
    ['native addon', s.nativeAddon.available ? 'loaded' : `unavailable (${s.nativeAddon.reason ?? '?'})`],
    ...jointRows(s),
    ['versions', versionsLine(s.versions)],
  ]);
}

export function versionsLine(v: DaemonStatus['versions'] | undefined): string {
  if (v === undefined) return 'unknown (a daemon older than this client)';
  return `reflex ${v.reflex}, Node.js ${v.node}, ONNX Runtime ${v.onnxruntime ?? 'none'}, OpenCV ${v.opencv ?? 'none'}, kernel ${v.kernel}${v.jetpack ? `, ${v.jetpack}` : ''}`;
}

/** A hardware error byte in words (Dynamixel's Hardware Error Status bits). */
export function hardwareErrorText(bits: number): string {
  if (bits === 0) return 'ok';
  const names = ['input voltage', '', 'overheating', 'motor encoder', 'electrical shock', 'overload'];
  const set = names.flatMap((n, i) => (n !== '' && (bits & (1 << i)) !== 0 ? [n] : []));
  return `0x${bits.toString(16)}${set.length > 0 ? ` (${set.join(', ')})` : ''}`;
}

/** A number as text; '-' for what the motor does not report (NaN travels as null in JSON). */
function fixed(x: number | null, digits: number): string {
  return x === null || !Number.isFinite(x) ? '-' : x.toFixed(digits);
}

function jointRows(s: DaemonStatus): [string, string][] {
  const last = s.loop.lastTick?.joints ?? [];
  return (s.joints ?? []).map((h) => {
    const j = last.find((x) => x.name === h.joint);
    const pos = j === undefined ? '' : `at ${fixed(j.position, 3)} rad, command ${fixed(j.command, 3)}, `;
    return [`joint ${h.joint}`, `${pos}${fixed(h.temperatureC, 0)} C, ${fixed(h.voltageV, 1)} V, hardware ${hardwareErrorText(h.hardwareError ?? 0)}`];
  });
}
