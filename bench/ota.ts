// An over-the-air update on the simulated robot, end to end: a real Mosquitto, the bundle on a
// static file server on loopback, the rig and the daemon as separate processes (npm start's
// setup, the reaching policy running). An ACT-size bundle (the benchmark ACT's transformer, on
// this arm's three joints, no cameras) is signed with the operator's CLI and published as the
// desired policy; then a policy that drifts into the joint limits is published and rolled back
// by its trial. The loop's own counters say what the swaps cost it.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { request } from '../src/api/index.js';
import type { DaemonStatus } from '../src/daemon.js';
import type { JobReport } from '../src/ota/index.js';
import { ACT_BENCH, offsetModel, writeActBundle, writeBundle } from '../tools/models/index.js';
import { runReflex, tempDir } from '../tools/testkit/daemon.js';
import { startE2E } from '../tools/testkit/e2e.js';
import { Mosquitto, freePort, subscriber, until } from '../tools/testkit/mosquitto.js';
import { SMOKE, argNumber, machine, progress, result, round } from './_util.js';

// Long enough, even in a smoke run, for the drifting policy to reach a limit within its trial.
const TRIAL_S = argNumber('trial', 10, 4);
const JOINTS = ['base', 'shoulder', 'elbow'] as const;

async function cli(args: string[]): Promise<void> {
  const r = await runReflex(args);
  if (r.code !== 0) throw new Error(`reflex ${args.join(' ')}: ${r.stderr}`);
}

/** The benchmark ACT's transformer for this arm: 3 joints, no cameras, small actions around zero (its raw outputs reach tens). */
function actBundle(dir: string): void {
  writeActBundle(dir, { ...ACT_BENCH, cameras: [], dof: JOINTS.length });
  const p = join(dir, 'policy.json');
  const spec = JSON.parse(readFileSync(p, 'utf8')) as { name: string; joints: string[]; stats: { action: { std: number[] } } };
  spec.name = 'act';
  spec.joints = [...JOINTS];
  spec.stats.action.std = JOINTS.map(() => 0.01);
  writeFileSync(p, `${JSON.stringify(spec, null, 2)}\n`);
}

function driftBundle(dir: string): void {
  writeBundle(
    dir,
    { name: 'drift', version: '1', fps: 50, joints: [...JOINTS], features: { 'observation.state': { shape: [3], normalization: 'identity' }, action: { shape: [10, 3], normalization: 'identity' } } },
    offsetModel({ joints: JOINTS, horizon: 10, step: 0.04 }),
  );
}

const work = tempDir('reflex-bench-ota-');
const keys = join(work, 'keys');
await cli(['keys', 'generate', '--out', keys, '--id', 'bench']);
const made: Record<string, { tar: string; sha256: string; size: number; name: string; version: string }> = {};
for (const [name, make, version] of [['act', actBundle, '2.0.0'], ['drift', driftBundle, '1.0.0']] as const) {
  const dir = join(work, name);
  make(dir);
  const tar = join(work, `${name}.tar`);
  await cli(['bundle', 'create', '--policy', dir, '--version', version, '--robot', 'robot', '--out', tar]);
  await cli(['bundle', 'sign', tar, '--key', join(keys, 'bench.key')]);
  const bytes = readFileSync(tar);
  made[name] = { tar, sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length, name, version };
}
progress(`ACT-size bundle: ${(made.act!.size / 1024 ** 2).toFixed(1)} MiB`);

const server = createServer((req, res) => {
  const b = made[(req.url ?? '').slice(1)];
  if (!b) return void res.writeHead(404).end();
  res.writeHead(200, { 'content-length': b.size });
  res.end(readFileSync(b.tar));
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
const broker = new Mosquitto(work, await freePort());
await broker.start();
const url = `mqtt://127.0.0.1:${broker.port}`;
const jobs = await subscriber(url, 'reflex/v1/test-01/jobs/+');
const backend = await mqtt.connectAsync(url, { protocolVersion: 5 });
progress(`broker on ${url}, bundles on ${base}; starting the rig and the daemon...`);
const e = await startE2E({
  debug: { faultInjection: false },
  fleet: { enabled: true, url },
  // Generous bounds on a shared machine: a slow bus read or a late first chunk must not fault
  // the loop before the update is measured (the swap's own cost is what is counted).
  control: { bus: { errorBudgetMs: 1000 }, firstChunkMs: 20_000, starvationLimitMs: 2000 },
  // The reaching arm is rarely still (its target moves): the swap happens at a chunk boundary.
  ota: { trialS: TRIAL_S, safeWhen: 'still', stillVelocity: 10, trustedKeys: [{ id: 'bench', publicKeyFile: join(keys, 'bench.pub') }] },
});
const status = () => request(e.socket, 'status');
const reports = (jobId: string) => jobs.messages.filter((m) => m.topic.endsWith(`/${jobId}`)).map((m) => ({ at: Date.now(), r: JSON.parse(m.payload) as JobReport }));
const seen = new Map<string, number>();
jobs.client.on('message', (topic, payload) => {
  const r = JSON.parse(payload.toString()) as JobReport;
  const key = `${r.jobId}:${r.state === 'IN_PROGRESS' ? r.step : r.state}`;
  if (!seen.has(key)) seen.set(key, performance.now());
});
const publish = (jobId: string, name: string) => {
  const b = made[name]!;
  return backend.publishAsync('reflex/v1/test-01/desired/policy', JSON.stringify({ jobId, bundle: { name: b.name, version: b.version, url: `${base}/${name}`, sha256: b.sha256, size: b.size } }), { qos: 1, retain: true });
};
try {
  await e.daemon.waitForLog((l) => l.msg === 'reflex is running', 60_000);
  progress('daemon running; waiting for the reaching policy and the fleet link...');
  // Bounded: a loop that faulted at boot (a loaded machine) must end the benchmark, not hang it.
  const startBy = Date.now() + 60_000;
  for (let s = await status(); s.loop.mode !== 'policy' || s.fleet.state !== 'online'; s = await status()) {
    if (Date.now() > startBy) throw new Error(`not ready within 60 s: mode ${s.loop.mode}, fleet ${s.fleet.state}, faults ${s.faults.join('; ')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  await new Promise((r) => setTimeout(r, SMOKE ? 500 : 3000));

  progress(`publishing the ACT-size bundle (trial ${TRIAL_S} s)...`);
  const s0 = await status();
  const t0 = performance.now();
  await publish('act-1', 'act');
  await until('act-1 ends', () => ['SUCCEEDED', 'FAILED', 'REJECTED'].some((st) => seen.has(`act-1:${st}`)), 300_000);
  const s1 = await status();
  if (!seen.has('act-1:SUCCEEDED')) throw new Error(`the ACT update did not commit: ${JSON.stringify(reports('act-1').at(-1)?.r)}`);
  const activeAt = seen.get('act-1:trial')!;

  progress('publishing a policy that drifts into the joint limits...');
  await publish('drift-1', 'drift');
  // The first limit clamp as this process sees it (status polled; epoch ms, one clock for both
  // processes), and the daemon's own log times of the trial's verdict and of the swap back.
  const clamps0 = (await status()).loop.safety.limitClamps;
  let violationAt = 0;
  for (const end = Date.now() + 120_000; violationAt === 0 && Date.now() < end; ) {
    const s: DaemonStatus = await status();
    if (s.loop.safety.limitClamps > clamps0) violationAt = Date.now();
    else await new Promise((r) => setTimeout(r, 5));
  }
  const logged = async (msg: string) => Number((await e.daemon.waitForLog((l) => l.msg === msg && l.time !== undefined, 60_000)).time);
  const verdictAt = await logged('the new policy failed its trial; rolling back');
  const backAt = await logged('policy rolled back');
  await until('drift-1 ends', () => seen.has('drift-1:FAILED'), 60_000);
  result({
    machine: machine(),
    bundle_mib: round(made.act!.size / 1024 ** 2, 2),
    trial_s: TRIAL_S,
    publish_to_active_s: round((activeAt - t0) / 1000, 2),
    publish_to_commit_s: round((seen.get('act-1:SUCCEEDED')! - t0) / 1000, 2),
    steps_s: Object.fromEntries(['download', 'verify', 'preload', 'wait-safe', 'activate', 'trial'].map((st) => [st, round(((seen.get(`act-1:${st}`) ?? t0) - t0) / 1000, 2)])),
    missed_deadlines_during_swap: s1.loop.missedDeadlines - s0.loop.missedDeadlines,
    starved_ticks_during_swap: s1.loop.starvedTicks - s0.loop.starvedTicks,
    // From the violation (the first limit clamp seen, or the trial's verdict if that came first)
    // to the previous policy active again; the trial looks every 100 ms, a bound on what is missed.
    rollback_s: round((backAt - Math.min(violationAt || verdictAt, verdictAt)) / 1000, 3),
    rollback_verdict_to_active_s: round((backAt - verdictAt) / 1000, 3),
    rollback_reason: reports('drift-1').at(-1)?.r.reason ?? null,
  });
} catch (err) {
  progress(`daemon log tail: ${JSON.stringify(e.daemon.logs.slice(-8))}`);
  throw err;
} finally {
  await e.stop();
  await jobs.client.endAsync();
  await backend.endAsync();
  await broker.stop();
  server.close();
}
