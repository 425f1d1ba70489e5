// The technician's verbs, each typed in a real pseudo-terminal against the daemon on the
// simulated robot (rig + daemon as `npm start` runs them), checking what a technician reads and
// the exit status a script acts on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { request, type DaemonStatus } from '../src/api/index.js';
import { LOADED, startRig } from './helpers/cli-rig.js';
import { REPO } from '../tools/testkit/paths.js';
import { tempDir } from '../tools/testkit/daemon.js';
import { ptyRun } from './helpers/cli-pty.js';

const VERBS_LOADED = { ...LOADED, starvationLimitMs: 5000, firstChunkMs: 20_000 };
/** The simulated arm (as tools/testkit/e2e.ts has it), its elbow allowed only 0.01 rad either way of where it starts. */
const NARROW_ELBOW = {
  joints: [
    { name: 'base', bus: 'base', id: 1, model: 'dm-j4310', limits: { min: -2.6, max: 2.6 }, can: { kp: 20, kd: 1, effortLimit: 5 } },
    { name: 'shoulder', bus: 'arm', id: 2, model: 'xm430-w350', limits: { min: -1.6, max: 1.6 } },
    { name: 'elbow', bus: 'arm', id: 3, model: 'xm430-w350', limits: { min: -0.01, max: 0.01 } },
  ],
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, check: () => Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}`);
    await sleep(100);
  }
}

test('every daemon verb in a terminal: status, policy, estop, faults, reset, camera, log level, with --json and meaningful exit codes', async () => {
  const e = await startRig(
    // The bare swap (no update engine, whose shadow run and trial have tests of their own).
    // A broker URL with a password, which the diagnostics bundle must not carry.
    // The elbow's limits are narrower than the reach the policy asks of it: its clamps show by joint.
    { policy: { bundle: join(REPO, 'models', 'reach'), autostart: false }, control: VERBS_LOADED, ota: { enabled: false }, fleet: { enabled: false, url: 'mqtts://robot:hunter2@broker.example:8883' }, robot: NARROW_ELBOW },
    'reflex is running',
  );
  const sock = ['--socket', e.socket];
  const status = () => request(e.socket, 'status');
  try {
    await e.daemon.waitForLog((l) => l.msg === 'policy ready', 30_000);
    await e.daemon.waitForLog((l) => l.msg === 'reflex is running', 30_000); // the socket may come up after the policy
    await until('the camera streams', async () => (await status()).cameras[0]?.state === 'streaming', 20_000);
    // A loaded machine can make the simulated CAN motor miss its first replies: a fault the
    // technician would reset, as this does (the verbs are checked from a loop that holds).
    if ((await status()).loop.mode === 'fault') await request(e.socket, 'reset', {}, 20_000);

    const st = await ptyRun(['status', ...sock]);
    assert.equal(st.code, 0, st.text);
    assert.match(st.text, /^loop\s+hold, /m);
    // Failed reads come with whether that is normal.
    assert.match(st.text, /^buses\s+\d+ failed reads, \d+ retries, CAN load [\d.]+% of bitrate( \(\d+\.\d+% of ticks: (normal under 1%|more than 1%, check the cabling.*)\))?$/m);
    assert.match(st.text, /^joint shoulder\s+at -?\d+\.\d{3} rad, command -?\d+\.\d{3}, \d+ C, \d+\.\d V, hardware ok$/m);
    assert.match(st.text, /^versions\s+reflex \d+\.\d+\.\d+, Node\.js 26\.\d+\.\d+, ONNX Runtime 1\.\d+/m);
    const json = JSON.parse((await ptyRun(['status', '--json', ...sock])).text) as DaemonStatus;
    assert.equal(json.deviceId, 'test-01');
    assert.deepEqual(json.joints.map((j) => j.joint), ['base', 'shoulder', 'elbow']);

    // The config (and so the socket) named before the verb or after it; the verb's own wins.
    const rigConfig = join(e.dir, 'reflex.yaml');
    for (const args of [['-c', rigConfig, 'status'], ['status', '-c', rigConfig], ['--config', rigConfig, 'policy', 'status'], ['-c', join(e.dir, 'none.yaml'), 'status', '--config', rigConfig]]) {
      const r = await ptyRun(args);
      assert.equal(r.code, 0, `reflex ${args.join(' ')}: ${r.text}`);
      assert.match(r.text, /^(device\s+test-01|loop\s+hold)$/m, `reflex ${args.join(' ')}`);
    }
    const missing = await ptyRun(['-c', join(e.dir, 'none.yaml'), 'status']);
    assert.equal(missing.code, 78, missing.text);
    assert.match(missing.text, /none\.yaml.*want a readable file/);
    const noConfig = await ptyRun(['-c', rigConfig, 'completion', 'bash']);
    assert.equal(noConfig.code, 64, noConfig.text);
    assert.match(noConfig.text, /`reflex completion` reads no config: drop --config /);

    const list = await ptyRun(['policy', 'list', ...sock]);
    assert.match(list.text, /^active\s+reach \S+\s+.*models\/reach\s+\(cpu\)$/m);

    // Started, it drives the arm; stopped, it holds.
    const start = await ptyRun(['policy', 'start', ...sock]);
    assert.equal(start.code, 0, start.text);
    assert.match(start.text, /the policy drives the arm/);
    const ps = JSON.parse((await ptyRun(['policy', 'status', '--json', ...sock])).text) as { mode: string; active: { name: string } };
    assert.equal(ps.mode, 'policy');
    assert.equal(ps.active.name, 'reach');

    // The policy asks the elbow past its narrow limits: the clamps are the elbow's, by joint.
    await until('the elbow is clamped', async () => ((await status()).loop.safety.byJoint.find((j) => j.joint === 'elbow')?.limitClamps ?? 0) > 0, 15_000);
    const clamped = JSON.parse((await ptyRun(['status', '--json', ...sock])).text) as DaemonStatus;
    const by = new Map(clamped.loop.safety.byJoint.map((j) => [j.joint, j]));
    assert.ok(by.get('elbow')!.limitClamps > 0 && clamped.loop.policyTimeS > 0, JSON.stringify(clamped.loop.safety));
    assert.equal(by.get('base')!.limitClamps, 0);
    assert.equal(by.get('shoulder')!.limitClamps, 0);
    assert.equal(clamped.loop.safety.limitClamps, by.get('elbow')!.limitClamps);
    assert.deepEqual(clamped.loop.bus.byBus.map((b) => b.name), ['arm', 'base']);
    const split = await ptyRun(['status', ...sock]);
    assert.match(split.text, /^by joint\s+clamps and failed reads since start, .* of policy time; retries are counted per bus/m);
    assert.match(split.text, /^ {2}elbow\s+\d+ limit clamps \([\d.]+ a minute of policy time: (often, the policy asks past this joint's limits; check robot\.joints limits|rare)/m);
    assert.doesNotMatch(split.text, /^ {2}(base|shoulder)\s+.*limit clamps/m);
    assert.match(split.text, /^bus arm\s+ok, \d+ failed reads, \d+ retries$/m);

    // A servo fault: the loop faults, `reflex faults` names the joint; reset clears it and says so.
    // Raised as the README's walk-through raises it on the simulated robot.
    const raised = await ptyRun(['sim', 'fault', '--id', '2', '--bits', '0x20', '--socket', e.rigSocket]);
    assert.equal(raised.code, 0, raised.text);
    assert.match(raised.text, /servo 2: hardware error 0x20 raised/);
    await until('the loop faults', async () => (await status()).loop.mode === 'fault', 5000);
    assert.equal((await ptyRun(['sim', 'clear', '--id', '2', '--socket', e.rigSocket])).code, 0);
    const faults = await ptyRun(['faults', ...sock]);
    assert.equal(faults.code, 0, faults.text);
    assert.match(faults.text, /FAULT +\[shoulder\] joint shoulder \(bus arm, motor 2\): overload/);
    assert.match(faults.text, /HOLDING/);
    const reset = await ptyRun(['reset', ...sock]);
    assert.equal(reset.code, 0, reset.text);
    assert.match(reset.text, /fault \(joint shoulder.*\) cleared: the loop is in hold/);
    const after = await ptyRun(['faults', '--json', ...sock]);
    const cleared = (JSON.parse(after.text) as { entries: { joint: string | null; cleared: { by: string } | null }[] }).entries.find((x) => x.joint === 'shoulder');
    assert.match(cleared?.cleared?.by ?? '', /^reset by root \(uid 0\)$/);
    // The audit trail: at info, with who.
    await e.daemon.waitForLog((l) => l.msg === 'reset by root' && l.uid === 0 && l.cmd === 'reset', 5000);

    // Nothing to reset is a refusal (1), not a usage error (64).
    const again = await ptyRun(['reset', ...sock]);
    assert.equal(again.code, 1, again.text);
    assert.match(again.text, /nothing to reset: the loop is in hold/);

    // E-stop, then a start refused until reset.
    const es = await ptyRun(['estop', '--json', ...sock]);
    assert.equal(es.code, 0, es.text);
    assert.deepEqual(JSON.parse(es.text), { mode: 'estop' });
    const refused = await ptyRun(['policy', 'start', ...sock]);
    assert.equal(refused.code, 1, refused.text);
    assert.match(refused.text, /the policy did not start: the loop is in estop \(`reflex reset` first\)/);
    assert.match((await ptyRun(['faults', ...sock])).text, /E-STOP +e-stop by root \(uid 0\)/);
    assert.equal((await ptyRun(['reset', ...sock])).code, 0);
    const stop = await ptyRun(['policy', 'stop', ...sock]);
    // On a loaded machine the loop may have faulted on its own meanwhile (a bus past its budget): stop still holds.
    assert.match(stop.text, /holding: the loop is in (hold|fault)/, JSON.stringify((await status()).faults));
    if ((await status()).loop.mode === 'fault') await request(e.socket, 'reset', {}, 20_000);

    // Activate and roll back.
    const act = await ptyRun(['policy', 'activate', join(REPO, 'models', 'reach'), ...sock]);
    assert.equal(act.code, 0, act.text);
    assert.match(act.text, /^active: reach \S+ on cpu/m);
    const back = await ptyRun(['policy', 'rollback', ...sock]);
    assert.equal(back.code, 0, back.text);
    assert.match(back.text, /rolled back/);
    const noMore = await ptyRun(['policy', 'rollback', ...sock]);
    assert.equal(noMore.code, 1, noMore.text);
    assert.match(noMore.text, /no previous policy/);

    const cams = await ptyRun(['camera', 'list', ...sock]);
    assert.match(cams.text, /^ {2}top {2}streaming, \d+\.\d fps/m);
    const shot = join(e.dir, 'top.jpg');
    const snap = await ptyRun(['camera', 'snapshot', 'top', shot, ...sock, '--config', join(e.dir, 'reflex.yaml')]);
    assert.equal(snap.code, 0, snap.text);
    assert.ok(existsSync(shot) && statSync(shot).size > 1000, 'a JPEG was written');

    const lvl = await ptyRun(['log', 'level', 'warn', '--module', 'policy', '--json', ...sock]);
    assert.equal((JSON.parse(lvl.text) as Record<string, string>).policy, 'warn');

    // The servo tools open the bus themselves: while the daemon drives it they say so.
    const held = await ptyRun(['motors', 'scan', '--port', join(e.dir, 'dxl0'), '--baud', '1000000']);
    assert.equal(held.code, 69, held.text);
    assert.match(held.text, /dxl0 is in use by another program, most likely the reflex daemon, which drives it: stop it first/);

    const cfg = ['--config', join(e.dir, 'reflex.yaml')];
    const hw = await ptyRun(['hardware', ...sock, ...cfg]);
    assert.equal(hw.code, 0, hw.text);
    assert.match(hw.text, /^ {2}arm +dynamixel +\S+dxl0 +\d+ failed reads +\d+ retries {2}ok$/m);
    assert.match(hw.text, /^ {2}base +can +\S+can0\.sock +\d+ failed reads +\d+ retries {2}ok$/m);
    assert.match(hw.text, /^ {2}shoulder +bus arm +id 2 +xm430-w350 +-?\d+\.\d{3} rad +\d+ C +\d+\.\d V +\d+ failed reads {2}ok$/m);
    assert.match(hw.text, /^ {2}top +tcpclientsrc .* streaming, \d+\.\d fps, \d+ frames, \d+ failures/m);

    // Not under systemd here: the daemon's own newest lines, filtered and readable.
    const logs = await ptyRun(['logs', '--module', 'socket', '--level', 'info', '--daemon', ...sock]);
    assert.equal(logs.code, 0, logs.text);
    assert.match(logs.text, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} INFO +\[socket\] reset by root +cmd=reset args=\{\} via=socket uid=0 user=root pid=\d+$/m);
    assert.doesNotMatch(logs.text, /\[control\]/);

    const archive = join(e.dir, 'diag.tar.gz');
    const diag = await ptyRun(['diag', '--out', archive, ...sock, ...cfg]);
    assert.equal(diag.code, 0, diag.text);
    const listing = execFileSync('tar', ['tzf', archive], { encoding: 'utf8' });
    for (const f of ['versions.json', 'config.json', 'status.json', 'faults.txt', 'hardware.txt', 'logs.jsonl']) assert.match(listing, new RegExp(`^diag/${f.replace('.', '\\.')}$`, 'm'));
    const configInside = execFileSync('tar', ['xzOf', archive, 'diag/config.json'], { encoding: 'utf8' });
    assert.match(configInside, /mqtts:\/\/robot:<redacted>@broker\.example:8883/);
    assert.doesNotMatch(configInside, /hunter2/);
    const faultsInside = execFileSync('tar', ['xzOf', archive, 'diag/faults.txt'], { encoding: 'utf8' });
    assert.match(faultsInside, /\[shoulder\] joint shoulder \(bus arm, motor 2\): overload/);
  } finally {
    await e.stop();
  }
});

test('the command line: per-verb help, a suggestion for a typo, unknown options and missing daemons', async () => {
  const help = await ptyRun(['policy', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.text, /Usage: reflex policy \[options\] \[command\]/);
  assert.match(help.text, /activate \[options\] <path>/);

  const typo = await ptyRun(['stauts']);
  assert.equal(typo.code, 64);
  assert.match(typo.text, /unknown command 'stauts'\n\(Did you mean status\?\)/);

  const opt = await ptyRun(['status', '--jsno']);
  assert.equal(opt.code, 64);
  assert.match(opt.text, /unknown option '--jsno'\n\(Did you mean --json\?\)/);

  const none = await ptyRun(['estop', '--socket', join(tempDir(), 'none.sock')]);
  assert.equal(none.code, 69);
  assert.match(none.text, /cannot reach the daemon at .*none\.sock/);
  assert.match(none.text, /systemctl start reflex.*npm start.*--config FILE/s);

  // `reflex status` loads the client side only: not the socket server, the command schemas
  // (zod), the config schema or the drivers, which made it slow to answer (timed in bench/cli).
  const scratch = tempDir();
  const hook = join(scratch, 'loaded.mjs');
  writeFileSync(
    hook,
    `import { registerHooks } from 'node:module'; import { writeFileSync } from 'node:fs'; const urls = [];
registerHooks({ load(url, ctx, next) { urls.push(url); return next(url, ctx); } });
process.on('exit', () => writeFileSync(${JSON.stringify(join(scratch, 'loaded.txt'))}, urls.join('\\n')));\n`,
  );
  const traced = await ptyRun(['status', '--socket', join(scratch, 'none.sock')], { env: { NODE_OPTIONS: `--import=${hook}` } });
  assert.equal(traced.code, 69, traced.text);
  const loaded = readFileSync(join(scratch, 'loaded.txt'), 'utf8');
  assert.match(loaded, /\/src\/api\/client\.js$/m, 'the hook saw the client load');
  for (const heavy of ['/node_modules/zod/', '/src/api/server.js', '/src/api/catalog.js', '/src/config/', '/src/hardware/', '/src/control/', '/src/daemon.js']) {
    assert.ok(!loaded.includes(heavy), `reflex status loaded ${heavy}:\n${loaded}`);
  }

  // Completion: a bash script that completes the verbs, their subcommands and options.
  const comp = await ptyRun(['completion', 'bash']);
  assert.equal(comp.code, 0);
  const dir = tempDir();
  const script = join(dir, 'reflex.bash');
  writeFileSync(script, comp.text);
  const complete = (...words: string[]) =>
    execFileSync('bash', ['-c', `source ${script}; COMP_WORDS=(${words.join(' ')}); COMP_CWORD=${words.length - 1}; _reflex; echo "\${COMPREPLY[*]}"`], { encoding: 'utf8' }).trim();
  assert.equal(complete('reflex', 'po'), 'policy');
  assert.equal(complete('reflex', 'policy', 'r'), 'rollback');
  assert.match(complete('reflex', 'jog', '--'), /--joint .*--speed/);

  const version = await ptyRun(['--version']);
  assert.equal(version.code, 0, version.text);
  assert.match(version.text, /^reflex +\d+\.\d+\.\d+$/m);
  assert.match(version.text, new RegExp(`^Node\\.js +${process.versions.node.replace(/\./g, '\\.')}$`, 'm'));
  assert.match(version.text, /^ONNX Runtime +1\.\d+\.\d+$/m);
  assert.match(version.text, /^OpenCV +\S+/m);
});
