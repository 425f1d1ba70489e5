// Every benchmark runs here in its smoke mode (seconds, not minutes), through the same
// `npm run bench` entry a user runs, so that none can rot unnoticed: it must exit 0 and its
// last line of stdout must be one JSON object with the keys its issue named.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from '../tools/testkit/paths.js';

/** Per benchmark (and variant), the keys its last line must have; a dot reaches into an object. */
const EXPECTED: Record<string, { args: string[]; keys: string[] }[]> = {
  loop: [
    { args: [], keys: ['wake_lateness_us.p99', 'tick_duration_us.p99', 'tick_duration_us.max', 'missed_deadlines', 'overruns', 'baseline.cyclictest_us'] },
    { args: ['--load', 'full'], keys: ['wake_lateness_us.p50', 'wake_lateness_us.p99', 'wake_lateness_us.max', 'tick_duration_us.p50', 'tick_duration_us.p99', 'tick_duration_us.max', 'missed_deadlines', 'overruns', 'baseline.cyclictest_us', 'inferences'] },
  ],
  e2e: [{ args: [], keys: ['rss_mb.peak', 'rss_mb.steady', 'ready_ms', 'task_error.mean', 'missed_deadlines'] }],
  dynamixel: [{ args: [], keys: ['servos_6.heap_bytes_per_tick', 'servos_12.heap_bytes_per_tick', 'servos_12.allocated_bytes_per_tick_sampled'] }],
  can: [{ args: [], keys: ['motors_6.heap_bytes_per_tick', 'motors_12.heap_bytes_per_tick', 'motors_12_odrive.heap_bytes_per_tick'] }],
  policy: [{ args: [], keys: ['default.latency_ms.p99', 'act.latency_ms.p99', 'act.obs_to_chunk_ms.p99', 'provider'] }],
  camera: [{ args: [], keys: ['capture_preprocess_ms.p99', 'frame_age_ms.p99', 'fps'] }],
  record: [{ args: [], keys: ['wake_lateness_us.off.p99', 'wake_lateness_us.on.p99', 'wake_lateness_us.on.max', 'ratio.p99', 'wake_lateness_us.uploading.p99', 'upload.mib_per_s', 'recorder_cpu_pct_per_camera', 'bytes_per_minute', 'episode_close_ms', 'dropped_frames'] }],
  fleet: [{ args: [], keys: ['telemetry_batch_cpu_us.p99', 'outbox_append_per_s', 'outbox_drain_per_s', 'outbox_full_append_us.large.p99'] }],
  cli: [{ args: [], keys: ['status_ms.p50', 'status_ms.p99', 'baseline.systemctl_status_ms', 'daemon_cpu_pct.idle', 'daemon_cpu_pct.top', 'top_extra_cpu_pct'] }],
  rtc: [{ args: [], keys: ['crossfade.d0.task_error_rad', 'crossfade.d200.jerk_at_boundaries.max', 'ensemble.d100.jerk_at_boundaries.mean', 'rtc.d0.jerk_at_boundaries.mean', 'rtc.d100.missed_deadlines', 'rtc.d200.jerk_at_boundaries.max', 'rtc.d200.task_error_rad', 'executor_rtc_allocated_bytes_per_tick'] }],
  ota: [{ args: [], keys: ['publish_to_active_s', 'publish_to_commit_s', 'missed_deadlines_during_swap', 'starved_ticks_during_swap', 'rollback_s'] }],
};

function run(name: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [join(REPO, 'scripts', 'bench.mjs'), name, '--smoke', ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // A benchmark that hangs must fail this test, not hold the suite.
    const timer = setTimeout(() => proc.kill('SIGKILL'), 180_000);
    proc.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function reach(obj: unknown, path: string): unknown {
  let v = obj;
  for (const k of path.split('.')) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[k];
  }
  return v;
}

const benches = readdirSync(join(REPO, 'dist', 'bench'))
  .filter((f) => f.endsWith('.js') && !f.startsWith('_'))
  .map((f) => f.slice(0, -3))
  .sort();

test('every benchmark has its expected keys listed here', () => {
  assert.deepEqual(benches, Object.keys(EXPECTED).sort(), 'a new benchmark needs its keys in EXPECTED, a removed one leaves');
});

for (const name of benches) {
  for (const { args, keys } of EXPECTED[name] ?? []) {
    test(`npm run bench -- ${[name, ...args].join(' ')} --smoke prints its JSON`, { timeout: 200_000 }, async () => {
      const r = await run(name, args);
      assert.equal(r.code, 0, `exit ${r.code}\n${r.stderr.slice(-3000)}`);
      const last = r.stdout.trimEnd().split('\n').at(-1) ?? '';
      let out: unknown;
      assert.doesNotThrow(() => (out = JSON.parse(last)), `last line is not JSON: ${last.slice(0, 300)}`);
      for (const k of keys) assert.notEqual(reach(out, k), undefined, `${name}: key ${k} missing in ${last.slice(0, 600)}`);
    });
  }
}
