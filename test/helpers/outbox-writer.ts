// A process that appends to the real outbox and says so after each append is on disk; the
// test kills it with SIGKILL partway, as a crash (or a kill -9 of reflex) would.
import { Outbox } from '../../src/fleet/index.js';

const [dir, boot] = process.argv.slice(2) as [string, string];
const outbox = new Outbox(dir, boot, 100_000);
for (let i = 1; ; i++) {
  await outbox.append('reflex/v1/crash-01/events/test', { i });
  process.stdout.write(`appended ${i}\n`);
}
