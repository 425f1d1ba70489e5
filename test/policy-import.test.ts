// `reflex policy import`: a LeRobot checkpoint in LeRobot's own file layout (written here byte
// for byte as a training run leaves it) and an ONNX model with the same input and output names
// become a bundle that runs on the simulated arm through the real daemon; a checkpoint for
// another robot, or with hostile statistics, is refused saying why.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from '../src/api/index.js';
import { loadBundle, parseSafetensors, readSafetensors } from '../src/policy/index.js';
import { imageOffsetModel, offsetModel, safetensorsBytes, tokenizerJson, vlaModel, writeLeRobotCheckpoint, LEROBOT_FILES, VLA_VOCAB, type FeatureStats } from '../tools/models/index.js';
import { runReflex, spawnReflex, tempDir, testConfig, writeConfig } from '../tools/testkit/daemon.js';
import { SimHandle } from './helpers/sim.js';
import { ARM, armDaemonConfig } from './helpers/policy.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const H = 20;

const STATE: FeatureStats = { mean: [0.1, -0.2, 0.3], std: [0.5, 0.25, 2], min: [-1, -1, -1], max: [1, 1, 1] };
const ACTION: FeatureStats = { mean: [0.1, -0.2, 0.3], std: [0.5, 0.25, 2], min: [-1.2, -0.9, -1.1], max: [1.3, 0.8, 1.4] };
const f32 = (xs: readonly number[]) => Array.from(Float32Array.from(xs));

/** A LeRobot ACT checkpoint for the three-joint arm plus an ONNX model with its I/O names. */
function checkpoint(over: { joints?: readonly string[]; fps?: number; cameras?: Record<string, [number, number]>; stats?: Record<string, FeatureStats>; extra?: Record<string, unknown> } = {}) {
  const root = tempDir('reflex-lerobot-');
  const dir = join(root, 'outputs', 'train', 'act_arm', 'checkpoints', 'last', 'pretrained_model');
  const info = join(root, 'info.json');
  const joints = over.joints ?? ARM;
  writeLeRobotCheckpoint(dir, info, {
    type: 'act',
    joints,
    chunkSize: H,
    fps: over.fps ?? 50,
    stats: over.stats ?? { 'observation.state': STATE, action: ACTION },
    ...(over.cameras ? { cameras: over.cameras } : {}),
    ...(over.extra ? { extra: over.extra } : {}),
  });
  const onnx = join(root, 'act.onnx');
  writeFileSync(onnx, offsetModel({ joints, horizon: H, step: 0 }));
  return { root, dir, info, onnx, out: join(root, 'bundle') };
}

test('the stats file LeRobot writes reads back exactly: names, shapes, float32 values', () => {
  const c = checkpoint();
  const t = readSafetensors(join(c.dir, LEROBOT_FILES.preprocessorState));
  assert.deepEqual([...t.keys()].sort(), [
    'action.count', 'action.max', 'action.mean', 'action.min', 'action.std',
    'observation.state.count', 'observation.state.max', 'observation.state.mean', 'observation.state.min', 'observation.state.std',
  ]);
  assert.deepEqual(t.get('observation.state.std')!.shape, [3]);
  assert.deepEqual(Array.from(t.get('action.max')!.data), f32(ACTION.max));
  // The same bytes as a metadata-carrying file (torch's save_model adds {"format": "pt"}).
  const withMeta = parseSafetensors(safetensorsBytes({ x: { dtype: 'F64', shape: [2], data: [1.5, -2] } }, { format: 'pt' }), 'x');
  assert.deepEqual(Array.from(withMeta.get('x')!.data), [1.5, -2]);
});

test('reflex policy import: a LeRobot checkpoint becomes a bundle that drives the simulated arm through the daemon', { timeout: 90_000 }, async () => {
  const c = checkpoint();
  const r = await runReflex(['policy', 'import', c.dir, '--onnx', c.onnx, '--out', c.out, '--dataset-info', c.info, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const spec = JSON.parse(readFileSync(join(c.out, 'policy.json'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(spec.joints, ARM, 'joint names from the dataset info');
  assert.equal(spec.fps, 50);
  assert.deepEqual(spec.features, {
    'observation.state': { shape: [3], normalization: 'mean_std' },
    action: { shape: [H, 3], normalization: 'mean_std' },
  });
  assert.deepEqual(spec.stats, {
    'observation.state': { mean: f32(STATE.mean), std: f32(STATE.std) },
    action: { mean: f32(ACTION.mean), std: f32(ACTION.std) },
  });
  assert.equal((spec.source as Record<string, unknown>).type, 'act');
  assert.ok(existsSync(join(c.out, 'model.onnx')));
  assert.deepEqual(readdirSync(c.root).filter((n) => n.includes('.import-')), [], 'no temporary directory left');

  // The bundle on the simulated arm: the daemon loads it, the loop gets chunks and acts on them.
  const sim = await SimHandle.start({ servos: [1, 2, 3].map((id) => ({ id, model: 'xm430-w350' })) });
  const dir = tempDir();
  const sock = join(dir, 'control.sock');
  const d = spawnReflex(['run', '--config', writeConfig(dir, testConfig(dir, { ...armDaemonConfig(sim.path), policy: { bundle: c.out } }))]);
  try {
    await d.waitForLog((l) => l.msg === 'reflex is running', 20_000);
    const end = Date.now() + 20_000;
    let s = await request(sock, 'status');
    while (!(s.loop.mode === 'policy' && s.loop.chunks.received >= 3)) {
      if (Date.now() > end) throw new Error(`the imported policy never fed the loop: ${JSON.stringify({ mode: s.loop.mode, policy: s.policy.state, error: s.policy.error })}`);
      await sleep(100);
      s = await request(sock, 'status');
    }
    assert.equal(s.policy.active?.name, spec.name);
    assert.equal(s.loop.safety.faults, 0);
  } finally {
    d.proc.kill('SIGTERM');
    const { code } = await d.exited;
    await sim.close();
    assert.equal(code, 0, 'the daemon stops cleanly');
  }
});

test('a checkpoint trained on another robot is refused with what differs; nothing is written', { timeout: 60_000 }, async () => {
  const c = checkpoint({ joints: ['shoulder_pan', 'shoulder_lift', 'elbow_flex'], fps: 30 });
  const dir = tempDir();
  const config = writeConfig(dir, testConfig(dir, armDaemonConfig('/dev/null')));
  const r = await runReflex(['policy', 'import', c.dir, '--onnx', c.onnx, '--out', c.out, '--dataset-info', c.info, '--config', config]);
  assert.equal(r.code, 65, r.stderr);
  assert.match(r.stderr, /does not fit this robot/);
  assert.match(r.stderr, /joints: the policy wants \[shoulder_pan, shoulder_lift, elbow_flex\], the robot has \[base, shoulder, elbow\]/);
  assert.match(r.stderr, /rate: the policy was trained at 30 Hz, the loop runs at 50 Hz/);
  assert.equal(existsSync(c.out), false, 'no bundle');
  assert.deepEqual(readdirSync(c.root).filter((n) => n.includes('.import-')), [], 'no half bundle left');
});

test('a camera policy: image size, per-channel statistics, pixel range and padding from the checkpoint, checked against the model', { timeout: 60_000 }, async () => {
  const img: FeatureStats = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], min: [0, 0, 0], max: [1, 1, 1] };
  const c = checkpoint({ cameras: { top: [480, 640] }, stats: { 'observation.state': STATE, action: ACTION, 'observation.images.top': img }, extra: { resize_imgs_with_padding: [32, 32] } });
  // ACT does not pad; this checkpoint's own resize setting gives the size (the model agrees).
  writeFileSync(c.onnx, imageOffsetModel({ joints: ARM, horizon: H, step: 0, camera: 'top', size: 32, imageWeight: 0 }));
  const r = await runReflex(['policy', 'import', c.dir, '--onnx', c.onnx, '--out', c.out, '--dataset-info', c.info]);
  assert.equal(r.code, 0, r.stderr);
  const b = loadBundle(c.out);
  assert.deepEqual(b.spec.cameras, ['top']);
  assert.deepEqual(b.images[0]!.shape, [3, 32, 32]);
  assert.deepEqual(b.spec.stats['observation.images.top'], { mean: f32(img.mean), std: f32(img.std) });
  assert.deepEqual(b.spec.images, { resize: 'stretch', pixels: [0, 1] });

  // A model fixed at another size than the checkpoint's setting: the model's size is the one it takes.
  writeFileSync(c.onnx, imageOffsetModel({ joints: ARM, horizon: H, step: 0, camera: 'top', size: 16, imageWeight: 0 }));
  const bad = await runReflex(['policy', 'import', c.dir, '--onnx', c.onnx, '--out', join(c.root, 'b2'), '--dataset-info', c.info]);
  assert.equal(bad.code, 0, 'the size is taken from the model when it is fixed there');
  assert.deepEqual(loadBundle(join(c.root, 'b2')).images[0]!.shape, [3, 16, 16]);

  // A model with other input names than the checkpoint's is refused with both sides named.
  writeFileSync(c.onnx, offsetModel({ joints: ARM, horizon: H, step: 0, inputName: 'state' }));
  const wrong = await runReflex(['policy', 'import', c.dir, '--onnx', c.onnx, '--out', join(c.root, 'b3'), '--dataset-info', c.info]);
  assert.equal(wrong.code, 65);
  assert.match(wrong.stderr, /the model has no input observation\.state \(it has state\)/);
});

test('a π0-style checkpoint: state and action padded to the model\'s width, images padded, pixels in [-1, 1]', { timeout: 60_000 }, async () => {
  const c = checkpoint({ extra: { max_state_dim: 8, max_action_dim: 8 } });
  const cfg = JSON.parse(readFileSync(join(c.dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(c.dir, 'config.json'), JSON.stringify({ ...cfg, type: 'pi0' }));
  // A model of width 8: the ramp model over 8 "joints".
  writeFileSync(c.onnx, offsetModel({ joints: ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'], horizon: H, step: 0.5 }));
  const r = await runReflex(['policy', 'import', c.dir, '--onnx', c.onnx, '--out', c.out, '--dataset-info', c.info]);
  assert.equal(r.code, 0, r.stderr);
  const b = loadBundle(c.out);
  assert.equal(b.state.width, 8);
  assert.equal(b.action.width, 8);
  assert.deepEqual(b.spec.images, { resize: 'pad', pixels: [-1, 1] });
  assert.equal(b.dof, 3);
});

test('a VLA checkpoint: task tokens (with the policy\'s tokenizer), noise and RTC inputs are declared from the model\'s inputs', { timeout: 60_000 }, async () => {
  const c = checkpoint();
  const cfg = JSON.parse(readFileSync(join(c.dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(c.dir, 'config.json'), JSON.stringify({ ...cfg, type: 'smolvla' }));
  writeFileSync(c.onnx, vlaModel({ joints: ARM, horizon: H, maxLength: 12, home: 0, tokenWeight: 0.01, noiseWeight: 0.1 }));
  const tok = join(c.root, 'tokenizer.json');
  writeFileSync(tok, JSON.stringify(tokenizerJson(VLA_VOCAB)));
  const without = await runReflex(['policy', 'import', c.dir, '--onnx', c.onnx, '--out', c.out, '--dataset-info', c.info]);
  assert.equal(without.code, 65);
  assert.match(without.stderr, /the model takes task tokens \(observation\.language\.tokens\): give --tokenizer/);
  const r = await runReflex(['policy', 'import', c.dir, '--onnx', c.onnx, '--out', c.out, '--dataset-info', c.info, '--tokenizer', tok]);
  assert.equal(r.code, 0, r.stderr);
  const b = loadBundle(c.out);
  assert.deepEqual(b.spec.task, { input: 'observation.language.tokens', mask: 'observation.language.attention_mask', tokenizer: 'tokenizer.json', maxLength: 12, padId: 0 });
  assert.deepEqual(b.spec.noise, { input: 'noise', shape: [H, 3] });
  assert.deepEqual(b.spec.rtc, { prefix: 'action_prefix', delay: 'inference_delay' });
  assert.equal(readFileSync(join(c.out, 'tokenizer.json'), 'utf8'), readFileSync(tok, 'utf8'));
  assert.match(r.stdout, /assumed {2}the model's noise input \[20, 3\]/);
});

test('hostile statistics files are refused before they are trusted', async (t) => {
  /** A file with exactly this header (padded as the reference pads it) and these data bytes. */
  const raw = (header: unknown, data: number) => {
    let json = JSON.stringify(header);
    json += ' '.repeat((8 - (json.length % 8)) % 8);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    return Buffer.concat([len, Buffer.from(json), Buffer.alloc(data)]);
  };
  const f = (shape: unknown, offs: unknown, dtype: unknown = 'F32') => ({ dtype, shape, data_offsets: offs });
  const good = safetensorsBytes({ 'action.mean': { dtype: 'F32', shape: [3], data: [1, 2, 3] } });
  assert.equal(Number(good.readBigUInt64LE(0)) % 8, 0, 'the header is padded to 8 bytes as the reference writes it');
  assert.deepEqual(Array.from(parseSafetensors(raw({ a: f([3], [0, 12]) }, 12), 's').get('a')!.data), [0, 0, 0], 'the helper writes valid files');
  const long = Buffer.from(good);
  long.writeBigUInt64LE(1n << 40n, 0);
  const cases: [string, Buffer, RegExp][] = [
    ['shorter than the length prefix', Buffer.alloc(5), /shorter than the 8-byte header length/],
    ['a header length past the file (a 1 TB header)', long, /header length 1099511627776/],
    ['a header that is not JSON', Buffer.concat([Buffer.from([8, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{"a":1  '), Buffer.alloc(4)]), /not UTF-8 JSON/],
    ['a header that is a list', raw([1, 2], 0), /not a JSON object/],
    ['offsets past the data', raw({ a: f([3], [0, 99]) }, 12), /spans bytes \[0, 99\)/],
    ['offsets backwards', raw({ a: f([0], [8, 4]) }, 12), /spans bytes \[8, 4\)/],
    ['an unknown dtype', raw({ a: f([3], [0, 12], 'F8X') }, 12), /dtype "F8X"/],
    ['bytes that do not match the shape', raw({ a: f([4], [0, 12]) }, 12), /needs 16 bytes, its offsets give 12/],
    ['a negative dimension', raw({ a: f([-3], [0, 12]) }, 12), /shape \[-3\]/],
    ['a huge shape over few bytes', raw({ a: f([1e9, 1e9], [0, 12]) }, 12), /needs 4000000000000000000 bytes/],
    ['two tensors over the same bytes', raw({ a: f([3], [0, 12]), b: f([3], [0, 12]) }, 12), /overlaps the tensor before it/],
    ['bytes that belong to no tensor', raw({ a: f([3], [0, 12]) }, 20), /bytes 12\.\.20 of the data section belong to no tensor/],
  ];
  for (const [what, bytes, why] of cases) {
    await t.test(what, () => assert.throws(() => parseSafetensors(bytes, 'stats'), (e: Error) => why.test(e.message) && /stats: /.test(e.message)));
  }
  await t.test('a FIFO in place of the stats file, and a state_file that leaves the checkpoint', async () => {
    const c = checkpoint();
    const pre = join(c.dir, 'policy_preprocessor.json');
    const p = JSON.parse(readFileSync(pre, 'utf8')) as { steps: { state_file?: string }[] };
    p.steps[3]!.state_file = '../../../../../../../etc/passwd';
    writeFileSync(pre, JSON.stringify(p));
    let r = await runReflex(['policy', 'import', c.dir, '--onnx', c.onnx, '--out', c.out, '--dataset-info', c.info]);
    assert.equal(r.code, 65);
    assert.match(r.stderr, /state_file .* is not a file name in the checkpoint/);
    p.steps[3]!.state_file = 'fifo.safetensors';
    writeFileSync(pre, JSON.stringify(p));
    execFileSync('mkfifo', [join(c.dir, 'fifo.safetensors')]);
    r = await runReflex(['policy', 'import', c.dir, '--onnx', c.onnx, '--out', c.out, '--dataset-info', c.info]);
    assert.equal(r.code, 65);
    assert.match(r.stderr, /is a FIFO, not a regular file/);
    assert.equal(existsSync(c.out), false);
  });
  await t.test('an output directory that already holds something is never overwritten', async () => {
    const c = checkpoint();
    mkdirSync(c.out);
    writeFileSync(join(c.out, 'keep'), 'x');
    const r = await runReflex(['policy', 'import', c.dir, '--onnx', c.onnx, '--out', c.out, '--dataset-info', c.info]);
    assert.equal(r.code, 65);
    assert.match(r.stderr, /exists and is not empty/);
    assert.equal(readFileSync(join(c.out, 'keep'), 'utf8'), 'x');
  });
});
