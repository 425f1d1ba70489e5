import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Lifecycle, ReflexError, type Part } from '../src/core/index.js';

const silent = pino({ level: 'silent' });

function recorder() {
  const events: string[] = [];
  const part = (name: string, opts: { failStart?: boolean; hangStop?: boolean; safe?: boolean } = {}): Part => ({
    name,
    status: () => null,
    start: () => {
      events.push(`start ${name}`);
      return opts.failStart ? Promise.reject(new Error(`${name} cannot open /dev/ttyUSB0`)) : Promise.resolve();
    },
    stop: () => {
      events.push(`stop ${name}`);
      return opts.hangStop ? new Promise<void>(() => {}) : Promise.resolve();
    },
    ...(opts.safe ? { safe: () => (events.push(`safe ${name}`), Promise.resolve()) } : {}),
  });
  return { events, part };
}

test('parts start in order and stop in reverse, motors made safe before anything stops', async () => {
  const { events, part } = recorder();
  const lc = new Lifecycle([part('motors', { safe: true }), part('socket'), part('fleet')], silent, { stopTimeoutMs: 1000 });
  await lc.start();
  assert.equal(await lc.stop(), true);
  assert.deepEqual(events, ['start motors', 'start socket', 'start fleet', 'safe motors', 'stop fleet', 'stop socket', 'stop motors']);
});

test('a part that fails to start unwinds what started, in reverse, and says which part and why', async () => {
  const { events, part } = recorder();
  const lc = new Lifecycle([part('a'), part('b'), part('bus', { failStart: true }), part('never')], silent, { stopTimeoutMs: 1000 });
  await assert.rejects(lc.start(), (err: unknown) => {
    assert.ok(err instanceof ReflexError);
    assert.equal(err.code, 'START_FAILED');
    assert.equal(err.message, 'bus: bus cannot open /dev/ttyUSB0');
    return true;
  });
  assert.deepEqual(events, ['start a', 'start b', 'start bus', 'stop b', 'stop a']);
});

test('a part whose stop hangs is abandoned after the bound and the others still stop', async () => {
  const { events, part } = recorder();
  const lc = new Lifecycle([part('a'), part('stuck', { hangStop: true }), part('c')], silent, { stopTimeoutMs: 50 });
  await lc.start();
  const t0 = Date.now();
  assert.equal(await lc.stop(), false);
  assert.ok(Date.now() - t0 < 2000);
  assert.deepEqual(events.slice(3), ['stop c', 'stop stuck', 'stop a']);
});

test('stop is idempotent: a second call neither stops parts twice nor waits again', async () => {
  const { events, part } = recorder();
  const lc = new Lifecycle([part('a')], silent, { stopTimeoutMs: 100 });
  await lc.start();
  const [x, y] = await Promise.all([lc.stop(), lc.stop()]);
  assert.equal(x, true);
  assert.equal(y, true);
  assert.deepEqual(events, ['start a', 'stop a']);
});

test('a stop that comes while a part is starting stops that part too, once it has started', async () => {
  const events: string[] = [];
  let opened!: () => void;
  const slow: Part = {
    name: 'camera',
    status: () => null,
    start: () => (events.push('start camera'), new Promise<void>((resolve) => (opened = resolve))),
    stop: () => (events.push('stop camera'), Promise.resolve()),
  };
  const fast: Part = { name: 'motors', status: () => null, start: () => Promise.resolve(), stop: () => (events.push('stop motors'), Promise.resolve()), safe: () => (events.push('safe motors'), Promise.resolve()) };
  const never: Part = { name: 'fleet', status: () => null, start: () => (events.push('start fleet'), Promise.resolve()), stop: () => Promise.resolve() };
  const lc = new Lifecycle([fast, slow, never], silent, { stopTimeoutMs: 1000 });
  const starting = lc.start();
  await new Promise((r) => setImmediate(r));
  const stopping = lc.stop();
  opened(); // the camera comes up after the stop began
  await assert.rejects(starting, /start cancelled/);
  assert.equal(await stopping, true);
  assert.deepEqual(events.sort(), ['safe motors', 'start camera', 'stop camera', 'stop motors']);
});
