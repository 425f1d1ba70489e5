// `reflex fleet uploads`: the grant service of src/record/upload-grants.ts as a command a team
// runs beside its broker, with the bucket's keys in its environment only.
import type { Command } from 'commander';
import { EXIT, ReflexError, errorMessage } from '../core/index.js';
import { Presigner, serveGrants } from '../record/index.js';

interface UploadsCliOptions {
  broker: string;
  endpoint: string;
  bucket: string;
  region: string;
  prefix: string;
  expires: string;
  partMb: string;
}

export function registerFleetUploads(fleet: Command): void {
  fleet
    .command('uploads')
    .description('grant the robots presigned S3 URLs for their recorded episodes (keys from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY); runs until stopped')
    .requiredOption('--broker <url>', "the fleet's broker (mqtt://, mqtts://)")
    .requiredOption('--endpoint <url>', 'the S3 API, e.g. https://s3.eu-west-1.amazonaws.com or http://minio:9000')
    .requiredOption('--bucket <name>', 'the bucket')
    .option('--region <r>', 'the region signatures are made for', 'us-east-1')
    .option('--prefix <p>', 'key prefix, ending with / (objects land at <prefix><device>/<episode id>/<file>)', '')
    .option('--expires <s>', 'how long a granted URL stays good', '3600')
    .option('--part-mb <n>', 'files bigger than this go up as multipart uploads in parts of this size', '16')
    .action(async (opts: UploadsCliOptions) => {
      const accessKeyId = process.env.AWS_ACCESS_KEY_ID;
      const secretAccessKey = process.env.AWS_SECRET_ACCESS_KEY;
      if (!accessKeyId || !secretAccessKey) {
        process.stderr.write('reflex fleet uploads: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (keys are never taken on the command line)\n');
        process.exit(EXIT.CONFIG);
      }
      const expiresS = Number(opts.expires);
      const partMb = Number(opts.partMb);
      if (!Number.isInteger(expiresS) || expiresS < 1 || expiresS > 604_800) {
        process.stderr.write(`reflex fleet uploads: --expires ${opts.expires}: whole seconds, 1 to 604800 (S3's limit)\n`);
        process.exit(EXIT.USAGE);
      }
      try {
        const presigner = new Presigner({
          endpoint: opts.endpoint, bucket: opts.bucket, region: opts.region, prefix: opts.prefix, expiresS, partBytes: Math.round(partMb * 1024 ** 2),
          credentials: { accessKeyId, secretAccessKey, ...(process.env.AWS_SESSION_TOKEN ? { sessionToken: process.env.AWS_SESSION_TOKEN } : {}) },
        });
        const service = await serveGrants(opts.broker, presigner, (line) => process.stdout.write(`${new Date().toISOString()} ${line}\n`));
        process.stdout.write(`granting uploads into s3://${opts.bucket}/${opts.prefix} for every device on ${opts.broker}\n`);
        const stop = () => void service.stop().then(() => process.exit(0));
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      } catch (err) {
        process.stderr.write(`reflex fleet uploads: ${errorMessage(err)}\n`);
        process.exit(err instanceof ReflexError && err.code === 'BAD_REQUEST' ? EXIT.USAGE : err instanceof ReflexError && err.code === 'NOT_CONNECTED' ? EXIT.UNAVAILABLE : EXIT.FAILURE);
      }
    });
}
