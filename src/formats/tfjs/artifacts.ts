// tfjs's in-memory model (tf.io.ModelArtifacts: the model.json fields, the weight specs and the
// weights as one buffer) to and from a packed model, in any runtime. unpackModel is what the
// IOHandler (src/tfjs/handler.ts) hands to tf.loadGraphModel / tf.loadLayersModel; packArtifacts
// is how a trained model leaves (src/tfjs/export.ts), packed from tensors packed already.

import { FormatError, InvalidInputError } from '../../errors.js';
import { validatePacked, type PackedTensor } from '../../packed/layout.js';
import type { Packer } from '../../packed/packer.js';
import { axisProblem } from '../axis.js';
import { dequantizeSafetensors } from '../dequantize-file.js';
import { packedEntry, packedMetadata, packedNames, readPackedLayout, type PackedEntry } from '../packed-metadata.js';
import { encodeFloat32, encodeSafetensors, memorySource, openSafetensors, type ByteSource, type SafetensorsFile, type TensorBytes } from '../safetensors.js';
import { checkTfjsModel, isPackedTfjsModel, originalSpec, weightSpecs, type TfjsModelJson, type TfjsWeightSpec } from './model-json.js';
import { checkWeightsPath, packedModelJson } from './quantize.js';
import { storedAs, weightByteLength, weightsView } from './weights-view.js';

/** The parts of tf.io.ModelArtifacts a model is made of (what tfjs's loaders read). */
export interface ArtifactsLike {
  modelTopology: unknown;
  weightSpecs: TfjsWeightSpec[];
  weightData: ArrayBuffer | ArrayBuffer[];
  format?: string;
  generatedBy?: string;
  convertedBy?: string | null;
  trainingConfig?: unknown;
  signature?: unknown;
  userDefinedMetadata?: unknown;
  modelInitializer?: unknown;
  initializerSignature?: unknown;
}

/** model.json fields carried into ModelArtifacts as they are. */
const CARRIED = ['format', 'generatedBy', 'convertedBy', 'trainingConfig', 'signature', 'userDefinedMetadata', 'modelInitializer', 'initializerSignature'] as const;

/**
 * The weights file name a packed model.json at `jsonName` gets by default ("model.json" → "model.moq.safetensors").
 * @param jsonName - the model.json's file name
 * @returns the weights file's name
 */
export function weightsFileFor(jsonName: string): string {
  return `${jsonName.replace(/\.json$/i, '')}.moq.safetensors`;
}

/**
 * A packed model from `artifacts`: the weights in `packed` stored as their codes (each must have
 * as many elements as its float32 weight), every other weight as it is.
 * @param artifacts - the model's topology, weight specs and weight data
 * @param packed - the packed weights by name, and the axis their groups run along when not the last
 * @param options - `weightsPath`: the weights file name the model.json names
 * @returns the packed model.json and its weights file's bytes
 * @throws InvalidInputError naming a packed weight the model lacks or that does not match its spec
 */
export async function packArtifacts(
  artifacts: ArtifactsLike,
  packed: ReadonlyMap<string, { packed: PackedTensor; axis?: number }>,
  options: { weightsPath?: string } = {},
): Promise<{ modelJson: TfjsModelJson; weights: Uint8Array }> {
  const weightsPath = options.weightsPath ?? weightsFileFor('model.json');
  checkWeightsPath(weightsPath);
  // The artifacts are checked as a model.json is: a spec tfjs would misread is refused here.
  const specs = weightSpecs(checkTfjsModel({ modelTopology: artifacts.modelTopology ?? {}, weightsManifest: [{ paths: ['weightData'], weights: artifacts.weightSpecs }] }, 'artifacts'));
  const data = joinBuffers(artifacts.weightData);
  const view = await weightsView([{ specs, shards: [memorySource(data)], paths: ['weightData'] }]);
  const unknown = [...packed.keys()].filter((name) => !specs.some((s) => s.name === name));
  if (unknown.length > 0) {
    throw new InvalidInputError('INVALID_ARGUMENT', `packed tensors ${unknown.map((n) => `"${n}"`).join(', ')} name no weight of the model.`);
  }
  const tensors: TensorBytes[] = [];
  const entries = new Map<string, PackedEntry>();
  let offset = 0;
  specs.forEach((spec, i) => {
    const bytes = data.subarray(offset, offset + view.byteLengths[i]!);
    offset += view.byteLengths[i]!;
    const item = packed.get(spec.name);
    if (!item) {
      tensors.push({ ...view.tensors[i]!, data: bytes } as TensorBytes);
      return;
    }
    const p = item.packed;
    validatePacked(p, `packed "${spec.name}"`);
    const length = spec.shape.reduce((a, b) => a * b, 1);
    if (spec.dtype !== 'float32' || spec.quantization || p.length !== length) {
      throw new InvalidInputError(
        'INVALID_ARGUMENT',
        `packed "${spec.name}" holds ${p.length} values, but the weight is ${spec.dtype}${spec.quantization ? ` (tfjs ${spec.quantization.dtype})` : ''} [${spec.shape.join(', ')}]: only a float32 weight's own values can be packed.`,
      );
    }
    const names = packedNames(spec.name);
    tensors.push({ name: names.codes, dtype: 'U8', shape: [p.codes.length], data: p.codes });
    tensors.push({ name: names.scales, dtype: 'F32', shape: [p.scales.length], data: encodeFloat32(p.scales, 'F32') });
    if (p.zeros) tensors.push({ name: names.zeros, dtype: 'F32', shape: [p.zeros.length], data: encodeFloat32(p.zeros, 'F32') });
    const axis = item.axis ?? spec.shape.length - 1;
    // validatePacked has checked that the groups divide the values: only another axis can make them cross.
    const problem = axis === spec.shape.length - 1 ? null : axisProblem(spec.shape, axis, p.groupSize);
    if (problem) throw new InvalidInputError('INVALID_ARGUMENT', `packed "${spec.name}": ${problem}.`);
    entries.set(spec.name, packedEntry(p, spec.shape, 'F32', axis));
  });
  const weights = encodeSafetensors(tensors, packedMetadata(entries));
  const model: Record<string, unknown> = { modelTopology: artifacts.modelTopology };
  for (const key of CARRIED) if (artifacts[key] !== undefined) model[key] = artifacts[key];
  return { modelJson: packedModelJson(model as unknown as TfjsModelJson, specs, weightsPath), weights };
}

/**
 * A packed model as tfjs loads it: the original weight specs and their values, packed ones
 * unpacked on `packer`. The weights file is checked against the manifest first; nothing is
 * returned from a file that disagrees with it.
 * @param model - a packed model.json
 * @param weights - its weights file
 * @param packer - unpacks the codes (WebAssembly or WebGPU)
 * @returns the model as tfjs artifacts, every weight float again
 * @throws FormatError naming where the weights file disagrees with the manifest; InvalidInputError for a model that is not packed
 */
export async function unpackModel(model: TfjsModelJson, weights: ByteSource, packer: Packer): Promise<ArtifactsLike> {
  if (!isPackedTfjsModel(model)) throw new InvalidInputError('INVALID_ARGUMENT', 'the model is not packed by edge-moq; load it with tfjs directly.');
  const specs = weightSpecs(model).map(originalSpec);
  await checkWeightsFile(await openSafetensors(weights), specs, model.weightsManifest[0]!.paths[0]!);
  const chunks: Uint8Array[] = [];
  await dequantizeSafetensors(
    weights,
    {
      async write(bytes) {
        chunks.push(bytes.slice());
      },
      async close() {},
      async abort() {},
    },
    packer,
  );
  const file = joinBuffers(chunks.map((c) => c.buffer as ArrayBuffer));
  const plain = await openSafetensors(memorySource(file));
  // Written in manifest order, each in its stored dtype: the data area is tfjs's weight buffer.
  const dataStart = plain.tensors[0]?.byteOffset ?? file.length;
  // checkWeightsFile has walked the kept strings as tfjs will, and unpacking copies them as they are.
  return artifactsOf(model, specs, file.slice(dataStart).buffer);
}

/** An unpacked model's artifacts from its shards' bytes (checked against the manifest). */
export async function plainArtifacts(model: TfjsModelJson, shards: ReadonlyMap<string, Uint8Array>): Promise<ArtifactsLike> {
  const groups = model.weightsManifest.map((group) => ({
    specs: group.weights,
    paths: group.paths,
    shards: group.paths.map((path) => memorySource(shards.get(path)!)),
  }));
  await weightsView(groups);
  const data = joinBuffers(model.weightsManifest.flatMap((g) => g.paths.map((p) => shards.get(p)!.slice().buffer as ArrayBuffer)));
  return artifactsOf(model, weightSpecs(model), data.buffer as ArrayBuffer);
}

/**
 * The weights file must hold one tensor per weight, in manifest order, stored as storedAs says
 * (packed ones by their records): anything else means the model.json and the weights file are
 * not each other's, and loading would put values under the wrong names.
 */
export async function checkWeightsFile(file: SafetensorsFile, specs: readonly TfjsWeightSpec[], path: string): Promise<void> {
  const layout = readPackedLayout(file);
  const packed = new Map(layout.packed.map((p) => [p.name, p]));
  const plain = new Map(layout.plain.map((t) => [t.name, t]));
  const order = new Map(file.tensors.map((t, i) => [t.name, i]));
  const disagree = (what: string) => new FormatError(`"${path}" does not match the model.json beside it: ${what}. The files come from different runs; quantize the model again.`);
  if (packed.size + plain.size !== specs.length) throw disagree(`it holds ${packed.size + plain.size} weights, the manifest lists ${specs.length}`);
  let position = -1;
  for (const spec of specs) {
    const p = packed.get(spec.name);
    const t = plain.get(spec.name);
    if (!p && !t) throw disagree(`it has no weight "${spec.name}"`);
    const at = order.get(p ? p.codes.name : spec.name)!;
    if (at < position) throw disagree(`weight "${spec.name}" is out of the manifest's order`);
    position = at;
    const stored = storedAs(spec, t?.byteLength ?? 0);
    const [dtype, shape] = p ? [p.entry.dtype, p.entry.shape] : [t!.dtype, t!.shape];
    if (dtype !== stored.dtype || shape.length !== stored.shape.length || shape.some((d, i) => d !== stored.shape[i])) {
      throw disagree(`weight "${spec.name}" is ${dtype} [${shape.join(', ')}] there but ${spec.dtype} [${spec.shape.join(', ')}] in the manifest`);
    }
    // Kept as raw bytes (strings, complex pairs): their length must be what the spec makes tfjs
    // read (every other kind's length follows from the dtype and shape checked above).
    if (t && (spec.dtype === 'string' || spec.dtype === 'complex64')) {
      const expected = await weightByteLength(spec, file.source, t.byteOffset, t.byteOffset + t.byteLength).catch(() => -1);
      if (expected !== t.byteLength) throw disagree(`weight "${spec.name}" (${spec.dtype} [${spec.shape.join(', ')}]) is not what its ${t.byteLength} bytes there hold`);
    }
  }
}

function artifactsOf(model: TfjsModelJson, specs: TfjsWeightSpec[], weightData: ArrayBuffer): ArtifactsLike {
  const artifacts: ArtifactsLike = { modelTopology: model.modelTopology, weightSpecs: specs, weightData };
  for (const key of CARRIED) {
    if (model[key] !== undefined) (artifacts as unknown as Record<string, unknown>)[key] = model[key];
  }
  return artifacts;
}

/** tf.io.ModelArtifacts' weightData (one buffer or several) as one array of bytes. */
export function joinBuffers(data: ArrayBuffer | ArrayBuffer[] | Uint8Array): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (!Array.isArray(data) || !data.every((b) => b instanceof ArrayBuffer)) {
    throw new InvalidInputError('INVALID_ARGUMENT', 'weightData must be an ArrayBuffer or an array of them (tf.io.ModelArtifacts).');
  }
  const out = new Uint8Array(data.reduce((n, b) => n + b.byteLength, 0));
  let at = 0;
  for (const b of data) {
    out.set(new Uint8Array(b), at);
    at += b.byteLength;
  }
  return out;
}
