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
// Two paths run this, with the same schedule and the same straight-through update. The host
// path (every tfjs backend) reads the updated weights back each step, quantizes them on the
// host and uploads the result. On tfjs's WebGPU backend the GPU path (gpu-training.ts) keeps
// the masters on tfjs's device and quantizes them there with our kernels: nothing is read back.
//
// As in DeepSpeed, nothing is quantized at attach time: the first forward pass uses the model's
// own (full-precision) weights, and the first quantization follows the first optimizer step that
// is past the schedule offset and did not overflow.

import type * as tf from '@tensorflow/tfjs';
import type { Backend } from '../backends/backend.js';
import { WebGpuBackend } from '../backends/webgpu/backend.js';
import type { EigenvalueOptions, QuantizerOptions } from '../config.js';
import { describeValue } from '../describe.js';
import { InvalidInputError } from '../errors.js';
import { Quantizer, type BlockEigenvalues, type QuantizerRuntime, type StepReport } from '../quantizer.js';
import { exportTrainedModel, type ExportedModel, type ExportOptions } from './export.js';
import { GpuParameterBackend, GpuStepDriver, tfjsDevice, type GpuTfNamespace, type TfWebGpuBackend } from './gpu-training.js';
import { HostStepDriver, listWeights, trackWeights, type MoqWeight, type StepDriver, type TfNamespace } from './weights.js';

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

/** attachMoq's options: the quantizer (or its options or DeepSpeed config) and where it runs. */
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
  /**
   * 'auto' (default): the GPU path when tfjs runs on its 'webgpu' backend and nothing given
   * rules it out, else the host path; 'gpu' throws saying why it cannot run; 'host' always
   * reads the weights back. `moq.path` says which runs and why.
   */
  path?: 'auto' | 'gpu' | 'host';
}

/** Where MoQ's per-step work runs, and why. */
export interface MoqPath {
  /**
   * 'gpu': masters in GPUBuffers on tfjs's WebGPU device, quantized there, nothing read back;
   * 'host': the weights read back each step, quantized on the host (WebAssembly or our WebGPU
   * backend) and uploaded.
   */
  kind: 'gpu' | 'host';
  reason: string;
}

/** What afterStep() is told about the step it follows. */
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
  /**
   * The step was non-finite and was skipped: weights restored, masters unchanged. On the GPU
   * path this is what the caller and the loss say: a non-finite weight that only the GPU sees
   * is restored there just the same, but the host is not told, so the step counts.
   */
  overflow: boolean;
  /** Bits of every quantized weight after this step. */
  bits: Record<string, number>;
}

const ATTACH_KEYS = ['quantizer', 'backend', 'logger', 'eigenvalues', 'path'];
const PATHS = ['auto', 'gpu', 'host'];
const AFTER_STEP_KEYS = ['loss', 'overflow'];

/**
 * Attaches MoQ to a built tf.LayersModel. Drive it with `model.fit(..., { callbacks:
 * [moq.callback()] })`, or call `await moq.afterStep({ loss })` after each optimizer step.
 * @param tf The tfjs namespace the model was built with.
 * @param model The model whose trainable weights MoQ quantizes.
 * @param options The quantizer (or its options or DeepSpeed config) and where it runs.
 * @returns The attached training; detach() it when done.
 */
export async function attachMoq(tf: TfNamespace, model: tf.LayersModel, options: AttachMoqOptions): Promise<MoqTraining> {
  checkNamespace(tf);
  checkKeys(options, ATTACH_KEYS, 'attachMoq options');
  if (options.path !== undefined && !PATHS.includes(options.path)) {
    throw new InvalidInputError('INVALID_ARGUMENT', `path must be 'auto', 'gpu' or 'host', got ${describeValue(options.path)}.`);
  }
  const path = choosePath(tf, model, options);
  let gpu: GpuParameterBackend | undefined;
  if (path.tfBackend) {
    const given = options.backend;
    gpu = given instanceof WebGpuBackend ? new GpuParameterBackend(given, false) : new GpuParameterBackend(await WebGpuBackend.create({ device: path.tfBackend.device }), true);
  }
  try {
    const quantizer = quantizerFrom(options, gpu);
    const eigenvalues = options.eigenvalues;
    if (eigenvalues !== undefined && typeof eigenvalues !== 'function') {
      throw new InvalidInputError('INVALID_ARGUMENT', 'eigenvalues must be a function (context) => Promise<Map<name, [eigenvalue, blockId]>>.');
    }
    if (quantizer.options.eigenvalue.enabled && !eigenvalues) {
      throw new InvalidInputError(
        'INVALID_ARGUMENT',
        'the configuration enables eigenvalues but no eigenvalues provider was given: pass { eigenvalues: (context) => ... }, or turn eigenvalue.enabled off.',
      );
    }
    const listing = listWeights(model, quantizer);
    if (!listing.some((w) => w.quantized)) {
      throw new InvalidInputError(
        'INVALID_ARGUMENT',
        `no weight of the model is quantized: none of ${listing.map((w) => `"${w.name}"`).join(', ')} is at least 2-D and matched by a schedule's modules.`,
      );
    }
    const driver: StepDriver = gpu && path.tfBackend ? await GpuStepDriver.create(tf as GpuTfNamespace, path.tfBackend, listing, gpu) : new HostStepDriver(tf, await trackWeights(tf, listing));
    quantizer.register(driver.registrations());
    return new MoqTraining(tf, model, quantizer, driver, eigenvalues, { kind: path.kind, reason: path.reason });
  } catch (error) {
    gpu?.dispose();
    throw error;
  }
}

/** The GPU path when tfjs computes on WebGPU and nothing given rules it out; else the host path, with the reason. */
function choosePath(tf: TfNamespace, model: tf.LayersModel, options: AttachMoqOptions): MoqPath & { tfBackend?: TfWebGpuBackend } {
  const requested = options.path ?? 'auto';
  if (requested === 'host') return { kind: 'host', reason: "requested (path: 'host')" };
  const found = tfjsDevice(tf);
  let hostReason: string;
  if ('reason' in found) {
    hostReason = found.reason;
  } else if (options.quantizer instanceof Quantizer) {
    hostReason = 'a ready-made Quantizer quantizes on the backend it was built with; pass its options or DeepSpeed config as `quantizer` for the GPU path';
  } else if (largestWeightBytes(model) > found.device.limits.maxStorageBufferBindingSize) {
    hostReason = `a weight of ${largestWeightBytes(model)} bytes is larger than this device binds at once (maxStorageBufferBindingSize ${found.device.limits.maxStorageBufferBindingSize})`;
  } else if (options.backend !== undefined && !(options.backend instanceof WebGpuBackend && options.backend.device === found.device)) {
    hostReason = `the backend given (${options.backend.kind}) does not run on tfjs's GPUDevice; give none, or a WebGpuBackend created with { device: tf.backend().device }`;
  } else {
    return {
      kind: 'gpu',
      reason: `tfjs runs on WebGPU: masters on its device, quantized there${requested === 'gpu' ? " (path: 'gpu')" : ''}`,
      tfBackend: found.backend,
    };
  }
  if (requested === 'gpu') throw new InvalidInputError('INVALID_ARGUMENT', `path 'gpu' cannot run: ${hostReason}.`);
  return { kind: 'host', reason: hostReason };
}

/** Bytes of the model's largest trainable weight (0 for a model that is not a layers model: listWeights says what is wrong). */
function largestWeightBytes(model: tf.LayersModel): number {
  const weights = (model as { trainableWeights?: { shape?: readonly number[] }[] } | null)?.trainableWeights;
  if (!Array.isArray(weights)) return 0;
  return Math.max(0, ...weights.map((w) => 4 * (Array.isArray(w?.shape) ? w.shape.reduce((a, b) => a * b, 1) : 0)));
}

/**
 * MoQ attached to a tfjs layers model (made by attachMoq): call afterStep() after each optimizer
 * step, and detach() to stop.
 */
export class MoqTraining {
  private readonly reports: MoqStepReport[] = [];
  private steps = 0;
  private busy = false;
  private detached = false;

  /** @internal Use attachMoq. */
  constructor(
    private readonly tf: TfNamespace,
    private readonly trainedModel: tf.LayersModel,
    readonly quantizer: Quantizer,
    private readonly driver: StepDriver,
    private readonly eigenvalues: EigenvalueProvider | undefined,
    /** Where the per-step work runs ('gpu' or 'host') and why. */
    readonly path: MoqPath,
  ) {}

  /** The model MoQ trains. */
  get model(): tf.LayersModel {
    return this.trainedModel;
  }

  /** Every trainable weight, in the order MoQ steps them; `quantized` says which MoQ drives. */
  get weights(): readonly MoqWeight[] {
    return this.driver.tracked;
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

  /**
   * Call once after every optimizer step (optimizer.minimize / applyGradients, trainOnBatch).
   * On the GPU path a loss given as a tensor is read back (one value); give a number to avoid it.
   */
  async afterStep(options: AfterStepOptions = {}): Promise<MoqStepReport> {
    if (this.detached) throw new InvalidInputError('INVALID_ARGUMENT', 'MoQ was detached from this model; attach it again to continue.');
    if (this.busy) throw new InvalidInputError('INVALID_ARGUMENT', 'afterStep or export is already running; await it before the next step.');
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
    return new Map(this.driver.quantized.map((w) => [w.name, this.quantizer.bitsOf(w.name)!]));
  }

  /**
   * Copies of the full-precision masters of the quantized weights (the others are the model's
   * own), on the host path, where they live in host memory. On the GPU path use readMasters().
   */
  masterWeights(): Map<string, Float32Array> {
    if (!(this.driver instanceof HostStepDriver)) {
      throw new InvalidInputError('INVALID_ARGUMENT', "the masters live on the GPU on this path (moq.path.kind is 'gpu'): await moq.readMasters() instead.");
    }
    return this.driver.masterCopies();
  }

  /** Copies of the full-precision masters of the quantized weights, on either path (the GPU path reads them back). */
  async readMasters(): Promise<Map<string, Float32Array>> {
    if (this.detached) throw new InvalidInputError('INVALID_ARGUMENT', "MoQ was detached from this model: its masters are the model's weights now.");
    return this.driver.readMasters();
  }

  /**
   * The model packed as it trained (src/tfjs/export.ts): each quantized weight packed from its
   * master at its final bits with the last step's settings, so the model packedModel() loads holds
   * the training forward weights bit for bit. Call it before detach().
   */
  async export(options: ExportOptions = {}): Promise<ExportedModel> {
    if (this.detached) throw new InvalidInputError('INVALID_ARGUMENT', 'MoQ was detached from this model: export before detach(), while the masters are still kept.');
    if (this.busy) throw new InvalidInputError('INVALID_ARGUMENT', 'afterStep or export is running; await it before exporting.');
    const { io } = this.tf as Partial<Pick<typeof tf, 'io'>>;
    if (typeof io?.withSaveHandler !== 'function') {
      throw new InvalidInputError('INVALID_ARGUMENT', 'export saves the model through tf.io.withSaveHandler: attach MoQ with the whole TensorFlow.js namespace.');
    }
    // Busy while exporting: a step or a detach meanwhile would change the masters being packed.
    this.busy = true;
    try {
      return await exportTrainedModel({ tf: { io }, model: this.model, masters: await this.readMasters(), quantizer: this.quantizer, weights: this.weights }, options);
    } finally {
      this.busy = false;
    }
  }

  /** Writes the full-precision masters back into the model and stops; the model trains as before. */
  detach(): void {
    if (this.detached) return;
    if (this.busy) throw new InvalidInputError('INVALID_ARGUMENT', 'afterStep or export is running; await it before detaching.');
    this.driver.release();
    this.detached = true;
  }

  private async step(options: AfterStepOptions): Promise<MoqStepReport> {
    const step = this.steps + 1;
    const { driver } = this;
    const overflow = await driver.prepare(options.overflow === true || !Number.isFinite(await lossValue(options.loss)));

    const eigenvalueEnabled = this.quantizer.options.eigenvalue.enabled;
    let blockEigenvalue: BlockEigenvalues | undefined;
    if (eigenvalueEnabled && step % this.quantizer.options.eigenvalue.gasBoundaryResolution === 0 && this.quantizer.anyPrecisionSwitch()) {
      blockEigenvalue = await this.whileRestored(() =>
        this.eigenvalues!({
          model: this.trainedModel,
          weights: driver.quantized,
          options: this.quantizer.options.eigenvalue,
          step,
          quantizer: this.quantizer,
        }),
      );
    }

    const report = await this.quantizer.step([driver.parameters(overflow)], {
      overflow,
      eigenvalueEnabled,
      ...(blockEigenvalue ? { blockEigenvalue } : {}),
    });
    driver.finish(report.quantized, overflow);
    this.steps = step;
    const entry: MoqStepReport = { ...report, step, overflow, bits: Object.fromEntries(this.bitsByWeight()) };
    this.reports.push(entry);
    return entry;
  }

  /** Runs `fn` with every weight back at the values the step's forward pass used. */
  private async whileRestored<T>(fn: () => Promise<T>): Promise<T> {
    const { tf } = this;
    const tracked = this.driver.tracked;
    const current = tracked.map((w) => tf.keep(tf.clone(w.variable)));
    try {
      for (const w of tracked) w.restore();
      return await fn();
    } finally {
      tracked.forEach((w, i) => {
        w.variable.assign(current[i]!);
        current[i]!.dispose();
      });
    }
  }
}

/** The Quantizer to drive; `gpu`, on the GPU path, is the backend it quantizes on. */
function quantizerFrom(options: AttachMoqOptions, gpu: GpuParameterBackend | undefined): Quantizer {
  const { quantizer, logger } = options;
  const backend = gpu ?? options.backend;
  if (quantizer instanceof Quantizer) {
    if (options.backend !== undefined || logger !== undefined) {
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
    throw new InvalidInputError('INVALID_ARGUMENT', `tf must be the TensorFlow.js namespace (import * as tf from '@tensorflow/tfjs'); it lacks ${missing.join(', ')}.`);
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
