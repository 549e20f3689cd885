// A tf.LayersModel's trainable weights as MoQ sees them. Each keeps the tensor its variable held
// after the last step (restored when a step overflows); quantized ones also keep the
// full-precision master copy that straight-through training updates.

import type * as tf from '@tensorflow/tfjs';
import { InvalidInputError } from '../errors.js';
import type { Quantizer } from '../quantizer.js';

/** The parts of the TensorFlow.js namespace MoQ uses (tfjs, tfjs-node and custom bundles all fit). */
export type TfNamespace = Pick<typeof tf, 'tensor' | 'clone' | 'keep' | 'tidy' | 'isFinite' | 'all' | 'logicalAnd' | 'CustomCallback'>;

/** What MoQ knows about one trainable weight. */
export interface MoqWeight {
  /**
   * The weight's name, "layer/weight" as tfjs scopes it ("dense_Dense1/kernel", or
   * "encoder/kernel" for a layer named "encoder"); schedules' module patterns are searched in it.
   */
  readonly name: string;
  readonly shape: readonly number[];
  /** Whether MoQ quantizes it: at least 2-D, float32 and under a schedule. */
  readonly quantized: boolean;
  readonly variable: tf.Variable;
}

export class TrackedWeight implements MoqWeight {
  /** The tensor the variable held after the last step; it shares the variable's data, no copy. */
  private held: tf.Tensor;

  constructor(
    protected readonly tf: TfNamespace,
    readonly name: string,
    readonly shape: readonly number[],
    readonly variable: tf.Variable,
  ) {
    this.held = tf.keep(tf.clone(variable));
  }

  get quantized(): boolean {
    return false;
  }

  /** The optimizer's step stands: remember what the variable holds now. */
  accept(): void {
    this.replaceHeld(this.tf.keep(this.tf.clone(this.variable)));
  }

  /** Puts back what the variable held after the last step. */
  restore(): void {
    this.variable.assign(this.held);
  }

  dispose(): void {
    this.held.dispose();
  }

  /** Hands `values` to the variable; they must not be modified afterwards (tfjs may share them). */
  protected write(values: Float32Array): void {
    const tensor = this.tf.keep(this.tf.tensor(values, this.shape as number[], 'float32'));
    this.variable.assign(tensor);
    this.replaceHeld(tensor);
  }

  private replaceHeld(tensor: tf.Tensor): void {
    this.held.dispose();
    this.held = tensor;
  }
}

export class QuantizedWeight extends TrackedWeight {
  /** Values the variable held after the last step (what the forward pass used). */
  private heldValues: Float32Array;
  /** Whether the variable held the master itself (before the first quantization, or during the offset). */
  private heldIsMaster = true;

  constructor(tf: TfNamespace, name: string, shape: readonly number[], variable: tf.Variable, private master: Float32Array) {
    super(tf, name, shape, variable);
    this.heldValues = master;
  }

  override get quantized(): boolean {
    return true;
  }

  get masterValues(): Float32Array {
    return this.master;
  }

  get lastValues(): Float32Array {
    return this.heldValues;
  }

  /**
   * The master after the optimizer turned the held values into `updated`: the straight-through
   * estimator applies the optimizer's change (computed at the quantized weights) to the master.
   * The difference and the sum are exact in doubles; only the stored result rounds to float32.
   */
  nextMaster(updated: Float32Array): Float32Array {
    if (this.heldIsMaster) return updated;
    const next = new Float32Array(updated.length);
    for (let i = 0; i < next.length; i++) next[i] = this.master[i]! + (updated[i]! - this.heldValues[i]!);
    return next;
  }

  /** Commits a step: the new master, and the values the forward pass uses from now on (null: the master). */
  commit(master: Float32Array, forward: Float32Array | null): void {
    // While the variable held the master, nextMaster returned what the variable holds now.
    const variableHoldsMaster = this.heldIsMaster;
    this.master = master;
    if (forward) {
      this.show(forward, false);
    } else if (variableHoldsMaster) {
      this.accept();
      this.heldValues = master;
    } else {
      this.show(master, true);
    }
  }

  /** An overflow step that still re-quantized the held values (eigenvalues enabled, as in DeepSpeed). */
  requantizeHeld(forward: Float32Array): void {
    this.show(forward, false);
  }

  /** Writes the master back into the variable for good. */
  release(): void {
    this.show(this.master, true);
  }

  private show(values: Float32Array, isMaster: boolean): void {
    this.write(values);
    this.heldValues = values;
    this.heldIsMaster = isMaster;
  }
}

/**
 * The model's trainable weights, in the model's order (the order MoQ steps them in, as DeepSpeed
 * steps its optimizer's parameter group). Reads the quantized ones' initial values as masters.
 */
export async function trackWeights(tf: TfNamespace, model: tf.LayersModel, quantizer: Quantizer): Promise<TrackedWeight[]> {
  const variables = layerVariables(model);
  const names = uniqueNames(variables);
  const groups = quantizer.options.groups;
  return Promise.all(variables.map(async (v, i) => {
    const name = names[i]!;
    const variable = v.read() as tf.Variable;
    const shape = [...variable.shape];
    const quantized = shape.length > 1 && variable.dtype === 'float32' && quantizer.scheduleFor(name) !== undefined;
    if (!quantized) return new TrackedWeight(tf, name, shape, variable);
    if (variable.size % groups !== 0) {
      throw new InvalidInputError('GROUPS_DO_NOT_DIVIDE',
        `weight "${name}" (shape [${shape.join(', ')}]) has ${variable.size} elements, which ${groups} quantize groups do not divide; pick a group count that divides every quantized weight.`);
    }
    return new QuantizedWeight(tf, name, shape, variable, await readValues(variable));
  }));
}

/** A copy of a variable's values (tfjs's CPU backend hands out its own storage). */
export async function readValues(variable: tf.Tensor): Promise<Float32Array> {
  return new Float32Array(await variable.data() as Float32Array);
}

interface LayerVariableLike {
  name: string;
  originalName?: string;
  read(): tf.Tensor;
}

function layerVariables(model: unknown): LayerVariableLike[] {
  const weights = (model as { trainableWeights?: unknown } | null)?.trainableWeights;
  const looksLikeModel = typeof model === 'object' && model !== null && Array.isArray(weights)
    && weights.every((w) => typeof (w as LayerVariableLike)?.read === 'function' && typeof (w as LayerVariableLike).name === 'string');
  if (!looksLikeModel) {
    throw new InvalidInputError('INVALID_ARGUMENT',
      'model must be a TensorFlow.js layers model (tf.sequential(), tf.model() or tf.loadLayersModel()); graph models and plain objects have no trainable weights to train.');
  }
  const variables = weights as LayerVariableLike[];
  if (variables.length === 0) {
    throw new InvalidInputError('INVALID_ARGUMENT',
      'the model has no trainable weights: build it first (give the first layer an inputShape, or call model.build(shape)) and leave the layers to quantize trainable.');
  }
  return variables;
}

/**
 * tfjs suffixes a weight's name ("encoder/kernel_1") when another model in the process used it
 * already; the unsuffixed original is stable across runs, so it is the one schedules and saved
 * states see, unless two weights of this model share it.
 */
function uniqueNames(variables: readonly LayerVariableLike[]): string[] {
  const originals = variables.map((v) => v.originalName ?? v.name);
  const counts = new Map<string, number>();
  for (const name of originals) counts.set(name, (counts.get(name) ?? 0) + 1);
  return originals.map((name, i) => (counts.get(name)! > 1 ? variables[i]!.name : name));
}
