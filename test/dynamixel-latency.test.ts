import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tuneLatency, FTDI_UDEV_RULE, type SerialLink } from '../src/hardware/dynamixel/index.js';
import { tempDir } from '../tools/testkit/daemon.js';

/** A U2D2 as the kernel shows it: /dev/serial/by-id/... -> ttyUSB7, and its sysfs latency_timer. */
function fakeAdapter(timer: string, writable: boolean) {
  // As root every file is writable, so a refusing sysfs is staged by its writer.
  const root = tempDir();
  const dev = join(root, 'ttyUSB7');
  writeFileSync(dev, '');
  const byId = join(root, 'usb-FTDI_USB__-__Serial_Converter-if00-port0');
  symlinkSync(dev, byId);
  const sysfs = join(root, 'sys');
  mkdirSync(join(sysfs, 'ttyUSB7'), { recursive: true });
  const file = join(sysfs, 'ttyUSB7', 'latency_timer');
  writeFileSync(file, `${timer}\n`);
  const write = writable
    ? (f: string, v: string) => writeFileSync(f, v)
    : () => {
        throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
      };
  const link = { path: byId, setLowLatency: () => Promise.resolve(false) } as unknown as SerialLink;
  return { link, sysfs: { root: sysfs, write }, file };
}

test('a 16 ms FTDI latency timer is lowered to 1 ms when it can be written', async () => {
  const { link, sysfs, file } = fakeAdapter('16', true);
  const r = await tuneLatency(link, sysfs);
  assert.equal(readFileSync(file, 'utf8'), '1');
  assert.deepEqual(r, { lowLatency: false, ftdiLatencyTimerMs: 1, warning: null });
});

test('a 16 ms FTDI latency timer that cannot be changed is a warning with the udev rule', async () => {
  const { link, sysfs } = fakeAdapter('16', false);
  const r = await tuneLatency(link, sysfs);
  assert.equal(r.ftdiLatencyTimerMs, 16);
  assert.ok(r.warning?.includes(FTDI_UDEV_RULE));
});

test('a port that is not a USB serial adapter has no latency timer and no warning', async () => {
  const link = { path: '/dev/null', setLowLatency: () => Promise.resolve(false) } as unknown as SerialLink;
  const sysfs = { root: join(tempDir(), 'sys'), write: () => assert.fail('nothing to write') };
  assert.deepEqual(await tuneLatency(link, sysfs), { lowLatency: false, ftdiLatencyTimerMs: null, warning: null });
});
