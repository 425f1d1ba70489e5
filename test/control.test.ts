import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { ControlLoop } from '../src/control/index.js';
import { bucketOf, bucketUpperUs, quantileUs, HIST_BUCKETS } from '../src/control/shared.js';

const silent = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('lateness histogram buckets are monotonic and quantiles land in the right bucket', () => {
  let prev = -1;
  for (const us of [0, 1, 5, 20, 100, 1000, 20_000, 1e9]) {
    const b = bucketOf(us);
    assert.ok(b >= prev && b < HIST_BUCKETS);
    assert.ok(us <= bucketUpperUs(b) || b === HIST_BUCKETS - 1);
    prev = b;
  }
  const h = new Uint32Array(HIST_BUCKETS);
  for (let i = 0; i < 99; i++) h[bucketOf(10)]! += 1;
  h[bucketOf(5000)]! += 1;
  assert.equal(quantileUs(h, 0.5), bucketUpperUs(bucketOf(10)));
  assert.equal(quantileUs(h, 0.99), bucketUpperUs(bucketOf(10)));
  assert.equal(quantileUs(h, 1), bucketUpperUs(bucketOf(5000)));
  assert.equal(quantileUs(new Uint32Array(HIST_BUCKETS), 0.99), 0);
});

test('the control worker ticks at its rate, skips missed periods without bunching, and stops', async () => {
  const loop = new ControlLoop({ rateHz: 50, spinUs: 1500, stallMs: 200 }, silent);
  await loop.start(new AbortController().signal);
  try {
    await sleep(1000);
    const s1 = loop.status();
    assert.ok(s1.ticks >= 40 && s1.ticks <= 56, `ticks after 1 s: ${s1.ticks}`);
    assert.equal(loop.healthy(), true);

    loop.stall(500);
    await sleep(300);
    assert.equal(loop.healthy(), false, 'a stalled loop is unhealthy');
    await sleep(400);
    const afterStall = loop.status().ticks;
    await sleep(100);
    const burst = loop.status().ticks - afterStall;
    assert.ok(burst <= 8, `ticks in the 100 ms after a stall: ${burst} (bunched catch-up would be ~30)`);
    const s2 = loop.status();
    assert.ok(s2.missedDeadlines >= 20, `missed ${s2.missedDeadlines}`);
    assert.ok(s2.latenessUs.max >= 400_000, `max lateness ${s2.latenessUs.max}`);
    assert.equal(loop.healthy(), true);

    await loop.safe();
    assert.equal(loop.status().state, 'safe');
  } finally {
    await loop.stop();
    await loop.stop();
  }
  assert.equal(loop.healthy(), false);
  assert.equal(loop.status().state, 'stopped');
});
