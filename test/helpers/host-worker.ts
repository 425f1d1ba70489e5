// A worker for the worker-host tests: behaves as workerData.mode says.
import { workerData } from 'node:worker_threads';
import { openSync } from 'node:fs';
import { hostPort } from '../../src/rt/index.js';

export interface HostTestProtocol {
  ready: { pid: number };
  event: { n: number };
  post: { throw: string };
  request: { echo: string } | { hang: true };
  reply: string;
}

const d = workerData as { mode: 'serve' | 'fail' | 'never' | 'ignore-stop' | 'native-stuck'; fifo?: string };
const port = hostPort<HostTestProtocol>();

if (d.mode === 'fail') port.failed('the model is not there');
else if (d.mode === 'never') setInterval(() => undefined, 1000);
else {
  port.onRequest((r) => ('echo' in r ? `echo ${r.echo}` : new Promise<string>(() => undefined)));
  port.onPost((m) => {
    // Uncaught, in a timer: the thread dies with this error.
    setTimeout(() => {
      throw new Error(m.throw);
    }, 0);
  });
  if (d.mode === 'serve') port.onStop(() => process.exit(0));
  else if (d.mode === 'ignore-stop') port.onStop(() => undefined);
  else
    port.onStop(() => {
      // Blocks in open(2) until a writer opens the FIFO: terminate() cannot interrupt it.
      openSync(d.fifo!, 'r');
    });
  port.event({ n: 1 });
  port.ready({ pid: process.pid });
}
