// The `reflex` command: `reflex run` is the daemon itself; the other verbs are the technician's
// tools, which talk to a running daemon through its control socket or, with it stopped, to the
// devices. Parsing, per-verb help, typo suggestions and usage errors are commander's; each verb
// group lives in its own file and registers itself (`register(program)`): add a group with one
// line in GROUPS below.
//
// Only the group of the verb typed is loaded (a group's file pulls in what its verbs need:
// zod, the config schema, serialport, mqtt, OpenCV's binding...), so `reflex status` starts in
// a fraction of the time; help, a typo or no verb at all load every group.
import type { Command } from 'commander';
import { createProgram, exitFor, fail, globalConfig } from './program.js';

type Register = (program: Command) => void;

/** Each group: the top-level verbs it adds, and how to load its register function. */
const GROUPS: { verbs: readonly string[]; load: () => Promise<Register> }[] = [
  { verbs: ['run', 'config', 'status', 'log'], load: async () => (await import('./daemon-verbs.js')).registerDaemonVerbs },
  { verbs: ['estop', 'reset', 'policy'], load: async () => (await import('./control.js')).registerControl },
  { verbs: ['faults'], load: async () => (await import('./inspect.js')).registerInspect },
  { verbs: ['top'], load: async () => (await import('./top.js')).registerTop },
  { verbs: ['jog'], load: async () => (await import('./jog.js')).registerJog },
  { verbs: ['hardware'], load: async () => (await import('./hardware.js')).registerHardware },
  { verbs: ['logs'], load: async () => (await import('./logs.js')).registerLogs },
  { verbs: ['diag'], load: async () => (await import('./diag.js')).registerDiag },
  { verbs: ['motors'], load: async () => (await import('./motors-verbs.js')).registerMotors },
  { verbs: ['camera'], load: async () => (await import('./camera.js')).registerCamera },
  { verbs: ['sim'], load: async () => (await import('./sim.js')).registerSim },
  { verbs: ['completion'], load: async () => (await import('./completion.js')).registerCompletion },
  { verbs: ['record'], load: async () => (await import('./record.js')).registerRecord },
  { verbs: ['fleet'], load: async () => (await import('./fleet.js')).registerFleet },
  { verbs: ['bundle', 'keys'], load: async () => (await import('./bundle.js')).registerBundle },
  // After control: it adds `policy import` to the policy verb.
  { verbs: ['policy'], load: async () => (await import('./policy-import.js')).registerPolicyImport },
];

/** The program's own options that take a value (the value is not the verb). */
const PROGRAM_OPTIONS_WITH_VALUE: readonly string[] = ['-c', '--config'];

/** The groups a command line needs: the typed verb's, or all (help, a typo, completion, none). */
function groupsFor(argv: readonly string[]): typeof GROUPS {
  const verb = argv.find((a, i) => !a.startsWith('-') && !PROGRAM_OPTIONS_WITH_VALUE.includes(argv[i - 1] ?? ''));
  const mine = GROUPS.filter((g) => verb !== undefined && verb !== 'completion' && g.verbs.includes(verb));
  return mine.length > 0 ? mine : GROUPS;
}

async function main(argv: string[]): Promise<void> {
  // Before the verbs: `reflex --version` has no verb, and commander's own --version takes only a string.
  // Loaded only here: it loads OpenCV's binding to ask its version.
  if (argv[0] === '--version' || argv[0] === '-V') return (await import('./versions.js')).printVersions(argv.includes('--json'));
  const program = createProgram();
  program.option('-V, --version', 'print the versions of reflex, Node.js, ONNX Runtime and OpenCV');
  globalConfig(program);
  // The program's own options only before a verb: `reflex bundle create --version 1.4.0` is the bundle's.
  program.enablePositionalOptions();
  for (const register of await Promise.all(groupsFor(argv).map((g) => g.load()))) register(program);
  await program.parseAsync(argv, { from: 'user' });
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const { code, message } = exitFor(err);
  fail(code, message);
});
