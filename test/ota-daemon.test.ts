// The update engine in a real daemon on the simulated arm, driven the technician's way (the
// control socket): a policy that behaves is committed and is what boots after a restart; one
// that turns bad once it drives the arm is rolled back by the robot itself; a kill -9 in the
// trial, and a restart from every other persisted step, ends on the right policy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DaemonStatus } from '../src/daemon.js';
import type { PolicyInfo } from '../src/policy/index.js';
import { STORE_FILES, UpdateStore, type JobRecord, type UpdaterStatus } from '../src/ota/index.js';
import { offsetModel, writeBundle } from '../tools/models/index.js';
import { tempDir } from '../tools/testkit/daemon.js';
import { ARM, holdBundle } from './helpers/policy.js';
import { nanAfterMotionBundle, otaDaemon, simArm, type OtaDaemon } from './helpers/ota-daemon.js';

const ota = (s: DaemonStatus) => s.ota as UpdaterStatus;
const jobState = (s: DaemonStatus) => ota(s).job?.state;

/** A bundle whose model answers NaN from the first call. */
function nanBundle(): string {
  const dir = tempDir('reflex-policy-nan0-');
  writeBundle(
    dir,
    { name: 'nan', version: '1', fps: 50, joints: ARM, features: { 'observation.state': { shape: [3], normalization: 'identity' }, action: { shape: [10, 3], normalization: 'identity' } } },
    offsetModel({ joints: ARM, horizon: 10, step: 0, nan: true }),
  );
  return dir;
}

test('a technician\'s activation is trialled, then committed; the loop never starves across the swap; a restart boots the committed policy, not the config\'s', { timeout: 180_000 }, async () => {
  const sim = await simArm();
  const a = holdBundle('a');
  const b = holdBundle('b', { version: '2' });
  let d: OtaDaemon = otaDaemon(sim, a, { trialS: 2 });
  try {
    const before = await d.booted();
    const info = (await d.cmd('policy.activate', { path: b })) as PolicyInfo;
    assert.equal(info.name, 'b');
    const during = await d.status();
    assert.equal(ota(during).job?.step, 'trial', 'the new policy is on trial');
    assert.equal(ota(during).active, null, 'nothing is committed yet: a reboot now would come back on the config\'s policy');
    const after = await d.when('b passes its trial', (s) => jobState(s) === 'SUCCEEDED', 60_000);
    // The swap never leaves the loop without a chunk (missed deadlines are timing: bench/ota).
    assert.equal(after.loop.starvedTicks - before.loop.starvedTicks, 0, 'no starved tick across the swap and the trial');
    assert.equal(after.loop.mode, 'policy');
    assert.equal(ota(after).active?.dir, b);
    assert.equal(ota(after).previous?.dir, a);
    assert.equal(await d.stop(), 0);
    d = d.restart();
    await d.booted();
    const again = await d.when('the previous policy is loaded as the rollback slot', (s) => s.policy.previous !== null, 30_000);
    assert.equal(again.policy.active?.name, 'b', 'the committed policy boots, not config.policy.bundle');
    assert.equal(again.policy.previous?.name, 'a');
    // policy.rollback outside a trial goes back and is what the next boot comes back to.
    assert.equal(((await d.cmd('policy.rollback')) as PolicyInfo).name, 'a');
    assert.equal(ota(await d.status()).active?.dir, a);
  } finally {
    await d.stop();
    await sim.close();
  }
});

test('bad policies never drive the arm: NaN or beyond the limits at rest is refused by the shadow run; NaN or the limits reached during the trial is rolled back by itself', { timeout: 240_000 }, async () => {
  const sim = await simArm();
  const a = holdBundle('a');
  const d = otaDaemon(sim, a, { trialS: 60 });
  try {
    await d.booted();
    // NaN from the first inference: its warm-up already refuses it.
    await assert.rejects(d.cmd('policy.activate', { path: nanBundle() }), /the model returned NaN/);
    assert.equal(jobState(await d.status()), 'FAILED');
    await assert.rejects(d.cmd('policy.activate', { path: holdBundle('far', { step: 0.2, horizon: 10 }) }), /shadow run: action \d+ of joint base is [\d.]+, beyond its limits \[-1.5, 1.5\]/);
    let s = await d.status();
    assert.equal(s.policy.active?.name, 'a', 'the running policy kept running');
    assert.equal(s.loop.mode, 'policy');
    assert.equal(jobState(s), 'REJECTED');

    // Harmless at rest, NaN once it has moved a joint past 0.4 rad.
    await d.cmd('policy.activate', { path: nanAfterMotionBundle(0.4) });
    s = await d.when('the NaN policy is rolled back', (x) => jobState(x) === 'FAILED', 60_000);
    assert.match(ota(s).job?.reason ?? '', /^rolled back: (inferenceErrors|starvedTicks|nonFinite)/);
    assert.equal(s.policy.active?.name, 'a', 'back on the previous policy');
    assert.equal(s.loop.mode, 'policy', 'and still running it');
    assert.equal(s.loop.safety.faults, 0);

    // Drifts a joint at 0.5 rad/s until the safety filter clamps it at the limit.
    await d.cmd('policy.activate', { path: holdBundle('drift', { step: 0.01, horizon: 50 }) });
    s = await d.when('the drifting policy is rolled back', (x) => jobState(x) === 'FAILED' && ota(x).job?.bundle?.name.includes('drift') === true, 60_000);
    assert.match(ota(s).job?.reason ?? '', /^rolled back: limitClamps: \d+ during the trial/);
    assert.equal(s.policy.active?.name, 'a');
    assert.equal(ota(s).active, null, 'nothing bad was committed');
  } finally {
    await d.stop();
    await sim.close();
  }
});

test('kill -9 during the trial, then restart: the committed policy is back and the job says it was rolled back; a restart in each other persisted step ends right', { timeout: 300_000 }, async () => {
  const sim = await simArm();
  const a = holdBundle('a');
  const c = holdBundle('c', { version: '3' });
  let d = otaDaemon(sim, a, { trialS: 600 });
  const storeDir = join(d.dir, 'state', 'ota', 'store');
  try {
    await d.booted();
    await d.cmd('policy.activate', { path: holdBundle('b') });
    await d.when('b on trial', (s) => ota(s).job?.step === 'trial' && s.policy.active?.name === 'b', 30_000);
    await d.kill9();
    d = d.restart();
    let s = await d.booted();
    assert.equal(s.policy.active?.name, 'a', 'the committed (here: the config\'s) policy boots');
    assert.equal(jobState(s), 'FAILED');
    assert.match(ota(s).job?.reason ?? '', /rolled back: reflex restarted during trial/);
    assert.equal(await d.stop(), 0);

    // A record as a power cut would leave it at each other step (the daemon stopped meanwhile).
    const at = (step: JobRecord['step'], over: Partial<JobRecord> = {}) => {
      const store = new UpdateStore(storeDir);
      const now = Date.now();
      store.save({ ...store.record, job: { jobId: `j-${step}`, origin: 'fleet', bundle: { name: 'c', version: '3', url: 'http://127.0.0.1:9/c.tar', sha256: '0'.repeat(64), size: 1 }, state: 'IN_PROGRESS', step, transitions: 5, createdAt: now, updatedAt: now, reason: null, stagedDir: c, ...over } });
    };
    at('commit');
    d = d.restart();
    await d.booted();
    s = await d.when('c committed', (x) => jobState(x) === 'SUCCEEDED', 30_000);
    assert.equal(s.policy.active?.name, 'c', 'after the commit was decided, the new policy boots');
    assert.equal(ota(s).active?.dir, c);
    assert.equal(ota(s).floors.c, '3', 'the version floor is raised');
    assert.equal(await d.stop(), 0);

    at('download', { stagedDir: null });
    d = d.restart();
    s = await d.booted();
    assert.equal(jobState(s), 'FAILED');
    assert.match(ota(s).job?.reason ?? '', /interrupted: reflex restarted before activation/);
    assert.equal(s.policy.active?.name, 'c');
    assert.equal(await d.stop(), 0);

    at('rollback', { reason: 'rolled back: limitClamps: 3 during the trial', stagedDir: holdBundle('bad') });
    d = d.restart();
    s = await d.booted();
    assert.equal(jobState(s), 'FAILED');
    assert.equal(ota(s).job?.reason, 'rolled back: limitClamps: 3 during the trial');
    assert.equal(s.policy.active?.name, 'c');
    assert.equal(await d.stop(), 0);

    // A power cut during the last write (the recovery's): that slot torn, the one before is used
    // (the job still in rollback) and recovered again to the same end.
    const store = new UpdateStore(storeDir);
    const newest = join(storeDir, STORE_FILES[store.record.seq % 2]!);
    truncateSync(newest, Math.floor(statSync(newest).size / 3));
    d = d.restart();
    s = await d.booted();
    assert.equal(ota(s).storeDamaged.length, 1, 'the torn slot is reported');
    assert.equal(jobState(s), 'FAILED');
    assert.equal(ota(s).job?.reason, 'rolled back: limitClamps: 3 during the trial');
    assert.equal(s.policy.active?.name, 'c');
  } finally {
    await d.stop();
    await sim.close();
  }
});

test('an update directory that cannot be used (a file in the way, a failing disk) leaves the robot running on its policy, without updates, saying why', { timeout: 120_000 }, async () => {
  const sim = await simArm();
  const blocker = join(tempDir(), 'not-a-dir');
  writeFileSync(blocker, 'x');
  const d = otaDaemon(sim, holdBundle('a'), { dir: join(blocker, 'ota') });
  try {
    const s = await d.booted();
    assert.deepEqual(s.ota, { state: 'disabled' });
    assert.equal(s.policy.active?.name, 'a');
    assert.ok(d.d.logs.some((l) => l.msg === 'updates disabled: the update directory cannot be used'));
  } finally {
    await d.stop();
    await sim.close();
  }
});
