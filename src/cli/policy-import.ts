// `reflex policy import CHECKPOINT --onnx MODEL --out BUNDLE`: a LeRobot training run's
// checkpoint and an ONNX export of it become a bundle the robot loads, with nobody writing
// policy.json by hand. With --config, a checkpoint that does not fit that robot is refused.
import type { Command } from 'commander';
import { EXIT, ReflexError, errorMessage } from '../core/index.js';
import { importCheckpoint, type ImportResult } from '../policy/index.js';
import { request } from '../api/wire.js';
import { daemonOptions, print, readConfig, socketPath, type DaemonOptions } from './program.js';

/** sysexits.h EX_DATAERR: the checkpoint or the model was refused. */
const EX_DATAERR = 65;

interface ImportOpts {
  onnx: string;
  out: string;
  datasetInfo?: string;
  tokenizer?: string;
  config?: string;
  name?: string;
  version?: string;
  json?: boolean;
}

function text(r: ImportResult): string {
  const s = r.spec;
  const lines = [
    `bundle   ${r.dir}`,
    `policy   ${s.name} ${s.version} (${String(s.source?.type ?? '?')}), ${s.fps} Hz, chunk of ${s.features.action?.shape[0]}`,
    `joints   ${s.joints.join(', ')}`,
    `cameras  ${s.cameras.length > 0 ? s.cameras.join(', ') : 'none'}${s.cameras.length > 0 ? ` (${s.images.resize}, pixels [${s.images.pixels.join(', ')}])` : ''}`,
    ...r.assumed.map((a) => `assumed  ${a}`),
    ...r.unmapped.map((u) => `not mapped  ${u}`),
  ];
  return `${lines.join('\n')}\n`;
}

export function registerPolicyImport(program: Command): void {
  const policy = program.commands.find((c) => c.name() === 'policy') ?? program.command('policy');
  policy
    .command('import')
    .description('make a bundle from a LeRobot checkpoint (pretrained_model/) and an ONNX export of it')
    .argument('<checkpoint>', 'the checkpoint directory: config.json, policy_preprocessor.json and its statistics')
    .requiredOption('--onnx <model>', 'the ONNX export of the policy (tools/export)')
    .requiredOption('--out <dir>', 'the bundle directory to write (new, or empty)')
    .option('--dataset-info <info.json>', 'the dataset\'s meta/info.json: fps and joint names')
    .option('--tokenizer <tokenizer.json>', 'the policy\'s Hugging Face tokenizer.json, for a model that takes task tokens')
    .option('-c, --config <file>', 'refuse a checkpoint that does not fit the robot of this config')
    .option('--name <name>', 'the policy\'s name (default <type>-<run>)')
    .option('--version <version>', 'the policy\'s version (default 1)')
    .option('--json', 'print JSON for scripts')
    .action(async (checkpoint: string, opts: ImportOpts) => {
      const config = opts.config ? readConfig(opts.config) : null;
      const robot = config ? { rateHz: config.control.rateHz, joints: config.robot.joints.map((j) => j.name), cameras: config.cameras.map((c) => c.name) } : undefined;
      let r: ImportResult;
      try {
        r = await importCheckpoint({ checkpoint, onnx: opts.onnx, out: opts.out, datasetInfo: opts.datasetInfo, tokenizer: opts.tokenizer, robot, name: opts.name, version: opts.version });
      } catch (err) {
        if (err instanceof ReflexError && err.code === 'BAD_REQUEST') {
          process.stderr.write(`reflex: policy import refused: ${err.message}\n`);
          process.exit(EX_DATAERR);
        }
        process.stderr.write(`reflex: policy import failed: ${errorMessage(err)}\n`);
        process.exit(EXIT.FAILURE);
      }
      print(opts, r, () => text(r));
    });

  // The task a VLA policy is given, changed on a running robot (tokenized once, on the robot).
  daemonOptions(
    policy
      .command('task')
      .description('set the task instruction VLA policies are given, and/or their noise seed (the same seed replays the same chunks)')
      .argument('[text]', 'the instruction, e.g. "pick up the red cube"')
      .option('--seed <n>', 'the seed of the initial noise (0 to 4294967295)'),
  ).action(async (textArg: string | undefined, opts: DaemonOptions & { seed?: string }) => {
    const seed = opts.seed === undefined ? undefined : Number(opts.seed);
    if (seed !== undefined && !(Number.isInteger(seed) && seed >= 0 && seed < 2 ** 32)) throw new ReflexError('BAD_REQUEST', `--seed ${opts.seed}: an integer from 0 to 4294967295`);
    if (textArg === undefined && seed === undefined) throw new ReflexError('BAD_REQUEST', 'give the task text, --seed, or both');
    const r = await request(socketPath(opts), 'policy.task', { ...(textArg !== undefined ? { text: textArg } : {}), ...(seed !== undefined ? { seed } : {}) });
    print(opts, r, () => `task  ${JSON.stringify(r.task)}\nseed  ${r.seed}\n`);
  });
}
