// Which of the files a person dropped is the model, and which files it needs: the entry is found
// by content (detectFormat), its companions by the names the entry gives them (an index's shards,
// a tfjs manifest's paths, an ONNX model's external data locations). Missing companions are one
// typed error that names all of them, before any work.

import { FormatError, InvalidInputError } from '../../src/errors.js';
import { detectFormat, type FileFormat } from '../../src/formats/detect-format.js';
import { AttributeField, elementCount, externalLocations, GraphField, readModel, readNode, readTensor, type TensorHeader } from '../../src/formats/onnx/model.js';
import { bytesValue, readFields } from '../../src/formats/onnx/proto.js';
import { openSafetensors, type ByteSource } from '../../src/formats/safetensors.js';
import { parseShardIndex, type ShardIndex } from '../../src/formats/sharded.js';
import { isPackedTfjsModel, parseTfjsModel, type TfjsModelJson } from '../../src/formats/tfjs/model-json.js';
import { openGroups } from '../../src/formats/tfjs/quantize.js';
import { weightsView } from '../../src/formats/tfjs/weights-view.js';
import type { ModelFormat, TensorInfoRow } from '../protocol.js';
import type { CancelToken } from './cancel.js';
import { blobSource } from './io.js';

/** A dropped file: a browser File, or in Node tests any Blob with a name. */
export type NamedBlob = Blob & { readonly name: string };

/** The entry formats in the order one is preferred when several files could be the entry. */
const PRECEDENCE: readonly ModelFormat[] = ['safetensors-index', 'tfjs', 'onnx', 'safetensors'];

/** The largest JSON or ONNX entry read into memory whole (an index, a model.json, an ONNX graph with inline weights). */
const MAX_ENTRY_BYTES = 2 ** 31 - 1;

export interface LocatedModel {
  format: ModelFormat;
  entry: NamedBlob;
  /** Every dropped file by name, the entry included. */
  byName: ReadonlyMap<string, NamedBlob>;
  /** Parsed entry, per format. */
  index?: ShardIndex;
  tfjs?: TfjsModelJson;
  onnx?: Uint8Array;
}

function describeFiles(files: readonly NamedBlob[]): string {
  const names = files
    .slice(0, 5)
    .map((f) => `"${f.name}"`)
    .join(', ');
  return files.length > 5 ? `${names} and ${files.length - 5} more` : names;
}

async function readWhole(file: NamedBlob, token: CancelToken, what: string): Promise<Uint8Array> {
  if (file.size > MAX_ENTRY_BYTES) {
    throw new FormatError(`${file.name} is ${file.size} bytes, more than a browser can read into memory as ${what} (2 GiB)`);
  }
  const bytes = new Uint8Array(file.size);
  await blobSource(file, token).read(0, bytes);
  return bytes;
}

function requireCompanions(entry: NamedBlob, byName: ReadonlyMap<string, NamedBlob>, names: readonly string[], what: string): void {
  const missing = [...new Set(names)].filter((name) => !byName.has(name));
  if (missing.length > 0) {
    throw new InvalidInputError(
      'INVALID_ARGUMENT',
      `${entry.name} needs ${missing.length === 1 ? 'the file' : `${missing.length} more files`} ${missing.map((m) => `"${m}"`).join(', ')} (${what}); ` +
        'open it together with the model (select or drop all its files at once).',
    );
  }
}

/** Finds the entry among `files` and checks that every file it names is among them. */
export async function locateModel(files: readonly NamedBlob[], token: CancelToken): Promise<LocatedModel> {
  if (!Array.isArray(files) || files.length === 0) throw new InvalidInputError('INVALID_ARGUMENT', 'no file was given: open a model file.');
  const byName = new Map<string, NamedBlob>();
  for (const file of files) {
    if (byName.has(file.name)) throw new InvalidInputError('INVALID_ARGUMENT', `two files are named "${file.name}": open one model's files at a time.`);
    byName.set(file.name, file);
  }
  const formats = new Map<NamedBlob, FileFormat>();
  for (const file of files) formats.set(file, file.size === 0 ? 'unknown' : await detectFormat(blobSource(file, token)));
  const candidates = (format: ModelFormat) => files.filter((f) => formats.get(f) === format);
  const format = PRECEDENCE.find((f) => candidates(f).length > 0);
  if (!format) {
    throw new FormatError(
      `${describeFiles(files)}: ${files.length === 1 ? 'not a model file' : 'none of these is a model file'}; ` +
        "open a .safetensors file (or a sharded checkpoint's model.safetensors.index.json with its shards), an .onnx model, or a TensorFlow.js model.json with its weight files",
    );
  }
  let found = candidates(format);
  // An ONNX model's external data can start like a model (byte 0x08): the .onnx name decides.
  if (format === 'onnx' && found.length > 1) found = found.filter((f) => /\.onnx$/i.test(f.name));
  if (found.length !== 1) {
    const all = candidates(format);
    throw new InvalidInputError(
      'INVALID_ARGUMENT',
      `${describeFiles(all)} could each be the model (${format}): open one model at a time${format === 'safetensors' ? ' (a sharded checkpoint: add its model.safetensors.index.json)' : ''}.`,
    );
  }
  const entry = found[0]!;
  if (format === 'safetensors-index') {
    const text = new TextDecoder('utf-8', { fatal: false }).decode(await readWhole(entry, token, 'an index'));
    const index = parseShardIndex(text, entry.name);
    if (index.shards.length === 0) throw new FormatError(`${entry.name}: "weight_map" is empty, so the index names no shard to quantize`);
    requireCompanions(entry, byName, index.shards, 'the shards its weight_map names');
    return { format, entry, byName, index };
  }
  if (format === 'tfjs') {
    const model = parseTfjsModel(await readWhole(entry, token, 'a model.json'), entry.name);
    const paths = isPackedTfjsModel(model) ? [model.weightsManifest[0]!.paths[0]!] : model.weightsManifest.flatMap((g) => g.paths);
    requireCompanions(entry, byName, paths, 'the weight files its manifest names');
    return { format, entry, byName, tfjs: model };
  }
  if (format === 'onnx') {
    const bytes = await readWhole(entry, token, 'an ONNX model');
    requireCompanions(entry, byName, externalLocations(readModel(bytes)), 'its external data');
    return { format, entry, byName, onnx: bytes };
  }
  return { format, entry, byName };
}

/** Opens a companion (shard, weights file, external data) by the name the entry gives it. */
export function companionOpener(model: LocatedModel, token: CancelToken, onRead?: (bytes: number) => void): (name: string) => Promise<ByteSource> {
  return async (name) => {
    const file = model.byName.get(name);
    if (!file) throw new InvalidInputError('INVALID_ARGUMENT', `${model.entry.name} names "${name}", which was not opened with it; open all the model's files at once.`);
    return blobSource(file, token, onRead);
  };
}

const ONNX_TYPES: Readonly<Record<number, [string, number]>> = {
  1: ['FLOAT', 4],
  2: ['UINT8', 1],
  3: ['INT8', 1],
  4: ['UINT16', 2],
  5: ['INT16', 2],
  6: ['INT32', 4],
  7: ['INT64', 8],
  9: ['BOOL', 1],
  10: ['FLOAT16', 2],
  11: ['DOUBLE', 8],
  12: ['UINT32', 4],
  13: ['UINT64', 8],
  16: ['BFLOAT16', 2],
};

/**
 * The model's constant tensors: initializers and Constant nodes' values (exporters such as
 * Paddle's write every weight as a Constant), in subgraphs too; a Constant is named by its
 * output, the name a MatMul's B and a recipe's rules see.
 */
function onnxTensors(bytes: Uint8Array): TensorInfoRow[] {
  const rows: TensorInfoRow[] = [];
  const add = (t: TensorHeader, name: string) => {
    const [dtype, size] = ONNX_TYPES[t.dataType] ?? [`type ${t.dataType}`, 0];
    rows.push({ name, shape: t.dims, dtype, bytes: t.external && t.external.length >= 0 ? t.external.length : elementCount(t.dims) * size });
  };
  const graph = (graphBytes: Uint8Array) => {
    for (const f of readFields(graphBytes, 'a graph')) {
      if (f.number === GraphField.INITIALIZER) {
        const t = readTensor(bytesValue(f, 'initializer'), 'an initializer');
        add(t, t.name);
      } else if (f.number === GraphField.NODE) {
        const node = readNode(f, 'a node');
        for (const a of node.attributes) {
          for (const v of a.fields) {
            if (v.number === AttributeField.G || v.number === AttributeField.GRAPHS) graph(bytesValue(v, 'a subgraph'));
            else if (v.number === AttributeField.T && node.opType === 'Constant' && (node.domain === '' || node.domain === 'ai.onnx') && a.name === 'value' && node.outputs[0]) {
              add(readTensor(bytesValue(v, 'a Constant value'), 'a Constant value'), node.outputs[0]);
            }
          }
        }
      }
    }
  };
  graph(bytesValue(readModel(bytes).graph, 'graph'));
  return rows;
}

export interface OpenedModel {
  format: ModelFormat;
  entry: string;
  tensors: TensorInfoRow[];
  /** All the model's files together. */
  bytes: number;
}

const safetensorsRows = async (source: ByteSource): Promise<TensorInfoRow[]> =>
  (await openSafetensors(source)).tensors.map((t) => ({ name: t.name, shape: [...t.shape], dtype: t.dtype, bytes: t.byteLength }));

/** The model's structure, for the table and the recipe preview: nothing is quantized. */
export async function openModel(files: readonly NamedBlob[], token: CancelToken): Promise<OpenedModel> {
  const model = await locateModel(files, token);
  const open = companionOpener(model, token);
  let tensors: TensorInfoRow[];
  let used: string[] = [model.entry.name];
  if (model.format === 'safetensors') {
    tensors = await safetensorsRows(blobSource(model.entry, token));
  } else if (model.format === 'safetensors-index') {
    tensors = [];
    for (const shard of model.index!.shards) tensors.push(...(await safetensorsRows(await open(shard))));
    used = [...used, ...model.index!.shards];
  } else if (model.format === 'tfjs') {
    const tfjs = model.tfjs!;
    if (isPackedTfjsModel(tfjs)) {
      const weights = tfjs.weightsManifest[0]!.paths[0]!;
      tensors = await safetensorsRows(await open(weights));
      used.push(weights);
    } else {
      const view = await weightsView(await openGroups(tfjs, open));
      tensors = view.tensors.map((t, i) => ({ name: t.name, shape: [...t.shape], dtype: t.dtype, bytes: view.byteLengths[i]! }));
      used.push(...tfjs.weightsManifest.flatMap((g) => g.paths));
    }
  } else {
    tensors = onnxTensors(model.onnx!);
    used.push(...externalLocations(readModel(model.onnx!)));
  }
  const bytes = [...new Set(used)].reduce((n, name) => n + model.byName.get(name)!.size, 0);
  return { format: model.format, entry: model.entry.name, tensors, bytes };
}
