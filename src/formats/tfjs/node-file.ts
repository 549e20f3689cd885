// tfjs models between files, for Node (the CLI, `edge-moq/node`). A model is a model.json and
// the files its manifest names beside it; every input is opened and every output checked before
// any work, outputs go to temporary files renamed into place only once all of them are written
// (the model.json last, since it is what names the others), and a folder created for the output
// is removed again when the run fails.

import { mkdir, rmdir } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { FormatError, InvalidInputError } from '../../errors.js';
import type { Packer } from '../../packed/packer.js';
import { dequantizeSafetensors, type DequantizeReport } from '../dequantize-file.js';
import { atomicFileSink, checkOutputFile, fileSource, type FileSource } from '../node-file.js';
import type { QuantizeFileOptions } from '../quantize-file.js';
import { readPackedLayout } from '../packed-metadata.js';
import { DTYPE_BYTES, openSafetensors, type ByteSink, type SafetensorsFile } from '../safetensors.js';
import { checkWeightsFile, weightsFileFor } from './artifacts.js';
import { isPackedTfjsModel, originalSpec, parseTfjsModel, weightSpecs, type TfjsModelJson } from './model-json.js';
import { checkWeightsPath, quantizeTfjsModel, type QuantizeTfjsResult } from './quantize.js';

/** tfjs's converter splits weights into shards of 4 MiB (what browsers cache well). */
export const SHARD_BYTES = 4 * 1024 * 1024;

/**
 * Reads and checks a model.json (and opens nothing else).
 * @param path - the model.json's path
 * @returns the checked model.json, and the open file (close it when done)
 * @throws FormatError for a file that is not a tfjs model.json; EdgeMoqError `IO` when it cannot be read
 */
export async function readTfjsModelFile(path: string): Promise<{ model: TfjsModelJson; source: FileSource }> {
  const source = await fileSource(path);
  try {
    const bytes = new Uint8Array(source.size);
    await source.read(0, bytes);
    return { model: parseTfjsModel(bytes, path), source };
  } catch (error) {
    await source.close();
    throw error;
  }
}

/** What quantizeTfjsFile did, and the weights file it wrote. */
export interface QuantizeTfjsFileResult extends QuantizeTfjsResult {
  /** The packed weights file written beside the model.json. */
  weightsPath: string;
}

/**
 * Packs the tfjs model at `input` (a model.json) into `output` (a model.json) and its weights file.
 * @param input - the model.json's path
 * @param output - the packed model.json's path (its weights file goes beside it)
 * @param packer - packs the weights (WebAssembly or WebGPU)
 * @param options - the packing settings, as for a safetensors file
 * @returns the per-weight report, and the weights file written
 */
export async function quantizeTfjsFile(input: string, output: string, packer: Packer, options: QuantizeFileOptions): Promise<QuantizeTfjsFileResult> {
  const { model, source } = await readTfjsModelFile(input);
  const sources: FileSource[] = [source];
  const opened = new Map<string, FileSource>();
  const open = async (path: string) => {
    const shard = opened.get(path) ?? (await fileSource(join(dirname(input), path)));
    if (!opened.has(path)) sources.push(shard);
    opened.set(path, shard);
    return shard;
  };
  const weightsName = weightsFileFor(basename(output));
  const weightsPath = join(dirname(output), weightsName);
  const folder = await outputFolder(output);
  try {
    // Every input is opened before the outputs are checked against them.
    if (isPackedTfjsModel(model)) {
      const weights = await open(model.weightsManifest[0]!.paths[0]!);
      await checkWeightsFile(await openSafetensors(weights), weightSpecs(model).map(originalSpec), model.weightsManifest[0]!.paths[0]!);
    } else {
      for (const path of model.weightsManifest.flatMap((g) => g.paths)) await open(path);
    }
    await checkOutputFile(output, { distinctFrom: sources });
    await checkOutputFile(weightsPath, { distinctFrom: sources });
    const weights = atomicFileSink(weightsPath, { distinctFrom: sources });
    let weightsDone = false;
    const deferred: ByteSink = {
      write: (bytes) => weights.write(bytes),
      close: async () => {
        weightsDone = true;
      },
      abort: () => weights.abort(),
    };
    const result = await quantizeTfjsModel(model, open, deferred, packer, options, weightsName);
    await writeJsonLast(output, result.modelJson, sources, [{ sink: weights, done: weightsDone }]);
    return { ...result, weightsPath };
  } catch (error) {
    await folder.removeIfCreated();
    throw error;
  } finally {
    await Promise.all(sources.map((s) => s.close().catch(() => undefined)));
  }
}

/** What dequantizeTfjsFile did, and the shard files it wrote. */
export interface DequantizeTfjsFileResult extends DequantizeReport {
  /** The shard files written beside the model.json. */
  shards: string[];
}

/**
 * Writes the packed tfjs model at `input` as a stock float tfjs model at `output` (model.json + shards).
 * @param input - the packed model.json's path
 * @param output - the float model.json's path (its shards go beside it)
 * @param packer - unpacks the codes (WebAssembly or WebGPU)
 * @returns the counts, and the shard files written
 */
export async function dequantizeTfjsFile(input: string, output: string, packer: Packer): Promise<DequantizeTfjsFileResult> {
  const { model, source } = await readTfjsModelFile(input);
  const sources: FileSource[] = [source];
  const folder = await outputFolder(output);
  const shardSinks: { sink: ByteSink; done: boolean }[] = [];
  try {
    if (!isPackedTfjsModel(model)) {
      throw new InvalidInputError('INVALID_ARGUMENT', `${input} is a plain tfjs model, not one packed by edge-moq: it loads in tfjs as it is, so there is nothing to dequantize.`);
    }
    const weightsName = model.weightsManifest[0]!.paths[0]!;
    const weights = await fileSource(join(dirname(input), weightsName));
    sources.push(weights);
    const specs = weightSpecs(model).map(originalSpec);
    const file = await openSafetensors(weights);
    await checkWeightsFile(file, specs, weightsName);
    const dataBytes = unpackedBytes(file);
    // At least one shard while there are weights, even of zero bytes: a manifest group lists its files.
    const count = specs.length === 0 ? 0 : Math.max(1, Math.ceil(dataBytes / SHARD_BYTES));
    const stem = basename(output).replace(/\.json$/i, '');
    const names = Array.from({ length: count }, (_, i) => `${stem}.group1-shard${i + 1}of${count}.bin`);
    await checkOutputFile(output, { distinctFrom: sources });
    for (const name of names) await checkOutputFile(join(dirname(output), name), { distinctFrom: sources });
    for (const name of names) shardSinks.push({ sink: atomicFileSink(join(dirname(output), name), { distinctFrom: sources }), done: false });
    const report = await dequantizeSafetensors(weights, shardSplitter(shardSinks, SHARD_BYTES), packer);
    const { edgeMoq: _packed, ...rest } = model;
    await writeJsonLast(output, { ...rest, weightsManifest: [{ paths: names, weights: specs }] } as TfjsModelJson, sources, shardSinks);
    return { ...report, shards: names };
  } catch (error) {
    await Promise.all(shardSinks.map((s) => s.sink.abort().catch(() => undefined)));
    await folder.removeIfCreated();
    throw error;
  } finally {
    await Promise.all(sources.map((s) => s.close().catch(() => undefined)));
  }
}

/**
 * Writes a packed model held in memory (e.g. from moq.export) as `path` (a model.json) and its weights file.
 * @param path - the model.json's path
 * @param model - the packed model.json and its weights file's bytes
 * @returns the weights file written beside the model.json
 */
export async function writePackedTfjsModel(path: string, model: { modelJson: TfjsModelJson; weights: Uint8Array }): Promise<{ weightsPath: string }> {
  const weightsName = model.modelJson.weightsManifest[0]?.paths[0];
  if (!isPackedTfjsModel(model.modelJson) || weightsName === undefined) {
    throw new InvalidInputError('INVALID_ARGUMENT', 'writePackedTfjsModel takes a packed model { modelJson, weights } (from moq.export or packArtifacts).');
  }
  checkWeightsPath(weightsName);
  const weightsPath = join(dirname(path), weightsName);
  const folder = await outputFolder(path);
  try {
    await checkOutputFile(path);
    await checkOutputFile(weightsPath);
    const weights = atomicFileSink(weightsPath);
    await weights.write(model.weights);
    await writeJsonLast(path, model.modelJson, [], [{ sink: weights, done: true }]);
    return { weightsPath };
  } catch (error) {
    await folder.removeIfCreated();
    throw error;
  }
}

/**
 * The model.json goes last: the files it names are renamed into place first, then it is. A
 * failure before the renames discards every output; one while renaming can leave the new files
 * beside the old model.json, which then no longer matches them and is refused when read
 * (checkWeightsFile), never loaded with the wrong weights.
 */
async function writeJsonLast(path: string, model: TfjsModelJson, sources: readonly FileSource[], others: readonly { sink: ByteSink; done: boolean }[]): Promise<void> {
  const json = atomicFileSink(path, { distinctFrom: sources });
  try {
    if (others.some((o) => !o.done)) throw new FormatError('an output file was not finished; nothing was written');
    await json.write(new TextEncoder().encode(JSON.stringify(model)));
    for (const other of others) await other.sink.close();
    await json.close();
  } catch (error) {
    await Promise.all([json.abort().catch(() => undefined), ...others.map((o) => o.sink.abort().catch(() => undefined))]);
    throw error;
  }
}

/**
 * A sink for dequantizeSafetensors that drops the safetensors header (createSafetensorsWriter
 * writes it first, in one write) and splits the data area after it (the weights, in manifest
 * order) across `shards` of `shardBytes` each; close() marks them done.
 */
function shardSplitter(shards: { sink: ByteSink; done: boolean }[], shardBytes: number): ByteSink {
  let headerDropped = false;
  let written = 0;
  return {
    async write(bytes) {
      if (!headerDropped) {
        headerDropped = true;
        return;
      }
      for (let at = 0; at < bytes.length; ) {
        const shard = Math.floor(written / shardBytes);
        const take = Math.min(bytes.length - at, (shard + 1) * shardBytes - written);
        await shards[shard]!.sink.write(bytes.subarray(at, at + take));
        at += take;
        written += take;
      }
    },
    async close() {
      for (const shard of shards) shard.done = true;
    },
    async abort() {
      await Promise.all(shards.map((s) => s.sink.abort().catch(() => undefined)));
    },
  };
}

/** Bytes of the unpacked weights: packed ones in their original dtype, the rest as stored. */
function unpackedBytes(file: SafetensorsFile): number {
  const { packed, plain } = readPackedLayout(file);
  return packed.reduce((n, p) => n + p.length * DTYPE_BYTES[p.entry.dtype], 0) + plain.reduce((n, t) => n + t.byteLength, 0);
}

/** The output's folder, created (with its parents) if missing, and removed again on failure. */
async function outputFolder(output: string): Promise<{ removeIfCreated(): Promise<void> }> {
  const folder = resolve(dirname(output));
  const created = await mkdir(folder, { recursive: true }).catch(() => undefined);
  return {
    async removeIfCreated() {
      if (!created) return;
      for (let at = folder; at.startsWith(created); at = dirname(at)) await rmdir(at).catch(() => undefined);
    },
  };
}
