// The one place OpenCV is loaded. @u4/opencv4nodejs is a NAN addon that is not safe in more
// than one thread of a process (seen here: a second thread's Mats come back broken), so the
// daemon loads it only in its vision worker; the CLI and the simulator are other processes.
import { createRequire } from 'node:module';

export type Cv = typeof import('@u4/opencv4nodejs').default;
export type Mat = import('@u4/opencv4nodejs').Mat;
export type VideoCapture = import('@u4/opencv4nodejs').VideoCapture;

let cv: Cv | null = null;

export function loadOpenCv(): Cv {
  if (cv !== null) return cv;
  const require = createRequire(import.meta.url);
  // Its build helper logs to stdout when loaded; stdout is our JSON log stream.
  (require('@u4/opencv-build') as { Log: { silence: boolean } }).Log.silence = true;
  cv = require('@u4/opencv4nodejs') as Cv;
  return cv;
}
