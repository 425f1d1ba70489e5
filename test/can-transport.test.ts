import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SocketCan, VirtualCanHub, VirtualCanServer } from '../src/hardware/can/index.js';
import { canTransportSuite, collect } from './helpers/can-suite.js';

canTransportSuite('virtual CAN (in-process)', () => {
  const hub = new VirtualCanHub();
  const a = hub.endpoint('a');
  const b = hub.endpoint('b');
  return {
    a,
    b,
    inject: (s) => a.injectState(s),
    restarted: () => {},
    close: () => {
      a.close();
      b.close();
    },
  };
});

canTransportSuite('virtual CAN (Unix socket, as the control worker uses it)', async () => {
  const server = await VirtualCanServer.listen(new VirtualCanHub(), join(mkdtempSync(join(tmpdir(), 'reflex-can-')), 'bus.sock'));
  const a = SocketCan.connectVirtual(server.path);
  const b = SocketCan.connectVirtual(server.path);
  // connect() returns before the server's event loop has taken the connections.
  while (server.connections < 2) await new Promise((r) => setTimeout(r, 1));
  return {
    a,
    b,
    inject: (s) => server.injectState(s),
    restarted: () => {},
    close: async () => {
      a.close();
      b.close();
      await server.close();
    },
  };
});

test('virtual CAN: a full receive queue drops and counts instead of growing', async () => {
  const hub = new VirtualCanHub();
  const host = hub.endpoint('host');
  const slow = hub.endpoint('slow');
  for (let i = 0; i < 300; i++) host.send(i, Uint8Array.of(i & 0xff), 1);
  assert.equal((await collect(slow, 300, 10)).length, 256);
  assert.equal(slow.stats.overruns, 44);
});

test('virtual CAN socket: a bus that goes away is bus-off for its nodes, not a crash', async () => {
  const server = await VirtualCanServer.listen(new VirtualCanHub(), join(mkdtempSync(join(tmpdir(), 'reflex-can-')), 'bus.sock'));
  const a = SocketCan.connectVirtual(server.path);
  await server.close();
  await collect(a, 1, 200);
  assert.equal(a.state, 'bus-off');
  assert.equal(a.send(1, Uint8Array.of(1), 1), false);
  a.close();
  assert.throws(() => SocketCan.connectVirtual(server.path), /virtual CAN bus .*ENOENT|ECONNREFUSED/);
});
