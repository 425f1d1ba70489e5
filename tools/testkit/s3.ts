// A real S3-compatible server for tests and benchmarks: s3rver (the S3 REST API over a
// directory, multipart uploads included) on a free loopback port, with one bucket, and the
// presigner `reflex fleet uploads` uses, holding s3rver's own keys. s3rver checks a presigned
// URL's expiry but not its SigV4 signature: what runs against it proves the robot's side of the
// protocol, not the signing (that is aws4's).
import { createRequire } from 'node:module';
import { Presigner, type GrantOptions } from '../../src/record/index.js';
import { tempDir } from './daemon.js';

interface S3rverInstance {
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
}
type S3rverClass = new (o: Record<string, unknown>) => S3rverInstance;

const S3rver = createRequire(import.meta.url)('s3rver') as S3rverClass;

export const S3_KEYS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

export interface S3 {
  endpoint: string;
  bucket: string;
  dir: string;
  presigner(over?: Partial<GrantOptions>): Presigner;
  /** An object's bytes, or null when there is none. */
  get(key: string): Promise<Buffer | null>;
  stop(): Promise<void>;
}

export async function startS3(bucket = 'reflex-fleet'): Promise<S3> {
  const dir = tempDir('reflex-s3-');
  const server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: dir, configureBuckets: [{ name: bucket }] });
  const { port } = await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  const presigner = (over: Partial<GrantOptions> = {}) =>
    new Presigner({ endpoint, bucket, region: 'us-east-1', prefix: '', expiresS: 600, partBytes: 5 * 1024 ** 2, credentials: S3_KEYS, ...over });
  return {
    endpoint,
    bucket,
    dir,
    presigner,
    get: async (key) => {
      const res = await fetch(presigner().url('GET', key));
      if (res.status === 404) return null;
      if (!res.ok) throw new Error(`GET ${key}: HTTP ${res.status}`);
      return Buffer.from(await res.arrayBuffer());
    },
    stop: () => server.close(),
  };
}
