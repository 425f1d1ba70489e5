// What the update tests share: a daemon on the simulated arm that can be killed and restarted
// on the same state directory, policies that misbehave only once they drive the arm, signed
// bundles made with the operator's own CLI, and a static file server on loopback.
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { request } from '../../src/api/index.js';
import type { DaemonStatus } from '../../src/daemon.js';
import type { UpdaterStatus } from '../../src/ota/index.js';
import { buildModel, writeBundle, DataType } from '../../tools/models/index.js';
import { runReflex, spawnReflex, tempDir, testConfig, writeConfig, type Spawned } from '../../tools/testkit/daemon.js';
import { ARM, armDaemonConfig } from './policy.js';
import { SimHandle } from './sim.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface OtaDaemon {
  dir: string;
  d: Spawned;
  status(): Promise<DaemonStatus>;
  ota(): Promise<UpdaterStatus>;
  when(what: string, ok: (s: DaemonStatus) => boolean, ms: number): Promise<DaemonStatus>;
  cmd(name: string, args?: Record<string, unknown>, timeoutMs?: number): Promise<unknown>;
  /** Until the daemon runs and its boot policy feeds the loop. */
  booted(): Promise<DaemonStatus>;
  /** SIGKILL: no stop, no flush, as a power cut. */
  kill9(): Promise<void>;
  /** SIGTERM; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** A new daemon process on the same config and state directory. */
  restart(): OtaDaemon;
}

/** The simulated three-servo arm, shared by the daemons of one test. */
export function simArm(): Promise<SimHandle> {
  return SimHandle.start({ servos: [1, 2, 3].map((id) => ({ id, model: 'xm430-w350' })) });
}

/** A daemon on `sim` booting `bundle`, with an `ota:` section (and a fleet link when `broker` is given). */
export function otaDaemon(sim: SimHandle, bundle: string, ota: Record<string, unknown>, broker: string | null = null, dir = tempDir('reflex-ota-')): OtaDaemon {
  const config = testConfig(dir, {
    ...armDaemonConfig(sim.path),
    // Generous on a loaded machine: a late first chunk or slow bus reads must not fault the loop.
    control: { firstChunkMs: 20_000, starvationLimitMs: 2000, bus: { errorBudgetMs: 1000 } },
    policy: { bundle },
    ota: { trialS: 2, ...ota },
    debug: { faultInjection: true },
    ...(broker !== null ? { fleet: { enabled: true, url: broker, telemetryHz: 1 } } : {}),
  });
  const file = writeConfig(dir, config);
  const make = (): OtaDaemon => {
    const d = spawnReflex(['run', '--config', file]);
    const sock = join(dir, 'control.sock');
    const status = () => request(sock, 'status');
    const self: OtaDaemon = {
      dir,
      d,
      status,
      ota: async () => (await request(sock, 'ota.status')) as UpdaterStatus,
      when: async (what, ok, ms) => {
        const end = Date.now() + ms;
        for (;;) {
          let s: DaemonStatus | null = null;
          try {
            s = await status();
            if (ok(s)) return s;
          } catch (err) {
            if (Date.now() > end) throw err;
          }
          if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}; last: ${JSON.stringify(s ? { loop: s.loop.mode, fault: s.loop.fault, policy: s.policy.active?.name, ota: s.ota } : null)}`);
          await sleep(100);
        }
      },
      cmd: (name, args = {}, timeoutMs = 30_000) => request(sock, name, args, timeoutMs),
      booted: async () => {
        // Running, or why not: a start that failed, or a process that ended (its stderr said).
        const up = async (): Promise<string | null> => {
          const ran = self.d.waitForLog((l) => l.msg === 'reflex is running' || l.msg === 'start failed', 60_000)
            .then((l) => (l.msg === 'start failed' ? String(l.err) : null))
            .catch((err: unknown) => String(err));
          const ended = self.d.exited.then((e) => `exited (${e.code ?? e.signal}) before running: ${self.d.stderr.slice(-5).join(' | ')} ${JSON.stringify(self.d.logs.slice(-3))}`);
          return Promise.race([ran, ended]);
        };
        let why = await up();
        if (why !== null) {
          // Seen on the simulated serial link after a kill -9 mid-transaction, under load: the
          // first start finds a servo silent. Not what these tests are about: one more start.
          process.stderr.write(`ota test: the daemon did not start (${why}); starting it once more\n`);
          if (self.d.proc.exitCode === null && self.d.proc.signalCode === null) await self.d.exited;
          self.d = spawnReflex(['run', '--config', file]);
          why = await up();
          if (why !== null) throw new Error(`the daemon did not start twice: ${why}`);
        }
        return self.when('the boot policy drives the arm', (s) => s.loop.mode === 'policy' && s.loop.chunks.received >= 3, 30_000);
      },
      kill9: async () => {
        self.d.proc.kill('SIGKILL');
        await self.d.exited;
      },
      stop: async () => {
        self.d.proc.kill('SIGTERM');
        return (await self.d.exited).code;
      },
      restart: make,
    };
    return self;
  };
  return make();
}

const i64 = (name: string, data: readonly number[]) => ({ name, dims: [data.length], data, dataType: DataType.INT64 });

/**
 * A policy that drifts every joint by `step` a tick (the state plus a ramp) and, once any
 * joint passes `nanAbove`, answers NaN: harmless at rest (its shadow run passes), broken once
 * it has moved the arm.
 */
export function nanAfterMotionBundle(nanAbove: number, step = 0.01, horizon = 10): string {
  const dir = tempDir('reflex-policy-nan-');
  const d = ARM.length;
  const ramp = new Float32Array(horizon * d);
  for (let i = 0; i < horizon; i++) for (let j = 0; j < d; j++) ramp[i * d + j] = (i + 1) * step;
  const model = buildModel({
    name: 'nan-after-motion',
    inputs: [{ name: 'observation.state', shape: ['batch', d] }],
    outputs: [{ name: 'action', shape: ['batch', horizon, d] }],
    initializers: [i64('axes', [1]), { name: 'ramp', dims: [1, horizon, d], data: ramp }, { name: 'T', dims: [1], data: [nanAbove] }, { name: 'zero', dims: [1], data: [0] }],
    nodes: [
      { op: 'Unsqueeze', inputs: ['observation.state', 'axes'], outputs: ['s3'] },
      { op: 'Add', inputs: ['s3', 'ramp'], outputs: ['planned'] },
      // sqrt(T - state) is NaN past T; times zero it adds nothing before.
      { op: 'Sub', inputs: ['T', 's3'], outputs: ['room'] },
      { op: 'Sqrt', inputs: ['room'], outputs: ['root'] },
      { op: 'Mul', inputs: ['root', 'zero'], outputs: ['poison'] },
      { op: 'Add', inputs: ['planned', 'poison'], outputs: ['action'] },
    ],
  });
  writeBundle(
    dir,
    {
      name: 'nan-after-motion',
      version: '1',
      fps: 50,
      joints: ARM,
      features: { 'observation.state': { shape: [d], normalization: 'identity' }, action: { shape: [horizon, d], normalization: 'identity' } },
    },
    model,
  );
  return dir;
}

export interface SignedBundle {
  tar: string;
  sha256: string;
  size: number;
  name: string;
  version: string;
}

/** A signing key pair made by `reflex keys generate`. */
export async function keyPair(id: string): Promise<{ dir: string; pub: string; priv: string; id: string }> {
  const dir = tempDir('reflex-keys-');
  const r = await runReflex(['keys', 'generate', '--out', dir, '--id', id]);
  if (r.code !== 0) throw new Error(`keys generate: ${r.stderr}`);
  return { dir, pub: join(dir, `${id}.pub`), priv: join(dir, `${id}.key`), id };
}

/** `reflex bundle create` then `reflex bundle sign` (unless `key` is null): the operator's way. */
export async function signedBundle(policyDir: string, version: string, key: { priv: string } | null, robot = 'robot'): Promise<SignedBundle> {
  const out = join(tempDir('reflex-bundle-'), 'bundle.tar');
  const c = await runReflex(['bundle', 'create', '--policy', policyDir, '--version', version, '--robot', robot, '--out', out]);
  if (c.code !== 0) throw new Error(`bundle create: ${c.stderr}`);
  if (key !== null) {
    const s = await runReflex(['bundle', 'sign', out, '--key', key.priv]);
    if (s.code !== 0) throw new Error(`bundle sign: ${s.stderr}`);
  }
  const bytes = readFileSync(out);
  const name = (JSON.parse(readFileSync(join(policyDir, 'policy.json'), 'utf8')) as { name: string }).name;
  return { tar: out, sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length, name, version };
}

/** A static file server on loopback: GET /<name> serves files[name]. */
export async function fileServer(files: Map<string, string>): Promise<{ url: string; close(): Promise<void>; server: Server }> {
  const server = createServer((req, res) => {
    const path = files.get((req.url ?? '/').slice(1));
    if (path === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-length': statSync(path).size, 'content-type': 'application/x-tar' });
    createReadStream(path).pipe(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, server, close: () => new Promise((r) => server.close(() => r())) };
}
