// The demo trains with TensorFlow.js on MNIST digits. Both are optional for edge-moq's users (the
// library itself needs neither), so a missing one is a message saying what to install, not a
// stack trace.

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type * as tfjs from '@tensorflow/tfjs';
import { BackendError, InvalidInputError } from '../errors.js';

const require = createRequire(import.meta.url);

export const REQUIRED_PACKAGES = ['@tensorflow/tfjs', 'mnist'] as const;
const WASM_PACKAGE = '@tensorflow/tfjs-backend-wasm';

export type TfBackendName = 'wasm' | 'cpu';

/** The names among `names` that do not resolve from here. */
export function missingPackages(names: readonly string[], resolve: (name: string) => string = require.resolve): string[] {
  return names.filter((name) => {
    try {
      resolve(name);
      return false;
    } catch {
      return true;
    }
  });
}

export function installHint(missing: readonly string[]): string {
  const list = missing.join(' and ');
  return (
    `the demo trains a TensorFlow.js model on MNIST digits and needs ${list}, ${missing.length === 1 ? 'which is' : 'which are'} not installed.\n` +
    `Install ${missing.length === 1 ? 'it' : 'them'} next to edge-moq:  npm install --save-dev ${missing.join(' ')}`
  );
}

export interface TensorFlow {
  tf: typeof tfjs;
  backend: TfBackendName;
  /** Why the backend differs from the default, when it does. */
  note?: string;
}

/**
 * TensorFlow.js on `requested`, or on its WebAssembly backend when it is installed (about 7 times
 * faster than the cpu backend for this model on 2 cores), else on cpu. Both are deterministic.
 * Prod mode silences tfjs's advice to install tfjs-node, which this demo does not use.
 */
export async function loadTensorFlow(requested: TfBackendName | undefined): Promise<TensorFlow> {
  const tf = await import('@tensorflow/tfjs');
  tf.enableProdMode();
  const wasmInstalled = missingPackages([WASM_PACKAGE]).length === 0;
  if (requested === 'wasm' && !wasmInstalled) {
    throw new InvalidInputError('INVALID_ARGUMENT', `--tf-backend wasm needs ${WASM_PACKAGE}: npm install --save-dev ${WASM_PACKAGE} (or use --tf-backend cpu).`);
  }
  const backend: TfBackendName = requested ?? (wasmInstalled ? 'wasm' : 'cpu');
  if (backend === 'wasm') {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    wasm.setWasmPaths(join(dirname(require.resolve(WASM_PACKAGE)), '/'));
  }
  if (!(await tf.setBackend(backend))) {
    throw new BackendError('BACKEND_UNAVAILABLE', `TensorFlow.js could not start its ${backend} backend here; try --tf-backend ${backend === 'wasm' ? 'cpu' : 'wasm'}.`);
  }
  const note = requested === undefined && backend === 'cpu' ? `TensorFlow.js runs on its cpu backend; npm install --save-dev ${WASM_PACKAGE} trains about 10 times faster.` : undefined;
  return { tf, backend, ...(note ? { note } : {}) };
}
