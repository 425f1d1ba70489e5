import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { REPO } from '../tools/testkit/paths.js';
import { tempDir } from '../tools/testkit/daemon.js';

// What the daemon does once every part has stopped or was given up on: exitAfter, then
// process.exit. A worker thread blocked in a system call (here: opening a FIFO nobody writes)
// never stops, and process.exit() alone waits for it forever.
function exitWithStuckWorker(fifo: string, useExitAfter: boolean): Promise<{ code: number | null; ms: number }> {
  const native = join(REPO, 'dist', 'src', 'rt', 'native.js');
  const script = `
    import { Worker } from 'node:worker_threads';
    import { exitAfter } from ${JSON.stringify(native)};
    new Worker("import('node:fs').then((fs) => fs.readFileSync(" + ${JSON.stringify(JSON.stringify(fifo))} + "))", { eval: true });
    setTimeout(() => { ${useExitAfter ? 'exitAfter(300, 3);' : ''} process.exit(3); }, 300);
  `;
  const t0 = Date.now();
  const proc = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'ignore' });
  const timer = setTimeout(() => proc.kill('SIGKILL'), 8000);
  return new Promise((resolve) =>
    proc.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, ms: Date.now() - t0 });
    }),
  );
}

test('the process ends with its exit status even when a worker thread is stuck in a system call', async () => {
  const fifo = join(tempDir(), 'stuck.fifo');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
  const bare = await exitWithStuckWorker(fifo, false);
  assert.equal(bare.code, null, 'without exitAfter, process.exit() waits for the stuck thread (killed by the test after 8 s)');
  const bounded = await exitWithStuckWorker(fifo, true);
  assert.equal(bounded.code, 3, 'exitAfter ends it with the status it was given');
  assert.ok(bounded.ms < 5000, `ended after ${bounded.ms} ms`);
});
