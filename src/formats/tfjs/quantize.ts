// A tfjs model (graph or layers) in, a packed tfjs model out: the weights, seen as a safetensors
// file (weights-view.ts), go through quantizeSafetensors with groups per output channel by
// default (channel-axis.ts); the model.json is the input's with the packed manifest
// (model-json.ts). A model packed already is read from its weights file, so its packed weights
// are carried over and two runs compose, as with safetensors.

import { InvalidInputError } from '../../errors.js';
import type { Packer } from '../../packed/packer.js';
import { quantizeSafetensors, type QuantizeFileOptions, type QuantizeReport } from '../quantize-file.js';
import type { ByteSink, ByteSource } from '../safetensors.js';
import { channelAxes } from './channel-axis.js';
import { isPackedTfjsModel, originalSpec, PACKED_QUANTIZATION, PACKED_TFJS_FORMAT, weightSpecs, type PackedWeightSpec, type TfjsModelJson, type TfjsWeightSpec } from './model-json.js';
import { dtypeLabel, weightsView, type ShardGroup } from './weights-view.js';

/** Opens a shard (or a packed model's weights file) by its manifest path. */
export type ShardOpener = (path: string) => Promise<ByteSource>;

export interface QuantizeTfjsResult {
  modelJson: TfjsModelJson;
  report: QuantizeReport;
}

/**
 * Packs `model`'s float weights into `sink` (the weights file, to be stored at `weightsPath`
 * beside the model.json) and returns the packed model.json. The sink is aborted on any error.
 */
export async function quantizeTfjsModel(model: TfjsModelJson, open: ShardOpener, sink: ByteSink, packer: Packer, options: QuantizeFileOptions, weightsPath: string): Promise<QuantizeTfjsResult> {
  let source: ByteSource;
  let specs: TfjsWeightSpec[];
  try {
    checkWeightsPath(weightsPath);
    specs = weightSpecs(model).map(originalSpec);
    source = isPackedTfjsModel(model) ? await open(model.weightsManifest[0]!.paths[0]!) : (await weightsView(await openGroups(model, open))).source;
  } catch (error) {
    await sink.abort().catch(() => undefined);
    throw error;
  }
  const report = await quantizeSafetensors(source, sink, packer, { axisFor: channelAxes(model), ...options });
  const byName = new Map(specs.map((s) => [s.name, s]));
  report.tensors = report.tensors.map((t) => {
    const spec = byName.get(t.name)!;
    // A tensor stored unchanged always has its reason. float16 is a float dtype: a quantized
    // weight stored as not float is tfjs's uint8 or uint16.
    const reason =
      t.packed || !t.reason!.endsWith('is not a float dtype') ? t.reason : spec.quantization ? `already quantized by tfjs (${spec.quantization.dtype})` : `${spec.dtype} is not a float type`;
    return { ...t, dtype: dtypeLabel(spec), shape: spec.shape, ...(reason === undefined ? {} : { reason }) };
  });
  return { modelJson: packedModelJson(model, specs, weightsPath), report };
}

/** The model.json of a packed model: the input's fields, a one-file manifest of edge-moq specs. */
export function packedModelJson(model: TfjsModelJson, specs: readonly TfjsWeightSpec[], weightsPath: string): TfjsModelJson {
  const weights = specs.map((spec): PackedWeightSpec => {
    const { quantization, ...rest } = spec;
    return { ...rest, quantization: { dtype: PACKED_QUANTIZATION, ...(quantization ? { original: quantization } : {}) } };
  });
  return { ...model, edgeMoq: { format: PACKED_TFJS_FORMAT }, weightsManifest: [{ paths: [weightsPath], weights: weights as unknown as TfjsWeightSpec[] }] };
}

/** Every group's shards, opened. */
export async function openGroups(model: TfjsModelJson, open: ShardOpener): Promise<ShardGroup[]> {
  const groups: ShardGroup[] = [];
  for (const group of model.weightsManifest) {
    groups.push({ specs: group.weights, paths: group.paths, shards: await Promise.all(group.paths.map((path) => open(path))) });
  }
  return groups;
}

/** A packed model's weights file is a plain file name beside its model.json. */
export function checkWeightsPath(path: string): void {
  if (typeof path !== 'string' || path === '' || path.includes('/') || path.includes('\\') || path === '.' || path === '..') {
    throw new InvalidInputError('INVALID_ARGUMENT', `the weights file must be a plain file name beside model.json, got ${JSON.stringify(path)}.`);
  }
}
