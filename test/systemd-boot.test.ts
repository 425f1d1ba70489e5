// reflex.service under a real systemd: Debian's systemd booted as PID 1 of a container
// (`systemd-nspawn --boot --volatile=yes`: an empty root on a tmpfs with this machine's /usr, so
// nothing has to be built or downloaded and nothing of this machine's /etc or services comes
// along), with the simulated Dynamixel bus as a second unit. A VM with Debian's systemd would
// also do, but without KVM a full boot of it would take minutes on 2 cores; the container
// boots in seconds and runs the same systemd. Needs root and systemd-nspawn (Debian:
// systemd-container); skips saying why otherwise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { REPO } from '../tools/testkit/paths.js';
import { tempDir } from '../tools/testkit/daemon.js';
import { bootContainer, containerConfig, mayRaiseLimits, nspawnCannotRun, sleep, type Container } from './helpers/nspawn.js';

const CONFIG = containerConfig('nspawn-01', 'debug: { faultInjection: true }\n');

// Test-only units: the simulated bus (as the reflex user, so that its pty is reflex's), and a
// target that boots just these instead of multi-user.target.
const SIM_UNIT = `[Unit]
Description=simulated Dynamixel bus for reflex
Before=reflex.service
[Service]
User=reflex
RuntimeDirectory=reflex-sim
ExecStart=/opt/reflex/node/bin/node /opt/reflex/current/bin/reflex.js sim dynamixel --link /run/reflex-sim/dxl0 --ids 1-3
`;
const TARGET = `[Unit]
Description=reflex under test
Wants=reflex-sim.service reflex.service
`;
// One control-socket request from inside the container (no socat there).
const REQUEST = `const s = require('net').connect(process.argv[2], () => s.end(process.argv[3] + '\\n'));
s.on('data', (d) => process.stdout.write(d));
`;

async function boot(dir: string): Promise<Container | string> {
  const node = dirname(dirname(realpathSync(process.execPath)));
  return bootContainer([
    '-D', '/', '--volatile=yes',
    `--bind-ro=${join(dir, 'system')}:/etc/systemd/system`,
    `--bind-ro=${join(dir, 'sysusers')}:/etc/sysusers.d`,
    `--bind=${join(dir, 'etc')}:/etc/reflex`,
    `--bind-ro=${node}:/opt/reflex/node`,
    `--bind-ro=${REPO}:/opt/reflex/current`,
    // As a robot's kernel allows (the container keeps this machine's limit otherwise).
    '--rlimit=RLIMIT_MEMLOCK=infinity', '--rlimit=RLIMIT_RTPRIO=99',
  ], 'reflex-test.target');
}

test('reflex.service under systemd: ready, STATUS, watchdog restart, clean stop, no restart on exit 78', { timeout: 120_000 }, async (t) => {
  const why = nspawnCannotRun();
  if (why) return t.skip(why);
  const dir = tempDir('reflex-boot-');
  for (const d of ['system', 'sysusers', 'etc']) mkdirSync(join(dir, d));
  for (const u of ['reflex.service', 'reflex-safe.service']) copyFileSync(join(REPO, 'systemd', u), join(dir, 'system', u));
  writeFileSync(join(dir, 'system', 'reflex-sim.service'), SIM_UNIT);
  writeFileSync(join(dir, 'system', 'reflex-test.target'), TARGET);
  // An empty /etc is a first boot: its wizard would wait for a key.
  symlinkSync('/dev/null', join(dir, 'system', 'systemd-firstboot.service'));
  copyFileSync(join(REPO, 'systemd', 'sysusers.d', 'reflex.conf'), join(dir, 'sysusers', 'reflex.conf'));
  writeFileSync(join(dir, 'etc', 'reflex.yaml'), CONFIG);
  writeFileSync(join(dir, 'etc', 'request.js'), REQUEST);

  const ct = await boot(dir);
  if (typeof ct === 'string') return t.skip(ct);
  try {
    // Active only after READY=1, and `systemctl status` shows the daemon's STATUS= line.
    await ct.until('reflex active', () => ct.show('reflex', 'ActiveState') === 'active', 30_000);
    const status = ct.sh('systemctl status reflex --no-pager').out;
    assert.match(status, /Status: "hold [\d.]+\/50 Hz, .*policy none, fleet disabled[^"]*"/);
    // The real-time limits systemd gives the process: as configured where this machine may
    // raise hard limits (CAP_SYS_RESOURCE, as on a robot); capped by this machine's otherwise.
    assert.equal(ct.show('reflex', 'LimitRTPRIO'), '99');
    assert.equal(ct.show('reflex', 'LimitMEMLOCK'), 'infinity');
    const limits = ct.sh('cat /proc/$(systemctl show -p MainPID --value reflex)/limits').out;
    if (mayRaiseLimits()) {
      assert.match(limits, /^Max locked memory +unlimited +unlimited/m);
      assert.match(limits, /^Max realtime priority +99 +99/m);
    } else {
      t.diagnostic(`no CAP_SYS_RESOURCE here: the daemon's limits are this machine's: ${limits.split('\n').filter((l) => /locked|realtime pri/.test(l)).join('; ')}`);
    }
    assert.equal(ct.show('reflex', 'User'), 'reflex');
    assert.equal(ct.show('reflex', 'WatchdogUSec'), '5s');
    assert.match(ct.sh('stat -c %U /var/lib/reflex /run/reflex/control.sock').out, /^reflex\nreflex\n$/);
    assert.match(ct.sh('id reflex').out, /dialout.*video.*render/);

    // A stalled loop stops feeding the watchdog: systemd kills and restarts the daemon.
    const before = ct.show('reflex', 'MainPID');
    const restarts = Number(ct.show('reflex', 'NRestarts'));
    const stall = ct.sh(`/opt/reflex/node/bin/node /etc/reflex/request.js /run/reflex/control.sock '{"cmd":"debug.stall","args":{"ms":15000}}'`);
    assert.match(stall.out, /"ok":true/);
    await ct.until('restart by the watchdog', () => Number(ct.show('reflex', 'NRestarts')) === restarts + 1 && ct.show('reflex', 'ActiveState') === 'active', 20_000);
    assert.notEqual(ct.show('reflex', 'MainPID'), before);
    const journal = ct.sh('journalctl -u reflex -o cat --no-pager').out;
    assert.match(journal, /Watchdog timeout \(limit 5s\)/);
    // Between restarts the unit is not failed: the safe unit did not run (systemd 252).
    assert.equal(ct.show('reflex-safe', 'ExecMainStartTimestampMonotonic'), '0');

    // systemctl stop: the daemon makes the motors safe and exits 0.
    assert.equal(ct.sh('systemctl stop reflex').code, 0);
    assert.equal(ct.show('reflex', 'Result'), 'success');
    assert.equal(ct.show('reflex', 'ExecMainStatus'), '0');
    assert.match(ct.sh('journalctl -u reflex -o cat --no-pager').out, /"part":"control-loop","msg":"made safe"/);

    // A bad config: exit 78, failed, not restarted; OnFailure= ran reflex-safe.service.
    writeFileSync(join(dir, 'etc', 'reflex.yaml'), 'deviceId: "not/valid"\n');
    ct.sh('systemctl reset-failed reflex; systemctl start reflex');
    await ct.until('reflex failed', () => ct.show('reflex', 'ActiveState') === 'failed', 15_000);
    assert.equal(ct.show('reflex', 'ExecMainStatus'), '78');
    await sleep(4000); // twice RestartSec
    assert.equal(ct.show('reflex', 'ActiveState'), 'failed');
    assert.equal(ct.show('reflex', 'NRestarts'), '0');
    assert.notEqual(ct.show('reflex-safe', 'ExecMainStartTimestampMonotonic'), '0');
  } finally {
    await ct.stop();
  }
});
