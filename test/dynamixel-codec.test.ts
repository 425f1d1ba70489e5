import { test } from 'node:test';
import assert from 'node:assert/strict';
import { build, crc16, decodeHardwareErrors, decodeStatusError, Instruction, PacketParser, packet } from '../src/hardware/dynamixel/index.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const show = (b: Uint8Array) => Buffer.from(b).toString('hex').toUpperCase().replace(/(..)/g, '$1 ').trim();

function parseAll(bytes: Uint8Array): { id: number; instruction: number; error: number; params: number[] }[] {
  const p = new PacketParser();
  p.push(bytes);
  const out = [];
  while (p.next()) out.push({ id: p.packet.id, instruction: p.packet.instruction, error: p.packet.error, params: [...p.packet.params] });
  return out;
}

// The ROBOTIS e-manual's Protocol 2.0 examples (XM430-W210 servos).
const EXAMPLES: [string, Buffer, string][] = [
  ['ping id 1', build.ping(1), 'FF FF FD 00 01 03 00 01 19 4E'],
  ['ping broadcast', build.ping(0xfe), 'FF FF FD 00 FE 03 00 01 31 42'],
  ['read present position', build.read(1, 132, 4), 'FF FF FD 00 01 07 00 02 84 00 04 00 1D 15'],
  ['write goal position 512', build.write(1, 116, [0x00, 0x02, 0x00, 0x00]), 'FF FF FD 00 01 09 00 03 74 00 00 02 00 00 CA 89'],
  ['reg write goal velocity 200', build.regWrite(1, 104, [0xc8, 0, 0, 0]), 'FF FF FD 00 01 09 00 04 68 00 C8 00 00 00 AE 8E'],
  ['action', build.action(1), 'FF FF FD 00 01 03 00 05 02 CE'],
  ['factory reset except id', build.factoryReset(1, 0x01), 'FF FF FD 00 01 04 00 06 01 A1 E6'],
  ['reboot', build.reboot(1), 'FF FF FD 00 01 03 00 08 2F 4E'],
  ['clear multi-turn', build.clearMultiTurn(1), 'FF FF FD 00 01 08 00 10 01 44 58 4C 22 B1 DC'],
  ['sync read ids 1,2', build.syncRead(132, 4, [1, 2]), 'FF FF FD 00 FE 09 00 82 84 00 04 00 01 02 CE FA'],
  [
    'sync write ids 1,2',
    build.syncWrite(116, 4, [{ id: 1, data: [0x96, 0, 0, 0] }, { id: 2, data: [0xaa, 0, 0, 0] }]),
    'FF FF FD 00 FE 11 00 83 74 00 04 00 01 96 00 00 00 02 AA 00 00 00 82 87',
  ],
  [
    'bulk read voltage of 1, temperature of 2',
    build.bulkRead([{ id: 1, address: 144, length: 2 }, { id: 2, address: 146, length: 1 }]),
    'FF FF FD 00 FE 0D 00 92 01 90 00 02 00 02 92 00 01 00 1A 05',
  ],
  [
    'bulk write',
    build.bulkWrite([{ id: 1, address: 32, data: [0xa0, 0x00] }, { id: 2, address: 31, data: [0x50] }]),
    'FF FF FD 00 FE 10 00 93 01 20 00 02 00 A0 00 02 1F 00 01 00 50 B7 68',
  ],
  ['status: ping reply', build.status(1, 0, [0x06, 0x04, 0x26]), 'FF FF FD 00 01 07 00 55 00 06 04 26 65 5D'],
  ['status: ping reply id 2', build.status(2, 0, [0x06, 0x04, 0x26]), 'FF FF FD 00 02 07 00 55 00 06 04 26 6F 6D'],
  ['status: read 166', build.status(1, 0, [0xa6, 0, 0, 0]), 'FF FF FD 00 01 08 00 55 00 A6 00 00 00 8C C0'],
  ['status: read 2079', build.status(2, 0, [0x1f, 0x08, 0, 0]), 'FF FF FD 00 02 08 00 55 00 1F 08 00 00 BA BE'],
  ['status: write ack', build.status(1, 0), 'FF FF FD 00 01 04 00 55 00 A1 0C'],
  ['status: bulk read voltage', build.status(1, 0, [0x77, 0x00]), 'FF FF FD 00 01 06 00 55 00 77 00 C3 69'],
  ['status: bulk read temperature', build.status(2, 0, [0x24]), 'FF FF FD 00 02 05 00 55 00 24 8B A9'],
];

for (const [name, built, wire] of EXAMPLES) {
  test(`e-manual example encodes byte for byte: ${name}`, () => {
    assert.equal(show(built), wire);
  });
  test(`e-manual example decodes: ${name}`, () => {
    const [p, ...rest] = parseAll(hex(wire));
    assert.deepEqual(rest, []);
    const bytes = hex(wire);
    assert.equal(p!.id, bytes[4]);
    assert.equal(p!.instruction, bytes[7]);
    const paramStart = p!.instruction === Instruction.STATUS ? 9 : 8;
    assert.deepEqual(p!.params, [...bytes.subarray(paramStart, bytes.length - 2)]);
  });
}

test('the CRC of the e-manual ping packet is 0x4E19', () => {
  assert.equal(crc16(hex('FF FF FD 00 01 03 00 01'), 0, 8), 0x4e19);
});

test('byte stuffing adds FD after FF FF FD in the parameters and the parser removes it', () => {
  const data = [0xff, 0xff, 0xfd, 0x01, 0xff, 0xff, 0xfd, 0xfd];
  const pkt = build.write(3, 116, data);
  // Length counts the two stuffed bytes: 1 instruction + 2 address + 8 data + 2 stuffing + 2 CRC.
  assert.equal(pkt[5], 15);
  assert.equal(show(pkt.subarray(10, 20)), 'FF FF FD FD 01 FF FF FD FD FD');
  const [p] = parseAll(pkt);
  assert.deepEqual(p!.params, [116, 0, ...data]);
});

test('status errors and hardware alerts decode into names', () => {
  assert.deepEqual(decodeStatusError(0x00), { code: 0, name: null, alert: false });
  assert.deepEqual(decodeStatusError(0x07), { code: 7, name: 'access error', alert: false });
  assert.deepEqual(decodeStatusError(0x80), { code: 0, name: null, alert: true });
  assert.deepEqual(decodeStatusError(0x84), { code: 4, name: 'data range error', alert: true });
  assert.deepEqual(decodeHardwareErrors(0x24), ['overheating', 'overload']);
  assert.deepEqual(decodeHardwareErrors(0x19), ['input voltage', 'motor encoder', 'electrical shock']);
  const [p] = parseAll(build.status(5, 0x81));
  assert.equal(p!.error, 0x81);
});

test('the parser finds packets in garbage, across split chunks, and counts what it dropped', () => {
  const a = build.status(1, 0, [1, 2, 3]);
  const b = build.status(2, 0, [4]);
  const stream = Buffer.concat([hex('00 FF 13 FF FF'), a, hex('FF FF FD'), b]);
  const p = new PacketParser();
  const ids: number[] = [];
  for (let i = 0; i < stream.length; i += 3) {
    p.push(stream.subarray(i, i + 3));
    while (p.next()) ids.push(p.packet.id);
  }
  assert.deepEqual(ids, [1, 2]);
  assert.equal(p.stats.packets, 2);
  assert.equal(p.stats.droppedBytes, 8);
});

test('a corrupted packet is refused and the next good one still parses', () => {
  const bad = Buffer.from(build.status(1, 0, [1, 2, 3, 4]));
  bad[10]! ^= 0x10;
  const p = new PacketParser();
  p.push(Buffer.concat([bad, build.status(2, 0, [9])]));
  assert.equal(p.next(), true);
  assert.equal(p.packet.id, 2);
  assert.equal(p.stats.badCrc, 1);
});

test('a truncated packet waits for its rest, and discard() drops it', () => {
  const pkt = build.status(1, 0, [1, 2, 3, 4]);
  const p = new PacketParser();
  p.push(pkt.subarray(0, 8));
  assert.equal(p.next(), false);
  p.push(pkt.subarray(8));
  assert.equal(p.next(), true);
  p.push(pkt.subarray(0, 8));
  p.discard();
  assert.equal(p.stats.discardedBytes, 8);
  p.push(build.status(4, 0));
  assert.equal(p.next(), true);
  assert.equal(p.packet.id, 4);
});

test('an impossible length or id does not make the parser wait forever', () => {
  const p = new PacketParser(4096, 256);
  p.push(hex('FF FF FD 00 01 FF 7F 55'));
  p.push(build.status(3, 0));
  assert.equal(p.next(), true);
  assert.equal(p.packet.id, 3);
  assert.ok(p.stats.badHeader >= 1);
});

// Deterministic PRNG so a failure reproduces.
function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('property: random bytes, truncations and bit flips never throw and never yield a corrupted packet', () => {
  const rand = rng(42);
  const int = (n: number) => Math.floor(rand() * n);
  let accepted = 0;
  let flipped = 0;
  for (let c = 0; c < 5000; c++) {
    const sent: Buffer[] = [];
    const parts: Buffer[] = [];
    for (let k = 0; k < 1 + int(4); k++) {
      const params = Array.from({ length: int(20) }, () => (rand() < 0.3 ? [0xff, 0xfd][int(2)]! : int(256)));
      const pkt = Buffer.from(rand() < 0.5 ? build.status(int(253), int(256), params) : packet(int(253), int(256), params));
      const mode = int(5);
      if (mode === 0) parts.push(Buffer.from(Array.from({ length: int(30) }, () => int(256))));
      if (mode === 1) {
        parts.push(pkt.subarray(0, int(pkt.length)));
        continue;
      }
      if (mode === 2) {
        const bit = int(pkt.length * 8);
        pkt[bit >> 3]! ^= 1 << (bit & 7);
        flipped++;
        parts.push(pkt);
        continue;
      }
      sent.push(pkt);
      parts.push(pkt);
    }
    const stream = Buffer.concat(parts);
    const p = new PacketParser();
    const valid = new Set(sent.map((b) => b.toString('hex')));
    let i = 0;
    while (i < stream.length) {
      const n = 1 + int(16);
      p.push(stream.subarray(i, i + n));
      i += n;
      while (p.next()) {
        // Re-encoded, what was accepted must be exactly a packet that was sent intact.
        const { id, instruction, error, params } = p.packet;
        const again = instruction === Instruction.STATUS ? build.status(id, error, params) : packet(id, instruction, params);
        assert.ok(valid.has(again.toString('hex')), `accepted a packet that was not sent intact: ${again.toString('hex')}`);
        accepted++;
      }
    }
  }
  assert.ok(accepted > 3000, `accepted ${accepted}`);
  assert.ok(flipped > 500);
});
