// The quantize job: the same library calls the CLI makes for each format (src/cli/quantize.ts,
// src/node/shard-jobs.ts, src/formats/tfjs/node-file.ts, src/formats/onnx/node-file.ts), on the
// dropped Files and into an OutputStore, so that the page writes the CLI's bytes for the same
// options. Outputs are named as the CLI names them for `-o <stem>.q<bits>.<ext>`; a sharded
// checkpoint's shards and index keep their names, as in the CLI's output folder.

import { describeValue } from '../../src/describe.js';
import { EdgeMoqError, InvalidInputError } from '../../src/errors.js';
import { compileNamePattern } from '../../src/name-pattern.js';
import { externalLocations, readModel } from '../../src/formats/onnx/model.js';
import { quantizeOnnx, type OnnxMatMulReport, type QuantizeOnnxOptions } from '../../src/formats/onnx/quantize.js';
import { quantizeSafetensors, type QuantizeFileOptions, type QuantizeProgress, type QuantizeReport, type TensorReport } from '../../src/formats/quantize-file.js';
import { openSafetensors } from '../../src/formats/safetensors.js';
import { shardIndexText, type ShardContents } from '../../src/formats/sharded.js';
import { checkWeightsFile, weightsFileFor } from '../../src/formats/tfjs/artifacts.js';
import { isPackedTfjsModel, originalSpec, weightSpecs } from '../../src/formats/tfjs/model-json.js';
import { quantizeTfjsModel } from '../../src/formats/tfjs/quantize.js';
import { onnxOptionsFrom } from '../../src/formats/onnx/options.js';
import { checkRecipeAcross, compileRecipe } from '../../src/formats/recipe.js';
import type { Packer } from '../../src/packed/packer.js';
import type { AppOptions, ModelFormat, ResultRow } from '../protocol.js';
import type { CancelToken } from './cancel.js';
import { blobSource, sequentialOnly, type OutputSink, type OutputStore } from './io.js';
import { companionOpener, locateModel, type LocatedModel, type NamedBlob } from './model.js';

/** The CLI's default grid (src/cli/quantize.ts): the full grid, unless codes are asymmetric. */
const DEFAULT_GRID = 'full';

export interface JobProgress {
  tensor: string;
  index: number;
  count: number;
  bytesDone: number;
  bytesTotal: number;
}

export interface JobContext {
  packer: Packer;
  store: OutputStore;
  token: CancelToken;
  /** Called at every progress point of the library (the caller throttles what it sends on). */
  onProgress?: (progress: JobProgress) => void;
}

export interface JobResult {
  format: ModelFormat;
  entry: string;
  rows: ResultRow[];
  outputs: { name: string; file: Blob }[];
  bytesIn: number;
  bytesOut: number;
  warnings: string[];
  /** ONNX: each weight's op (MatMul, Gemm, Gather), for its histogram's layout. */
  onnxOps?: Map<string, string>;
}

const has = (value: unknown) => value !== undefined;

/** AppOptions as the CLI turns its flags into QuantizeFileOptions (same checks, same defaults). */
export function fileOptions(options: AppOptions): QuantizeFileOptions {
  if (options === null || typeof options !== 'object') throw new InvalidInputError('INVALID_ARGUMENT', `options must be an object such as { bits: 4 }, got ${describeValue(options)}.`);
  const out: QuantizeFileOptions = { bits: options.bits };
  if (has(options.groupSize)) out.groupSize = options.groupSize!;
  if (has(options.axis)) out.axis = options.axis!;
  if (has(options.type)) out.type = options.type!;
  if (has(options.grid) || options.type !== 'asymmetric') out.grid = options.grid ?? DEFAULT_GRID;
  for (const name of ['include', 'exclude'] as const) {
    const pattern = options[name];
    if (pattern === undefined) continue;
    // Refused here under the option's own name, as the CLI refuses --include/--exclude.
    compileNamePattern(pattern, name);
    out[name] = pattern;
  }
  if (has(options.recipe)) {
    // A recipe from the page's table or a loaded recipe.json: checked as readRecipeFile checks one.
    compileRecipe(options.recipe!, 'recipe');
    out.recipe = options.recipe!;
  }
  return out;
}

/** AppOptions for an ONNX model, as the CLI builds quantizeOnnx's options. */
export function onnxOptions(options: AppOptions): QuantizeOnnxOptions {
  const file = fileOptions(options);
  if (has(options.axis)) {
    throw new InvalidInputError('INVALID_ARGUMENT', 'axis does not apply to ONNX models: MatMulNBits takes blocks of the group size along K, rounded to nearest.');
  }
  return onnxOptionsFrom(file);
}

/** `model.safetensors` → `model.q4.safetensors`, `model.json` → `model.q4.json`: what `-o` the page gives. */
export function outputName(entry: string, bits: number, ext: string): string {
  const stem = entry.replace(/\.[^.]*$/, '') || entry;
  return `${stem}.q${bits}.${ext}`;
}

/** The CLI's summary row, as data: "symmetric 4-bit, groups of 32 (rule 1)" or "kept: <reason>". */
export function tensorRow(t: TensorReport): ResultRow {
  return {
    name: t.name,
    shape: t.shape,
    dtype: t.dtype,
    packed: t.packed,
    packedAs: t.packed ? `${t.type} ${t.bits}-bit, groups of ${t.groupSize}${t.rule === undefined ? '' : ` (rule ${t.rule + 1})`}${t.note ? `; ${t.note}` : ''}` : `kept: ${t.reason}`,
    bytesIn: t.bytesIn,
    bytesOut: t.bytesOut,
    ...(t.packed ? { maxAbsError: t.maxAbsError!, rmsError: t.rmsError! } : {}),
  };
}

/** The CLI's ONNX table row: the weight, its MatMulNBits settings. */
export function onnxRow(m: OnnxMatMulReport): ResultRow {
  return {
    name: m.weight,
    shape: m.shape,
    dtype: m.dtype,
    packed: true,
    packedAs: `${m.type} ${m.bits}-bit, blocks of ${m.blockSize}${m.rule === undefined ? '' : ` (rule ${m.rule + 1})`} (${m.op}${m.node ? ` ${m.node}` : ''})`,
    bytesIn: m.bytesIn,
    bytesOut: m.bytesOut,
    maxAbsError: m.maxAbsError,
    rmsError: m.rmsError,
  };
}

/** Quantizes the model among `files` with `options`: the CLI's outputs, in `context.store`. */
export async function runQuantizeJob(files: readonly NamedBlob[], options: AppOptions, context: JobContext): Promise<JobResult> {
  const { store, token } = context;
  try {
    token.check();
    const model = await locateModel(files, token);
    const result = await quantizeLocated(model, options, context);
    token.check();
    return result;
  } catch (error) {
    await store.abortAll();
    throw error;
  }
}

async function finish(sinks: readonly OutputSink[]): Promise<{ name: string; file: Blob }[]> {
  return Promise.all(sinks.map(async (s) => ({ name: s.name, file: await s.blob() })));
}

function progressFor(context: JobContext): (p: QuantizeProgress) => void {
  return (p) => {
    // The library reports before each tensor and as chunks are packed: a cancel stops it here.
    context.token.check();
    context.onProgress?.(p);
  };
}

/**
 * The packer with a cancellation check before each pack: every format packs tensor by tensor
 * (or chunk by chunk), so this is a boundary where even an ONNX model with its weights inline,
 * which is read whole and reports no progress, stops.
 */
function cancellable(packer: Packer, token: CancelToken): Packer {
  return {
    get kind() {
      return packer.kind;
    },
    pack(data, options, into) {
      token.check();
      return packer.pack(data, options, into);
    },
    unpack: (packed, out) => packer.unpack(packed, out),
    measure: (original, packed, totals, first) => packer.measure(original, packed, totals, first),
    // The packer belongs to the caller.
    dispose: () => undefined,
  };
}

async function quantizeLocated(model: LocatedModel, options: AppOptions, context: JobContext): Promise<JobResult> {
  const { store, token } = context;
  const packer = cancellable(context.packer, token);
  const base = { format: model.format, entry: model.entry.name };
  if (model.format === 'onnx') {
    const settings = onnxOptions(options);
    const name = outputName(model.entry.name, options.bits, 'onnx');
    const locations = new Set(externalLocations(readModel(model.onnx!)));
    let externalIn = 0;
    // quantizeOnnx reports no progress: the external data read so far stands for it (a model
    // with its weights inline is read whole before it starts, and reports none).
    const total = [...locations].reduce((n, location) => n + (model.byName.get(location)?.size ?? 0), 0);
    const open = companionOpener(model, token, (bytes) => {
      externalIn += bytes;
      context.onProgress?.({ tensor: '', index: 0, count: 1, bytesDone: Math.min(externalIn, total), bytesTotal: total });
    });
    const data = locations.size > 0 ? await store.create(`${name}.data`) : null;
    const result = await quantizeOnnx(model.onnx!, settings, {
      packer,
      externalData: (location) => open(location),
      ...(data ? { externalDataOut: { location: data.name, sink: data } } : {}),
    });
    token.check();
    const out = await store.create(name);
    await out.write(result.model);
    await out.close();
    const { report } = result;
    const warnings = report.matmuls.length === 0 ? ['no MatMul, Gemm or Gather has a constant float weight that was selected; the model was written unchanged.'] : [];
    return {
      ...base,
      rows: report.matmuls.map(onnxRow),
      outputs: await finish(data ? [out, data] : [out]),
      bytesIn: report.bytesIn,
      bytesOut: report.bytesOut,
      warnings,
      onnxOps: new Map(report.matmuls.map((m) => [m.weight, m.op])),
    };
  }
  const fileOpts: QuantizeFileOptions = { ...fileOptions(options), onProgress: progressFor(context) };
  if (model.format === 'safetensors') {
    const sink = await store.create(outputName(model.entry.name, options.bits, 'safetensors'));
    const report = await quantizeSafetensors(blobSource(model.entry, token), sink, packer, fileOpts);
    return { ...base, ...reportParts(report), outputs: await finish([sink]) };
  }
  if (model.format === 'tfjs') {
    const tfjs = model.tfjs!;
    const open = companionOpener(model, token);
    const jsonName = outputName(model.entry.name, options.bits, 'json');
    const weightsName = weightsFileFor(jsonName);
    if (isPackedTfjsModel(tfjs)) {
      // As quantizeTfjsFile: a packed model's weights file is checked against its manifest first.
      const path = tfjs.weightsManifest[0]!.paths[0]!;
      await checkWeightsFile(await openSafetensors(await open(path)), weightSpecs(tfjs).map(originalSpec), path);
    }
    const weights = await store.create(weightsName);
    // The CLI's tfjs weights go through a deferred, non-positional sink: the same layout here.
    const result = await quantizeTfjsModel(tfjs, open, sequentialOnly(weights), packer, fileOpts, weightsName);
    const json = await store.create(jsonName);
    await json.write(new TextEncoder().encode(JSON.stringify(result.modelJson)));
    await json.close();
    return { ...base, ...reportParts(result.report), outputs: await finish([json, weights]) };
  }
  return quantizeShards(model, fileOpts, context, packer);
}

function reportParts(report: QuantizeReport): Pick<JobResult, 'rows' | 'bytesIn' | 'bytesOut' | 'warnings'> {
  return { rows: report.tensors.map(tensorRow), bytesIn: report.bytesIn, bytesOut: report.bytesOut, warnings: report.warnings };
}

/** A failure in one shard, named as the CLI names it (shard-jobs.ts shardError). */
function inShard(shard: string, error: unknown): unknown {
  if (!(error instanceof EdgeMoqError)) return error;
  const named = new EdgeMoqError(error.code, `shard ${shard}: ${error.message}`, { cause: error, ...(error.location ? { location: error.location } : {}) });
  return named;
}

/**
 * A sharded checkpoint: every shard in index order (sorted names) on this one packer, then the
 * index, as quantizeShardedCheckpoint writes them (same shard names, same index text).
 */
async function quantizeShards(model: LocatedModel, options: QuantizeFileOptions, context: JobContext, packer: Packer): Promise<JobResult> {
  const { store, token } = context;
  const index = model.index!;
  const open = companionOpener(model, token);
  // The index and the shards must agree before anything is written (shard-jobs.ts openShards).
  const expected = new Map<string, string[]>(index.shards.map((s) => [s, []]));
  for (const [tensor, shard] of index.weightMap) expected.get(shard)!.push(tensor);
  const dataBytes = new Map<string, number>();
  for (const shard of index.shards) {
    let names: Set<string>;
    try {
      const file = await openSafetensors(await open(shard));
      names = new Set(file.tensors.map((t) => t.name));
      dataBytes.set(
        shard,
        file.tensors.reduce((n, t) => n + t.byteLength, 0),
      );
    } catch (error) {
      throw inShard(shard, error);
    }
    const lacking = expected.get(shard)!.filter((name) => !names.has(name));
    if (lacking.length > 0) {
      throw new EdgeMoqError(
        'MALFORMED_FILE',
        `${model.entry.name} maps "${lacking[0]}"${lacking.length > 1 ? ` (and ${lacking.length - 1} more)` : ''} to ${shard}, which does not hold it: the index and the shards disagree; nothing was written.`,
      );
    }
    const extra = [...names].find((name) => index.weightMap.get(name) !== shard);
    if (extra !== undefined) {
      const elsewhere = index.weightMap.get(extra);
      throw new EdgeMoqError(
        'MALFORMED_FILE',
        `${shard} holds "${extra}", which ${model.entry.name} ${elsewhere === undefined ? 'does not list' : `maps to ${elsewhere}`}: ` +
          `${elsewhere === undefined ? 'the index and the shards disagree' : 'a tensor in two shards'}; nothing was written.`,
      );
    }
  }
  const sinks: OutputSink[] = [];
  const contents: ShardContents[] = [];
  const tensors: TensorReport[] = [];
  // A recipe's use is checked over the checkpoint, as the CLI does (shard-jobs.ts): a shard may hold no tensor a rule takes.
  const warnings: string[] = options.recipe === undefined ? [] : checkRecipeAcross(compileRecipe(options.recipe, 'recipe'), index.weightMap.keys());
  let bytesIn = 0;
  let bytesOut = 0;
  const { onProgress, ...shardOptions } = options;
  const rest: QuantizeFileOptions = options.recipe === undefined ? shardOptions : { ...shardOptions, recipeChecked: true };
  // One progress over all shards: bytes of the shards before this one, plus this one's.
  const bytesTotal = [...dataBytes.values()].reduce((a, b) => a + b, 0);
  let before = 0;
  for (const shard of index.shards) {
    const sink = await store.create(shard);
    sinks.push(sink);
    let report: QuantizeReport;
    try {
      report = await quantizeSafetensors(await open(shard), sink, packer, {
        ...rest,
        onProgress: (p) => onProgress?.({ ...p, tensor: p.tensor ? `${shard}: ${p.tensor}` : '', bytesDone: before + p.bytesDone, bytesTotal }),
      });
    } catch (error) {
      throw inShard(shard, error);
    }
    const written = await openSafetensors(blobSource(await sink.blob(), token));
    contents.push({ file: shard, tensors: written.tensors.map((t) => [t.name, t.byteLength] as const) });
    tensors.push(...report.tensors);
    warnings.push(...report.warnings.map((w) => `${shard}: ${w}`));
    bytesIn += report.bytesIn;
    bytesOut += report.bytesOut;
    before += dataBytes.get(shard)!;
  }
  const indexSink = await store.create(model.entry.name);
  await indexSink.write(new TextEncoder().encode(shardIndexText(index, contents, null)));
  await indexSink.close();
  return {
    format: model.format,
    entry: model.entry.name,
    rows: tensors.map(tensorRow),
    bytesIn,
    bytesOut,
    warnings,
    outputs: await finish([...sinks, indexSink]),
  };
}
