import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualCanHub, arbitrationId, OdriveCmd } from '../src/hardware/can/index.js';

function collect(t: { receive(take: (id: number, d: Uint8Array, n: number) => void): number }) {
  const got: [number, string][] = [];
  t.receive((id, d, n) => got.push([id, Buffer.from(d.subarray(0, n)).toString('hex')]));
  return got;
}

test('virtual CAN: a frame reaches every other endpoint, not its sender, in order', () => {
  const hub = new VirtualCanHub();
  const host = hub.endpoint('host');
  const m1 = hub.endpoint('motor1');
  const m2 = hub.endpoint('motor2');
  assert.equal(host.send(0x001, Uint8Array.of(1, 2, 3), 3), true);
  assert.equal(host.send(0x002, Uint8Array.of(4), 1), true);
  assert.deepEqual(collect(m1), [[1, '010203'], [2, '04']]);
  assert.deepEqual(collect(m2), [[1, '010203'], [2, '04']]);
  assert.deepEqual(collect(host), []);
  assert.equal(host.stats.sent, 2);
});

test('virtual CAN: filters select by id and mask (an ODrive node takes only its own commands)', () => {
  const hub = new VirtualCanHub();
  const host = hub.endpoint('host');
  const node3 = hub.endpoint('odrive3');
  node3.setFilters([{ id: 3 << 5, mask: 0x7e0 }]);
  host.send(arbitrationId(3, OdriveCmd.SET_INPUT_POS), new Uint8Array(8), 8);
  host.send(arbitrationId(4, OdriveCmd.SET_INPUT_POS), new Uint8Array(8), 8);
  assert.deepEqual(collect(node3).map(([id]) => id), [arbitrationId(3, OdriveCmd.SET_INPUT_POS)]);
});

test('virtual CAN: bus-off refuses sends without blocking, is counted, and a restart recovers', () => {
  const hub = new VirtualCanHub();
  const host = hub.endpoint('host');
  const m = hub.endpoint('m');
  host.injectState('bus-off');
  assert.equal(host.send(0x10, Uint8Array.of(1), 1), false);
  assert.deepEqual(host.stats, { sent: 0, received: 0, refused: 1, overruns: 0, busOffs: 1 });
  host.restart();
  assert.equal(host.state, 'error-active');
  assert.equal(host.send(0x10, Uint8Array.of(1), 1), true);
  assert.equal(collect(m).length, 1);
});

test('virtual CAN: a full receive queue drops and counts instead of growing', () => {
  const hub = new VirtualCanHub();
  const host = hub.endpoint('host');
  const slow = hub.endpoint('slow');
  for (let i = 0; i < 300; i++) host.send(i, Uint8Array.of(i & 0xff), 1);
  assert.equal(collect(slow).length, 256);
  assert.equal(slow.stats.overruns, 44);
});
