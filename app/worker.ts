// The quantization worker: answers app/protocol.ts's requests one job at a time (a cancel acts at
// once). The library runs here, off the page's thread: the backend is created per job
// (createBackend's choice and its explain() go back with the result), inputs are read from the
// Files as they are needed, and outputs go to the Origin Private File System when the browser
// gives a worker one (sync access handles: positional writes, past 2 GB), else to memory.
//
// Test hooks, read from the worker's own URL (worker.js?storage=memory&memoryLimit=N): the page
// passes them through so a suite can force the in-memory path and its limit.

import { createBackend } from '../src/backends/select.js';
import { AutoBackend } from '../src/backends/auto.js';
import { useWasmSources } from '../src/backends/wasm/loader.js';
import { EdgeMoqError } from '../src/errors.js';
import { createPacker } from '../src/packed/index.js';
import type { Packer } from '../src/packed/packer.js';
import type { AppOptions, BackendChoice, Reply, Request, ResultRow } from './protocol.js';
import { CancelToken, JobCancelled } from './jobs/cancel.js';
import { tensorHistogram } from './jobs/histogram.js';
import { memoryStore, openOpfsFolder, opfsStore, type OpfsDirectory, type OutputStore } from './jobs/io.js';
import { openModel, type NamedBlob } from './jobs/model.js';
import { runQuantizeJob, type JobProgress } from './jobs/quantize.js';

useWasmSources({
  simd: new URL('./edge-moq-simd.wasm', import.meta.url),
  scalar: new URL('./edge-moq-scalar.wasm', import.meta.url),
});

const scope = globalThis as unknown as {
  postMessage(message: Reply): void;
  addEventListener(type: 'message', listener: (event: MessageEvent<Request>) => void): void;
  location?: { href: string };
};
const hooks = new URL(scope.location?.href ?? 'http://localhost/').searchParams;
const forceMemory = hooks.get('storage') === 'memory';
/**
 * Without OPFS, outputs are held in memory: past this much the job stops with a clear error
 * rather than the tab running out of memory (a Blob over 2 GiB is where browsers start failing).
 */
const MEMORY_LIMIT = 2 ** 31 - 2 ** 24;
const memoryLimit = hooks.has('memoryLimit') ? Number(hooks.get('memoryLimit')) : MEMORY_LIMIT;

/** Sends at most this many progress messages a second (the last one of a job always goes). */
const PROGRESS_PER_SECOND = 10;

const reply = (message: Reply) => scope.postMessage(message);

let opfs: Promise<OpfsDirectory | null> | null = null;
const opfsFolder = () => (opfs ??= forceMemory ? Promise.resolve(null) : openOpfsFolder());

interface Running {
  id: number;
  token: CancelToken;
}
let running: Running | null = null;

/** What the histogram of the last job needs: its files, options and rows. */
let last: { files: NamedBlob[]; options: AppOptions; rows: ResultRow[]; onnxOps?: Map<string, string> } | null = null;
/** The last finished job's OPFS files stay for its downloads until the next job finishes. */
let keptOutputs: string[] = [];
let histogramPacker: Promise<Packer> | null = null;

function errorReply(id: number, error: unknown): Reply {
  if (error instanceof JobCancelled) return { type: 'cancelled', id };
  if (error instanceof EdgeMoqError) return { type: 'error', id, code: error.code, message: error.message };
  if (error instanceof RangeError && /allocat|memory|Array buffer/i.test(error.message)) {
    return { type: 'error', id, code: 'IO', message: `the browser ran out of memory (${error.message}); quantize a smaller model, or close other tabs and try again.` };
  }
  return { type: 'error', id, code: 'INTERNAL', message: error instanceof Error ? error.message : String(error) };
}

async function backendFor(choice: BackendChoice): Promise<{ packer: Packer; kind: string; explain: string; dispose(): void }> {
  const backend = await createBackend({ kind: choice });
  try {
    // 'auto' that found a real GPU packs on it; createPacker(auto) would pack on its WebAssembly side.
    const packer = await createPacker(backend instanceof AutoBackend ? backend.gpu : backend);
    return {
      packer,
      kind: packer.kind,
      explain: backend.explain(),
      dispose: () => {
        packer.dispose();
        backend.dispose();
      },
    };
  } catch (error) {
    backend.dispose();
    throw error;
  }
}

async function quantize(request: Extract<Request, { type: 'quantize' }>, token: CancelToken): Promise<void> {
  const started = performance.now();
  const folder = await opfsFolder();
  const store: OutputStore = folder ? opfsStore(folder, token) : memoryStore(token, memoryLimit);
  const backend = await backendFor(request.backend);
  let lastSent = 0;
  const onProgress = (p: JobProgress) => {
    const now = performance.now();
    if (now - lastSent < 1000 / PROGRESS_PER_SECOND && p.bytesDone < p.bytesTotal) return;
    lastSent = now;
    reply({ type: 'progress', id: request.id, tensor: p.tensor, index: p.index, count: p.count, bytesDone: p.bytesDone, bytesTotal: p.bytesTotal });
  };
  try {
    const result = await runQuantizeJob(request.files, request.options, { packer: backend.packer, store, token, onProgress });
    last = { files: [...request.files], options: request.options, rows: result.rows, ...(result.onnxOps ? { onnxOps: result.onnxOps } : {}) };
    if (folder) {
      // The previous job's files go now; this job's stay for its downloads.
      const current = new Set<string>();
      for await (const name of folder.keys()) current.add(name);
      for (const name of keptOutputs) if (current.has(name)) await folder.removeEntry(name).catch(() => undefined);
      keptOutputs = [...current].filter((name) => !keptOutputs.includes(name));
    }
    reply({
      type: 'done',
      id: request.id,
      rows: result.rows,
      outputs: result.outputs,
      backend: { kind: backend.kind, explain: backend.explain },
      bytesIn: result.bytesIn,
      bytesOut: result.bytesOut,
      milliseconds: performance.now() - started,
      warnings: result.warnings,
    });
  } finally {
    backend.dispose();
  }
}

async function handle(request: Request): Promise<void> {
  const token = new CancelToken();
  running = { id: request.id, token };
  try {
    if (request.type === 'open') {
      const opened = await openModel(request.files, token);
      reply({ type: 'opened', id: request.id, ...opened });
    } else if (request.type === 'quantize') {
      await quantize(request, token);
    } else if (request.type === 'histogram') {
      if (!last) throw new EdgeMoqError('INVALID_ARGUMENT', 'no model has been quantized yet: the histogram compares a tensor before and after the last quantize job.');
      histogramPacker ??= createPacker('auto');
      const packer = await histogramPacker.catch((error: unknown) => {
        histogramPacker = null;
        throw error;
      });
      const histogram = await tensorHistogram(last.files, last.options, last.rows, request.tensor, request.bins, packer, last.onnxOps, token);
      reply({ type: 'histogram', id: request.id, tensor: request.tensor, ...histogram });
    }
  } catch (error) {
    reply(errorReply(request.id, error));
  } finally {
    running = null;
  }
}

// One job at a time: requests wait their turn; a cancel does not wait.
let queue: Promise<void> = Promise.resolve();
const waiting = new Set<number>();

scope.addEventListener('message', (event) => {
  const request = event.data;
  if (request?.type === 'cancel') {
    if (running) running.token.cancel();
    // Requests queued behind it are dropped too: the user stopped what they asked for.
    for (const id of waiting) reply({ type: 'cancelled', id });
    waiting.clear();
    if (!running) reply({ type: 'cancelled', id: request.id });
    return;
  }
  if (!request || !['open', 'quantize', 'histogram'].includes(request.type)) {
    reply({
      type: 'error',
      id: (request as { id?: number } | undefined)?.id ?? -1,
      code: 'INVALID_ARGUMENT',
      message: `unknown request ${JSON.stringify((request as { type?: unknown } | undefined)?.type)}`,
    });
    return;
  }
  waiting.add(request.id);
  queue = queue.then(async () => {
    if (!waiting.delete(request.id)) return;
    await handle(request);
  });
});

// The worker's OPFS folder is made when it starts; folders closed or crashed tabs left go then (openOpfsFolder).
void opfsFolder();
