// The robot's uploader alone in a process of its own, for a test to kill -9 in the middle of an
// upload: the episodes, their files and the uploader's options come from a JSON file the test
// wrote, and every pending list is granted at once by a presigner for the test's S3 server.
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { Presigner, Uploader, type EpisodeEntry, type GrantOptions, type UploaderOptions } from '../../src/record/index.js';

export interface UploadChildManifest {
  device: string;
  opts: UploaderOptions;
  grants: GrantOptions;
  episodes: { entry: EpisodeEntry; files: { name: string; path: string }[] }[];
}

const m = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as UploadChildManifest;
const presigner = new Presigner(m.grants);
const uploader: Uploader = new Uploader(
  m.opts,
  {
    episodes: () => m.episodes.map((e) => e.entry),
    files: (e) => m.episodes.find((x) => x.entry.id === e.id)!.files,
    describe: () => ({ codebase_version: 'v3.0', fps: 10, robot_type: 'test', features: {} }),
    markUploaded: () => undefined,
  },
  {
    publishPending: (doc) => {
      if (doc.episodes.length > 0) void presigner.grant(m.device, doc).then((g) => uploader.onGrant(Buffer.from(JSON.stringify(g))));
    },
    event: () => undefined,
  },
  pino({ level: 'warn' }, pino.destination(2)),
);
await uploader.start();
