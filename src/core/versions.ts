// Which reflex, Node.js, ONNX Runtime and OpenCV run here, and on what: for `reflex --version`,
// the daemon's status and the diagnostics bundle. Read from the packages' own package.json
// files (cheap, no native library loaded); OpenCV's own version only where a caller may load it.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { release } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Versions {
  reflex: string;
  node: string;
  /** The onnxruntime-node package (the daemon may load another build: policy.onnxruntimePath). */
  onnxruntime: string | null;
  /** The OpenCV binding's package, or OpenCV's own version where it was loaded. */
  opencv: string | null;
  kernel: string;
  /** /etc/nv_tegra_release's first line on a Jetson. */
  jetpack: string | null;
}

function packageVersion(file: string): string | null {
  try {
    const v = (JSON.parse(readFileSync(file, 'utf8')) as { version?: unknown }).version;
    return typeof v === 'string' ? v : null;
  } catch {
    return null;
  }
}

/** A dependency's version, found from where Node resolves it (its package.json may not be exported). */
function dependencyVersion(name: string): string | null {
  try {
    let dir = dirname(createRequire(import.meta.url).resolve(name));
    for (let i = 0; i < 6; i++, dir = dirname(dir)) {
      if (dir.endsWith(join('node_modules', name))) return packageVersion(join(dir, 'package.json'));
    }
  } catch {
    // not installed
  }
  return null;
}

function firstLine(file: string): string | null {
  try {
    return readFileSync(file, 'utf8').split('\n')[0]?.trim() || null;
  } catch {
    return null;
  }
}

/** `opencv`: OpenCV's own version when the caller loaded it, else the binding package's. */
export function versions(opencv: string | null = null): Versions {
  // dist/src/core/versions.js -> the package root, in a checkout and in a release alike.
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
  const binding = dependencyVersion('@u4/opencv4nodejs');
  return {
    reflex: packageVersion(join(root, 'package.json')) ?? 'unknown',
    node: process.versions.node,
    onnxruntime: dependencyVersion('onnxruntime-node'),
    opencv: opencv ?? (binding === null ? null : `binding ${binding}`),
    kernel: release(),
    jetpack: firstLine('/etc/nv_tegra_release'),
  };
}
