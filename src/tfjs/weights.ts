// A tf.LayersModel's trainable weights as MoQ sees them. Each keeps the tensor its variable held
// after the last step (restored when a step overflows); quantized ones also keep the
// full-precision master copy that straight-through training updates.

import type * as tf from '@tensorflow/tfjs';
import { InvalidInputError } from '../errors.js';
import type { Parameter, Quantizer } from '../quantizer.js';

/** The parts of the TensorFlow.js namespace MoQ uses (tfjs, tfjs-node and custom bundles all fit). */
export type TfNamespace = Pick<typeof tf, 'tensor' | 'clone' | 'keep' | 'tidy' | 'isFinite' | 'all' | 'logicalAnd' | 'CustomCallback'>;

/**
 * Where a step's weights live and how they move: on the host (HostStepDriver, any tfjs backend)
 * or on tfjs's WebGPU device (gpu-training.ts). MoqTraining runs the schedule; a driver holds
 * the masters and the values the variables held after the last step.
 */
export interface StepDriver {
  /** Every trainable weight, in the model's order. */
  readonly tracked: readonly RestorableWeight[];
  readonly quantized: readonly MoqWeight[];
  /**
   * After the optimizer's update: computes the masters the step commits unless it overflowed.
   * `overflow` is what the caller and the loss say; resolves to whether the step overflowed.
   */
  prepare(overflow: boolean): Promise<boolean>;
  /** The quantized weights for Quantizer.register: names and shapes (their data is not read). */
  registrations(): Parameter[];
  /** The quantizer's parameters for this step: the new masters, or after an overflow the held values. */
  parameters(overflow: boolean): Parameter[];
  /** Commits the step the quantizer ran (`quantized`: it wrote the parameters). */
  finish(quantized: boolean, overflow: boolean): void;
  /** Copies of the masters of the quantized weights. */
  readMasters(): Promise<Map<string, Float32Array>>;
  /** Writes the masters back into the variables and frees everything the driver holds. */
  release(): void;
}

/** A weight whose variable can be put back to what it held after the last step. */
export interface RestorableWeight extends MoqWeight {
  restore(): void;
}

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

export class TrackedWeight implements RestorableWeight {
  /** The tensor the variable held after the last step; it shares the variable's data, no copy. */
  private kept: tf.Tensor;

  constructor(
    protected readonly tf: TfNamespace,
    readonly name: string,
    readonly shape: readonly number[],
    readonly variable: tf.Variable,
  ) {
    this.kept = tf.keep(tf.clone(variable));
  }

  /** What the variable held after the last step. */
  get held(): tf.Tensor {
    return this.kept;
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
    this.variable.assign(this.kept);
  }

  dispose(): void {
    this.kept.dispose();
  }

  /** The variable holds `tensor` from now on; the weight owns it. */
  hold(tensor: tf.Tensor): void {
    this.variable.assign(tensor);
    this.replaceHeld(tensor);
  }

  /** Hands `values` to the variable; they must not be modified afterwards (tfjs may share them). */
  protected write(values: Float32Array): void {
    this.hold(this.tf.keep(this.tf.tensor(values, this.shape as number[], 'float32')));
  }

  private replaceHeld(tensor: tf.Tensor): void {
    this.kept.dispose();
    this.kept = tensor;
  }
}

export class QuantizedWeight extends TrackedWeight {
  /** Values the variable held after the last step (what the forward pass used). */
  private heldValues: Float32Array;
  /** Whether the variable held the master itself (before the first quantization, or during the offset). */
  private heldIsMaster = true;

  constructor(
    tf: TfNamespace,
    name: string,
    shape: readonly number[],
    variable: tf.Variable,
    private master: Float32Array,
  ) {
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
   * The difference and the sum are taken in doubles (exact unless the exponents lie more than
   * 29 bits apart); the stored result rounds to float32 once.
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

/** The host path: the quantized weights are read back every step and quantized on the host. */
export class HostStepDriver implements StepDriver {
  readonly quantized: readonly QuantizedWeight[];
  private readonly others: readonly TrackedWeight[];
  private masters: Float32Array[] | null = null;
  private params: Parameter[] = [];

  constructor(
    private readonly tf: TfNamespace,
    readonly tracked: readonly TrackedWeight[],
  ) {
    this.quantized = tracked.filter((w): w is QuantizedWeight => w instanceof QuantizedWeight);
    this.others = tracked.filter((w) => !(w instanceof QuantizedWeight));
  }

  async prepare(overflow: boolean): Promise<boolean> {
    const updated = await Promise.all(this.quantized.map((w) => readValues(w.variable)));
    const overflowed = overflow || updated.some(hasNonFinite) || !(await this.othersFinite());
    this.masters = overflowed ? null : this.quantized.map((w, i) => w.nextMaster(updated[i]!));
    return overflowed;
  }

  registrations(): Parameter[] {
    return this.quantized.map((w) => ({ name: w.name, shape: w.shape, data: w.masterValues }));
  }

  parameters(): Parameter[] {
    // An overflow step that is still counted (eigenvalues enabled) re-quantizes what the model
    // holds, as DeepSpeed re-quantizes its fp16 weights after the fp16 optimizer skipped the step.
    // The forward values are written into a new array in the one pass that reads the master:
    // tfjs keeps the array it is given (write()), so none is reused.
    const { masters } = this;
    this.params = this.quantized.map((w, i) => {
      const data = masters ? masters[i]! : w.lastValues;
      return { name: w.name, shape: w.shape, data, into: new Float32Array(data.length) };
    });
    return this.params;
  }

  finish(quantized: boolean, overflow: boolean): void {
    const { masters } = this;
    this.quantized.forEach((w, i) => {
      const forward = quantized ? this.params[i]!.into! : null;
      if (masters) w.commit(masters[i]!, forward);
      else if (forward) w.requantizeHeld(forward);
      else w.restore();
    });
    for (const w of this.others) {
      if (overflow) w.restore();
      else w.accept();
    }
    this.masters = null;
    this.params = [];
  }

  async readMasters(): Promise<Map<string, Float32Array>> {
    return this.masterCopies();
  }

  /** Copies of the masters, synchronously: they live in host memory on this path. */
  masterCopies(): Map<string, Float32Array> {
    return new Map(this.quantized.map((w) => [w.name, w.masterValues.slice()]));
  }

  release(): void {
    for (const w of this.quantized) w.release();
    for (const w of this.tracked) w.dispose();
  }

  /** Whether the weights MoQ does not read back (biases, unscheduled weights) are all finite. */
  private async othersFinite(): Promise<boolean> {
    const { tf } = this;
    if (this.others.length === 0) return true;
    const finite = tf.tidy(() => this.others.map((w) => tf.all(tf.isFinite(w.variable))).reduce((a, b) => tf.logicalAnd(a, b)));
    try {
      return (await finite.data())[0] === 1;
    } finally {
      finite.dispose();
    }
  }
}

function hasNonFinite(values: Float32Array): boolean {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i]!)) return true;
  return false;
}

/**
 * The listed weights tracked on the host, in the model's order (the order MoQ steps them in, as
 * DeepSpeed steps its optimizer's parameter group). Reads the quantized ones' initial values as masters.
 */
export async function trackWeights(tf: TfNamespace, listing: readonly WeightListing[]): Promise<TrackedWeight[]> {
  return Promise.all(
    listing.map(async ({ name, variable, shape, quantized }) =>
      quantized ? new QuantizedWeight(tf, name, shape, variable, await readValues(variable)) : new TrackedWeight(tf, name, shape, variable),
    ),
  );
}

/** A trainable weight before tracking: its name, variable, and whether MoQ quantizes it. */
export interface WeightListing {
  name: string;
  variable: tf.Variable;
  shape: number[];
  quantized: boolean;
}

/** The model's trainable weights in order; throws when a quantized one does not split into the quantizer's groups. */
export function listWeights(model: tf.LayersModel, quantizer: Quantizer): WeightListing[] {
  const variables = layerVariables(model);
  const names = uniqueNames(variables);
  const groups = quantizer.options.groups;
  return variables.map((v, i) => {
    const name = names[i]!;
    const variable = v.read() as tf.Variable;
    const shape = [...variable.shape];
    const quantized = shape.length > 1 && variable.dtype === 'float32' && quantizer.scheduleFor(name) !== undefined;
    if (quantized && variable.size % groups !== 0) {
      throw new InvalidInputError(
        'GROUPS_DO_NOT_DIVIDE',
        `weight "${name}" (shape [${shape.join(', ')}]) has ${variable.size} elements, which ${groups} quantize groups do not divide; pick a group count that divides every quantized weight.`,
      );
    }
    return { name, variable, shape, quantized };
  });
}

/** A copy of a variable's values (tfjs's CPU backend hands out its own storage). */
export async function readValues(variable: tf.Tensor): Promise<Float32Array> {
  return new Float32Array((await variable.data()) as Float32Array);
}

interface LayerVariableLike {
  name: string;
  originalName?: string;
  read(): tf.Tensor;
}

function layerVariables(model: unknown): LayerVariableLike[] {
  const weights = (model as { trainableWeights?: unknown } | null)?.trainableWeights;
  const looksLikeModel =
    typeof model === 'object' &&
    model !== null &&
    Array.isArray(weights) &&
    weights.every((w) => typeof (w as LayerVariableLike)?.read === 'function' && typeof (w as LayerVariableLike).name === 'string');
  if (!looksLikeModel) {
    throw new InvalidInputError(
      'INVALID_ARGUMENT',
      'model must be a TensorFlow.js layers model (tf.sequential(), tf.model() or tf.loadLayersModel()); graph models and plain objects have no trainable weights to train.',
    );
  }
  const variables = weights as LayerVariableLike[];
  if (variables.length === 0) {
    throw new InvalidInputError(
      'INVALID_ARGUMENT',
      'the model has no trainable weights: build it first (give the first layer an inputShape, or call model.build(shape)) and leave the layers to quantize trainable.',
    );
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
