// `reflex --version`: this client's versions, OpenCV's own when its binding loads here.
import { errorMessage, versions, type Versions } from '../core/index.js';
import { loadOpenCv } from '../hardware/camera/index.js';

function openCvVersion(): string | null {
  try {
    const v = (loadOpenCv() as unknown as { version?: { major: number; minor: number; revision: number } }).version;
    return v === undefined ? null : `${v.major}.${v.minor}.${v.revision}`;
  } catch (err) {
    return `not loadable (${errorMessage(err).split('\n')[0]})`;
  }
}

export function formatVersions(v: Versions): string {
  const rows: [string, string | null][] = [
    ['reflex', v.reflex],
    ['Node.js', v.node],
    ['ONNX Runtime', v.onnxruntime ?? 'not installed'],
    ['OpenCV', v.opencv ?? 'not installed'],
    ['kernel', v.kernel],
    ['JetPack', v.jetpack],
  ];
  return rows.filter(([, x]) => x !== null).map(([k, x]) => `${k.padEnd(13)}${x}`).join('\n') + '\n';
}

export function printVersions(json: boolean): void {
  const v = versions(openCvVersion());
  process.stdout.write(json ? `${JSON.stringify(v, null, 2)}\n` : formatVersions(v));
}
