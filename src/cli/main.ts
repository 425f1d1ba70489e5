// The `reflex` command: `reflex run` is the daemon itself; the other verbs are the technician's
// tools, which talk to a running daemon through its control socket or, with it stopped, to the
// devices. Parsing, per-verb help, typo suggestions and usage errors are commander's; each verb
// group lives in its own file and registers itself here (one import, one call).
import { createProgram, exitFor, fail } from './program.js';
import { registerDaemonVerbs } from './daemon-verbs.js';
import { registerControl } from './control.js';
import { registerInspect } from './inspect.js';
import { registerTop } from './top.js';
import { registerJog } from './jog.js';
import { registerLogs } from './logs.js';
import { registerHardware } from './hardware.js';
import { registerDiag } from './diag.js';
import { registerCompletion } from './completion.js';
import { registerMotors } from './motors-verbs.js';
import { registerCamera } from './camera.js';
import { registerSim } from './sim.js';
import { registerRecord } from './record.js';
import { printVersions } from './versions.js';
import { registerFleet } from './fleet.js';
import { registerBundle } from './bundle.js';
import { registerPolicyImport } from './policy-import.js';

const program = createProgram();
program.option('-V, --version', 'print the versions of reflex, Node.js, ONNX Runtime and OpenCV');
// The program's own options only before a verb: `reflex bundle create --version 1.4.0` is the bundle's.
program.enablePositionalOptions();
registerDaemonVerbs(program);
registerControl(program);
registerInspect(program);
registerTop(program);
registerJog(program);
registerHardware(program);
registerLogs(program);
registerDiag(program);
registerMotors(program);
registerCamera(program);
registerSim(program);
registerCompletion(program);
registerRecord(program);
registerFleet(program);
registerBundle(program);
registerPolicyImport(program);

async function main(argv: string[]): Promise<void> {
  // Before the verbs: `reflex --version` has no verb, and commander's own --version takes only a string.
  if (argv[0] === '--version' || argv[0] === '-V') return printVersions(argv.includes('--json'));
  await program.parseAsync(argv, { from: 'user' });
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const { code, message } = exitFor(err);
  fail(code, message);
});
