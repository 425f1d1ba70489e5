// CAN motor ticks (one exchange per motor, then one command frame each) against simulated
// motors in their own process, over the virtual bus's Unix socket: the same transport code
// SocketCAN uses. Reports reflex's CPU and heap per tick, the read round trip, and the load
// the tick's frames put on a 1 Mbit/s bus at 50 Hz (worst-case bit stuffing).
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { CanMotorBus, SocketCan, type CanBusConfig } from '../src/hardware/index.js';
import { CLI } from '../tools/testkit/paths.js';
import { argNumber, heapPerTick, machine, progress, result, round, sampledAllocationPerTick, summary } from './_util.js';

const TICKS = argNumber('ticks', 3000, 300);
const RATE_HZ = 50;

async function startSim(n: number, model: string): Promise<{ path: string; stop: () => void }> {
  const path = join(mkdtempSync(join(tmpdir(), 'reflex-bench-')), 'can.sock');
  const proc = spawn(process.execPath, [CLI, 'sim', 'can', '--link', path, '--ids', `1-${n}`, '--model', model], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: proc.stdout }).once('line', () => resolve());
    proc.once('exit', (c) => reject(new Error(`simulator exited ${c}`)));
  });
  return { path, stop: () => proc.kill('SIGTERM') };
}

async function run(n: number, model: string) {
  const sim = await startSim(n, model);
  const cfg: CanBusConfig = {
    name: 'bench',
    interface: sim.path,
    transport: 'virtual',
    bitrate: 1_000_000,
    motors: Array.from({ length: n }, (_, i) => ({ id: i + 1, model, kp: 20, kd: 1, effortLimit: 5, maxVelocity: 3, gearRatio: 1 })),
    retries: 1,
    errorBudgetMs: 1000,
    replyTimeoutUs: 2000,
    maxTemperatureC: 80,
    onStop: 'disable',
    loadWarnPct: 70,
  };
  const bus = CanMotorBus.open(cfg, SocketCan.connectVirtual(sim.path));
  try {
    const goals = new Float64Array(n);
    const rtt = new Float64Array(TICKS);
    let failed = 0;
    // One loop function for every pass, so the heap pass runs code already optimized (a loop of
    // its own would be compiled on the spot, and the compiled code counted as heap).
    const ticks = (count: number, times: Float64Array | null, from = 0) => {
      for (let k = from; k < from + count; k++) {
        goals[k % n] = 0.001 * (k % 200);
        const t0 = times === null ? 0 : performance.now();
        if (!bus.read()) failed++;
        bus.write(goals);
        if (times !== null) times[k - from] = (performance.now() - t0) * 1000;
      }
    };
    ticks(1500, rtt);
    ticks(1500, null);
    failed = 0;
    const frames0 = bus.traffic.frames;
    const bits0 = bus.traffic.bits;
    const cpu0 = process.cpuUsage();
    ticks(TICKS, rtt);
    const cpu = process.cpuUsage(cpu0);
    const framesPerTick = (bus.traffic.frames - frames0) / TICKS;
    const bitsPerTick = (bus.traffic.bits - bits0) / TICKS;

    // Heap in a pass without the benchmark's own clock reads (performance.now allocates on Node 20).
    let gcs = 0;
    const obs = new PerformanceObserver((list) => (gcs += list.getEntries().length));
    (globalThis as { gc?: () => void }).gc?.();
    obs.observe({ entryTypes: ['gc'] });
    const heap = heapPerTick(TICKS, () => ticks(TICKS, null));
    progress(`heap growth per pass: ${heap.passes.join(', ')} bytes`);
    await new Promise((r) => setTimeout(r, 10));
    obs.disconnect();
    const sampled = await sampledAllocationPerTick(TICKS, (k) => ticks(1, null, k));
    progress(`${n} x ${model}: ${TICKS} ticks x 2, ${failed} failed reads, ${gcs} GCs, ${framesPerTick.toFixed(1)} frames/tick`);
    return {
      model,
      cpu_us_per_tick: round((cpu.user + cpu.system) / TICKS),
      heap_bytes_per_tick: gcs === 0 ? round(heap.perTick) : null,
      allocated_bytes_per_tick_sampled: round(sampled),
      gc_events: gcs,
      read_write_us: summary(rtt),
      failed_reads: failed,
      frames_per_tick: round(framesPerTick, 2),
      bus_load_pct_1mbps: round((bitsPerTick * RATE_HZ * 100) / 1_000_000, 2),
      // The floor a real bus sets: the tick's frames back to back at 1 Mbit/s (the socket has none).
      wire_us_1mbps: round(bitsPerTick),
    };
  } finally {
    await bus.close();
    sim.stop();
  }
}

const out: Record<string, unknown> = {
  ticks: TICKS,
  transport: 'virtual CAN bus over a Unix socket (struct can_frame), motors simulated in their own process',
  bus_load_basis: `${RATE_HZ} Hz, worst-case bit stuffing, 1 Mbit/s`,
  machine: machine(),
};
for (const n of [6, 12]) {
  progress(`${n} MIT motors...`);
  out[`motors_${n}`] = await run(n, 'ak80-9');
}
progress('12 ODrive axes...');
out.motors_12_odrive = await run(12, 'odrive');
result(out);
