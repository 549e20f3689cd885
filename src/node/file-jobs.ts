// One safetensors file on Node, its tensors packed on several threads: quantizeSafetensorsWith
// decides and lays out the output in this thread and writes it in file order, while the packing
// threads (this one and `workers - 1` worker threads) pack the tensors ahead of it, each reading
// its tensors from the file itself (positional reads, so nothing crosses threads but the packed
// bytes, which are transferred).
//
// This thread packs too: the writer needs little of it (under a tenth of a run, bench/files.mjs),
// and a worker thread costs about 150 ms of CPU to start (Node's isolate, the module, the
// WebAssembly), so N threads on N cores beat N workers beside an idle writer. It takes tensors
// from the start, while the workers boot; a worker is sent tensors once it has opened the file
// and made its packer.
//
// The output is the same bytes as one thread's (quantizeSafetensors): every tensor is packed by
// packTensor with the same plan, chunks and noise stream (seeded per tensor, indexed per element),
// and its parts reach the writer in the same order.
//
// Memory: each packing thread holds one tensor's chunk buffers (as one thread does), and this
// thread holds the packed bytes of the tensors finished ahead of the one being written, which a
// window bounds: a tensor is sent to a thread only while the packed bytes in flight ahead of the
// writer stay under WINDOW_BYTES (the next tensor to write is always sent, whatever its size).
//
// Failures: the first error of any thread (a bad tensor, a read error, a worker that dies)
// stops every worker at once and fails the run, which discards the partial output
// (atomicFileSink), with a typed error naming the tensor.
//
// The workers run this very module (new Worker(import.meta.url)), as shard-jobs.ts's do.

import { availableParallelism } from 'node:os';
import { isMainThread, parentPort, workerData, type Worker } from 'node:worker_threads';
import { describeError, describeValue } from '../describe.js';
import { BackendError, EdgeMoqError, InvalidInputError } from '../errors.js';
import { atomicFileSink, checkOutputFile, FILE_CHUNK_BYTES, fileSource, type FileSource } from '../formats/node-file.js';
import { packTensor, PackScratch, type ScaleTarget } from '../formats/pack-tensor.js';
import { inThreadPacking, quantizeSafetensorsWith, type PackErrors, type PackRequest, type QuantizeFileOptions, type QuantizeReport, type TensorPacking } from '../formats/quantize-file.js';
import { readAheadSource } from '../formats/read-ahead.js';
import { openSafetensors, type SafetensorsFile, type SafetensorsWriter } from '../formats/safetensors.js';
import { createPacker } from '../packed/index.js';
import type { Packer } from '../packed/packer.js';
import { compiledBuild, rebuildError, sendable, startWorker, WORKER_BACKENDS, type CompiledBuild, type SentError, type WorkerBackend } from './worker-threads.js';

/** The WebAssembly packers a worker can create (WebGPU devices do not cross threads). */
export type FileBackend = WorkerBackend;

/** quantizeSafetensorsFile's options: quantizeSafetensors' plus the packing threads and their packer. */
export interface FileQuantizeOptions extends QuantizeFileOptions {
  /**
   * Threads packing the file's tensors: this one and `workers - 1` worker threads. Default:
   * os.availableParallelism(), at most DEFAULT_MAX_WORKERS, and 1 (this thread alone) for a
   * file with less than PARALLEL_MIN_BYTES to pack, where starting workers costs more than they
   * save. The output bytes do not depend on it.
   */
  workers?: number;
  /**
   * Whether this thread is one of the `workers` (default true). false: `workers` worker threads
   * pack and this thread only writes, so its event loop stays free between writes (a server),
   * for one more worker's startup (about 150 ms of CPU).
   */
  thisThreadPacks?: boolean;
  /** The packer (each thread's): default 'auto', WebAssembly SIMD where the runtime has it. */
  backend?: FileBackend;
}

/** quantizeSafetensors' report plus where the packing ran. */
export interface FileQuantizeReport extends QuantizeReport {
  /** The packers' kind ('wasm-simd' or 'wasm'; the kinds, comma-separated, where threads differ). */
  backend: string;
  /** Threads that packed the tensors: `workerThreads` of them, and this one unless `thisThreadPacks` was false. */
  workers: number;
  /** Worker threads started (0: this thread packed alone). */
  workerThreads: number;
}

/**
 * The default's cap: each thread holds its own chunk buffers and WebAssembly memory (about 65 MB
 * more peak RSS a worker at the default 16 MiB chunks, measured by bench/files.mjs), and one
 * thread writes every thread's output.
 */
export const DEFAULT_MAX_WORKERS = 8;
/** Below this many input bytes to pack, the default packs in this thread. */
export const PARALLEL_MIN_BYTES = 32 << 20;
/** Packed bytes that may wait, finished or being made, ahead of the tensor being written. */
const WINDOW_BYTES = 64 << 20;
/** Tensors each thread is sent at a time: the next one waits in its queue, so it never idles between tensors. */
const PER_THREAD = 2;
/**
 * Packed bytes travel to the writer in buffers of this size, each sent when full, and come back
 * to their thread once written: a few messages per tensor instead of one per chunk's codes, and
 * no new memory once the pool has grown (a buffer per chunk cost page faults and collections).
 */
const TRANSFER_BYTES = 1 << 20;
/** Written buffers a thread keeps for reuse; more are dropped. */
const POOL_BUFFERS = 16;

const WORKER_MARKER = 'edge-moq.file-worker';

/** A tensor's packed bytes: the codes, then the scales (then the zero points), as packOne writes them. */
const outputBytes = ({ plan }: PackRequest) => plan.codeBytes + plan.groupCount * 4 * (plan.type === 'asymmetric' ? 2 : 1);

/** A tensor to pack, a written buffer back, or the end of the run (the worker closes the input and exits). */
type ToWorker = { index: number; request: PackRequest; chunkBytes: number } | { recycle: ArrayBuffer } | { close: true };
/** What a packing thread tells the writer: it is ready (a worker, with its packer's kind), a tensor's bytes, progress and end, or a failure. */
type FromPacker = { ready: string } | { index: number; bytes: Uint8Array } | { index: number; progress: number } | { index: number; done: PackErrors };
type FromWorker = FromPacker | { error: SentError };

/** Any failure packing a tensor as a typed error that names it. */
function tensorError(name: string, error: unknown): EdgeMoqError {
  const label = `tensor ${JSON.stringify(name)}`;
  if (error instanceof EdgeMoqError) {
    return error.message.startsWith(label) ? error : rebuildError({ ...sendable(error), message: `${label}: ${error.message}` }, error);
  }
  return new BackendError('BACKEND_UNAVAILABLE', `${label}: packing failed unexpectedly (${describeError(error)}); run again with workers: 1 to see where.`, { cause: error });
}

/** Buffers of TRANSFER_BYTES to gather a thread's packed bytes in, reused once written. */
class TransferPool {
  private readonly free: ArrayBuffer[] = [];

  take(): Uint8Array {
    return new Uint8Array(this.free.pop() ?? new ArrayBuffer(TRANSFER_BYTES));
  }

  give(buffer: ArrayBuffer): void {
    if (buffer.byteLength === TRANSFER_BYTES && this.free.length < POOL_BUFFERS) this.free.push(buffer);
  }
}

/** A worker that could not open the input or make its packer, as a typed error. */
function startError(error: unknown): EdgeMoqError {
  if (error instanceof EdgeMoqError) return error;
  return new BackendError('BACKEND_UNAVAILABLE', `a worker thread could not start (${describeError(error)}); run again with workers: 1 (this thread alone).`, { cause: error });
}

// A worker: opens the input and its packer, says it is ready, then packs the tensors it is sent,
// one at a time, in the order they come, posting each one's bytes as packTensor writes them.
if (!isMainThread && parentPort && (workerData as Record<string, unknown> | null)?.[WORKER_MARKER]) {
  const port = parentPort;
  const { input, identity, backend, progress, wasm } = workerData as { input: string; identity: string; backend: FileBackend; progress: boolean; wasm: CompiledBuild };
  const opened = (async () => {
    const source = await fileSource(input);
    if (source.identity !== identity) {
      await source.close().catch(() => undefined);
      throw new EdgeMoqError('IO', `${input} was replaced while it was being quantized; run again.`);
    }
    try {
      const file = await openSafetensors(source);
      const packer = await createPacker(backend, { wasm });
      port.postMessage({ ready: packer.kind } satisfies FromWorker);
      return { source, file: { ...file, source: readAheadSource(source) }, packer };
    } catch (error) {
      await source.close().catch(() => undefined);
      throw error;
    }
  })();
  // It is sent no tensor before it is ready: a worker that cannot start fails the run with its error.
  opened.catch((error: unknown) => port.postMessage({ error: sendable(startError(error)) } satisfies FromWorker));
  const post = (message: FromPacker, transfer?: ArrayBuffer[]) => port.postMessage(message, transfer ?? []);
  const scratch = new PackScratch();
  const pool = new TransferPool();
  let queue: Promise<void> = Promise.resolve();
  port.on('message', (message: ToWorker) => {
    if ('recycle' in message) return pool.give(message.recycle);
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
        const done = await packOne(file, packer, scratch, pool, index, request, chunkBytes, progress, post);
        post({ index, done });
      } catch (error) {
        port.postMessage({ error: sendable(tensorError(request.tensor.name, error)) } satisfies FromWorker);
      }
    });
  });
}

/**
 * One tensor packed by packTensor, its bytes posted in the order it writes them: copied out of
 * the scratch into the pool's buffers, each transferred when full, the last when the tensor ends.
 */
async function packOne(
  file: SafetensorsFile,
  packer: Packer,
  scratch: PackScratch,
  pool: TransferPool,
  index: number,
  request: PackRequest,
  chunkBytes: number,
  progress: boolean,
  post: (message: FromPacker, transfer?: ArrayBuffer[]) => void,
): Promise<PackErrors> {
  let out = pool.take();
  let used = 0;
  const send = () => {
    post({ index, bytes: out.subarray(0, used) }, [out.buffer as ArrayBuffer]);
    out = pool.take();
    used = 0;
  };
  const writer: SafetensorsWriter = {
    tensors: [],
    size: outputBytes(request),
    async write(bytes) {
      for (let at = 0; at < bytes.length; ) {
        const length = Math.min(bytes.length - at, out.length - used);
        out.set(bytes.subarray(at, at + length), used);
        used += length;
        at += length;
        if (used === out.length) send();
      }
    },
    async close() {},
    async abort() {},
  };
  const onProgress = progress ? (done: number) => post({ index, progress: done }) : () => undefined;
  try {
    // No scale target: the scales follow the codes, and the writer puts them in place.
    const errors = await packTensor(file, request.tensor, request.plan, request.options, packer, scratch, writer, null, chunkBytes, onProgress, request.axis);
    if (used > 0) send();
    return errors;
  } finally {
    pool.give(out.buffer as ArrayBuffer);
  }
}

type Event = { bytes: Uint8Array } | { progress: number } | { done: PackErrors };

interface Slot {
  /** The thread packing it, which gets its buffers back once written (null until it is sent). */
  lane: Lane | null;
  events: Event[];
  /** Resolves the pack() waiting for this tensor's next event. */
  wake: (() => void) | null;
}

/** A thread that packs tensors: this one, or a worker. */
interface Lane {
  /** The tensors it was sent and has not finished (indexes into the requests). */
  busy: Set<number>;
  /** Whether it takes tensors (a worker: once it has opened the input and made its packer). */
  ready: boolean;
  send(index: number): void;
  /** A buffer it sent, written. */
  recycle(buffer: ArrayBuffer): void;
  /** Ends it: after its last tensor, or (`now`) at once, after a failure. */
  stop(now: boolean): Promise<void>;
}

/**
 * TensorPacking on `workerCount` worker threads reading `input` (already open here, for its
 * identity), and on this thread with the packer `makePacker` makes when it is given (made once
 * the workers are starting, so that their startup overlaps it; the caller disposes it after
 * finish()). `onKind` learns each worker's packer kind.
 */
function threadPacking(input: FileSource, makePacker: (() => Promise<Packer>) | null, workerCount: number, backend: FileBackend, progress: boolean, onKind: (kind: string) => void): TensorPacking {
  const lanes: Lane[] = [];
  let requests: readonly PackRequest[] = [];
  let chunkBytes = 0;
  const slots = new Map<number, Slot>();
  /** The next tensor to send; the one being written (all before it are written). */
  let next = 0;
  let head = 0;
  /** Packed bytes of the tensors sent and not yet written. */
  let inFlight = 0;
  let failure: EdgeMoqError | null = null;
  /** Every lane stopping after a failure (this thread's ends at its next write). */
  let stopping: Promise<unknown> | null = null;
  let ended = false;

  const wakeAll = () => {
    for (const slot of slots.values()) {
      slot.wake?.();
      slot.wake = null;
    }
  };
  const fail = (error: EdgeMoqError) => {
    if (failure) return;
    failure = error;
    stopping = Promise.all(lanes.splice(0).map((lane) => lane.stop(true)));
    wakeAll();
  };

  /** The tensor's slot, made when it is sent or when the writer waits for it, whichever comes first. */
  const slotOf = (index: number) => {
    let slot = slots.get(index);
    if (!slot) {
      slot = { lane: null, events: [], wake: null };
      slots.set(index, slot);
    }
    return slot;
  };

  const dispatch = () => {
    while (!failure && !ended && next < requests.length) {
      const bytes = outputBytes(requests[next]!);
      if (next !== head && inFlight + bytes > WINDOW_BYTES) return;
      // Near the end a second tensor would queue behind one thread's while another goes idle.
      const limit = requests.length - next > lanes.length ? PER_THREAD : 1;
      const free = lanes.reduce<Lane | null>((best, lane) => (lane.ready && lane.busy.size < limit && (!best || lane.busy.size < best.busy.size) ? lane : best), null);
      if (!free) return;
      const index = next++;
      inFlight += bytes;
      free.busy.add(index);
      slotOf(index).lane = free;
      free.send(index);
    }
  };

  /** A packing thread's message about one of its tensors. */
  const receive = (lane: Lane, message: FromPacker) => {
    if ('ready' in message) {
      onKind(message.ready);
      lane.ready = true;
      return dispatch();
    }
    const slot = slots.get(message.index);
    if (!slot) return;
    slot.events.push('bytes' in message ? { bytes: message.bytes } : 'progress' in message ? { progress: message.progress } : { done: message.done });
    slot.wake?.();
    slot.wake = null;
    if ('done' in message) {
      lane.busy.delete(message.index);
      dispatch();
    }
  };

  /** This thread as a lane: its tensors packed one after another between the writer's awaits. */
  const thisThread = (packer: Packer, file: SafetensorsFile): Lane => {
    const scratch = new PackScratch();
    const pool = new TransferPool();
    const reader = { ...file, source: readAheadSource(file.source) };
    let queue: Promise<void> = Promise.resolve();
    // A failure elsewhere ends the tensor being packed at its next write.
    const post = (message: FromPacker) => {
      if (failure) throw failure;
      receive(lane, message);
    };
    const lane: Lane = {
      busy: new Set(),
      ready: true,
      send(index) {
        const request = requests[index]!;
        queue = queue.then(async () => {
          if (failure) return;
          try {
            post({ index, done: await packOne(reader, packer, scratch, pool, index, request, chunkBytes, progress, post) });
          } catch (error) {
            fail(tensorError(request.tensor.name, error));
          }
        });
      },
      recycle: (buffer) => pool.give(buffer),
      stop: () => queue,
    };
    return lane;
  };

  const worker = (wasm: CompiledBuild): Lane => {
    const data = { [WORKER_MARKER]: true, input: input.path, identity: input.identity, backend, progress, wasm };
    const thread: Worker = startWorker(import.meta.url, data, 'workers: 1');
    const lane: Lane = {
      busy: new Set(),
      ready: false,
      send: (index) => thread.postMessage({ index, request: requests[index]!, chunkBytes } satisfies ToWorker),
      recycle: (buffer) => thread.postMessage({ recycle: buffer } satisfies ToWorker, [buffer]),
      async stop(now) {
        thread.removeAllListeners('exit');
        if (now) return void (await thread.terminate());
        // Finished: it closes the input and exits on its own, after its last tensor.
        const exited = new Promise((resolve) => thread.once('exit', resolve));
        thread.postMessage({ close: true } satisfies ToWorker);
        await exited;
      },
    };
    thread.on('message', (message: FromWorker) => ('error' in message ? fail(rebuildError(message.error)) : receive(lane, message)));
    const packing = () => [...lane.busy].map((i) => JSON.stringify(requests[i]!.tensor.name)).join(', ');
    thread.on('error', (error) =>
      fail(
        new BackendError(
          'BACKEND_UNAVAILABLE',
          `the worker thread packing tensor ${packing() || '(none)'} failed: ${describeError(error)}; run again with fewer workers (workers: 1 packs in this thread).`,
          { cause: error },
        ),
      ),
    );
    thread.on('exit', (code) =>
      fail(new BackendError('BACKEND_UNAVAILABLE', `a worker thread stopped (exit code ${code}) while packing tensor ${packing() || '(none)'}; run again, or with workers: 1 (this thread).`)),
    );
    return lane;
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
    async start(file, all, bytes) {
      requests = all;
      chunkBytes = bytes;
      // Workers first, so that a tie goes to one of them: this thread also writes.
      const wasm = await compiledBuild(backend);
      for (let i = 0; i < workerCount; i++) lanes.push(worker(wasm));
      if (makePacker) {
        try {
          lanes.push(thisThread(await makePacker(), file));
        } catch (error) {
          await Promise.all(lanes.splice(0).map((lane) => lane.stop(true)));
          throw error;
        }
      }
      dispatch();
    },
    async pack(index, writer, target, onProgress) {
      head = index;
      // Before any worker is ready (thisThreadPacks: false) nothing is sent yet: the slot waits.
      const slot = slotOf(index);
      dispatch();
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
        } else {
          await (target ? writePositioned(event.bytes, received, plan.codeBytes, scaleBytes, writer, target) : writer.write(event.bytes));
          received += event.bytes.length;
          if (!failure) slot.lane?.recycle(event.bytes.buffer as ArrayBuffer);
        }
      }
    },
    async finish() {
      ended = true;
      await (stopping ?? Promise.all(lanes.splice(0).map((lane) => lane.stop(false))));
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
 * The packing threads, chosen once the tensors to pack are known: `workers` of them (this one
 * among them; no more than there are tensors), or by default as many as the CPUs (up to
 * DEFAULT_MAX_WORKERS) where there is enough to pack to pay for starting workers.
 */
function chosenPacking(
  source: FileSource,
  workers: number | undefined,
  thisThreadPacks: boolean,
  backend: FileBackend,
  progress: boolean,
): TensorPacking & { kind: string; workers: number; workerThreads: number } {
  let chosen: TensorPacking | undefined;
  let inThread: Packer | undefined;
  const kinds = new Set<string>();
  const choice = {
    kind: backend as string,
    workers: 1,
    workerThreads: 0,
    async start(file: SafetensorsFile, requests: readonly PackRequest[], chunkBytes: number) {
      const packBytes = requests.reduce((sum, r) => sum + r.tensor.byteLength, 0);
      const wanted = workers ?? (packBytes < PARALLEL_MIN_BYTES ? 1 : Math.min(availableParallelism(), DEFAULT_MAX_WORKERS));
      const count = Math.max(1, Math.min(wanted, requests.length));
      const onKind = (kind: string) => {
        kinds.add(kind);
        choice.kind = [...kinds].join(', ');
      };
      const makePacker = async () => {
        inThread = await createPacker(backend);
        onKind(inThread.kind);
        return inThread;
      };
      choice.workerThreads = requests.length === 0 ? 0 : thisThreadPacks ? count - 1 : count;
      choice.workers = choice.workerThreads + (thisThreadPacks ? 1 : 0);
      chosen =
        thisThreadPacks && choice.workerThreads === 0
          ? inThreadPacking(await makePacker())
          : threadPacking(source, thisThreadPacks ? makePacker : null, choice.workerThreads, backend, progress, onKind);
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
    throw new InvalidInputError('INVALID_ARGUMENT', `workers must be a positive integer (threads packing: 1 is this thread alone, N adds N - 1 worker threads), got ${describeValue(workers)}.`);
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
  const { workers: workersOption, thisThreadPacks = true, backend = 'auto', ...quantizeOptions } = options;
  const workers = checkWorkers(workersOption);
  if (typeof thisThreadPacks !== 'boolean') {
    throw new InvalidInputError('INVALID_ARGUMENT', `thisThreadPacks must be true or false, got ${describeValue(thisThreadPacks)}.`);
  }
  if (!WORKER_BACKENDS.includes(backend)) {
    throw new InvalidInputError('INVALID_ARGUMENT', `backend must be one of ${WORKER_BACKENDS.join(', ')} (WebGPU devices do not cross threads), got ${describeValue(backend)}.`);
  }
  const source = await fileSource(input);
  try {
    await checkOutputFile(output, { distinctFrom: [source] });
    const packing = chosenPacking(source, workers, thisThreadPacks, backend, quantizeOptions.onProgress !== undefined);
    const report = await quantizeSafetensorsWith(source, atomicFileSink(output, { distinctFrom: [source] }), packing, {
      ...quantizeOptions,
      chunkBytes: quantizeOptions.chunkBytes ?? FILE_CHUNK_BYTES,
    });
    return { ...report, backend: packing.kind, workers: packing.workers, workerThreads: packing.workerThreads };
  } finally {
    await source.close().catch(() => undefined);
  }
}
