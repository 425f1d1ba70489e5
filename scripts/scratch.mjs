// One scratch folder per suite or benchmark run: everything the run puts in the temporary
// directory (TMPDIR, which Node's os.tmpdir(), mktemp, ffmpeg and Python all honour) lands
// under it, and it is removed when the run passes. Without it every run left hundreds of
// folders (models, datasets, bundles) in /tmp: a developer's disk filled by running the tests.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function scratch(prefix) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  // Like /tmp itself: a test runs a client as another user, and a service under systemd runs
  // as its own user; both must reach folders the test made here.
  chmodSync(dir, 0o1777);
  return {
    dir,
    env: { ...process.env, TMPDIR: dir },
    /** Removed after a pass; kept after a failure, for whoever reads why it failed. */
    finish(passed) {
      if (!passed) {
        process.stderr.write(`the run's temporary files are kept in ${dir}\n`);
        return;
      }
      try {
        rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
      } catch (err) {
        process.stderr.write(`could not remove ${dir}: ${err.message}\n`);
      }
    },
  };
}
