// Named counter tables: one definition by name, viewed over shared memory by the thread that
// counts and the one that reads; one table per camera in one buffer; histograms in the table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Words, defineMetrics } from '../src/rt/index.js';

test('a counter table is read and written by name, and two views of one buffer see the same numbers', () => {
  const def = defineMetrics(['frames', 'failures', 'maxMs'] as const, ['ageUs'] as const);
  const buffer = def.alloc(2);
  const writer0 = def.view(buffer, 0);
  const writer1 = def.view(buffer, 1);
  writer0.counters.add('frames');
  writer0.counters.add('frames', 2);
  writer0.counters.max('maxMs', 5);
  writer0.counters.max('maxMs', 3);
  writer1.counters.set('failures', 9);
  for (const v of [100, 200, 300]) writer0.hist.ageUs.record(v);
  const reader0 = def.view(buffer, 0);
  assert.equal(reader0.counters.get('frames'), 3);
  assert.equal(reader0.counters.get('maxMs'), 5);
  assert.equal(reader0.counters.get('failures'), 0, 'tables do not overlap');
  assert.equal(def.view(buffer, 1).counters.get('failures'), 9);
  assert.equal(def.view(buffer, 1).hist.ageUs.count, 0);
  assert.equal(reader0.hist.ageUs.count, 3);
  assert.ok(reader0.hist.ageUs.quantile(0.99) <= 300);
  assert.throws(() => def.view(buffer, 2), /not in the buffer/);
  assert.throws(() => defineMetrics(['a', 'a'] as const), /defined twice/);
});

test('named Int32 words are atomic by name', () => {
  const w = new Words(['command', 'mode'] as const);
  const other = new Words(['command', 'mode'] as const, w.buffer);
  w.store('mode', 3);
  assert.equal(other.load('mode'), 3);
  assert.equal(other.add('command', 2), 0);
  assert.equal(w.compareExchange('command', 2, 7), 2);
  assert.equal(other.load('command'), 7);
  assert.throws(() => new Words(['a', 'b', 'c'] as const, new SharedArrayBuffer(4)), /smaller/);
});
