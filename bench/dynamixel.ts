// Full tick exchanges (Sync Read of current, velocity, position, voltage, temperature, hardware
// error; then Sync Write of goals) against the simulated servo bus in its own process, through
// a real pty. Reports the round trip, reflex's own CPU and heap per tick, and the time the same
// bytes would take on a real RS-485 bus (the physical floor the pty does not have).
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { DynamixelBus, SyncGroup, openSerial, prepare, mapTickRead, torqueOnInPlace, tickIo, wireUs } from '../src/hardware/dynamixel/index.js';
import { argNumber, heapPerTick, machine, progress, result, round, sampledAllocationPerTick, summary, startSimDynamixel } from './_util.js';

const TICKS = argNumber('ticks', 3000, 300);

/** Bytes of the Sync Write of goals for n servos (header 7, instruction, 4 + 5n params, CRC 2). */
function writeWireBytes(n: number): number {
  return 10 + 4 + 5 * n;
}

async function run(n: number, fast: boolean) {
  const sim = await startSimDynamixel(n);
  const link = await openSerial(sim.link, 1_000_000);
  const bus = new DynamixelBus(link, { baud: 1_000_000 });
  try {
    const { servos } = await prepare(bus, Array.from({ length: n }, (_, i) => ({ id: i + 1, model: 'xm430-w350' })), { zeroReturnDelay: true });
    const ids = servos.map((s) => s.id);
    await mapTickRead(bus, ids);
    await torqueOnInPlace(bus, ids);
    const g = new SyncGroup(tickIo(link), servos, { retries: 1, errorBudgetMs: 1000, allowFast: fast }, bus.timing);
    const goals = new Int32Array(n).fill(2048);
    const rtt = new Float64Array(TICKS);
    let gcs = 0;
    const obs = new PerformanceObserver((list) => (gcs += list.getEntries().length));
    for (let k = 0; k < 300; k++) {
      g.read();
      g.writeGoals(goals);
    }
    const cpu0 = process.cpuUsage();
    let failed = 0;
    for (let k = 0; k < TICKS; k++) {
      goals[k % n] = 2048 + (k % 200);
      const t0 = performance.now();
      if (!g.read()) failed++;
      g.writeGoals(goals);
      rtt[k] = (performance.now() - t0) * 1000;
    }
    const cpu = process.cpuUsage(cpu0);
    // Heap is measured in a second pass without the benchmark's own clock reads (on Node 20,
    // performance.now() itself allocates), so it counts the tick's exchange alone.
    (globalThis as { gc?: () => void }).gc?.();
    obs.observe({ entryTypes: ['gc'] });
    const heap = heapPerTick(TICKS, () => {
      for (let k = 0; k < TICKS; k++) {
        goals[k % n] = 2048 + (k % 200);
        if (!g.read()) failed++;
        g.writeGoals(goals);
      }
    });
    await new Promise((r) => setTimeout(r, 10));
    obs.disconnect();
    const tick = (k: number) => {
      goals[k % n] = 2048 + (k % 200);
      if (!g.read()) failed++;
      g.writeGoals(goals);
    };
    for (let k = 0; k < 1000; k++) tick(k);
    const sampled = await sampledAllocationPerTick(TICKS, tick);
    const bytes = g.readWireBytes + writeWireBytes(n);
    progress(`servos ${n}: ${TICKS} ticks, ${failed} failed reads, ${gcs} GCs, ${g.fast ? 'Fast ' : ''}Sync Read`);
    return {
      round_trip_us: summary(rtt),
      cpu_us_per_tick: round((cpu.user + cpu.system) / TICKS),
      heap_bytes_per_tick: gcs === 0 ? round(heap.perTick) : null,
      allocated_bytes_per_tick_sampled: round(sampled),
      gc_events: gcs,
      failed_reads: failed,
      fast_sync_read: g.fast,
      wire_bytes_per_tick: bytes,
      wire_us_1mbps: round(wireUs(bytes, 1_000_000)),
      wire_us_4mbps: round(wireUs(bytes, 4_000_000)),
    };
  } finally {
    await bus.close();
    sim.stop();
  }
}

const out: Record<string, unknown> = { ticks: TICKS, transport: 'pty (simulated bus in its own process)', machine: machine() };
for (const n of [6, 12]) {
  progress(`servos ${n}...`);
  out[`servos_${n}`] = await run(n, true);
  out[`servos_${n}_plain_sync_read`] = await run(n, false);
}
result(out);
