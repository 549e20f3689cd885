// MoQ training for a TensorFlow.js layers model, driven as DeepSpeed's engine drives its
// Quantizer: after every optimizer step, once.
//
// Straight-through estimator. The model's variables hold what the forward pass uses (the
// quantized weights); MoQ keeps a full-precision master copy of every quantized weight. After
// the optimizer updated the variables (from gradients taken at the quantized weights), the
// optimizer's change, updated - quantizedBefore, is added to the master; the quantizer then
// quantizes a copy of the masters on the schedule, and the result is written into the variables
// for the next forward pass. This is what DeepSpeed's fp16 optimizer does with its fp32 master
// weights: the optimizer never sees the quantization error.
//
// As in DeepSpeed, nothing is quantized at attach time: the first forward pass uses the model's
// own (full-precision) weights, and the first quantization follows the first optimizer step that
// is past the schedule offset and did not overflow.

import type * as tf from '@tensorflow/tfjs';
import type { Backend } from '../backends/backend.js';
import type { EigenvalueOptions, QuantizerOptions } from '../config.js';
import { describeValue } from '../describe.js';
import { InvalidInputError } from '../errors.js';
import { Quantizer, type BlockEigenvalues, type Parameter, type QuantizerRuntime, type StepReport } from '../quantizer.js';
import { QuantizedWeight, readValues, trackWeights, type MoqWeight, type TfNamespace, type TrackedWeight } from './weights.js';

/** What an eigenvalue provider is given: the model at the weights the step's gradients were taken at. */
export interface EigenvalueContext {
  model: tf.LayersModel;
  /** The quantized weights, in order; key the returned map by their names (not the variables' names, which tfjs may suffix). */
  weights: readonly MoqWeight[];
  /** The configuration's eigenvalue section (maxIter, tol, stability, layerName, layerNum...). */
  options: EigenvalueOptions;
  /** Optimizer steps seen, this one included. */
  step: number;
  quantizer: Quantizer;
}

/**
 * Computes [normalised eigenvalue, block id] per quantized weight name (DeepSpeed's
 * block_eigenvalue); weights left out get factor 1.
 */
export type EigenvalueProvider = (context: EigenvalueContext) => Promise<BlockEigenvalues>;

export interface AttachMoqOptions {
  /**
   * A Quantizer, QuantizerOptions, or a DeepSpeed config (the whole ds_config object or its JSON
   * text, current compression_training or legacy quantize_training form).
   */
  quantizer: Quantizer | QuantizerOptions | Record<string, unknown> | string;
  /** Where the quantization runs, when `quantizer` is not a Quantizer (default: createBackend auto). */
  backend?: Backend;
  /** Receives DeepSpeed's verbose lines, when `quantizer` is not a Quantizer (default console.log). */
  logger?: (line: string) => void;
  /** Required when the configuration enables eigenvalues; called only when a precision switch is due. */
  eigenvalues?: EigenvalueProvider;
}

export interface AfterStepOptions {
  /** The step's loss: a non-finite value marks the step as overflowed. */
  loss?: number | tf.Tensor;
  /** The step overflowed (non-finite gradients the caller detected): it is skipped. */
  overflow?: boolean;
}

/** One optimizer step as MoQ saw it. */
export interface MoqStepReport extends StepReport {
  /** Optimizer steps seen, this one included. */
  step: number;
  /** The step was non-finite and was skipped: weights restored, masters unchanged. */
  overflow: boolean;
  /** Bits of every quantized weight after this step. */
  bits: Record<string, number>;
}

const ATTACH_KEYS = ['quantizer', 'backend', 'logger', 'eigenvalues'];
const AFTER_STEP_KEYS = ['loss', 'overflow'];

/**
 * Attaches MoQ to a built tf.LayersModel. Drive it with `model.fit(..., { callbacks:
 * [moq.callback()] })`, or call `await moq.afterStep({ loss })` after each optimizer step.
 */
export async function attachMoq(tf: TfNamespace, model: tf.LayersModel, options: AttachMoqOptions): Promise<MoqTraining> {
  checkNamespace(tf);
  checkKeys(options, ATTACH_KEYS, 'attachMoq options');
  const quantizer = quantizerFrom(options);
  const eigenvalues = options.eigenvalues;
  if (eigenvalues !== undefined && typeof eigenvalues !== 'function') {
    throw new InvalidInputError('INVALID_ARGUMENT', 'eigenvalues must be a function (context) => Promise<Map<name, [eigenvalue, blockId]>>.');
  }
  if (quantizer.options.eigenvalue.enabled && !eigenvalues) {
    throw new InvalidInputError('INVALID_ARGUMENT',
      'the configuration enables eigenvalues but no eigenvalues provider was given: pass { eigenvalues: (context) => ... }, or turn eigenvalue.enabled off.');
  }
  const weights = await trackWeights(tf, model, quantizer);
  const quantized = weights.filter((w): w is QuantizedWeight => w instanceof QuantizedWeight);
  if (quantized.length === 0) {
    weights.forEach((w) => w.dispose());
    throw new InvalidInputError('INVALID_ARGUMENT',
      `no weight of the model is quantized: none of ${weights.map((w) => `"${w.name}"`).join(', ')} is at least 2-D and matched by a schedule's modules.`);
  }
  quantizer.register(quantized.map((w) => ({ name: w.name, shape: w.shape, data: w.masterValues })));
  return new MoqTraining(tf, model, quantizer, weights, eigenvalues);
}

export class MoqTraining {
  private readonly quantizedWeights: QuantizedWeight[];
  private readonly otherWeights: TrackedWeight[];
  private readonly reports: MoqStepReport[] = [];
  private steps = 0;
  private busy = false;
  private detached = false;

  /** @internal Use attachMoq. */
  constructor(
    private readonly tf: TfNamespace,
    private readonly model: tf.LayersModel,
    readonly quantizer: Quantizer,
    private readonly tracked: readonly TrackedWeight[],
    private readonly eigenvalues: EigenvalueProvider | undefined,
  ) {
    this.quantizedWeights = tracked.filter((w): w is QuantizedWeight => w instanceof QuantizedWeight);
    this.otherWeights = tracked.filter((w) => !(w instanceof QuantizedWeight));
  }

  /** Every trainable weight, in the order MoQ steps them; `quantized` says which MoQ drives. */
  get weights(): readonly MoqWeight[] {
    return this.tracked;
  }

  /** One report per optimizer step seen. */
  get history(): readonly MoqStepReport[] {
    return this.reports;
  }

  /** A model.fit callback: runs afterStep at the end of every batch, after the optimizer's update. */
  callback(): tf.CustomCallback {
    return new this.tf.CustomCallback({
      onBatchEnd: async (_batch, logs) => {
        await this.afterStep(logs?.loss === undefined ? {} : { loss: logs.loss });
      },
    });
  }

  /** Call once after every optimizer step (optimizer.minimize / applyGradients, trainOnBatch). */
  async afterStep(options: AfterStepOptions = {}): Promise<MoqStepReport> {
    if (this.detached) throw new InvalidInputError('INVALID_ARGUMENT', 'MoQ was detached from this model; attach it again to continue.');
    if (this.busy) throw new InvalidInputError('INVALID_ARGUMENT', 'afterStep is already running; await it before the next step.');
    checkKeys(options, AFTER_STEP_KEYS, 'afterStep options');
    if (options.overflow !== undefined && typeof options.overflow !== 'boolean') {
      throw new InvalidInputError('INVALID_ARGUMENT', `overflow must be true or false, got ${describeValue(options.overflow)}.`);
    }
    this.busy = true;
    try {
      return await this.step(options);
    } finally {
      this.busy = false;
    }
  }

  /** Current bits of every quantized weight. */
  bitsByWeight(): Map<string, number> {
    return new Map(this.quantizedWeights.map((w) => [w.name, this.quantizer.bitsOf(w.name)!]));
  }

  /** Copies of the full-precision masters of the quantized weights (the others are the model's own). */
  masterWeights(): Map<string, Float32Array> {
    return new Map(this.quantizedWeights.map((w) => [w.name, w.masterValues.slice()]));
  }

  /** Writes the full-precision masters back into the model and stops; the model trains as before. */
  detach(): void {
    if (this.detached) return;
    if (this.busy) throw new InvalidInputError('INVALID_ARGUMENT', 'afterStep is running; await it before detaching.');
    for (const w of this.quantizedWeights) w.release();
    for (const w of this.tracked) w.dispose();
    this.detached = true;
  }

  private async step(options: AfterStepOptions): Promise<MoqStepReport> {
    const step = this.steps + 1;
    const updated = await Promise.all(this.quantizedWeights.map((w) => readValues(w.variable)));
    const overflow = options.overflow === true
      || !Number.isFinite(await lossValue(options.loss))
      || updated.some(hasNonFinite)
      || !(await this.othersFinite());
    const masters = overflow ? null : this.quantizedWeights.map((w, i) => w.nextMaster(updated[i]!));

    const eigenvalueEnabled = this.quantizer.options.eigenvalue.enabled;
    let blockEigenvalue: BlockEigenvalues | undefined;
    if (eigenvalueEnabled && step % this.quantizer.options.eigenvalue.gasBoundaryResolution === 0 && this.quantizer.anyPrecisionSwitch()) {
      blockEigenvalue = await this.whileRestored(() => this.eigenvalues!({
        model: this.model, weights: this.quantizedWeights, options: this.quantizer.options.eigenvalue, step, quantizer: this.quantizer,
      }));
    }

    // An overflow step that is still counted (eigenvalues enabled) re-quantizes what the model
    // holds, as DeepSpeed re-quantizes its fp16 weights after the fp16 optimizer skipped the step.
    const params: Parameter[] = this.quantizedWeights.map((w, i) => ({
      name: w.name, shape: w.shape, data: (masters ? masters[i]! : w.lastValues).slice(),
    }));
    const report = await this.quantizer.step([params], {
      overflow, eigenvalueEnabled, ...(blockEigenvalue ? { blockEigenvalue } : {}),
    });

    this.quantizedWeights.forEach((w, i) => {
      const forward = report.quantized ? params[i]!.data : null;
      if (masters) w.commit(masters[i]!, forward);
      else if (forward) w.requantizeHeld(forward);
      else w.restore();
    });
    for (const w of this.otherWeights) {
      if (overflow) w.restore();
      else w.accept();
    }
    this.steps = step;
    const entry: MoqStepReport = { ...report, step, overflow, bits: Object.fromEntries(this.bitsByWeight()) };
    this.reports.push(entry);
    return entry;
  }

  /** Whether the weights MoQ does not read back (biases, unscheduled weights) are all finite. */
  private async othersFinite(): Promise<boolean> {
    const { tf } = this;
    if (this.otherWeights.length === 0) return true;
    const finite = tf.tidy(() => this.otherWeights
      .map((w) => tf.all(tf.isFinite(w.variable)))
      .reduce((a, b) => tf.logicalAnd(a, b)));
    try {
      return (await finite.data())[0] === 1;
    } finally {
      finite.dispose();
    }
  }

  /** Runs `fn` with every weight back at the values the step's forward pass used. */
  private async whileRestored<T>(fn: () => Promise<T>): Promise<T> {
    const { tf } = this;
    const current = this.tracked.map((w) => tf.keep(tf.clone(w.variable)));
    try {
      for (const w of this.tracked) w.restore();
      return await fn();
    } finally {
      this.tracked.forEach((w, i) => {
        w.variable.assign(current[i]!);
        current[i]!.dispose();
      });
    }
  }
}

function quantizerFrom(options: AttachMoqOptions): Quantizer {
  const { quantizer, backend, logger } = options;
  if (quantizer instanceof Quantizer) {
    if (backend !== undefined || logger !== undefined) {
      throw new InvalidInputError('INVALID_ARGUMENT', 'backend and logger belong to the Quantizer given: pass them to its constructor (new Quantizer(options, { backend, logger })).');
    }
    return quantizer;
  }
  const runtime: QuantizerRuntime = { ...(backend ? { backend } : {}), ...(logger ? { logger } : {}) };
  if (typeof quantizer === 'string') return Quantizer.fromDeepSpeed(quantizer, runtime);
  if (typeof quantizer !== 'object' || quantizer === null) {
    throw new InvalidInputError('INVALID_ARGUMENT', 'options.quantizer is required: a Quantizer, QuantizerOptions, or a DeepSpeed config (object or JSON text).');
  }
  const deepSpeed = 'compression_training' in quantizer || 'quantize_training' in quantizer;
  return deepSpeed ? Quantizer.fromDeepSpeed(quantizer, runtime) : new Quantizer(quantizer as QuantizerOptions, runtime);
}

function checkNamespace(tf: unknown): void {
  const needed = ['tensor', 'clone', 'keep', 'tidy', 'isFinite', 'all', 'logicalAnd', 'CustomCallback'];
  const missing = typeof tf === 'object' && tf !== null ? needed.filter((k) => typeof (tf as Record<string, unknown>)[k] !== 'function') : needed;
  if (missing.length > 0) {
    throw new InvalidInputError('INVALID_ARGUMENT',
      `tf must be the TensorFlow.js namespace (import * as tf from '@tensorflow/tfjs'); it lacks ${missing.join(', ')}.`);
  }
}

function checkKeys(options: unknown, known: readonly string[], what: string): void {
  if (typeof options !== 'object' || options === null) throw new InvalidInputError('INVALID_ARGUMENT', `${what} must be an object.`);
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) throw new InvalidInputError('INVALID_ARGUMENT', `${what}: unknown key "${key}"; known keys: ${known.join(', ')}.`);
  }
}

/** The loss as a number; no loss given counts as finite. */
async function lossValue(loss: number | tf.Tensor | undefined): Promise<number> {
  if (loss === undefined) return 0;
  if (typeof loss === 'number') return loss;
  if (typeof loss === 'object' && loss !== null && typeof (loss as tf.Tensor).data === 'function') return (await loss.data())[0] ?? 0;
  throw new InvalidInputError('INVALID_ARGUMENT', `loss must be a number or a scalar tf.Tensor, got ${typeof loss}.`);
}

function hasNonFinite(values: Float32Array): boolean {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i]!)) return true;
  return false;
}
