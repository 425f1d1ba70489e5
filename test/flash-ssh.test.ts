// `flash.sh ssh`: install, upgrade and roll back reflex on a machine reached over a real sshd.
// The machine is a `systemd-nspawn --boot` container (Debian's systemd as PID 1, as in
// test/systemd-boot) whose root is a directory this test owns, with this machine's /usr under a
// writable overlay (flash.sh writes /usr/local/bin/reflex and a sysusers.d file there). It shares
// this machine's network: its sshd (Debian's openssh-server, a unit of this test) listens on
// 127.0.0.1 at a free port, with a host key and an authorized key made here with ssh-keygen.
// The simulated Dynamixel bus runs there as a unit that reflex.service wants (a drop-in), as a
// real U2D2 would be plugged in. Needs root, systemd-nspawn and openssh; skips saying why.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { join } from 'node:path';
import { tempDir } from '../tools/testkit/daemon.js';
import { bootContainer, containerConfig, nspawnCannotRun, sleep, type Container } from './helpers/nspawn.js';
import { buildReleases, fetchNode, FLASH, NODE_PIN, releasePath } from './helpers/releases.js';

const CONFIG = containerConfig('flash-ssh-01');

// The simulated bus, from whatever release is current; reflex.service wants it (a drop-in: on a
// robot the bus is hardware). Started only once its pty is there.
const SIM_UNIT = `[Unit]
Description=simulated Dynamixel bus for reflex
[Service]
User=reflex
RuntimeDirectory=reflex-sim
ExecStart=/opt/reflex/node/bin/node /opt/reflex/current/bin/reflex.js sim dynamixel --link /run/reflex-sim/dxl0 --ids 1-3
ExecStartPost=/bin/sh -c 'for i in $(seq 300); do [ -e /run/reflex-sim/dxl0 ] && exit 0; sleep 0.1; done; exit 1'
`;
const SIM_DROPIN = `[Unit]
Wants=reflex-sim.service
After=reflex-sim.service
`;
const SSHD_UNIT = `[Unit]
Description=OpenSSH server for test/flash-ssh
[Service]
ExecStart=/usr/sbin/sshd -D -e -f /etc/ssh/sshd_config
RuntimeDirectory=sshd
RuntimeDirectoryMode=0755
`;
const TARGET = `[Unit]
Description=a machine to flash
Wants=flash-test-sshd.service
`;

function cannotRun(): string | null {
  const why = nspawnCannotRun();
  if (why) return why;
  if (!existsSync('/usr/sbin/sshd')) return 'sshd is not installed (Debian: openssh-server)';
  for (const tool of ['ssh', 'ssh-keygen']) {
    if (spawnSync(tool, ['-V']).error) return `${tool} is not installed (Debian: openssh-client)`;
  }
  return null;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  await new Promise<void>((r) => server.close(() => r()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('data', () => { s.destroy(); resolve(true); }); // sshd's banner
    s.once('error', () => resolve(false));
    s.setTimeout(2000, () => { s.destroy(); resolve(false); });
  });
}

/**
 * A root filesystem for the container: this machine's /usr (overlaid), accounts for root and
 * sshd, sshd's config, keys and unit, the simulated bus, the robot's config. Returns the
 * client's key and known_hosts.
 */
function makeRoot(root: string, port: number): { key: string; knownHosts: string } {
  for (const d of ['etc/ssh', 'etc/systemd/system/reflex.service.d', 'etc/reflex', 'usr', 'var/tmp', 'tmp', 'root']) {
    mkdirSync(join(root, d), { recursive: true });
  }
  chmodSync(join(root, 'var/tmp'), 0o1777);
  chmodSync(join(root, 'tmp'), 0o1777);
  chmodSync(join(root, 'root'), 0o700);
  chmodSync(root, 0o755);
  for (const top of ['bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32']) {
    const p = `/${top}`;
    if (existsSync(p) && lstatSync(p).isSymbolicLink()) symlinkSync(readlinkSync(p), join(root, top));
    else if (existsSync(p)) return assert.fail(`/${top} is not a link into /usr here: this test needs a merged-/usr machine`);
  }
  copyFileSync('/usr/lib/os-release', join(root, 'etc/os-release'));
  // Debian's awk, editor... are links through /etc/alternatives.
  if (existsSync('/etc/alternatives')) cpSync('/etc/alternatives', join(root, 'etc/alternatives'), { recursive: true, verbatimSymlinks: true });
  writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/bash\nsshd:x:101:65534::/run/sshd:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\ntech:x:1000:1000::/tmp:/bin/bash\n');
  writeFileSync(join(root, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\ntech:x:1000:\n');
  writeFileSync(join(root, 'etc/shadow'), 'root:*:19000:0:99999:7:::\nsshd:*:19000:0:99999:7:::\ntech:*:19000:0:99999:7:::\n', { mode: 0o640 });

  const ssh = join(root, 'etc/ssh');
  spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'flash-ssh host', '-f', join(ssh, 'ssh_host_ed25519_key')]);
  const key = join(root, '..', 'client_key');
  spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'flash-ssh client', '-f', key]);
  // Read by sshd as the user logging in (root, or tech who may not install).
  writeFileSync(join(ssh, 'authorized_keys'), readFileSync(`${key}.pub`), { mode: 0o644 });
  writeFileSync(join(ssh, 'sshd_config'), [
    `ListenAddress 127.0.0.1:${port}`,
    'HostKey /etc/ssh/ssh_host_ed25519_key',
    'AuthorizedKeysFile /etc/ssh/authorized_keys',
    'PermitRootLogin prohibit-password',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    'PidFile /run/sshd.pid',
    '',
  ].join('\n'));
  const hostKey = readFileSync(join(ssh, 'ssh_host_ed25519_key.pub'), 'utf8').split(' ').slice(0, 2).join(' ');
  const knownHosts = join(root, '..', 'known_hosts');
  writeFileSync(knownHosts, `[127.0.0.1]:${port} ${hostKey}\n`);

  const system = join(root, 'etc/systemd/system');
  writeFileSync(join(system, 'flash-test-sshd.service'), SSHD_UNIT);
  writeFileSync(join(system, 'flash-test.target'), TARGET);
  writeFileSync(join(system, 'reflex-sim.service'), SIM_UNIT);
  writeFileSync(join(system, 'reflex.service.d', 'sim.conf'), SIM_DROPIN);
  // An /etc without a machine setup is a first boot: its wizard would wait for a key.
  symlinkSync('/dev/null', join(system, 'systemd-firstboot.service'));
  writeFileSync(join(root, 'etc/reflex/reflex.yaml'), CONFIG);
  return { key, knownHosts };
}

interface Run { code: number | null; stdout: string; stderr: string }

describe('flash.sh ssh', () => {
  const work = tempDir('reflex-flash-ssh-');
  const root = join(work, 'root');
  const releases = join(work, 'releases');
  let skip: string | null = null;
  let ct: Container | null = null;
  let ssh: string[] = [];
  let relA = '';
  let relB = '';

  /** flash.sh [flags] ssh root@127.0.0.1 [args] against the container, as a person runs it. */
  function flash(flags: string[], ...args: string[]): Promise<Run> {
    // A daemon's start on this loaded 2-core machine can take long: a generous bound on READY.
    return flashAs('root@127.0.0.1', ['--arch', 'x64', '--wait', '300', ...flags], ...args);
  }
  function flashAs(host: string, flags: string[], ...args: string[]): Promise<Run> {
    return new Promise((resolve) => {
      const p = spawn(FLASH, [...flags, 'ssh', host, ...ssh, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => p.kill('SIGKILL'), 400_000);
      p.once('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
    });
  }
  const said = (r: Run) => `flash.sh exited ${r.code}:\n${r.stdout}\n${r.stderr}`;
  const current = () => readlinkSync(join(root, 'opt/reflex/current'));
  /** The release whose native addon the running daemon has mapped (the kernel names it by its real path). */
  const running = () => /releases\/([^/]+)\/native\//.exec(ct?.sh('cat /proc/$(systemctl show -p MainPID --value reflex)/maps').out ?? '')?.[1];

  before(async () => {
    skip = cannotRun() ?? fetchNode('x64');
    if (skip) return;
    const port = await freePort();
    mkdirSync(root);
    mkdirSync(join(work, 'usr-upper'));
    const { key, knownHosts } = makeRoot(root, port);
    ssh = ['--port', String(port), '--identity', key, '-o', `UserKnownHostsFile=${knownHosts}`,
      '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes'];
    const [, booted] = await Promise.all([
      buildReleases(releases, ['1.0.0-test', '1.1.0-test']),
      bootContainer(['-D', root, `--overlay=/usr:${join(work, 'usr-upper')}:/usr`,
        '--rlimit=RLIMIT_MEMLOCK=infinity', '--rlimit=RLIMIT_RTPRIO=99'], 'flash-test.target'),
    ]);
    if (typeof booted === 'string') { skip = booted; return; }
    ct = booted;
    relA = releasePath(releases, '1.0.0-test');
    relB = releasePath(releases, '1.1.0-test');
    const end = Date.now() + 60_000;
    while (!(await accepts(port))) {
      if (Date.now() > end) assert.fail(`sshd in the container does not answer on port ${port}\n${ct.sh('journalctl -u flash-test-sshd -o cat --no-pager').out}`);
      await sleep(250);
    }
  });
  after(async () => {
    await ct?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('refuses, saying why, a host it cannot reach or should not install on; nothing changes there', async (t) => {
    if (skip || !ct) return t.skip(skip ?? 'no container');
    // An x86_64 machine is not a Jetson: only with --arch x64.
    const jetson = await flashAs('root@127.0.0.1', [], '--release', relA);
    assert.equal(jetson.code, 2, said(jetson));
    assert.match(jetson.stderr, /is x86_64, not a Jetson \(aarch64\): give --arch x64/);
    // Logged in as someone who is not root and has no passwordless sudo.
    const tech = await flashAs('tech@127.0.0.1', ['--arch', 'x64'], '--release', relA);
    assert.equal(tech.code, 2, said(tech));
    assert.match(tech.stderr, /logged in as uid 1000, not root, and without passwordless sudo/);
    // Nothing listens there (the last --port wins).
    const port = await freePort();
    const gone = await flashAs('root@127.0.0.1', ['--arch', 'x64'], '--port', String(port), '--release', relA);
    assert.equal(gone.code, 2, said(gone));
    assert.match(gone.stderr, /cannot connect to root@127\.0\.0\.1 over ssh/);
    assert.ok(!existsSync(join(root, 'opt')), '/opt/reflex was not made');
  });

  it('--check and --dry-run change nothing on a fresh machine', async (t) => {
    if (skip || !ct) return t.skip(skip ?? 'no container');
    // The JetPack release is read off /etc/nv_tegra_release (as a Jetson Orin has it).
    const tegra = join(root, 'etc/nv_tegra_release');
    writeFileSync(tegra, '# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: Wed Jan  8 01:49:37 UTC 2025\n');
    const check = await flash(['--check'], '--release', relA);
    rmSync(tegra);
    assert.equal(check.code, 1, said(check));
    assert.match(check.stdout, /would: install release 1\.0\.0-test/);
    assert.match(check.stderr, /Jetson, L4T R36\.4\.3 \(JetPack 6\)/);
    const dry = await flash(['--dry-run'], '--release', relA);
    assert.equal(dry.code, 0, said(dry));
    assert.match(dry.stderr, /not a Jetson \(no \/etc\/nv_tegra_release\); going on \(--arch x64\)/);
    assert.match(dry.stdout, /would: install Node/);
    assert.ok(!existsSync(join(root, 'opt')), '/opt/reflex was not made');
    assert.equal(ct.sh('id reflex').code, 1, 'no reflex user yet');
    assert.deepEqual(readdirSync(join(root, 'var/tmp')).filter((f) => f.startsWith('reflex-flash')), []);
  });

  it('installs a release: reflex runs, READY, with its STATUS line; the config is kept', async (t) => {
    if (skip || !ct) return t.skip(skip ?? 'no container');
    const r = await flash([], '--release', relA);
    assert.equal(r.code, 0, said(r));
    assert.equal(current(), 'releases/1.0.0-test');
    assert.equal(ct.show('reflex', 'ActiveState'), 'active');
    assert.equal(running(), '1.0.0-test');
    // The daemon's own STATUS= line (its mode may be FAULT when this machine is too loaded to tick).
    assert.match(ct.show('reflex', 'StatusText'), /^\w+ [\d.]+\/50 Hz, wake .*policy none/);
    // What flash.sh printed: the robot's systemctl status, with the daemon's STATUS line.
    assert.match(r.stdout, /reflex\.service - reflex robot policy runtime[\s\S]*Active: active \(running\)[\s\S]*Status: "\w+ [\d.]+\/50 Hz/);
    assert.equal(ct.show('reflex', 'UnitFileState'), 'enabled');
    assert.equal(ct.sh('/opt/reflex/node/bin/node --version').out.trim(), `v${NODE_PIN}`);
    assert.match(ct.sh('reflex --help').out, /Usage: reflex/);
    assert.equal(readFileSync(join(root, 'etc/reflex/reflex.yaml'), 'utf8'), CONFIG);
    // The sent release and Node do not stay in /var/tmp.
    assert.deepEqual(readdirSync(join(root, 'var/tmp')).filter((f) => f.startsWith('reflex-flash')), []);
  });

  it('again: up to date, nothing sent, reflex not restarted', async (t) => {
    if (skip || !ct) return t.skip(skip ?? 'no container');
    const pid = ct.show('reflex', 'MainPID');
    const invocation = ct.show('reflex', 'InvocationID');
    const r = await flash([], '--release', relA);
    assert.equal(r.code, 0, said(r));
    assert.match(r.stderr, /up to date/);
    assert.doesNotMatch(r.stderr, /sending/);
    assert.equal(ct.show('reflex', 'MainPID'), pid);
    assert.equal(ct.show('reflex', 'InvocationID'), invocation);
    const check = await flash(['--check'], '--release', relA);
    assert.equal(check.code, 0, said(check));
    assert.match(check.stdout, /up to date/);
  });

  it('upgrades to a second release: current moves, the first is kept, reflex restarted', async (t) => {
    if (skip || !ct) return t.skip(skip ?? 'no container');
    const check = await flash(['--check'], '--release', relB);
    assert.equal(check.code, 1, said(check));
    const invocation = ct.show('reflex', 'InvocationID');
    const r = await flash([], '--release', relB);
    assert.equal(r.code, 0, said(r));
    assert.doesNotMatch(r.stderr, /sending Node/, 'the same Node is not sent again');
    assert.equal(current(), 'releases/1.1.0-test');
    assert.deepEqual(readdirSync(join(root, 'opt/reflex/releases')).sort(), ['1.0.0-test', '1.1.0-test']);
    assert.equal(ct.show('reflex', 'ActiveState'), 'active');
    assert.equal(running(), '1.1.0-test');
    assert.notEqual(ct.show('reflex', 'InvocationID'), invocation);
    assert.equal(readFileSync(join(root, 'etc/reflex/reflex.yaml'), 'utf8'), CONFIG);
  });

  it('rolls the agent back to the first release, and it runs again', async (t) => {
    if (skip || !ct) return t.skip(skip ?? 'no container');
    const dry = await flash(['--check'], 'rollback');
    assert.equal(dry.code, 1, said(dry));
    // On the robot itself, with the flash.sh every release carries.
    const local = ct.sh('/opt/reflex/current/flash/flash.sh --check rollback');
    assert.equal(local.code, 1, local.out);
    assert.match(local.out, /would: link \/opt\/reflex\/current -> releases\/1\.0\.0-test/);
    assert.equal(current(), 'releases/1.1.0-test');
    const invocation = ct.show('reflex', 'InvocationID');
    const r = await flash([], 'rollback');
    assert.equal(r.code, 0, said(r));
    assert.match(r.stderr, /rolling the agent back: 1\.1\.0-test -> 1\.0\.0-test/);
    assert.equal(current(), 'releases/1.0.0-test');
    assert.equal(ct.show('reflex', 'ActiveState'), 'active');
    assert.notEqual(ct.show('reflex', 'InvocationID'), invocation);
    assert.equal(running(), '1.0.0-test');
    assert.match(ct.show('reflex', 'StatusText'), /^\w+ [\d.]+\/50 Hz, /);
  });

  it('an upgrade that does not come up is rolled back, loudly, and fails', async (t) => {
    if (skip || !ct) return t.skip(skip ?? 'no container');
    // Release B again under another version, with a daemon that dies at start.
    const broken = join(releases, 'reflex-1.2.0-broken-linux-x64');
    // Hard links (cheap); each file changed below is replaced, not written through the link.
    assert.equal(spawnSync('cp', ['-al', relB, broken]).status, 0);
    const replace = (rel: string, text: string) => {
      const p = join(broken, rel);
      rmSync(p);
      writeFileSync(p, text);
    };
    replace('RELEASE', readFileSync(join(relB, 'RELEASE'), 'utf8').replace(/^version=.*$/m, 'version=1.2.0-broken'));
    // Exit 78 (a bad config) is not restarted: the unit fails at once, whatever the machine's load.
    replace('bin/reflex.js', "console.error('broken on purpose'); process.exit(78);\n");
    replace('MANIFEST', `${readFileSync(join(relB, 'MANIFEST'), 'utf8')}broken on purpose\n`);
    const r = await flash([], '--release', broken);
    assert.equal(r.code, 2, said(r));
    assert.match(r.stderr, /ROLLING BACK to 1\.0\.0-test/);
    assert.match(r.stderr, /broken on purpose/, 'the journal tail is printed');
    assert.equal(current(), 'releases/1.0.0-test');
    assert.equal(ct.show('reflex', 'ActiveState'), 'active');
    assert.equal(running(), '1.0.0-test');
  });
});
