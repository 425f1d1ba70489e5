// ONNX Runtime sessions: which build is loaded (npm's, or the Jetson's TensorRT build), which
// execution provider is used (tried in order, the first that opens wins), and whether the
// model's inputs and outputs are the ones the bundle names.
import { createRequire } from 'node:module';
import { ReflexError, errorMessage } from '../core/index.js'; // not core's index: see worker.ts
import type { PolicyBundle } from './bundle.js';

export type ProviderName = 'tensorrt' | 'cuda' | 'cpu';

/** What reflex uses of onnxruntime-node (the npm build and a TensorRT build have the same API). */
export type Ort = typeof import('onnxruntime-node');
export type Session = import('onnxruntime-node').InferenceSession;

export interface TensorRtOptions {
  fp16: boolean;
  /** Engines are built once and cached here (under the state directory), not at every start. */
  engineCacheDir: string;
  timingCacheDir: string;
  workspaceMb: number;
}

export interface SessionOptions {
  providers: readonly ProviderName[];
  intraOpThreads: number;
  deviceId: number;
  tensorrt: TensorRtOptions;
}

export interface OpenedSession {
  session: Session;
  provider: ProviderName;
  /** Providers that failed before this one, and why. */
  fallbacks: { provider: ProviderName; error: string }[];
}

/** Loads onnxruntime: the npm package, or the build at `path` (the Jetson's TensorRT build). */
export function loadOrt(path: string | null): Ort {
  const require = createRequire(import.meta.url);
  try {
    const ort = require(path ?? 'onnxruntime-node') as Ort;
    // A provider that cannot load is reported through openSession's fallbacks; ORT's own
    // logger would print it again, as an error, before the session options even apply.
    ort.env.logLevel = 'fatal';
    return ort;
  } catch (err) {
    throw new ReflexError('START_FAILED', `cannot load onnxruntime from ${path ?? 'onnxruntime-node'}: ${errorMessage(err)}`);
  }
}

/**
 * The provider entry as the session takes it. The TensorRT fields beyond deviceId are read only
 * by the patched binding (native/onnxruntime/); the npm binding ignores them.
 */
export function providerEntry(p: ProviderName, o: SessionOptions): unknown {
  switch (p) {
    case 'cpu':
      return 'cpu';
    case 'cuda':
      return { name: 'cuda', deviceId: o.deviceId };
    case 'tensorrt':
      return {
        name: 'tensorrt',
        deviceId: o.deviceId,
        fp16: o.tensorrt.fp16,
        engineCachePath: o.tensorrt.engineCacheDir,
        timingCachePath: o.tensorrt.timingCacheDir,
        workspaceSize: o.tensorrt.workspaceMb * 1024 * 1024,
      };
  }
}

/** Opens `model` with the first provider that works, in the configured order. */
export async function openSession(ort: Ort, model: string | Uint8Array, o: SessionOptions): Promise<OpenedSession> {
  const fallbacks: { provider: ProviderName; error: string }[] = [];
  for (const [i, provider] of o.providers.entries()) {
    const last = i === o.providers.length - 1;
    try {
      const session = await ort.InferenceSession.create(model as string, {
        executionProviders: [providerEntry(provider, o) as 'cpu'],
        intraOpNumThreads: o.intraOpThreads,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: 'all',
        // A provider that cannot load is reported in `fallbacks`; ORT's own log would say it twice.
        logSeverityLevel: last ? 3 : 4,
        // ONNX Runtime's pool spins between ops by default, taking a core from the control thread.
        extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
      });
      return { session, provider, fallbacks };
    } catch (err) {
      fallbacks.push({ provider, error: errorMessage(err).split('\n')[0] ?? 'failed' });
    }
  }
  throw new ReflexError('START_FAILED', `no execution provider could open the model: ${fallbacks.map((f) => `${f.provider}: ${f.error}`).join('; ')}`);
}

/** Differences between what the bundle names and what the model has; empty when they agree. */
export function ioMismatches(session: Session, b: PolicyBundle): string[] {
  const out: string[] = [];
  const want = new Map<string, number[]>([[b.state.name, [b.state.width]], ...b.images.map((f): [string, number[]] => [f.name, f.shape])]);
  // The VLA inputs the worker feeds (task tokens, noise, the RTC prefix and delay).
  if (b.spec.task) {
    want.set(b.spec.task.input, [b.spec.task.maxLength]);
    if (b.spec.task.mask) want.set(b.spec.task.mask, [b.spec.task.maxLength]);
  }
  if (b.spec.noise) want.set(b.spec.noise.input, b.spec.noise.shape);
  if (b.spec.rtc) {
    want.set(b.spec.rtc.prefix, [b.horizon, b.action.width]);
    want.set(b.spec.rtc.delay, []);
  }
  const inputs = new Map(session.inputMetadata.map((m) => [m.name, m]));
  for (const [name, shape] of want) {
    const m = inputs.get(name);
    if (!m) {
      out.push(`the model has no input ${name} (it has ${[...inputs.keys()].join(', ')})`);
      continue;
    }
    if (m.isTensor && !shapeFits(m.shape, shape)) out.push(`input ${name} has shape [${m.shape.join(', ')}], the bundle says [1, ${shape.join(', ')}]`);
  }
  for (const name of inputs.keys()) if (!want.has(name)) out.push(`the model wants an input ${name} the bundle does not provide`);
  const action = session.outputMetadata.find((m) => m.name === 'action');
  if (!action) out.push(`the model has no output action (it has ${session.outputNames.join(', ')})`);
  else if (action.isTensor && !shapeFits(action.shape, [b.horizon, b.action.width])) {
    out.push(`output action has shape [${action.shape.join(', ')}], the bundle says [1, ${b.horizon}, ${b.action.width}]`);
  }
  return out;
}

/** A model shape [batch, ...dims] fits [...dims] when batch is 1 or symbolic and dims agree (symbolic dims fit anything). */
function shapeFits(model: readonly (number | string)[], want: readonly number[]): boolean {
  if (model.length !== want.length + 1) return false;
  const batch = model[0];
  if (typeof batch === 'number' && batch !== 1 && batch !== -1) return false;
  return want.every((d, i) => {
    const m = model[i + 1];
    return typeof m !== 'number' || m === -1 || m === d;
  });
}
