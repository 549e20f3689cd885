// A MoQ-trained model leaves training packed, with the weights its forward pass used. Those are
// fakeQuantize(master) at each weight's last bits, step and noise; DeepSpeed's grid is not
// idempotent (a quantized tensor's absmax is itself a level, so quantizing it again moves it),
// so the codes are packed from the masters with the options of the last quantization, never
// from the forward weights. Packing gives exactly what fakeQuantize gave, value for value, so
// the model tfjs loads back holds the training forward weights. Each packed weight is unpacked
// and compared with the model's own values before anything is returned: a mismatch (masters of
// another run, a step that re-quantized the held weights) is refused rather than shipped.
//
// Two things the packed layout cannot hold, and what happens to them:
// - a zero keeps no sign: a forward -0 loads as +0. tfjs's kernels accumulate from +0, where
//   -0 and +0 contribute alike, so predictions do not change; `report.signedZeros` counts them.
// - 1-bit codes have no 0: a master's exact 0, which the forward pass holds as 0, would load as
//   +mean. Such a weight is refused (it shows up as a mismatch).

import type * as tfjs from '@tensorflow/tfjs';
import { InvalidInputError } from '../errors.js';
import { joinBuffers, packArtifacts, type ArtifactsLike } from '../formats/tfjs/artifacts.js';
import type { TfjsModelJson, TfjsWeightSpec } from '../formats/tfjs/model-json.js';
import { weightsView } from '../formats/tfjs/weights-view.js';
import { memorySource } from '../formats/safetensors.js';
import { tensorIdOf } from '../noise.js';
import { createPacker } from '../packed/index.js';
import type { PackedTensor, PackOptions } from '../packed/layout.js';
import type { Packer } from '../packed/packer.js';
import { Quantizer } from '../quantizer.js';
import type { MoqWeight } from './weights.js';

/** What a trained model is exported from: the pieces of a MoqTraining and its model. */
export interface ExportContext {
  /** The TensorFlow.js namespace the model was built with (its io saves the model). */
  tf: Pick<typeof tfjs, 'io'>;
  /** The layers model MoQ trained. */
  model: tfjs.LayersModel;
  /** Full-precision masters by MoQ weight name (await moq.readMasters()). */
  masters: ReadonlyMap<string, Float32Array>;
  /** The quantizer that trained it, in the state of the last step. */
  quantizer: Quantizer;
  /** MoQ's view of the model's trainable weights (moq.weights). */
  weights: readonly MoqWeight[];
}

/** How exportTrainedModel packs and names the weights. */
export interface ExportOptions {
  /** Packs and checks the codes (kept open). Default: a packer on the quantizer's backend, the arithmetic training used. */
  packer?: Packer;
  /** The weights file's name in model.json (default "model.moq.safetensors"). */
  weightsPath?: string;
}

/** One weight of the exported model. */
export interface ExportedWeight {
  /** Its name in model.json (tfjs's originalName). */
  name: string;
  /** Whether it is stored as codes; otherwise as the model holds it. */
  packed: boolean;
  /** Packed weights: the settings of the last quantization. */
  bits?: number;
  type?: PackedTensor['type'];
  groupSize?: number;
  /** Bytes as the model saves it (float32 for packed ones). */
  floatBytes: number;
  /** Bytes in the weights file (codes, scales and zero points for packed ones). */
  storedBytes: number;
}

/** What exportTrainedModel wrote: each weight, packed or kept, and the sizes. */
export interface ExportReport {
  /** Quantize steps taken; 0: nothing was quantized yet, every weight is kept as float32. */
  qsteps: number;
  weights: ExportedWeight[];
  /** The weights as a stock tfjs save holds them. */
  floatBytes: number;
  /** The packed weights file. */
  weightsBytes: number;
  /** The packed model.json, as JSON.stringify writes it. */
  modelJsonBytes: number;
  /** Forward values that were -0 and load as +0 (the layout keeps no sign on a zero). */
  signedZeros: number;
}

/** A packed tfjs model: model.json, its one weights file, and the report. */
export interface ExportedModel {
  modelJson: TfjsModelJson;
  weights: Uint8Array;
  report: ExportReport;
}

/**
 * The packed tfjs model (model.json and its one weights file) of a model trained with MoQ: every
 * weight MoQ quantizes is packed from its master with its final bits, the quantizer's groups,
 * type, rounding and noise of the last step, on DeepSpeed's grid; every other weight is kept as
 * the model holds it. Loaded through `packedModel`, its weights equal the training forward
 * weights (a -0 loads as +0).
 *
 * Before the first quantization the forward weights are the masters: every weight is kept as
 * float32. While a mixed-fp16 blend is active the forward weights have no packed form: refused.
 * @param context - the model, its masters, and the quantizer and weights of the MoqTraining
 * @param options - the packer, and the weights file's name
 * @returns the model.json, its weights file, and a report per weight
 * @throws InvalidInputError naming the argument that is wrong, or why the model cannot be exported now (an active blend)
 */
export async function exportTrainedModel(context: ExportContext, options: ExportOptions = {}): Promise<ExportedModel> {
  const { tf, model, masters, quantizer, weights } = checkContext(context);
  checkNoBlend(quantizer);
  const artifacts = await saveArtifacts(tf, model);
  const specs = artifacts.weightSpecs;
  const data = joinBuffers(artifacts.weightData);
  const view = await weightsView([{ specs, shards: [memorySource(data)], paths: ['weightData'] }]);
  const offsets = [0];
  for (const length of view.byteLengths) offsets.push(offsets[offsets.length - 1]! + length);
  const specIndex = specIndexByVariable(model, specs);

  // Before the first quantization the forward weights are the masters: nothing to pack.
  const trained = quantizer.qsteps === 0 ? [] : weights.filter((w) => w.quantized);
  const packed = new Map<string, { packed: PackedTensor; axis: number }>();
  let signedZeros = 0;
  const packer = trained.length === 0 ? undefined : (options.packer ?? (await createPacker(await quantizer.resolveBackend())));
  try {
    for (const weight of trained) {
      const index = specIndex.get(weight.variable);
      if (index === undefined) {
        throw new InvalidInputError('INVALID_ARGUMENT', `MoQ weight "${weight.name}" is not a weight of this model: pass the model MoQ was attached to, with that MoqTraining's weights.`);
      }
      const spec = specs[index]!;
      const master = masterOf(masters, weight.name, spec);
      const forward = new Float32Array(data.slice(offsets[index]!, offsets[index + 1]!).buffer);
      const codes = await packer!.pack(master, packOptions(quantizer, weight.name));
      signedZeros += checkDecodesTo(await packer!.unpack(codes), forward, master, weight.name, codes, quantizer.qsteps);
      packed.set(spec.name, { packed: codes, axis: spec.shape.length - 1 });
    }
  } finally {
    if (!options.packer) packer?.dispose();
  }

  const { modelJson, weights: file } = await packArtifacts(
    { ...artifacts, weightData: data.buffer as ArrayBuffer },
    packed,
    options.weightsPath === undefined ? {} : { weightsPath: options.weightsPath },
  );
  const report: ExportReport = {
    qsteps: quantizer.qsteps,
    weights: specs.map((spec, i) => exportedWeight(spec, view.byteLengths[i]!, packed.get(spec.name)?.packed)),
    floatBytes: data.length,
    weightsBytes: file.length,
    modelJsonBytes: new TextEncoder().encode(JSON.stringify(modelJson)).length,
    signedZeros,
  };
  return { modelJson, weights: file, report };
}

function checkContext(context: ExportContext): ExportContext {
  if (typeof context !== 'object' || context === null) {
    throw new InvalidInputError('INVALID_ARGUMENT', 'exportTrainedModel takes { tf, model, masters, quantizer, weights }.');
  }
  const { tf, model, masters, quantizer, weights } = context;
  if (typeof tf?.io?.withSaveHandler !== 'function') {
    throw new InvalidInputError('INVALID_ARGUMENT', "tf must be the TensorFlow.js namespace (import * as tf from '@tensorflow/tfjs'); it has no io.withSaveHandler.");
  }
  if (typeof model?.save !== 'function' || !Array.isArray(model.weights)) {
    throw new InvalidInputError('INVALID_ARGUMENT', 'model must be the TensorFlow.js layers model MoQ trained (tf.sequential(), tf.model() or tf.loadLayersModel()).');
  }
  if (!(masters instanceof Map)) throw new InvalidInputError('INVALID_ARGUMENT', 'masters must be a Map of MoQ weight names to Float32Array (await moq.readMasters()).');
  if (!(quantizer instanceof Quantizer)) throw new InvalidInputError('INVALID_ARGUMENT', 'quantizer must be the Quantizer that trained the model (moq.quantizer).');
  if (!Array.isArray(weights)) throw new InvalidInputError('INVALID_ARGUMENT', "weights must be MoQ's weights of the model (moq.weights).");
  return context;
}

/**
 * The blend y = ratio * x + (1 - ratio) * Q(x) is on no grid. It is exactly Q(x) at ratio 0
 * (the kernel multiplies by the float32 ratio, so a ratio that rounds to 0 counts as 0).
 */
function checkNoBlend(quantizer: Quantizer): void {
  const { mixedFp16, changeRatio } = quantizer.options;
  const ratio = quantizer.ratio;
  if (!mixedFp16 || quantizer.qsteps === 0 || Math.fround(ratio) === 0) return;
  const pending = Object.entries(quantizer.state().parameters)
    .filter(([, s]) => s.quantized && s.bits !== s.targetBits)
    .map(([name]) => `"${name}"`);
  const remaining = Math.ceil(ratio / changeRatio);
  const when =
    pending.length > 0
      ? `every weight has reached its target bits (not yet: ${pending.join(', ')}; each precision switch resets the ratio to 1) and the ratio has fallen to 0 (${remaining} quantize steps after the last switch)`
      : `the ratio has fallen to 0, in ${remaining} more quantize step(s)`;
  throw new InvalidInputError(
    'INVALID_ARGUMENT',
    `the mixed-fp16 blend is still active (ratio ${ratio}): the forward weights are ${ratio} × master + ${1 - ratio} × quantized, which no packed code holds. ` +
      `The model becomes exportable once ${when}; or train without mixed_fp16.`,
  );
}

async function saveArtifacts(tf: ExportContext['tf'], model: tfjs.LayersModel): Promise<ArtifactsLike> {
  let saved: ArtifactsLike | undefined;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      saved = artifacts as unknown as ArtifactsLike;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  if (!saved?.weightSpecs || saved.weightData === undefined) {
    throw new InvalidInputError('INVALID_ARGUMENT', 'the model saved no weights: export a built layers model.');
  }
  return saved;
}

/**
 * A layers model saves model.weights in order, each under its originalName; MoQ knows its
 * weights by variable (their names differ where tfjs suffixed duplicates), so the variable
 * is the key. Two weights under one name would load into each other: tfjs itself cannot
 * reload such a save, so it is refused here.
 */
function specIndexByVariable(model: tfjs.LayersModel, specs: readonly TfjsWeightSpec[]): Map<unknown, number> {
  const layerWeights = model.weights;
  if (layerWeights.length !== specs.length || layerWeights.some((w, i) => w.originalName !== specs[i]!.name)) {
    throw new InvalidInputError(
      'INVALID_ARGUMENT',
      `the model saved ${specs.length} weights that do not line up with its ${layerWeights.length} layer weights; export a layers model as tfjs-layers saves it.`,
    );
  }
  const seen = new Set<string>();
  for (const spec of specs) {
    if (seen.has(spec.name)) {
      throw new InvalidInputError(
        'INVALID_ARGUMENT',
        `the model has two weights named "${spec.name}" (layers with the same name in nested models): tfjs would load one into the other. Give the layers unique names and train again.`,
      );
    }
    seen.add(spec.name);
  }
  return new Map(layerWeights.map((w, i) => [w.read(), i]));
}

function masterOf(masters: ReadonlyMap<string, Float32Array>, name: string, spec: TfjsWeightSpec): Float32Array {
  const master = masters.get(name);
  const length = spec.shape.reduce((a, b) => a * b, 1);
  if (!(master instanceof Float32Array) || master.length !== length || spec.dtype !== 'float32') {
    throw new InvalidInputError(
      'INVALID_ARGUMENT',
      `masters has ${master instanceof Float32Array ? `${master.length} values` : 'no Float32Array'} for "${name}", a float32 weight [${spec.shape.join(', ')}] of ${length}: pass await moq.readMasters() of the MoqTraining that trained this model.`,
    );
  }
  return master;
}

/** The options of the weight's last quantization (Quantizer.step), without the blend. */
function packOptions(quantizer: Quantizer, name: string): PackOptions {
  const bits = quantizer.bitsOf(name);
  if (bits === undefined) {
    throw new InvalidInputError('INVALID_ARGUMENT', `the quantizer has never seen "${name}": pass the quantizer MoQ trained this model with (moq.quantizer).`);
  }
  const { groups, type, rounding, seed } = quantizer.options;
  return { bits, groups, type, rounding, seed, step: quantizer.qsteps >>> 0, tensorId: tensorIdOf(name), grid: 'deepspeed' };
}

/** Checks the codes decode to the model's forward values; returns how many -0 become +0. */
function checkDecodesTo(decoded: Float32Array, forward: Float32Array, master: Float32Array, name: string, codes: PackedTensor, qsteps: number): number {
  let signedZeros = 0;
  for (let i = 0; i < forward.length; i++) {
    const value = forward[i]!;
    if (decoded[i] !== value) throw mismatch(decoded, forward, master, name, codes, qsteps, i);
    if (value === 0 && Object.is(value, -0) !== Object.is(decoded[i], -0)) signedZeros++;
  }
  return signedZeros;
}

function mismatch(decoded: Float32Array, forward: Float32Array, master: Float32Array, name: string, codes: PackedTensor, qsteps: number, i: number): InvalidInputError {
  const at = `weight "${name}" [${i}]: the model's forward value is ${forward[i]}, but its master packed as at quantize step ${qsteps} (${codes.bits} bits, ${codes.type}) decodes to ${decoded[i]}`;
  if (codes.type === 'binary' && master[i] === 0) {
    return new InvalidInputError(
      'INVALID_ARGUMENT',
      `${at}: 1-bit codes have no 0, so the master's exact 0 cannot be stored. Export after another training step (the master moves off 0), or train to 2 bits or more.`,
    );
  }
  return new InvalidInputError(
    'INVALID_ARGUMENT',
    `${at}: the model does not hold the quantization of these masters at the quantizer's last step. Pass await moq.readMasters() (not the model's weights: ` +
      'quantizing those again moves them), moq.quantizer and moq.weights of the MoqTraining attached to this model, before moq.detach() (which puts the masters back), ' +
      'and after a step that was not skipped (an overflow step with eigenvalues enabled re-quantizes the held weights, not the masters, as DeepSpeed does).',
  );
}

function exportedWeight(spec: TfjsWeightSpec, floatBytes: number, codes: PackedTensor | undefined): ExportedWeight {
  if (!codes) return { name: spec.name, packed: false, floatBytes, storedBytes: floatBytes };
  const storedBytes = codes.codes.length + 4 * codes.scales.length + 4 * (codes.zeros?.length ?? 0);
  return { name: spec.name, packed: true, bits: codes.bits, type: codes.type, groupSize: codes.groupSize, floatBytes, storedBytes };
}
