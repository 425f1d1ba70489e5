// The behaviour every CanTransport must have, written once and run against each: the
// in-process virtual bus, the virtual bus over its Unix socket, and SocketCAN on a real
// kernel's vcan0 (in a VM where this kernel has no CAN). Frames are awaited, not assumed
// there at once: a socket takes a moment to carry them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CanFlag, type CanBusState, type CanTransport } from '../../src/hardware/can/index.js';

export interface CanPair {
  a: CanTransport;
  b: CanTransport;
  /** Makes `a`'s controller report `state`, as the hardware's error frames do. */
  inject(state: CanBusState): void | Promise<void>;
  /** What the bus does after `a` asked to restart (the kernel's restart-ms; the virtual bus at once). */
  restarted(): void | Promise<void>;
  close(): void | Promise<void>;
}

/** [id, data as hex] and, where set, the flags. */
type Frame = [number, string] | [number, string, number];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Receives until `n` frames came (or `ms` passed); returns them as [id, hex]. */
export async function collect(t: CanTransport, n: number, ms = 2000): Promise<Frame[]> {
  const got: Frame[] = [];
  const until = Date.now() + ms;
  for (;;) {
    t.receive((id, d, len, flags) => {
      const hex = Buffer.from(d.subarray(0, len)).toString('hex');
      got.push(flags === 0 ? [id, hex] : [id, hex, flags]);
    });
    if (got.length >= n || Date.now() > until) return got;
    await sleep(2);
  }
}

async function settle(t: CanTransport, want: CanBusState): Promise<void> {
  const until = Date.now() + 2000;
  while (t.state !== want && Date.now() < until) {
    t.receive(() => {});
    await sleep(2);
  }
  assert.equal(t.state, want);
}

export function canTransportSuite(label: string, open: () => CanPair | Promise<CanPair>): void {
  test(`${label}: frames reach the other node intact and in order, never the sender`, async () => {
    const p = await open();
    try {
      const sent: Frame[] = [
        [0x001, '010203'],
        [0x7ff, ''],
        [0x123, '0011223344556677'],
        [0x1abcdef0, 'ff', CanFlag.EXTENDED],
        [0x049, '', CanFlag.RTR],
        [0x0001234, '01', CanFlag.EXTENDED],
      ];
      for (const [id, hex, flags] of sent) assert.equal(p.a.send(id, Buffer.from(hex, 'hex'), hex.length / 2, flags ?? 0), true);
      assert.deepEqual(await collect(p.b, sent.length), sent);
      assert.deepEqual(await collect(p.a, 1, 100), [], 'the sender does not hear itself');
      assert.equal(p.a.stats.sent, sent.length);
      assert.equal(p.b.stats.received, sent.length);
    } finally {
      await p.close();
    }
  });

  test(`${label}: filters take only matching ids (an ODrive node's own commands)`, async () => {
    const p = await open();
    try {
      p.b.setFilters([{ id: 3 << 5, mask: 0x7e0 }]);
      for (const node of [2, 3, 4, 3]) p.a.send((node << 5) | 0x0c, Uint8Array.of(node), 1);
      assert.deepEqual(await collect(p.b, 2, 500), [
        [(3 << 5) | 0x0c, '03'],
        [(3 << 5) | 0x0c, '03'],
      ]);
      p.b.setFilters([]);
      p.a.send(0x555, Uint8Array.of(1), 1);
      assert.deepEqual(await collect(p.b, 1), [[0x555, '01']], 'no filters: every frame');
    } finally {
      await p.close();
    }
  });

  test(`${label}: wait() returns when a frame arrives and times out when none does`, async () => {
    const p = await open();
    try {
      assert.equal(p.b.wait(20_000), false);
      p.a.send(0x10, Uint8Array.of(7), 1);
      // On a socket the frame needs the bus's own turn of the event loop (the virtual server).
      let seen = false;
      for (let i = 0; i < 200 && !seen; i++) {
        seen = p.b.wait(5_000);
        if (!seen) await sleep(2);
      }
      assert.equal(seen, true);
      assert.deepEqual(await collect(p.b, 1), [[0x10, '07']]);
    } finally {
      await p.close();
    }
  });

  test(`${label}: sends never block: a burst with nobody reading is queued or refused and counted`, async () => {
    const p = await open();
    try {
      const t0 = Date.now();
      let ok = 0;
      for (let i = 0; i < 2000; i++) if (p.a.send(0x100 + (i & 0xff), Uint8Array.of(i & 0xff, i >> 8), 2)) ok++;
      // A send that waited for room would take the whole queue's drain time each; generous, as
      // this also runs inside an emulated VM about ten times slower than the host.
      assert.ok(Date.now() - t0 < 15_000, `2000 sends took ${Date.now() - t0} ms`);
      assert.equal(ok + p.a.stats.refused, 2000);
      assert.equal(p.a.stats.sent, ok);
      const got = await collect(p.b, ok, 1000);
      assert.ok(got.length > 0 && got.length <= ok, `${got.length} of ${ok} received`);
      assert.deepEqual(got[0], [0x100, '0000'], 'the first frame arrives first');
    } finally {
      await p.close();
    }
  });

  test(`${label}: error-passive and bus-off are reported; bus-off refuses sends until the restart`, async () => {
    const p = await open();
    try {
      await p.inject('error-passive');
      await settle(p.a, 'error-passive');
      assert.equal(p.a.send(0x20, Uint8Array.of(1), 1), true, 'error-passive still sends');
      await p.inject('bus-off');
      await settle(p.a, 'bus-off');
      assert.equal(p.a.stats.busOffs, 1);
      const refused = p.a.stats.refused;
      assert.equal(p.a.send(0x21, Uint8Array.of(2), 1), false);
      assert.equal(p.a.stats.refused, refused + 1);
      assert.ok(p.a.stats.errorFrames >= 2);
      p.a.restart();
      await p.restarted();
      await settle(p.a, 'error-active');
      assert.equal(p.a.send(0x22, Uint8Array.of(3), 1), true);
      const got = await collect(p.b, 2);
      assert.deepEqual(got, [
        [0x20, '01'],
        [0x22, '03'],
      ]);
    } finally {
      await p.close();
    }
  });
}
