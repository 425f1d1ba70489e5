// `reflex policy import CHECKPOINT --onnx MODEL --out BUNDLE`: a LeRobot training run's
// checkpoint and an ONNX export of it become a bundle the robot loads, with nobody writing
// policy.json by hand. With --config, a checkpoint that does not fit that robot is refused.
import type { Command } from 'commander';
import { EXIT, ReflexError, errorMessage } from '../core/index.js';
import { importCheckpoint, type ImportResult } from '../policy/index.js';
import { print, readConfig } from './program.js';

/** sysexits.h EX_DATAERR: the checkpoint or the model was refused. */
const EX_DATAERR = 65;

interface ImportOpts {
  onnx: string;
  out: string;
  datasetInfo?: string;
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
    .option('-c, --config <file>', 'refuse a checkpoint that does not fit the robot of this config')
    .option('--name <name>', 'the policy\'s name (default <type>-<run>)')
    .option('--version <version>', 'the policy\'s version (default 1)')
    .option('--json', 'print JSON for scripts')
    .action(async (checkpoint: string, opts: ImportOpts) => {
      const config = opts.config ? readConfig(opts.config) : null;
      const robot = config ? { rateHz: config.control.rateHz, joints: config.robot.joints.map((j) => j.name), cameras: config.cameras.map((c) => c.name) } : undefined;
      let r: ImportResult;
      try {
        r = await importCheckpoint({ checkpoint, onnx: opts.onnx, out: opts.out, datasetInfo: opts.datasetInfo, robot, name: opts.name, version: opts.version });
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
}
