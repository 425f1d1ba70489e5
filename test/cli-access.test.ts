// Who may do what, decided by the kernel's word on who connected (SO_PEERCRED): a user outside
// the operator group may read and e-stop but not move the robot; one in it may. The clients run
// as another uid (setpriv) in a real pseudo-terminal; the tests run as root.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import { groupIdOf } from '../src/core/index.js';
import { spawnReflex, tempDir, testConfig, writeConfig } from '../tools/testkit/daemon.js';
import { ptyRun } from './helpers/cli-pty.js';

const NOBODY = 65534;

test('a user outside the operator group can read and e-stop but is refused reset and policy start (77); a member is not', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to run the client as another uid (setpriv)');
  // An existing group stands in for the operator group: no user or group is created on the machine.
  const group = 'users';
  const gid = groupIdOf(group);
  if (gid === null) return t.skip('no "users" group in /etc/group');
  const dir = tempDir();
  chmodSync(dir, 0o755); // the other uid must reach the socket
  const socket = join(dir, 'control.sock');
  const d = spawnReflex(['run', '--config', writeConfig(dir, testConfig(dir, { socket: { path: socket, mode: '0666' }, control: { operatorGroup: group } }))]);
  try {
    await d.waitForLog((l) => l.msg === 'reflex is running', 15_000);
    const outsider = { uid: NOBODY, gid: NOBODY, groups: [] };
    const sock = ['--socket', socket];

    const status = await ptyRun(['status', ...sock], { user: outsider });
    assert.equal(status.code, 0, status.text);
    assert.match(status.text, /^device\s+test-01$/m);

    const estop = await ptyRun(['estop', ...sock], { user: outsider });
    assert.equal(estop.code, 0, estop.text);

    const refused = await ptyRun(['reset', ...sock], { user: outsider });
    assert.equal(refused.code, 77, refused.text);
    assert.match(refused.text, /uid 65534.* may not reset: it can move the robot and needs the operator group "users"/);
    await d.waitForLog((l) => l.msg === 'control command refused: not an operator' && l.uid === NOBODY && l.cmd === 'reset', 5000);
    const start = await ptyRun(['policy', 'start', ...sock], { user: outsider });
    assert.equal(start.code, 77, start.text);

    // A member of the group may: the e-stop is cleared.
    const member = await ptyRun(['reset', ...sock], { user: { uid: NOBODY, gid: NOBODY, groups: [gid] } });
    assert.equal(member.code, 0, member.text);
    assert.match(member.text, /e-stop cleared: the loop is in hold/);
    const line = await d.waitForLog((l) => l.msg === `reset by ${String(l.user)}` && l.uid === NOBODY, 5000);
    assert.equal(line.level, 30, 'at info');
    const estopLine = d.logs.find((l) => l.cmd === 'estop' && l.uid === NOBODY);
    assert.ok(estopLine !== undefined, 'the e-stop was logged with who sent it');
  } finally {
    d.proc.kill('SIGTERM');
    await d.exited;
  }
});
