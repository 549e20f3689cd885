// One safetensors file on Node, its tensors packed on worker threads: quantizeSafetensorsWith
// decides and lays out the output in this thread and writes it in file order, while the workers
// pack the tensors ahead of it, each reading its tensors from the file itself (positional reads,
// so nothing crosses threads but the packed bytes, which are transferred).
//
// The output is the same bytes as one thread's (quantizeSafetensors): every tensor is packed by
// packTensor with the same plan, chunks and noise stream (seeded per tensor, indexed per element),
// and its parts reach the writer in the same order.
//
// Memory: each worker holds one tensor's chunk buffers (as one thread does), and this thread
// holds the packed bytes of the tensors finished ahead of the one being written, which a window
// bounds: a tensor is sent to a worker only while the packed bytes in flight ahead of the writer
// stay under WINDOW_BYTES (the next tensor to write is always sent, whatever its size).
//
// Failures: the first error of any worker (a bad tensor, a read error, a worker that dies)
// stops every worker at once and fails the run, which discards the partial output
// (atomicFileSink), with a typed error naming the tensor.
//
// The workers run this very module (new Worker(import.meta.url)), as shard-jobs.ts's do.

import { availableParallelism } from 'node:os';
import { isMainThread, parentPort, workerData, type Worker } from 'node:worker_threads';
import { describeError, describeValue } from '../describe.js';
import { BackendError, EdgeMoqError, InvalidInputError } from '../errors.js';
import { atomicFileSink, checkOutputFile, fileSource, type FileSource } from '../formats/node-file.js';
import { packTensor, PackScratch, type ScaleTarget } from '../formats/pack-tensor.js';
import { inThreadPacking, quantizeSafetensorsWith, type PackErrors, type PackRequest, type QuantizeFileOptions, type QuantizeReport, type TensorPacking } from '../formats/quantize-file.js';
import { readAheadSource } from '../formats/read-ahead.js';
import { openSafetensors, type SafetensorsFile, type SafetensorsWriter } from '../formats/safetensors.js';
import { createPacker } from '../packed/index.js';
import type { Packer } from '../packed/packer.js';
import { rebuildError, sendable, startWorker, type SentError } from './worker-threads.js';

/** The WebAssembly packers a worker can create (WebGPU devices do not cross threads). */
export type FileBackend = 'auto' | 'wasm-simd' | 'wasm';
const FILE_BACKENDS: readonly unknown[] = ['auto', 'wasm-simd', 'wasm'];

/** quantizeSafetensorsFile's options: quantizeSafetensors' plus the worker threads and their packer. */
export interface FileQuantizeOptions extends QuantizeFileOptions {
  /**
   * Worker threads packing the file's tensors. Default: os.availableParallelism(), at most
   * DEFAULT_MAX_WORKERS, and none (this thread) for a file with less than
   * PARALLEL_MIN_BYTES to pack, where starting workers costs more than they save. 1: no
   * worker, this thread. The output bytes do not depend on it.
   */
  workers?: number;
  /** The packer (each worker's, or this thread's): default 'auto', WebAssembly SIMD where the runtime has it. */
  backend?: FileBackend;
}

/** quantizeSafetensors' report plus where the packing ran. */
export interface FileQuantizeReport extends QuantizeReport {
  /** The packer's kind ('wasm-simd' or 'wasm'; the requested backend when no tensor was packed on workers). */
  backend: string;
  /** Worker threads that packed the tensors (0: this thread did). */
  workers: number;
}

/**
 * The default's cap: each worker holds its own chunk buffers and WebAssembly memory (about 65 MB
 * more peak RSS a worker at the default 16 MiB chunks, measured by bench/files.mjs), and one
 * thread writes every worker's output.
 */
export const DEFAULT_MAX_WORKERS = 8;
/** Below this many input bytes to pack, the default packs in this thread. */
export const PARALLEL_MIN_BYTES = 32 << 20;
/**
 * The chunk size files are packed in unless `chunkBytes` says otherwise (quantizeSafetensors'
 * default is 16 MiB): a chunk passes through about four buffers (read, decoded, packed,
 * unpacked for the error summary), which at 1 MiB stay in the processor's cache, so a run takes
 * less CPU time and memory (bench/files.mjs). The output does not depend on the chunk size.
 */
export const FILE_CHUNK_BYTES = 1 << 20;
/** Packed bytes that may wait, finished or being made, ahead of the tensor being written. */
const WINDOW_BYTES = 64 << 20;
/** Tensors each worker is sent at a time: the next one waits in its queue, so it never idles between tensors. */
const PER_WORKER = 2;

const WORKER_MARKER = 'edge-moq.file-worker';

/** A tensor's packed bytes: the codes, then the scales (then the zero points), as the worker writes them. */
const outputBytes = ({ plan }: PackRequest) => plan.codeBytes + plan.groupCount * 4 * (plan.type === 'asymmetric' ? 2 : 1);

/** A tensor to pack, or the end of the run (the worker closes the input and exits). */
type ToWorker = { index: number; request: PackRequest; chunkBytes: number } | { close: true };
type FromWorker = { ready: string } | { index: number; bytes: Uint8Array } | { index: number; progress: number } | { index: number; done: PackErrors } | { index: number; error: SentError };

/** Any failure packing a tensor as a typed error that names it. */
function tensorError(name: string, error: unknown): EdgeMoqError {
  const label = `tensor ${JSON.stringify(name)}`;
  if (error instanceof EdgeMoqError) {
    return error.message.startsWith(label) ? error : rebuildError({ ...sendable(error), message: `${label}: ${error.message}` }, error);
  }
  return new BackendError('BACKEND_UNAVAILABLE', `${label}: packing failed unexpectedly (${describeError(error)}); run again with workers: 1 to see where.`, { cause: error });
}

// A worker: opens the input and its packer, then packs the tensors it is sent, one at a time, in
// the order they come, posting each one's bytes as packTensor writes them.
if (!isMainThread && parentPort && (workerData as Record<string, unknown> | null)?.[WORKER_MARKER]) {
  const port = parentPort;
  const { input, identity, backend, progress } = workerData as { input: string; identity: string; backend: FileBackend; progress: boolean };
  const opened = (async () => {
    const source = await fileSource(input);
    if (source.identity !== identity) {
      await source.close().catch(() => undefined);
      throw new EdgeMoqError('IO', `${input} was replaced while it was being quantized; run again.`);
    }
    try {
      const file = await openSafetensors(source);
      const packer = await createPacker(backend);
      port.postMessage({ ready: packer.kind } satisfies FromWorker);
      return { source, file: { ...file, source: readAheadSource(source) }, packer };
    } catch (error) {
      await source.close().catch(() => undefined);
      throw error;
    }
  })();
  // A worker that cannot start fails the first tensor it is sent, with its own error.
  opened.catch(() => undefined);
  const scratch = new PackScratch();
  let queue: Promise<void> = Promise.resolve();
  port.on('message', (message: ToWorker) => {
    if ('close' in message) {
      queue = queue.then(async () => {
        const ended = await opened.catch(() => null);
        ended?.packer.dispose();
        await ended?.source.close().catch(() => undefined);
        port.close();
      });
      return;
    }
    const { index, request, chunkBytes } = message;
    queue = queue.then(async () => {
      try {
        const { file, packer } = await opened;
        const done = await packOne(file, packer, scratch, index, request, chunkBytes, progress);
        port.postMessage({ index, done } satisfies FromWorker);
      } catch (error) {
        port.postMessage({ index, error: sendable(tensorError(request.tensor.name, error)) } satisfies FromWorker);
      }
    });
  });
}

/** One tensor packed by packTensor, its bytes posted (copied out of the scratch, then transferred) in the order it writes them. */
function packOne(file: SafetensorsFile, packer: Packer, scratch: PackScratch, index: number, request: PackRequest, chunkBytes: number, progress: boolean): Promise<PackErrors> {
  const port = parentPort!;
  const writer: SafetensorsWriter = {
    tensors: [],
    size: outputBytes(request),
    async write(bytes) {
      const owned = bytes.slice();
      port.postMessage({ index, bytes: owned } satisfies FromWorker, [owned.buffer]);
    },
    async close() {},
    async abort() {},
  };
  const onProgress = progress ? (done: number) => port.postMessage({ index, progress: done } satisfies FromWorker) : () => undefined;
  // No scale target: the scales follow the codes, and this thread's writer puts them in place.
  return packTensor(file, request.tensor, request.plan, request.options, packer, scratch, writer, null, chunkBytes, onProgress, request.axis);
}

type Event = { bytes: Uint8Array } | { progress: number } | { done: PackErrors };

interface Slot {
  events: Event[];
  /** Resolves the pack() waiting for this tensor's next event. */
  wake: (() => void) | null;
}

interface WorkerState {
  worker: Worker;
  /** The tensors it was sent and has not finished (indexes into the requests). */
  busy: Set<number>;
}

/**
 * TensorPacking on `count` worker threads reading `input` (already open here, for its identity).
 * `onKind` learns the workers' packer kind once one has its packer.
 */
function workerPacking(input: FileSource, count: number, backend: FileBackend, progress: boolean, onKind: (kind: string) => void): TensorPacking {
  const workers: WorkerState[] = [];
  let requests: readonly PackRequest[] = [];
  let chunkBytes = 0;
  const slots = new Map<number, Slot>();
  /** The next tensor to send; the one being written (all before it are written). */
  let next = 0;
  let head = 0;
  /** Packed bytes of the tensors sent and not yet written. */
  let inFlight = 0;
  let failure: EdgeMoqError | null = null;
  let ended = false;

  const wakeAll = () => {
    for (const slot of slots.values()) {
      slot.wake?.();
      slot.wake = null;
    }
  };
  const stopAll = () =>
    Promise.all(
      workers.splice(0).map(({ worker }) => {
        worker.removeAllListeners('exit');
        return worker.terminate();
      }),
    );
  const fail = (error: EdgeMoqError) => {
    if (failure) return;
    failure = error;
    void stopAll();
    wakeAll();
  };

  const dispatch = () => {
    while (!failure && !ended && next < requests.length) {
      const bytes = outputBytes(requests[next]!);
      if (next !== head && inFlight + bytes > WINDOW_BYTES) return;
      // Near the end a second tensor would queue behind one worker's while another goes idle.
      const limit = requests.length - next > workers.length ? PER_WORKER : 1;
      const free = workers.reduce<WorkerState | null>((best, w) => (w.busy.size < limit && (!best || w.busy.size < best.busy.size) ? w : best), null);
      if (!free) return;
      const index = next++;
      inFlight += bytes;
      free.busy.add(index);
      slots.set(index, { events: [], wake: null });
      free.worker.postMessage({ index, request: requests[index]!, chunkBytes } satisfies ToWorker);
    }
  };

  const listen = (state: WorkerState) => {
    const { worker, busy } = state;
    const push = (index: number, event: Event) => {
      const slot = slots.get(index);
      if (!slot) return;
      slot.events.push(event);
      slot.wake?.();
      slot.wake = null;
    };
    worker.on('message', (message: FromWorker) => {
      if ('ready' in message) return onKind(message.ready);
      if ('error' in message) return fail(rebuildError(message.error));
      if ('bytes' in message) return push(message.index, { bytes: message.bytes });
      if ('progress' in message) return push(message.index, { progress: message.progress });
      busy.delete(message.index);
      push(message.index, { done: message.done });
      dispatch();
    });
    const packing = () => [...busy].map((i) => JSON.stringify(requests[i]!.tensor.name)).join(', ');
    worker.on('error', (error) =>
      fail(
        new BackendError(
          'BACKEND_UNAVAILABLE',
          `the worker thread packing tensor ${packing() || '(none)'} failed: ${describeError(error)}; run again with fewer workers (workers: 1 packs in this thread).`,
          { cause: error },
        ),
      ),
    );
    worker.on('exit', (code) =>
      fail(new BackendError('BACKEND_UNAVAILABLE', `a worker thread stopped (exit code ${code}) while packing tensor ${packing() || '(none)'}; run again, or with workers: 1 (this thread).`)),
    );
  };

  const nextEvent = async (slot: Slot): Promise<Event> => {
    while (slot.events.length === 0 && !failure)
      await new Promise<void>((resolve) => {
        slot.wake = resolve;
      });
    if (failure) throw failure;
    return slot.events.shift()!;
  };

  return {
    async start(_file, all, bytes) {
      requests = all;
      chunkBytes = bytes;
      const data = { [WORKER_MARKER]: true, input: input.path, identity: input.identity, backend, progress };
      while (workers.length < Math.min(count, requests.length)) {
        const state = { worker: startWorker(import.meta.url, data, 'workers: 1'), busy: new Set<number>() };
        workers.push(state);
        listen(state);
      }
      dispatch();
    },
    async pack(index, writer, target, onProgress) {
      head = index;
      dispatch();
      const slot = slots.get(index)!;
      const request = requests[index]!;
      const { plan } = request;
      const scaleBytes = plan.groupCount * 4;
      // A positional target takes the scales first, so their place is reserved with zero bytes
      // now and they are written there when they come (after the codes), as packTensor does.
      if (target) {
        const zeros = new Uint8Array(Math.min(scaleBytes * (target.zeros ? 2 : 1), 1 << 20));
        for (let left = scaleBytes * (target.zeros ? 2 : 1); left > 0; left -= zeros.length) await writer.write(zeros.subarray(0, Math.min(left, zeros.length)));
      }
      let received = 0;
      for (;;) {
        const event = await nextEvent(slot);
        if ('progress' in event) {
          onProgress(event.progress);
        } else if ('done' in event) {
          slots.delete(index);
          inFlight -= outputBytes(request);
          return event.done;
        } else if (!target) {
          await writer.write(event.bytes);
          received += event.bytes.length;
        } else {
          await writePositioned(event.bytes, received, plan.codeBytes, scaleBytes, writer, target);
          received += event.bytes.length;
        }
      }
    },
    async finish() {
      ended = true;
      if (failure) return void (await stopAll());
      // Finished: each worker closes the input and exits on its own, after its last tensor.
      await Promise.all(
        workers.splice(0).map(({ worker }) => {
          worker.removeAllListeners('exit');
          const exited = new Promise((resolve) => worker.once('exit', resolve));
          worker.postMessage({ close: true } satisfies ToWorker);
          return exited;
        }),
      );
    },
  };
}

/** Bytes at `offset` of a tensor's stream (codes, scales, zero points) written where a positional layout puts them. */
async function writePositioned(bytes: Uint8Array, offset: number, codeBytes: number, scaleBytes: number, writer: SafetensorsWriter, target: ScaleTarget): Promise<void> {
  const codes = Math.max(0, Math.min(bytes.length, codeBytes - offset));
  if (codes > 0) await writer.write(bytes.subarray(0, codes));
  for (let at = codes; at < bytes.length; ) {
    const groupOffset = offset + at - codeBytes;
    const [part, within] = groupOffset < scaleBytes ? [target.scales, groupOffset] : [target.zeros!, groupOffset - scaleBytes];
    const length = Math.min(bytes.length - at, part.byteLength - within);
    await target.sink.writeAt(part.byteOffset + within, bytes.subarray(at, at + length));
    at += length;
  }
}

/**
 * Worker threads or this thread, chosen once the tensors to pack are known: `workers` of them
 * (no more than there are tensors), or by default as many as the CPUs (up to
 * DEFAULT_MAX_WORKERS) where there is enough to pack to pay for starting them.
 */
function chosenPacking(source: FileSource, workers: number | undefined, backend: FileBackend, progress: boolean): TensorPacking & { kind: string; workers: number } {
  let chosen: TensorPacking | undefined;
  let inThread: Packer | undefined;
  const choice = {
    kind: backend as string,
    workers: 0,
    async start(file: SafetensorsFile, requests: readonly PackRequest[], chunkBytes: number) {
      const packBytes = requests.reduce((sum, r) => sum + r.tensor.byteLength, 0);
      const wanted = workers ?? (packBytes < PARALLEL_MIN_BYTES ? 1 : Math.min(availableParallelism(), DEFAULT_MAX_WORKERS));
      const count = Math.min(wanted, requests.length);
      if (count > 1) {
        choice.workers = count;
        chosen = workerPacking(source, count, backend, progress, (kind) => {
          choice.kind = kind;
        });
      } else {
        inThread = await createPacker(backend);
        choice.kind = inThread.kind;
        chosen = inThreadPacking(inThread);
      }
      await chosen.start(file, requests, chunkBytes);
    },
    pack: (...args: Parameters<TensorPacking['pack']>) => chosen!.pack(...args),
    async finish() {
      try {
        await chosen?.finish();
      } finally {
        inThread?.dispose();
      }
    },
  };
  return choice;
}

function checkWorkers(workers: unknown): number | undefined {
  if (workers === undefined) return undefined;
  if (!(Number.isSafeInteger(workers) && (workers as number) >= 1)) {
    throw new InvalidInputError('INVALID_ARGUMENT', `workers must be a positive integer (worker threads; 1 packs in this thread), got ${describeValue(workers)}.`);
  }
  return workers as number;
}

/**
 * Quantizes the safetensors file `input` into `output` (quantizeSafetensors' options and
 * result), its tensors packed on `workers` threads: the same bytes whatever their number. Both
 * ends are checked before any work; on any error no output is left (nor a partial one).
 *
 * @param input - The safetensors file to read (a regular file, or a symlink to one).
 * @param output - The file to write; replaced whole when the run succeeds, never the input.
 * @param options - quantizeSafetensors' options, with `workers` and `backend`.
 * @returns quantizeSafetensors' report, with the packer's kind and the worker threads used.
 */
export async function quantizeSafetensorsFile(input: string, output: string, options: FileQuantizeOptions): Promise<FileQuantizeReport> {
  if (options === null || typeof options !== 'object') {
    throw new InvalidInputError('INVALID_ARGUMENT', 'options must be an object such as { bits: 4, groupSize: 32 }.');
  }
  const { workers: workersOption, backend = 'auto', ...quantizeOptions } = options;
  const workers = checkWorkers(workersOption);
  if (!FILE_BACKENDS.includes(backend)) {
    throw new InvalidInputError('INVALID_ARGUMENT', `backend must be one of ${FILE_BACKENDS.join(', ')} (WebGPU devices do not cross threads), got ${describeValue(backend)}.`);
  }
  const source = await fileSource(input);
  try {
    await checkOutputFile(output, { distinctFrom: [source] });
    const packing = chosenPacking(source, workers, backend, quantizeOptions.onProgress !== undefined);
    const report = await quantizeSafetensorsWith(source, atomicFileSink(output, { distinctFrom: [source] }), packing, {
      ...quantizeOptions,
      chunkBytes: quantizeOptions.chunkBytes ?? FILE_CHUNK_BYTES,
    });
    return { ...report, backend: packing.kind, workers: packing.workers };
  } finally {
    await source.close().catch(() => undefined);
  }
}
