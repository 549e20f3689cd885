// What the worker-thread jobs share (shard-jobs.ts: a shard per job; file-jobs.ts: tensors of
// one file per job): starting a worker that runs the caller's own module, and typed errors
// carried across the thread boundary with their class, code, message and location intact.

import { Worker } from 'node:worker_threads';
import { compileWasm, runtimeHasSimd } from '../backends/wasm/loader.js';
import { describeError } from '../describe.js';
import { BackendError, ConfigError, EdgeMoqError, FormatError, InvalidInputError, type ErrorCode, type ErrorLocation } from '../errors.js';

/** An error as it crosses from a worker: what rebuilds the same class, code and message. */
export interface SentError {
  name: string;
  code: ErrorCode;
  message: string;
  key?: string;
  location?: ErrorLocation;
}

/** The same typed error again (a worker's error, or one given a new message). */
export function rebuildError(sent: SentError, cause?: unknown): EdgeMoqError {
  const options = { ...(cause === undefined ? {} : { cause }), ...(sent.location ? { location: sent.location } : {}) };
  switch (sent.name) {
    case 'ConfigError': {
      // Its constructor puts the key before the message, which already starts with it.
      const error = new ConfigError(sent.key ?? '', '');
      error.message = sent.message;
      return error;
    }
    case 'FormatError':
      return new FormatError(sent.message, options);
    case 'InvalidInputError':
      return new InvalidInputError(sent.code, sent.message, options);
    case 'BackendError':
      return new BackendError(sent.code, sent.message, options);
    default:
      return new EdgeMoqError(sent.code, sent.message, options);
  }
}

export const sendable = (error: EdgeMoqError): SentError => ({
  name: error.name,
  code: error.code,
  message: error.message,
  ...(error instanceof ConfigError ? { key: error.key } : {}),
  ...(error.location ? { location: error.location } : {}),
});

/**
 * A worker thread running the module at `moduleUrl` (the caller's import.meta.url: it works the
 * same from the compiled files and from a bundle), given `workerData`. `retry` says how to run
 * without workers, for the error when the data cannot be sent.
 */
export function startWorker(moduleUrl: string, workerData: Record<string, unknown>, retry: string): Worker {
  const start = (execArgv: string[]) => new Worker(new URL(moduleUrl), { execArgv, workerData });
  try {
    // Workers take the process's Node flags, except --input-type: it is for the main script
    // given as text (node -e), and a worker given a file refuses to start with it.
    const execArgv = process.execArgv.filter((flag, i, all) => !flag.startsWith('--input-type') && all[i - 1] !== '--input-type');
    try {
      return start(execArgv);
    } catch (error) {
      // A flag only the whole process can take (V8's --no-liftoff, say): the workers run
      // compiled modules that need none, so they start without the process's flags.
      if ((error as { code?: unknown }).code !== 'ERR_WORKER_INVALID_EXEC_ARGV') throw error;
      return start([]);
    }
  } catch (cause) {
    // Options travel to the workers by structured clone: a function among them cannot.
    throw new InvalidInputError('INVALID_ARGUMENT', `the options cannot be sent to worker threads (${describeError(cause)}): give plain data (strings, numbers, RegExps), or run with ${retry}.`, {
      cause,
    });
  }
}

/** The packers a worker thread can create: WebAssembly ones (WebGPU devices do not cross threads). */
export type WorkerBackend = 'auto' | 'wasm-simd' | 'wasm';
export const WORKER_BACKENDS: readonly unknown[] = ['auto', 'wasm-simd', 'wasm'];

/** A compiled WebAssembly build, as createPacker's `wasm` option takes it. */
export type CompiledBuild = { simd?: WebAssembly.Module; scalar?: WebAssembly.Module };

/**
 * The WebAssembly build a packer of `backend` runs on, compiled here (once: the loader caches
 * it), for workers to create their packers from (createPacker(backend, { wasm })): a module sent
 * to another thread shares its compiled code, so a worker neither compiles it again nor starts
 * on the baseline code while V8 optimizes it a second time.
 */
export async function compiledBuild(backend: WorkerBackend): Promise<CompiledBuild> {
  const build = backend === 'wasm' || (backend === 'auto' && !runtimeHasSimd()) ? 'scalar' : 'simd';
  return { [build]: await compileWasm(build) };
}
