// `reflex fleet`: the operator's side of over-the-air updates, for a team that has only an MQTT
// broker and a static file server (or a bucket). `deploy` publishes the retained desired-policy
// document per device or per group (a canary of a few devices first, the rest once they have
// committed; the rollout stops when one fails); `status` shows every device's policy, its
// newest job and when it last reported. The documents are src/ota/protocol.ts's.
import { createHash } from 'node:crypto';
import { createReadStream, statSync } from 'node:fs';
import type { Command } from 'commander';
import mqtt, { type MqttClient } from 'mqtt';
import tar from 'tar-stream';
import { EXIT, ReflexError, errorMessage } from '../core/index.js';
import { registerFleetDataset } from './fleet-dataset.js';
import { registerFleetUploads } from './fleet-uploads.js';
import { TERMINAL_STATES, isId, jobReportSchema, topics, type BundleRef, type JobReport } from '../ota/index.js';

interface DeployOptions {
  broker: string;
  device?: string[];
  group?: string;
  bundle: string;
  url: string;
  job?: string;
  canary?: string;
  timeout: string;
  wait: boolean;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** name, version (from manifest.json), sha256 and size of a bundle archive. */
async function describe(file: string, url: string): Promise<BundleRef> {
  const st = statSync(file);
  if (!st.isFile()) throw new ReflexError('BAD_REQUEST', `${file}: not a regular file`);
  const hash = createHash('sha256');
  let manifest: { name?: unknown; version?: unknown } | null = null;
  await new Promise<void>((resolve, reject) => {
    const ex = tar.extract();
    ex.on('entry', (header, stream, next) => {
      const chunks: Buffer[] = [];
      const want = header.name.replace(/^\.\//, '') === 'manifest.json' && (header.size ?? 0) < 1024 * 1024;
      stream.on('data', (c: unknown) => {
        if (want) chunks.push(c as Buffer);
      });
      stream.on('end', () => {
        if (want) manifest = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof manifest;
        next();
      });
      stream.resume();
    });
    ex.on('finish', resolve);
    ex.on('error', reject);
    const input = createReadStream(file);
    input.on('data', (c) => hash.update(c));
    input.on('error', reject);
    input.pipe(ex);
  });
  const m = manifest as { name?: unknown; version?: unknown } | null;
  if (m === null || typeof m.name !== 'string' || typeof m.version !== 'string') throw new ReflexError('BAD_REQUEST', `${file}: no manifest.json naming the policy (make it with \`reflex bundle create\`)`);
  return { name: m.name, version: m.version, url, sha256: hash.digest('hex'), size: st.size };
}

async function connect(url: string): Promise<MqttClient> {
  try {
    return await mqtt.connectAsync(url, { protocolVersion: 5, connectTimeout: 10_000, reconnectPeriod: 0 });
  } catch (err) {
    throw new ReflexError('NOT_CONNECTED', `cannot reach the broker at ${url}: ${errorMessage(err)}`, { disconnected: true });
  }
}

/** Follows every device's report of `jobId`; `until` resolves once each of `devices` has ended it. */
function follow(client: MqttClient, jobId: string, print: (r: JobReport) => void) {
  const ended = new Map<string, JobReport>();
  let waiters: (() => void)[] = [];
  client.on('message', (topic, payload) => {
    if (!topic.endsWith(`/jobs/${jobId}`) || payload.length === 0) return;
    const r = jobReportSchema.safeParse(JSON.parse(payload.toString('utf8')));
    if (!r.success) return;
    print(r.data);
    if (TERMINAL_STATES.includes(r.data.state)) ended.set(r.data.deviceId, r.data);
    for (const w of waiters) w();
  });
  return {
    ended,
    until: (devices: string[], timeoutMs: number) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (!devices.every((d) => ended.has(d))) return;
          clearTimeout(t);
          waiters = waiters.filter((w) => w !== check);
          resolve();
        };
        const t = setTimeout(() => {
          waiters = waiters.filter((w) => w !== check);
          reject(new ReflexError('TIMEOUT', `no end of job ${jobId} within ${timeoutMs / 1000} s from ${devices.filter((d) => !ended.has(d)).join(', ')}`, { timeout: true }));
        }, timeoutMs);
        waiters.push(check);
        check();
      }),
  };
}

async function deploy(opts: DeployOptions): Promise<void> {
  const devices = opts.device ?? [];
  if (devices.length === 0 && opts.group === undefined) throw new ReflexError('BAD_REQUEST', 'name the robots: --device ID (repeatable) or --group G');
  for (const d of [...devices, ...(opts.group ? [opts.group] : [])]) if (!isId(d)) throw new ReflexError('BAD_REQUEST', `${JSON.stringify(d)}: letters, digits, _ . - (at most 64)`);
  const canary = opts.canary === undefined ? 0 : Number(opts.canary);
  if (!Number.isInteger(canary) || canary < 0) throw new ReflexError('BAD_REQUEST', `--canary ${opts.canary}: a number of devices`);
  if (canary > 0 && devices.length < canary) throw new ReflexError('BAD_REQUEST', `--canary ${canary}: name at least that many --device (the canaries${opts.group ? '; the group follows' : ''})`);
  const timeoutMs = Number(opts.timeout) * 1000;
  const bundle = await describe(opts.bundle, opts.url);
  const jobId = opts.job ?? `${bundle.name}-${bundle.version}-${Date.now().toString(36)}`.replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 64);
  if (!isId(jobId)) throw new ReflexError('BAD_REQUEST', `--job ${JSON.stringify(jobId)}: letters, digits, _ . - (at most 64)`);
  const client = await connect(opts.broker);
  const say = (s: string) => process.stdout.write(`${s}\n`);
  const f = follow(client, jobId, (r) => say(`${r.deviceId}: ${r.state}${r.step ? ` ${r.step}` : ''}${r.reason ? ` (${r.reason})` : ''}`));
  try {
    await client.subscribeAsync(`reflex/v1/+/jobs/${jobId}`, { qos: 1 });
    const doc = JSON.stringify({ jobId, bundle });
    const publish = (topic: string) => client.publishAsync(topic, doc, { qos: 1, retain: true });
    say(`job ${jobId}: ${bundle.name} ${bundle.version} (${bundle.size} bytes, sha256 ${bundle.sha256})`);
    const failed = () => [...f.ended.values()].filter((r) => r.state !== 'SUCCEEDED');
    const waves: string[][] = canary > 0 ? [devices.slice(0, canary), devices.slice(canary)] : [devices];
    for (const [i, wave] of waves.entries()) {
      if (wave.length === 0) continue;
      for (const d of wave) await publish(topics.desired(d));
      if (!opts.wait && canary === 0) break;
      say(`${canary > 0 && i === 0 ? 'canary' : 'devices'}: ${wave.join(', ')}; waiting for their trials`);
      await f.until(wave, timeoutMs);
      if (failed().length > 0) {
        throw new ReflexError('COMMAND_FAILED', `rollout stopped: ${failed().map((r) => `${r.deviceId} ${r.state}${r.reason ? ` (${r.reason})` : ''}`).join('; ')}`);
      }
    }
    if (opts.group !== undefined) {
      await publish(topics.groupDesired(opts.group));
      say(`group ${opts.group}: desired policy published (retained: robots that connect later take it too)`);
    }
    say(`job ${jobId}: published`);
  } finally {
    await client.endAsync();
  }
}

interface DeviceRow {
  device: string;
  online: boolean | null;
  policy: string | null;
  job: JobReport | null;
  lastReport: number | null;
}

async function status(opts: { broker: string; wait: string; json?: boolean }): Promise<void> {
  const client = await connect(opts.broker);
  const rows = new Map<string, DeviceRow>();
  const row = (d: string) => rows.get(d) ?? rows.set(d, { device: d, online: null, policy: null, job: null, lastReport: null }).get(d)!;
  client.on('message', (topic, payload) => {
    const parts = topic.split('/');
    const device = parts[2];
    if (device === undefined || device === 'group' || payload.length === 0) return;
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(payload.toString('utf8')) as Record<string, unknown>;
    } catch {
      return;
    }
    const r = row(device);
    const ts = typeof body.ts === 'number' ? body.ts : null;
    if (ts !== null) r.lastReport = Math.max(r.lastReport ?? 0, ts);
    if (parts[3] === 'state') r.online = body.online === true;
    else if (parts[3] === 'telemetry') {
      const p = body.policy as { name?: string; version?: string } | null | undefined;
      r.policy = p ? `${p.name} ${p.version}` : 'none';
    } else if (parts[3] === 'jobs') {
      const j = jobReportSchema.safeParse(body);
      if (j.success && (r.job === null || j.data.ts >= r.job.ts)) r.job = j.data;
    }
  });
  try {
    await client.subscribeAsync([topics.allStates, topics.allJobs, 'reflex/v1/+/telemetry'], { qos: 1 });
    // Retained state and jobs come at once; telemetry within its period.
    await new Promise((r) => setTimeout(r, Number(opts.wait) * 1000));
  } finally {
    await client.endAsync();
  }
  const list = [...rows.values()].sort((a, b) => a.device.localeCompare(b.device));
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
    return;
  }
  if (list.length === 0) {
    process.stdout.write('no device has reported on this broker\n');
    return;
  }
  for (const r of list) {
    const j = r.job;
    const job = j ? `${j.jobId} ${j.state}${j.step && j.state === 'IN_PROGRESS' ? ` ${j.step}` : ''}${j.reason ? ` (${j.reason})` : ''}` : '-';
    const seen = r.lastReport ? new Date(r.lastReport).toISOString() : '-';
    process.stdout.write(`${r.device}  ${r.online === null ? '?' : r.online ? 'online' : 'offline'}  policy ${r.policy ?? '?'}  job ${job}  last report ${seen}\n`);
  }
}

export function registerFleet(program: Command): void {
  const fleet = program.command('fleet').description('over-the-air policy updates and recorded-episode uploads for a fleet, through its MQTT broker');
  fleet
    .command('deploy')
    .description('publish a signed bundle as the desired policy of devices or a group (retained), canary first')
    .requiredOption('--broker <url>', 'the fleet\'s broker (mqtt://, mqtts://)')
    .option('--device <id>', 'a device (repeatable; with --canary, the first N are the canaries)', collect)
    .option('--group <g>', 'a group of devices (their ota.group)')
    .requiredOption('--bundle <file>', 'the signed bundle archive (reflex bundle create + sign)')
    .requiredOption('--url <url>', 'where the robots download it (http:// or https://)')
    .option('--job <id>', 'the job id (default: name-version-time)')
    .option('--canary <n>', 'deploy to the first N devices, wait for their commits, then the rest; stop when one fails')
    .option('--timeout <s>', 'how long to wait for a wave', '900')
    .option('--no-wait', 'publish and return (no canary)')
    .action(async (opts: DeployOptions) => {
      try {
        await deploy(opts);
      } catch (err) {
        process.stderr.write(`reflex fleet deploy: ${errorMessage(err)}\n`);
        process.exit(err instanceof ReflexError && err.code === 'BAD_REQUEST' ? EXIT.USAGE : EXIT.FAILURE);
      }
    });
  fleet
    .command('status')
    .description('every device on the broker: online, policy, newest job and its state, last report')
    .requiredOption('--broker <url>', 'the fleet\'s broker')
    .option('--wait <s>', 'how long to listen (telemetry comes once a period)', '2')
    .option('--json', 'print JSON for scripts')
    .action((opts: { broker: string; wait: string; json?: boolean }) => status(opts));
  registerFleetUploads(fleet);
  registerFleetDataset(fleet);
}
