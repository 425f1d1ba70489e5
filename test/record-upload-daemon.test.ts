// Store and forward end to end: the daemon on the simulated robot records episodes; the fleet's
// `reflex fleet uploads` (a real process, the keys in its environment only) grants presigned URLs
// over a real Mosquitto; the episodes land in a real S3-compatible server (s3rver) byte for
// byte, flagged ones first, and the technician sees it in `reflex record status`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { request } from '../src/api/index.js';
import type { EpisodeEntry } from '../src/record/index.js';
import { startE2E } from '../tools/testkit/e2e.js';
import { runReflex, spawnReflex, tempDir } from '../tools/testkit/daemon.js';
import { Mosquitto, freePort } from '../tools/testkit/mosquitto.js';
import { S3_KEYS, startS3 } from '../tools/testkit/s3.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('upload end to end: recorded episodes reach the bucket through grants over the fleet link, byte for byte', { timeout: 600_000 }, async () => {
  const s3 = await startS3();
  const broker = new Mosquitto(tempDir(), await freePort());
  await broker.start();
  const url = `mqtt://127.0.0.1:${broker.port}`;
  const grants = spawnReflex(['fleet', 'uploads', '--broker', url, '--endpoint', s3.endpoint, '--bucket', s3.bucket, '--prefix', 'fleet/'], {
    AWS_ACCESS_KEY_ID: S3_KEYS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: S3_KEYS.secretAccessKey,
  });
  const e = await startE2E({
    record: { fps: 10, upload: { origins: [`${s3.endpoint}/${s3.bucket}/fleet/`], maxKBps: 0 } },
    fleet: { enabled: true, url, telemetryHz: 1 },
    control: { starvationLimitMs: 10_000, bus: { errorBudgetMs: 2000 } },
  });
  const root = join(e.dir, 'state', 'recordings', 'dataset');
  const rec = () => request(e.socket, 'record.status');
  const explain = async () => `recorder ${await rec().then((s) => JSON.stringify(s), (err: Error) => err.message)}; grants ${grants.logs.slice(-5).map((l) => String(l.text)).join(' | ')} ${grants.stderr.slice(-5).join(' | ')}; daemon ${e.daemon.stderr.slice(-5).join(' | ')}`;
  try {
    await e.daemon.waitForLog((l) => l.msg === 'reflex is running', 120_000);
    const mode = async () => (await request(e.socket, 'status')).loop.mode;
    const running = async () => {
      const m = await mode();
      if (m === 'policy') return true;
      await request(e.socket, m === 'hold' ? 'policy.start' : 'reset').catch(() => undefined);
      return false;
    };
    const episodeOf = async (frames: number) => {
      for (;;) {
        const end = Date.now() + 90_000;
        while (!(await running())) {
          if (Date.now() > end) throw new Error(`the policy does not run: ${await explain()}`);
          await new Promise((r) => setTimeout(r, 200));
        }
        const s = await rec();
        if ((s.episode?.frames ?? 0) >= frames) return;
        await new Promise((r) => setTimeout(r, 200));
      }
    };
    await request(e.socket, 'record.start', { task: 'put the cup in the sink' });
    // A plain episode, then one ended by an e-stop (flagged: it goes up first).
    await episodeOf(15);
    await request(e.socket, 'record.mark', { label: 'success' });
    await episodeOf(15);
    await request(e.socket, 'estop');
    await request(e.socket, 'record.stop');
    const deadline = Date.now() + 240_000;
    for (;;) {
      const s = await rec();
      if (s.saving === 0 && s.episodes >= 2 && s.upload.waiting === 0 && s.upload.uploaded >= s.episodes) break;
      if (Date.now() > deadline) throw new Error(`not uploaded in time: ${await explain()}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    const state = JSON.parse(readFileSync(join(root, '.reflex', 'episodes.json'), 'utf8')) as { episodes: EpisodeEntry[] };
    assert.ok(state.episodes.length >= 2);
    for (const ep of state.episodes) {
      assert.ok(ep.uploaded !== null, `episode ${ep.episodeIndex} is marked uploaded`);
      const pad = String(ep.episodeIndex).padStart(3, '0');
      const files: [string, string][] = [
        ['data.parquet', join(root, `data/chunk-000/file-${pad}.parquet`)],
        ['observation.images.top.mp4', join(root, `videos/observation.images.top/chunk-000/file-${pad}.mp4`)],
      ];
      for (const [name, path] of files) {
        const got = await s3.get(`fleet/test-01/${ep.id}/${name}`);
        assert.ok(got !== null, `${name} of episode ${ep.episodeIndex} is in the bucket`);
        assert.equal(sha(got), sha(readFileSync(path)), `${name} of episode ${ep.episodeIndex}: the same bytes`);
      }
      const meta = JSON.parse((await s3.get(`fleet/test-01/${ep.id}/episode.json`))!.toString()) as { deviceId: string; episode: { task: string; flags: string[]; outcome: string | null }; dataset: { codebase_version: string; features: Record<string, unknown> } };
      assert.equal(meta.deviceId, 'test-01');
      assert.equal(meta.episode.task, 'put the cup in the sink');
      assert.deepEqual(meta.episode.flags, ep.flags);
      assert.equal(meta.dataset.codebase_version, 'v3.0');
      assert.ok('observation.state' in meta.dataset.features);
    }
    assert.deepEqual(readdirSync(join(root, '.reflex', 'uploads')), [], 'no snapshot is left once everything went up');
    const said = grants.logs.map((l) => String(l.text));
    assert.ok(said.some((l) => l.includes('test-01: granted')), said.join('\n'));
    const cli = await runReflex(['record', 'status', '--socket', e.socket]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /upload {5}0 episodes waiting \(0 MB\); \d+ uploaded/);
  } finally {
    grants.proc.kill('SIGTERM');
    await grants.exited;
    await e.stop();
    await broker.stop();
    await s3.stop();
  }
});
