import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { sdNotify, nativeUnavailableReason, SystemdNotifier } from '../src/rt/index.js';
import { NotifyListener } from '../tools/testkit/notify.js';
import { tempDir } from '../tools/testkit/daemon.js';

test('the native addon is built and loads', () => {
  assert.equal(nativeUnavailableReason(), null);
});

test('sdNotify delivers a datagram to a filesystem socket and to an abstract one', async () => {
  const fsPath = join(tempDir(), 'notify.sock');
  const abstract = `@reflex-test-${process.pid}`;
  for (const path of [fsPath, abstract]) {
    const l = await NotifyListener.open(path);
    try {
      assert.equal(sdNotify(path, 'READY=1\nSTATUS=hello'), 0);
      assert.equal(await l.waitFor(() => true, 3000), 'READY=1\nSTATUS=hello');
    } finally {
      l.close();
    }
  }
});

test('sdNotify to a socket nobody listens on returns an errno instead of throwing', () => {
  assert.notEqual(sdNotify(join(tempDir(), 'none.sock'), 'READY=1'), 0);
  assert.throws(() => sdNotify('', 'x'), TypeError);
  assert.throws(() => sdNotify('/tmp/x', 'a\0b'), TypeError);
});

test('the notifier honours WATCHDOG_USEC and WATCHDOG_PID, and is silent without NOTIFY_SOCKET', () => {
  const sent: string[] = [];
  const send = (_p: string, m: string) => (sent.push(m), 0);
  assert.equal(new SystemdNotifier({ NOTIFY_SOCKET: '/x', WATCHDOG_USEC: '2000000' }, send).watchdogIntervalMs, 1000);
  assert.equal(new SystemdNotifier({ NOTIFY_SOCKET: '/x', WATCHDOG_USEC: '2000000', WATCHDOG_PID: '1' }, send).watchdogIntervalMs, null);
  const off = new SystemdNotifier({}, send);
  off.ready('x');
  off.watchdog();
  assert.deepEqual(sent, []);
  const on = new SystemdNotifier({ NOTIFY_SOCKET: '/x' }, send);
  on.ready('up');
  on.status('up');
  on.status('two\nlines');
  assert.deepEqual(sent, ['READY=1\nSTATUS=up', 'STATUS=two lines']);
});
