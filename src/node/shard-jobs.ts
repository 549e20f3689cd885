// Sharded checkpoints on Node: every shard of a `model.safetensors.index.json` quantized with
// quantizeSafetensors, on worker threads, into an output folder, with a new index.
//
// Everything is checked before any work: the index, each shard's tensors against it, every
// output (none may be an input). Shards are written into a staging folder inside the output
// folder and moved onto their names only when all of them (and the index) are done, the index
// last; a failure anywhere stops every worker and removes the staging folder, so no shard and
// no index of a failed run is left. Memory: each job holds one shard's chunks at a time.
//
// The workers run this very module (new Worker(import.meta.url)), so it works the same from the
// compiled files and from the `edge-moq/node` bundle, with no worker script to ship beside it.

import { randomBytes } from 'node:crypto';
import { renameSync, rmSync } from 'node:fs';
import { chmod, mkdir, rename, rm, rmdir } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { describeError, describeValue } from '../describe.js';
import { BackendError, EdgeMoqError, FormatError, InvalidInputError } from '../errors.js';
import { atomicFileSink, checkOutputFile, FILE_CHUNK_BYTES, fileSource, type FileSource, type OutputTarget } from '../formats/node-file.js';
import { checkRecipeAcross, compileRecipe } from '../formats/recipe.js';
import { quantizeSafetensors, type QuantizeFileOptions, type QuantizeProgress, type QuantizeReport } from '../formats/quantize-file.js';
import { encodeSafetensors, memorySource, openSafetensors, type ByteSink, type ByteSource } from '../formats/safetensors.js';
import { mergeShardIndexes, parseShardIndex, partialIndexName, resolveShardPiece, shardIndexText, shardsOfPiece, type ShardContents, type ShardIndex, type ShardPiece } from '../formats/sharded.js';
import { createPacker } from '../packed/index.js';
import type { Packer } from '../packed/packer.js';
import { compiledBuild, rebuildError, sendable, startWorker, WORKER_BACKENDS, type CompiledBuild, type SentError, type WorkerBackend } from './worker-threads.js';

/** The WebAssembly packers a worker can create (WebGPU devices do not cross threads). */
export type ShardBackend = WorkerBackend;

/** How a sharded checkpoint is quantized: each shard as quantizeSafetensors would, by `jobs` workers. */
export interface ShardedQuantizeOptions extends Omit<QuantizeFileOptions, 'onProgress'> {
  /** Threads quantizing whole shards, each with its own packer: this one and `jobs - 1` worker threads. Default: os.availableParallelism(). 1: this thread alone. */
  jobs?: number;
  /** Process piece i of n only (shards k with k % n === i) and write a partial index: { index, count }, "i/n" or "auto/n". */
  shard?: ShardPiece | string;
  /** Where "auto/n" reads its piece number (default: process.env). */
  env?: Readonly<Record<string, string | undefined>>;
  /** The packer each job creates (default 'auto': WebAssembly SIMD where the runtime has it). */
  backend?: ShardBackend;
  /** Called as the shards' tensors are read (from every job, interleaved): quantizeSafetensors' progress and the shard's name. */
  onProgress?: (progress: ShardProgress) => void;
  /** Called as each shard is finished (before the outputs are moved into place). */
  onShard?: (done: { shard: string; report: QuantizeReport; finished: number; count: number }) => void;
}

/** quantizeSafetensors' progress within one shard. */
export interface ShardProgress extends QuantizeProgress {
  /** The shard's file name, as the index names it. */
  shard: string;
}

/** What a sharded run wrote: the index, the piece, and each shard's report. */
export interface ShardedQuantizeReport {
  /** The index written: the whole run's, or for a piece its partial index. */
  index: string;
  /** The piece processed, or null for a whole run. */
  piece: ShardPiece | null;
  /** Each shard processed, in index order, with quantizeSafetensors' report. */
  shards: { file: string; report: QuantizeReport }[];
  /** The new index's metadata.total_size. */
  totalSize: number;
  /** Every shard's warnings, prefixed with the shard's name. */
  warnings: string[];
}

const WORKER_MARKER = 'edge-moq.shard-worker';

// Staging folders of runs in progress, for removePartialShardOutputs.
const stagingFolders = new Set<string>();

/**
 * Removes the staging folders of the sharded runs in progress, synchronously: for a signal
 * handler about to exit (beside removePartialOutputs); returns how many there were.
 * @returns How many staging folders it removed.
 */
export function removePartialShardOutputs(): number {
  const count = stagingFolders.size;
  for (const folder of stagingFolders) {
    // Workers may still be creating files in it: renamed first, their paths lead nowhere, so
    // nothing new appears in it while it is removed.
    let doomed = folder;
    try {
      renameSync(folder, `${folder}.removing`);
      doomed = `${folder}.removing`;
    } catch {
      // Already gone, or not renameable: removed where it is.
    }
    rmSync(doomed, { recursive: true, force: true });
  }
  stagingFolders.clear();
  return count;
}

interface ShardTask {
  shard: string;
  input: string;
  output: string;
}

interface ShardResult {
  report: QuantizeReport;
  tensors: Array<[string, number]>;
}

/** Any failure of one shard as a typed error that names the shard. */
function shardError(shard: string, error: unknown): EdgeMoqError {
  if (error instanceof EdgeMoqError) return rebuildError({ ...sendable(error), message: `shard ${shard}: ${error.message}` }, error);
  return new BackendError('BACKEND_UNAVAILABLE', `shard ${shard}: quantizing failed unexpectedly (${describeError(error)}); run again with jobs: 1 to see where.`, { cause: error });
}

type ProgressListener = ((progress: ShardProgress) => void) | undefined;

/**
 * One shard quantized into `output`, and the output's tensors (name, data bytes) for the index.
 * Once `stopped()` says so, its next read fails, which ends it without an output.
 */
async function quantizeShard(task: ShardTask, packer: Packer, options: QuantizeFileOptions, onProgress: ProgressListener, stopped: () => boolean = () => false): Promise<ShardResult> {
  const source = await fileSource(task.input);
  let report: QuantizeReport;
  const withProgress = onProgress ? { ...options, onProgress: (progress: QuantizeProgress) => onProgress({ ...progress, shard: task.shard }) } : options;
  const reads: ByteSource = {
    size: source.size,
    read(offset, into) {
      if (stopped()) return Promise.reject(new EdgeMoqError('IO', 'stopped: another shard failed.'));
      return source.read(offset, into);
    },
  };
  try {
    report = await quantizeSafetensors(reads, atomicFileSink(task.output, { distinctFrom: [source] }), packer, { ...withProgress, chunkBytes: options.chunkBytes ?? FILE_CHUNK_BYTES });
  } finally {
    await source.close().catch(() => undefined);
  }
  const written = await fileSource(task.output);
  try {
    const file = await openSafetensors(written);
    return { report, tensors: file.tensors.map((t) => [t.name, t.byteLength]) };
  } finally {
    await written.close().catch(() => undefined);
  }
}

// A worker: creates its packer, then quantizes the shards it is sent, one at a time.
if (!isMainThread && parentPort && (workerData as Record<string, unknown> | null)?.[WORKER_MARKER]) {
  const port = parentPort;
  const { backend, options, progress, wasm } = workerData as { backend: ShardBackend; options: QuantizeFileOptions; progress: boolean; wasm: CompiledBuild };
  const onProgress = progress ? (update: ShardProgress) => port.postMessage({ progress: update }) : undefined;
  const packer = createPacker(backend, { wasm });
  // A packer that cannot be created fails the first shard it is awaited for, with its own error.
  packer.catch(() => undefined);
  port.on('message', async (task: ShardTask) => {
    try {
      const result = await quantizeShard(task, await packer, options, onProgress);
      port.postMessage({ shard: task.shard, result });
    } catch (error) {
      port.postMessage({ shard: task.shard, error: sendable(shardError(task.shard, error)) });
    }
  });
}

interface Job {
  run(task: ShardTask): Promise<ShardResult>;
  stop(): Promise<void>;
}

function threadJob(backend: ShardBackend, wasm: CompiledBuild, options: QuantizeFileOptions, onProgress: ProgressListener): Job {
  const worker = startWorker(import.meta.url, { [WORKER_MARKER]: true, backend, wasm, options, progress: onProgress !== undefined }, 'jobs: 1');
  let pending: { shard: string; resolve: (r: ShardResult) => void; reject: (e: unknown) => void } | null = null;
  let failure: EdgeMoqError | null = null;
  const fail = (error: EdgeMoqError) => {
    failure ??= error;
    pending?.reject(error);
    pending = null;
  };
  worker.on('message', (message: { shard: string; result?: ShardResult; error?: SentError; progress?: ShardProgress }) => {
    if (message.progress) return onProgress?.(message.progress);
    const waiting = pending;
    pending = null;
    if (message.error) waiting?.reject(rebuildError(message.error));
    else waiting?.resolve(message.result!);
  });
  worker.on('error', (error) =>
    fail(
      new BackendError(
        'BACKEND_UNAVAILABLE',
        `the worker thread${pending ? ` quantizing ${pending.shard}` : ''} failed: ${describeError(error)}; run again with fewer jobs (jobs: 1 runs in this thread).`,
        { cause: error },
      ),
    ),
  );
  worker.on('exit', (code) => fail(new BackendError('BACKEND_UNAVAILABLE', `a worker thread stopped (exit code ${code}) before its shard was done.`)));
  return {
    run(task) {
      return new Promise((resolve, reject) => {
        if (failure) return reject(failure);
        pending = { shard: task.shard, resolve, reject };
        worker.postMessage(task);
      });
    },
    async stop() {
      worker.removeAllListeners('exit');
      await worker.terminate();
    },
  };
}

/**
 * Shards quantized in this thread. stop() ends the shard in progress at its next read (its
 * output is discarded, as for any failure) and waits for it, so nothing is left writing.
 */
function inThreadJob(packer: Packer, options: QuantizeFileOptions, onProgress: ProgressListener): Job {
  let stopped = false;
  let running: Promise<unknown> = Promise.resolve();
  return {
    run(task) {
      const result = (async () => {
        try {
          return await quantizeShard(task, packer, options, onProgress, () => stopped);
        } catch (error) {
          throw shardError(task.shard, error);
        }
      })();
      running = result.catch(() => undefined);
      return result;
    },
    async stop() {
      stopped = true;
      await running;
    },
  };
}

const discardSink: ByteSink = { write: async () => undefined, close: async () => undefined, abort: async () => undefined };

/**
 * Checks the quantize options before any shard is read, by quantizeSafetensors itself on a file
 * of no tensors: a bad option fails at once and the same way whatever the jobs, not in whichever
 * worker meets it first.
 */
async function checkQuantizeOptions(packer: Packer, options: QuantizeFileOptions): Promise<void> {
  await quantizeSafetensors(memorySource(encodeSafetensors([])), discardSink, packer, options);
}

function checkJobs(jobs: unknown): number {
  if (jobs === undefined) return availableParallelism();
  if (!(Number.isSafeInteger(jobs) && (jobs as number) >= 1)) {
    throw new InvalidInputError('INVALID_ARGUMENT', `jobs must be a positive integer (threads quantizing shards: this one and jobs - 1 workers), got ${describeValue(jobs)}.`);
  }
  return jobs as number;
}

/**
 * The largest index read, as for a safetensors header: an index lists names only (about 100
 * bytes a tensor), so 100 MB is a million tensors, and a model file given by mistake is refused
 * before it is read into memory.
 */
const MAX_INDEX_BYTES = 100_000_000;

/** An index file's text (the source stays open, so that outputs can be told apart from it). */
async function readIndexText(source: FileSource): Promise<string> {
  if (source.size > MAX_INDEX_BYTES) {
    throw new FormatError(
      `${source.path} is ${source.size} bytes, more than the ${MAX_INDEX_BYTES} bytes an index may take: ` +
        'give the model.safetensors.index.json of a sharded checkpoint (a single .safetensors file is quantized by quantizeSafetensors)',
    );
  }
  const bytes = new Uint8Array(source.size);
  await source.read(0, bytes);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new FormatError(`${source.path}: not UTF-8 text, so not a sharded checkpoint's index (model.safetensors.index.json)`);
  }
}

async function readIndex(path: string): Promise<{ source: FileSource; index: ShardIndex }> {
  const source = await fileSource(path);
  try {
    const index = parseShardIndex(await readIndexText(source), path);
    if (index.shards.length === 0) throw new FormatError(`${path}: "weight_map" is empty, so the index names no shard to quantize`);
    return { source, index };
  } catch (error) {
    await source.close().catch(() => undefined);
    throw error;
  }
}

/** Checks that each shard holds exactly the tensors the index maps to it; returns the open shards. */
async function openShards(index: ShardIndex, folder: string, shards: readonly string[], indexPath: string): Promise<FileSource[]> {
  const opened: FileSource[] = [];
  try {
    const expected = new Map<string, string[]>(shards.map((s) => [s, []]));
    for (const [tensor, shard] of index.weightMap) expected.get(shard)?.push(tensor);
    for (const shard of shards) {
      let source: FileSource;
      try {
        source = await fileSource(join(folder, shard));
      } catch (cause) {
        throw new EdgeMoqError('IO', `${indexPath} names the shard ${shard}, which cannot be read: ${(cause as Error).message}`, { cause });
      }
      opened.push(source);
      let names: Set<string>;
      try {
        names = new Set((await openSafetensors(source)).tensors.map((t) => t.name));
      } catch (error) {
        throw shardError(shard, error);
      }
      const lacking = expected.get(shard)!.filter((name) => !names.has(name));
      if (lacking.length > 0) {
        throw new FormatError(
          `${indexPath} maps ${describeValue(lacking[0])}${lacking.length > 1 ? ` (and ${lacking.length - 1} more)` : ''} to ${shard}, which does not hold it: the index and the shards disagree; nothing was written.`,
        );
      }
      const mapped = new Set(expected.get(shard));
      const extra = [...names].find((name) => !mapped.has(name));
      if (extra !== undefined) {
        const elsewhere = index.weightMap.get(extra);
        throw new FormatError(
          `${shard} holds ${describeValue(extra)}, which ${indexPath} ${elsewhere === undefined ? 'does not list' : `maps to ${elsewhere}`}: ` +
            `${elsewhere === undefined ? 'the index and the shards disagree' : 'a tensor in two shards'}; nothing was written.`,
        );
      }
    }
    return opened;
  } catch (error) {
    await Promise.all(opened.map((s) => s.close().catch(() => undefined)));
    throw error;
  }
}

/**
 * Quantizes a Hugging Face sharded checkpoint: each shard its `indexPath` names (all, or a
 * piece's) with quantizeSafetensors into `outFolder` under its own name, and the new index
 * beside them (the input index's file name; a piece writes `<name>.shard-i-of-n.json`, for
 * mergeIndexFiles). Results do not depend on `jobs`: same bytes. On any error nothing is
 * written (a folder this call created is removed again).
 * @param indexPath The checkpoint's `model.safetensors.index.json`.
 * @param outFolder Where the quantized shards and the new index go.
 * @param options quantizeSafetensors' options plus `jobs`, `shard` and the progress callbacks.
 * @returns Each shard's report, the index written and the piece processed.
 */
export async function quantizeShardedCheckpoint(indexPath: string, outFolder: string, options: ShardedQuantizeOptions): Promise<ShardedQuantizeReport> {
  if (options === null || typeof options !== 'object') {
    throw new InvalidInputError('INVALID_ARGUMENT', 'options must be an object such as { bits: 4, groupSize: 32 }.');
  }
  const { jobs: jobsOption, shard: shardOption, env, backend = 'auto', onShard, onProgress, ...quantizeOptions } = options;
  const jobs = checkJobs(jobsOption);
  const piece = shardOption === undefined ? null : resolveShardPiece(shardOption, env ?? process.env);
  if (typeof outFolder !== 'string' || outFolder === '') throw new InvalidInputError('INVALID_ARGUMENT', `the output folder must be a path, got ${describeValue(outFolder)}.`);
  if (!WORKER_BACKENDS.includes(backend)) {
    throw new InvalidInputError('INVALID_ARGUMENT', `backend must be one of ${WORKER_BACKENDS.join(', ')} (each job packs on WebAssembly), got ${describeValue(backend)}.`);
  }
  const packer = await createPacker(backend);
  try {
    // A recipe's use is checked over the checkpoint (quantizeShards), not shard by shard.
    const shardOptions: QuantizeFileOptions = quantizeOptions.recipe === undefined ? quantizeOptions : { ...quantizeOptions, recipeChecked: true };
    await checkQuantizeOptions(packer, shardOptions);
    return await quantizeShards(indexPath, outFolder, { jobs, piece, backend, onShard, onProgress, quantizeOptions: shardOptions }, packer);
  } finally {
    packer.dispose();
  }
}

interface RunSettings {
  jobs: number;
  piece: ShardPiece | null;
  backend: ShardBackend;
  onShard: ShardedQuantizeOptions['onShard'];
  onProgress: ProgressListener;
  quantizeOptions: QuantizeFileOptions;
}

/** quantizeShardedCheckpoint once its options are checked; `packer` is this thread's (jobs: 1). */
async function quantizeShards(indexPath: string, outFolder: string, settings: RunSettings, packer: Packer): Promise<ShardedQuantizeReport> {
  const { jobs, piece, backend, onShard, onProgress, quantizeOptions } = settings;
  const { source: indexSource, index } = await readIndex(indexPath);
  const inputFolder = dirname(resolve(indexPath));
  const shards = piece ? shardsOfPiece(index.shards, piece) : [...index.shards];
  const sources = [indexSource];
  let createdFolder: string | undefined;
  let staging: string | undefined;
  const workers: Job[] = [];
  let recipeWarnings: string[] = [];
  try {
    // Every tensor of the checkpoint, whichever piece this run packs: a rule may take only other pieces' tensors.
    if (quantizeOptions.recipe !== undefined) recipeWarnings = checkRecipeAcross(compileRecipe(quantizeOptions.recipe, 'options.recipe'), index.weightMap.keys());
    sources.push(...(await openShards(index, inputFolder, shards, indexPath)));
    const indexName = piece ? partialIndexName(basename(indexPath), piece) : basename(indexPath);
    try {
      createdFolder = await mkdir(outFolder, { recursive: true });
    } catch (cause) {
      throw new EdgeMoqError('IO', `cannot create the output folder ${outFolder}: ${(cause as Error).message}`, { cause });
    }
    const targets = new Map<string, OutputTarget>();
    for (const name of [...shards, indexName]) targets.set(name, await checkOutputFile(join(outFolder, name), { distinctFrom: sources }));
    staging = join(outFolder, `.edge-moq-${process.pid}-${randomBytes(6).toString('hex')}.partial`);
    await mkdir(staging);
    stagingFolders.add(staging);
    await Promise.all(sources.map((s) => s.close()));
    sources.length = 0;

    // This thread quantizes shards too (as a file's tensors are packed, file-jobs.ts): it starts
    // at once while the workers boot, and N jobs keep N cores busy, not N plus an idle one.
    const count = Math.max(1, Math.min(jobs, shards.length));
    const wasm = count > 1 ? await compiledBuild(backend) : {};
    while (workers.length < count - 1) workers.push(threadJob(backend, wasm, quantizeOptions, onProgress));
    workers.push(inThreadJob(packer, quantizeOptions, onProgress));
    const results = new Map<string, ShardResult>();
    let next = 0;
    const folder = staging;
    let failed = false;
    const runJob = async (job: Job) => {
      while (next < shards.length && !failed) {
        const shard = shards[next++]!;
        const result = await job.run({ shard, input: join(inputFolder, shard), output: join(folder, shard) }).catch((error: unknown) => {
          failed = true;
          throw error;
        });
        results.set(shard, result);
        onShard?.({ shard, report: result.report, finished: results.size, count: shards.length });
      }
    };
    // The first failure rejects at once; the other workers are stopped below.
    await Promise.all(workers.map(runJob));
    await Promise.all(workers.splice(0).map((w) => w.stop()));

    const outputs: ShardContents[] = shards.map((file) => ({ file, tensors: results.get(file)!.tensors }));
    const text = shardIndexText(index, outputs, piece);
    const indexSink = atomicFileSink(join(staging, indexName));
    await indexSink.write(new TextEncoder().encode(text));
    await indexSink.close();
    // Moved into place shards first and the index last, so that an index never names a shard
    // of an older run; a replaced file keeps its permission bits, as atomicFileSink does.
    for (const name of [...shards, indexName]) {
      const target = targets.get(name)!;
      try {
        if (target.mode !== null) await chmod(join(staging, name), target.mode);
        await rename(join(staging, name), target.path);
      } catch (cause) {
        throw new EdgeMoqError('IO', `cannot move the finished ${name} onto ${target.path}: ${(cause as Error).message}`, { cause });
      }
    }
    await rm(staging, { recursive: true, force: true });
    stagingFolders.delete(staging);
    const reports = shards.map((file) => ({ file, report: results.get(file)!.report }));
    return {
      index: targets.get(indexName)!.path,
      piece,
      shards: reports,
      totalSize: outputs.reduce((sum, o) => sum + o.tensors.reduce((s, [, bytes]) => s + bytes, 0), 0),
      warnings: [...recipeWarnings, ...reports.flatMap(({ file, report }) => report.warnings.map((w) => `${file}: ${w}`))],
    };
  } catch (error) {
    await Promise.all(workers.map((w) => w.stop().catch(() => undefined)));
    await Promise.all(sources.map((s) => s.close().catch(() => undefined)));
    if (staging !== undefined) {
      await rm(staging, { recursive: true, force: true }).catch(() => undefined);
      stagingFolders.delete(staging);
    }
    // The folders this call created, deepest first (each is empty again by now).
    if (createdFolder !== undefined) {
      const top = resolve(createdFolder);
      for (let folder = resolve(outFolder); folder.startsWith(top); folder = dirname(folder)) await rmdir(folder).catch(() => undefined);
    }
    throw error;
  }
}

/**
 * Joins the partial indexes of every piece of a split run (quantizeShardedCheckpoint with
 * `shard`) into `outPath`: the index a one-machine run writes, byte for byte. Refuses overlaps,
 * gaps and pieces of different runs (mergeShardIndexes); the output may not be an input.
 * @param paths Every piece's partial index.
 * @param outPath Where the whole index is written.
 */
export async function mergeIndexFiles(paths: readonly string[], outPath: string): Promise<void> {
  if (!Array.isArray(paths) || paths.length === 0) {
    throw new InvalidInputError('INVALID_ARGUMENT', `mergeIndexFiles needs the partial index of every piece, got ${describeValue(paths)}.`);
  }
  const sources: FileSource[] = [];
  try {
    const partials: { text: string; label: string }[] = [];
    for (const path of paths) {
      const source = await fileSource(path);
      sources.push(source);
      partials.push({ text: await readIndexText(source), label: path });
    }
    const text = mergeShardIndexes(partials);
    await checkOutputFile(outPath, { distinctFrom: sources });
    const sink = atomicFileSink(outPath, { distinctFrom: sources });
    await sink.write(new TextEncoder().encode(text));
    await sink.close();
  } finally {
    await Promise.all(sources.map((s) => s.close().catch(() => undefined)));
  }
}
