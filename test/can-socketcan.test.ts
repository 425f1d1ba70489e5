// The transport suite on Linux's own SocketCAN (vcan0). Where this kernel has CAN and vcan0 is
// up (a developer's laptop: `ip link add vcan0 type vcan && ip link set vcan0 up`) it runs here;
// otherwise this file boots a VM with a real kernel (test/helpers/can-vm.ts) and runs itself
// inside, where REFLEX_IN_CAN_VM is set.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { CanErr, CanErrCrtl, CanFlag, SocketCan } from '../src/hardware/can/index.js';
import { frameSockets } from '../src/rt/index.js';
import { canTransportSuite } from './helpers/can-suite.js';
import { canVmUnavailable, runInCanVm } from './helpers/can-vm.js';

const IFACE = 'vcan0';

function hostHasVcan(): boolean {
  try {
    const s = frameSockets();
    const fd = s.canOpen(IFACE);
    if (fd < 0) return false;
    s.close(fd);
    return true;
  } catch {
    return false;
  }
}

if (process.env.REFLEX_IN_CAN_VM === '1' || hostHasVcan()) {
  canTransportSuite(`SocketCAN (${IFACE})`, () => {
    const a = SocketCan.open(IFACE);
    const b = SocketCan.open(IFACE);
    // vcan has no controller of its own: a third socket sends the error frames a controller would.
    const controller = SocketCan.open(IFACE);
    const data = new Uint8Array(8);
    return {
      a,
      b,
      inject: (state) => {
        data.fill(0);
        if (state === 'bus-off') controller.send(CanErr.BUSOFF, data, 8, CanFlag.ERROR);
        else {
          data[1] = state === 'error-passive' ? CanErrCrtl.TX_PASSIVE : CanErrCrtl.ACTIVE;
          controller.send(CanErr.CRTL, data, 8, CanFlag.ERROR);
        }
      },
      restarted: () => {
        data.fill(0);
        controller.send(CanErr.RESTARTED, data, 8, CanFlag.ERROR);
      },
      close: () => {
        a.close();
        b.close();
        controller.close();
      },
    };
  });

  // Taking the interface down needs root: the VM's init runs as root; a laptop's vcan0 need not.
  test('SocketCAN: an interface taken down refuses sends as bus-off and recovers when it is up again', { skip: process.getuid?.() === 0 ? false : 'needs root to take vcan0 down' }, () => {
    const a = SocketCan.open(IFACE);
    const ip = (state: string) => assert.equal(spawnSync('ip', ['link', 'set', IFACE, state]).status, 0, `ip link set ${IFACE} ${state}`);
    try {
      ip('down');
      assert.equal(a.send(0x30, Uint8Array.of(1), 1), false);
      assert.equal(a.state, 'bus-off');
      assert.equal(a.send(0x30, Uint8Array.of(1), 1), false, 'still down: refused again, without waiting');
      ip('up');
      assert.equal(a.send(0x31, Uint8Array.of(2), 1), true, 'tried again once the interface is up');
      assert.equal(a.state, 'error-active');
      assert.equal(a.stats.busOffs, 1);
    } finally {
      ip('up');
      a.close();
    }
  });

  test('SocketCAN: an interface that does not exist is a clear error', () => {
    assert.throws(() => SocketCan.open('nocan7'), /CAN interface nocan7: ENODEV/);
  });
} else {
  const why = canVmUnavailable();
  test('SocketCAN transport suite on a real kernel (in a VM: this kernel has no CAN)', { skip: why ?? false }, async () => {
    const script = 'NO_COLOR=1 REFLEX_IN_CAN_VM=1 node --test --test-reporter=spec dist/test/can-socketcan.test.js';
    const r = await runInCanVm(script, 300_000);
    // The runner's summary lines ("ℹ pass 7"), whatever symbol starts them.
    const count = (what: string) => Number(new RegExp(`^\\S+ ${what} (\\d+)\\r?$`, 'm').exec(r.output)?.[1] ?? -1);
    const pass = count('pass');
    const fail = count('fail');
    if (r.code !== 0 || fail !== 0 || pass < 7) process.stderr.write(`--- VM output ---\n${r.output}\n`);
    assert.equal(r.code, 0, 'the suite passed inside the VM');
    assert.equal(fail, 0);
    assert.ok(pass >= 7, `${pass} tests passed inside the VM`);
  });
}
