// A second look at signed bundles and their download, as a hostile network and a careless
// operator would try them: names that a plain object already "has", a key revoked by one of two
// names, versions past a double's precision, a server that trickles forever.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, sign } from 'node:crypto';
import { existsSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { BundleRefused, compareVersions, download, DownloadFailed, unpackBundle, verifyBundleDir, type Trust } from '../src/ota/index.js';
import { tempDir } from '../tools/testkit/daemon.js';
import { holdBundle } from './helpers/policy.js';
import { filesOf, header, manifestFor, newKey, sha256, tarOf, trustOf, type Entry } from './helpers/ota-bundles.js';

const release = newKey('release');
const files = filesOf(holdBundle('arm-attack', { version: '1.2.0' }));

function signedEntries(): Entry[] {
  const manifest = manifestFor(files);
  return [
    { name: 'manifest.json', data: manifest },
    { name: 'manifest.sig', data: sign(null, manifest, release.privateKey) },
  ];
}

function unpack(bytes: Buffer, trust: Trust = trustOf([release])): { into: string; result: Promise<unknown> } {
  const dir = tempDir('reflex-ota-attack-');
  writeFileSync(join(dir, 'b.tar'), bytes);
  const into = join(dir, 'bundles');
  return { into, result: unpackBundle(join(dir, 'b.tar'), into, trust) };
}

const refusedAs = (code: string, why: RegExp) => (e: unknown) => {
  assert.ok(e instanceof BundleRefused, String(e));
  assert.equal(e.code, code, e.message);
  assert.match(e.message, why);
  return true;
};

test('an unsigned file named like a property every object has (constructor, toString, __proto__) never rides along', async () => {
  const own = Object.entries(files).map(([name, data]) => ({ name, data }));
  for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
    const extra = { name, data: Buffer.from('#!/bin/sh\necho unsigned\n') };
    // Before the manifest (nothing to check it against yet), and after it.
    for (const entries of [[extra, ...signedEntries(), ...own], [...signedEntries(), ...own, extra]]) {
      const { into, result } = unpack(tarOf(entries));
      await assert.rejects(result, refusedAs('extra-file', new RegExp(`${name} is not in the signed manifest`)));
      assert.deepEqual(readdirSync(into), []);
    }
  }
  // Dropped into a verified folder afterwards: the check before loading refuses it too.
  const { result } = unpack(tarOf([...signedEntries(), ...own]));
  const v = (await result) as { dir: string };
  writeFileSync(join(v.dir, 'constructor'), 'unsigned');
  await assert.rejects(verifyBundleDir(v.dir, trustOf([release])), refusedAs('extra-file', /constructor is not in the signed manifest/));
});

test('a folder entry that declares data, or a size field that decodes to null (where tar-stream would wait for ever), is refused, not hung on', { timeout: 60_000 }, async () => {
  const smuggled = tarOf([{ name: 'smuggled', data: Buffer.from('x') }], false);
  const own = Object.entries(files).map(([name, data]) => ({ name, data }));
  for (const before of [[], [...signedEntries(), ...own]]) {
    const bytes = Buffer.concat([tarOf(before, false), header({ name: 'tokenizer/', type: '5', size: smuggled.length }), smuggled, Buffer.alloc(1024)]);
    const { into, result } = unpack(bytes);
    await assert.rejects(result, refusedAs('unsafe-archive', /"tokenizer\/" is a folder that declares 1024 bytes of data/));
    assert.deepEqual(readdirSync(into), []);
  }
  // A size field with the base-256 bit set but neither 0x80 nor 0xff first: tar-stream reads null.
  const odd = header({ name: 'manifest.json', data: manifestFor(files) });
  odd[124] = 0xb2;
  odd.write('        ', 148);
  let sum = 0;
  for (const x of odd) sum += x;
  odd.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  const { into, result } = unpack(Buffer.concat([odd, tarOf([{ name: 'x', data: manifestFor(files) }]).subarray(512)]));
  await assert.rejects(result, refusedAs('unsafe-archive', /"manifest\.json" has no readable size/));
  assert.deepEqual(readdirSync(into), []);
});

test('a signed manifest that gives a key twice (one robot to a first-wins reader, another to JSON.parse) is refused', async () => {
  const own = Object.entries(files).map(([name, data]) => ({ name, data }));
  const text = manifestFor(files).toString('utf8');
  const cases = [
    text.replace('"robot": "arm3"', '"robot": "biped",\n  "robot": "arm3"'),
    // The same key spelled with an escape is the same key.
    text.replace('"robot": "arm3"', '"robot": "biped",\n  "rob\\u006ft": "arm3"'),
    text.replace('"policy.json": {', '"policy.json": {"size": 1, '),
  ];
  for (const m of cases) {
    const manifest = Buffer.from(m);
    assert.notEqual(manifest.toString(), text, 'the case changed the manifest');
    const { into, result } = unpack(tarOf([{ name: 'manifest.json', data: manifest }, { name: 'manifest.sig', data: sign(null, manifest, release.privateKey) }, ...own]));
    await assert.rejects(result, refusedAs('bad-manifest', /gives the key "(robot|size)" twice in one object/));
    assert.deepEqual(readdirSync(into), []);
  }
  // Equal keys in different objects are fine (every file has a sha256 and a size).
  const { result } = unpack(tarOf([...signedEntries(), ...own]));
  await result;
});

test('a key revoked by its id stays revoked when the same key is also listed under another id', async () => {
  const trust = trustOf([], { keys: [{ id: 'fleet-2025', publicKey: release.pem }, { id: 'fleet-2025-copy', publicKey: release.pem }], revoked: ['fleet-2025'] });
  const { into, result } = unpack(tarOf([...signedEntries(), ...Object.entries(files).map(([name, data]) => ({ name, data }))]), trust);
  await assert.rejects(result, refusedAs('revoked-key', /revoked/));
  assert.deepEqual(readdirSync(into), []);
});

test('versions: pre-release numbers past 2^53 still compare by value (the floor cannot be slipped under)', () => {
  assert.ok(compareVersions('1.0.0-rc.99999999999999999998', '1.0.0-rc.99999999999999999999') < 0);
  assert.ok(compareVersions('1.0.0-rc.100000000000000000000', '1.0.0-rc.99999999999999999999') > 0);
  assert.equal(compareVersions('1.0.0-rc.007', '1.0.0-rc.7'), 0);
  assert.ok(compareVersions('1.10.0', '1.9.0') > 0);
  assert.equal(compareVersions('01.2.3', '1.2.3'), 0);
});

/** A raw TCP server (so a test can send an HTTP answer as slowly as it likes). */
async function rawServer(onConn: (s: Socket, n: number) => void): Promise<{ url: string; close(): Promise<void> }> {
  const socks = new Set<Socket>();
  let n = 0;
  const server = createServer((s) => {
    socks.add(s);
    s.on('close', () => socks.delete(s));
    s.on('error', () => undefined);
    onConn(s, ++n);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/b.tar`,
    close: () =>
      new Promise<void>((r) => {
        for (const s of socks) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Writes `bytes` one byte at a time, every `ms`, until the socket closes. */
function trickle(s: Socket, bytes: Buffer, ms: number): void {
  let i = 0;
  const t = setInterval(() => {
    if (s.destroyed || i >= bytes.length) return clearInterval(t);
    s.write(bytes.subarray(i, ++i));
  }, ms);
  s.on('close', () => clearInterval(t));
}

const failsWith = (code: string) => (e: unknown) => {
  assert.ok(e instanceof DownloadFailed, String(e));
  assert.equal(e.code, code, e.message);
  return true;
};

test('a server that trickles the body (slowloris) or the headers is given up on, not waited on for ever', { timeout: 180_000 }, async () => {
  const body = randomBytes(256 * 1024);
  // A byte every 50 ms: never idle long enough for the idle timeout, never done either.
  const slowBody = await rawServer((s) => {
    s.write(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n`);
    trickle(s, body, 50);
  });
  const slowHeaders = await rawServer((s) => trickle(s, Buffer.from(`HTTP/1.1 200 OK\r\n${'x-pad: a\r\n'.repeat(2000)}\r\n`), 50));
  try {
    for (const srv of [slowBody, slowHeaders]) {
      const dest = join(tempDir('reflex-dl-slow-'), 'b.tar');
      // (the signal only keeps a failing run from hanging: it would say 'aborted', not 'timeout')
      const opts = { sha256: sha256(body), size: body.length, timeoutMs: 1000, maxRetries: 1, signal: AbortSignal.timeout(90_000) };
      await assert.rejects(download(srv.url, dest, opts), failsWith('timeout'));
    }
  } finally {
    await slowBody.close();
    await slowHeaders.close();
  }
});

test('a big kept part is hashed before the request, not while the answer waits unread (which a short timeout cut off every time)', { timeout: 180_000 }, async () => {
  // Reading the part takes several timeouts here, as a multi-GB part does on an SD card at 30 s.
  const body = Buffer.alloc(192 * 1024 * 1024, 0x5a);
  randomBytes(4096).copy(body, body.length - 4096);
  const srv = await rawServer((s) => {
    s.once('data', (req) => {
      const m = /range: bytes=(\d+)-/i.exec(req.toString('latin1'));
      const start = m ? Number(m[1]) : 0;
      const head = m ? `HTTP/1.1 206 Partial Content\r\ncontent-range: bytes ${start}-${body.length - 1}/${body.length}\r\n` : 'HTTP/1.1 200 OK\r\n';
      s.write(`${head}content-length: ${body.length - start}\r\nconnection: close\r\n\r\n`);
      s.end(body.subarray(start));
    });
  });
  const dir = tempDir('reflex-dl-bigpart-');
  try {
    const dest = join(dir, 'b.tar');
    const want = { sha256: sha256(body), size: body.length };
    writeFileSync(`${dest}.part`, body.subarray(0, 128 * 1024 * 1024));
    writeFileSync(`${dest}.part.json`, JSON.stringify({ url: srv.url, ...want, validator: null }));
    // (retries to spare: an fsync on this loaded machine may stall an attempt; each one resumes further on)
    await download(srv.url, dest, { ...want, timeoutMs: 250, maxRetries: 8 });
    assert.equal(statSync(dest).size, body.length);
    assert.equal(existsSync(`${dest}.part`), false);
  } finally {
    await srv.close();
    // 192 MiB: not left in the shared /tmp.
    rmSync(dir, { recursive: true, force: true });
  }
});
