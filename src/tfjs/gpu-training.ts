// MoQ on tfjs's WebGPU backend without host round trips. The masters are GPUBuffers on tfjs's
// device. Each step takes GPU copies of the variables (tensor.dataToGPU(), which also submits
// tfjs's pending commands, the optimizer's update among them), then on the same queue: the
// finiteness check and the straight-through update of the masters (gpu-kernels.ts), a copy of
// each master into its variable's copy, our quantization kernels on it, and the restoration if
// the step was not finite. The copy's tensor is then what the variable holds. Nothing is mapped
// or read back, and no weight is uploaded.
//
// One thing the host path reads that this path cannot without a read-back: whether the updated
// weights are finite. It is decided on the GPU instead: a step whose weights are not finite
// leaves masters and variables as they were (as on the host path), but the host does not learn
// of it, so the schedule counts the step. The loss, which model.fit hands over as a number
// anyway, still marks overflow steps on the host, exactly as on the host path.

import type * as tf from '@tensorflow/tfjs';
import type { Backend, FakeQuantizeTarget, GroupStats, QuantizeJob } from '../backends/backend.js';
import type { FakeQuantizeOptions } from '../kernel-plan.js';
import { InvalidInputError } from '../errors.js';
import type { WebGpuBackend } from '../backends/webgpu/backend.js';
import type { Parameter } from '../quantizer.js';
import { createMasterBuffer, StepKernels, type StepDispatch } from './gpu-kernels.js';
import { type StepDriver, type TfNamespace, TrackedWeight, type WeightListing } from './weights.js';

/** The TensorFlow.js namespace as the GPU path uses it. */
export type GpuTfNamespace = TfNamespace & Pick<typeof tf, 'getBackend' | 'backend'>;

/** tfjs's WebGPU backend, as far as the GPU path uses it (public in tfjs-backend-webgpu 4.x). */
export interface TfWebGpuBackend {
  device: GPUDevice;
  /** Moves a tensor's values to the GPU if they are still on the host (a tensor created from values, never used). */
  uploadToGPU(dataId: object): void;
}

/** The GPUDevice tfjs computes on, or why there is none to train on. */
export function tfjsDevice(tf: TfNamespace): { device: GPUDevice; backend: TfWebGpuBackend } | { reason: string } {
  const namespace = tf as Partial<GpuTfNamespace>;
  const missing = (['getBackend', 'backend'] as const).filter((k) => typeof namespace[k] !== 'function');
  if (missing.length > 0) return { reason: `the tf namespace given lacks ${missing.join(', ')}` };
  const name = namespace.getBackend!();
  if (name !== 'webgpu') {
    return { reason: `tfjs runs on its '${name}' backend, whose tensors are not GPUBuffers; the host path serves every backend but 'webgpu' (@tensorflow/tfjs-backend-webgpu)` };
  }
  const backend = namespace.backend!() as unknown as Partial<TfWebGpuBackend>;
  const { device } = backend;
  if (typeof device !== 'object' || device === null || typeof device.createBuffer !== 'function' || typeof backend.uploadToGPU !== 'function') {
    return { reason: "tfjs's 'webgpu' backend exposes no GPUDevice (backend().device) or no uploadToGPU" };
  }
  return { device, backend: backend as TfWebGpuBackend };
}

/**
 * The quantizer's backend on the GPU path. The Quantizer drives host Float32Arrays; here each
 * weight lends it a stand-in array of the weight's length (never read or written) standing
 * for a GPUBuffer, and a call naming stand-ins quantizes those buffers in place on the GPU,
 * reading nothing back. Host arrays go to the WebGPU backend.
 */
export class GpuParameterBackend implements Backend {
  readonly kind = 'webgpu' as const;
  private readonly lent = new Map<Float32Array, { buffer: GPUBuffer; quantized: boolean }>();

  constructor(
    readonly gpu: WebGpuBackend,
    private readonly ownsGpu: boolean,
  ) {}

  get selection(): Backend['selection'] {
    return this.gpu.selection;
  }

  /** What createPacker packs on: the WebGPU backend under the stand-in arrays. */
  get packingBackend(): WebGpuBackend {
    return this.gpu;
  }

  /** Lends `standIn` for `buffer` until `take`. */
  lend(standIn: Float32Array, buffer: GPUBuffer): void {
    this.lent.set(standIn, { buffer, quantized: false });
  }

  /** Whether the quantizer quantized the buffer lent for `standIn`; the loan ends. */
  take(standIn: Float32Array): boolean {
    const loan = this.lent.get(standIn);
    this.lent.delete(standIn);
    return loan?.quantized ?? false;
  }

  /** Out of place (`{ into }`), host arrays only: a stand-in's values are on the GPU. */
  async fakeQuantize(data: Float32Array, options: FakeQuantizeOptions, target?: FakeQuantizeTarget): Promise<Float32Array> {
    if (target !== undefined && !this.lent.has(data)) return this.gpu.fakeQuantize(data, options, target);
    if (target !== undefined) {
      throw new InvalidInputError('INVALID_ARGUMENT', 'the weights MoQ keeps on the GPU are quantized in place; call fakeQuantize without { into }.');
    }
    await this.fakeQuantizeMany([{ data, options }]);
    return data;
  }

  async fakeQuantizeMany(jobs: readonly QuantizeJob[]): Promise<void> {
    const loans = Array.isArray(jobs) ? jobs.map((job) => this.lent.get(job?.data)) : [];
    if (loans.every((loan) => loan === undefined)) return this.gpu.fakeQuantizeMany(jobs);
    if (loans.some((loan) => loan === undefined)) {
      throw new InvalidInputError('INVALID_ARGUMENT', 'a call mixes the weights MoQ keeps on the GPU with host arrays; quantize host arrays in a call of their own.');
    }
    await this.gpu.enqueueFakeQuantizeBuffers(loans.map((loan, i) => ({ buffer: loan!.buffer, length: jobs[i]!.data.length, options: jobs[i]!.options })));
    for (const loan of loans) loan!.quantized = true;
  }

  groupStats(data: Float32Array, options: { groups?: number; groupSize?: number }): Promise<GroupStats> {
    return this.gpu.groupStats(data, options);
  }

  explain(): string {
    return `${this.gpu.explain()}\n  MoQ's weights are quantized in place on tfjs's WebGPU device, nothing read back`;
  }

  dispose(): void {
    if (this.ownsGpu) this.gpu.dispose();
  }
}

/** A GPU copy of a tensor: tfjs owns the buffer, and `tensor` (a tensor over it) disposes it. */
interface GpuCopy {
  buffer: GPUBuffer;
  tensor: tf.Tensor;
}

function gpuCopy(backend: TfWebGpuBackend, tensor: tf.Tensor): GpuCopy {
  backend.uploadToGPU(tensor.dataId);
  const { buffer, tensorRef } = tensor.dataToGPU();
  return { buffer: buffer!, tensor: tensorRef };
}

class GpuQuantizedWeight extends TrackedWeight {
  /** The full-precision master, in a buffer of ours on tfjs's device. */
  readonly master: GPUBuffer;
  /**
   * The master before the step in flight: the update is written into the master in place, so a
   * step that fails before it finishes (a throwing eigenvalue provider, a bad schedule entry)
   * puts this back rather than leave the update applied for the next step to apply again.
   */
  readonly previous: GPUBuffer;
  /** Whether the variable held the master itself (before the first quantization, or during the offset). */
  heldIsMaster = true;
  /** Stands for this weight in the quantizer's calls (see GpuParameterBackend). */
  readonly standIn: Float32Array;

  constructor(tf: GpuTfNamespace, name: string, shape: readonly number[], variable: tf.Variable, device: GPUDevice, standIns: ArrayBuffer) {
    super(tf, name, shape, variable);
    this.master = createMasterBuffer(device, `edge-moq master ${name}`, variable.size);
    this.previous = createMasterBuffer(device, `edge-moq previous master ${name}`, variable.size);
    this.standIn = new Float32Array(standIns, 0, variable.size);
  }

  override get quantized(): boolean {
    return true;
  }

  /** A tensor holding a copy of the master (tfjs copies the buffer on the GPU). */
  masterTensor(): tf.Tensor {
    return this.tf.tensor({ buffer: this.master } as unknown as Float32Array, this.shape as number[], 'float32');
  }

  override dispose(): void {
    super.dispose();
    this.master.destroy();
    this.previous.destroy();
  }
}

/** A step in flight: GPU copies of the variables after the update and of what they held, in `tracked` order. */
interface PendingStep {
  updated: GpuCopy[];
  held: GpuCopy[];
}

export class GpuStepDriver implements StepDriver {
  readonly tracked: readonly TrackedWeight[];
  readonly quantized: readonly GpuQuantizedWeight[];
  private readonly others: readonly TrackedWeight[];
  /** Each quantized weight's index in `tracked`. */
  private readonly slots: readonly number[];
  private pending: PendingStep | null = null;
  /** After an overflow the host knows of: copies of the quantized weights' held values, for the quantizer to re-quantize. */
  private heldCopies: GpuCopy[] | null = null;

  private readonly device: GPUDevice;

  private constructor(
    private readonly tfBackend: TfWebGpuBackend,
    private readonly kernels: StepKernels,
    readonly backend: GpuParameterBackend,
    tf: GpuTfNamespace,
    listing: readonly WeightListing[],
  ) {
    const device = tfBackend.device;
    this.device = device;
    // One zeroed buffer backs every stand-in: they are never read or written.
    const standIns = new ArrayBuffer(Math.max(0, ...listing.map((w) => w.variable.size)) * 4);
    this.tracked = listing.map(({ name, shape, variable, quantized }) =>
      quantized ? new GpuQuantizedWeight(tf, name, shape, variable, device, standIns) : new TrackedWeight(tf, name, shape, variable),
    );
    this.quantized = this.tracked.filter((w): w is GpuQuantizedWeight => w instanceof GpuQuantizedWeight);
    this.others = this.tracked.filter((w) => !(w instanceof GpuQuantizedWeight));
    this.slots = this.quantized.map((w) => this.tracked.indexOf(w));
    const initial = this.quantized.map((w) => this.copy(w.variable));
    const encoder = device.createCommandEncoder({ label: 'edge-moq tfjs masters' });
    this.quantized.forEach((w, i) => encoder.copyBufferToBuffer(initial[i]!.buffer, 0, w.master, 0, w.variable.size * 4));
    device.queue.submit([encoder.finish()]);
    for (const copy of initial) copy.tensor.dispose();
  }

  /** The masters start as the variables' values, copied on the GPU. */
  static async create(tf: GpuTfNamespace, tfBackend: TfWebGpuBackend, listing: readonly WeightListing[], backend: GpuParameterBackend): Promise<GpuStepDriver> {
    return new GpuStepDriver(tfBackend, await StepKernels.create(tfBackend.device), backend, tf, listing);
  }

  async prepare(overflow: boolean): Promise<boolean> {
    this.dropPending();
    if (overflow) return true;
    const updated = this.tracked.map((w) => this.copy(w.variable));
    const held = this.tracked.map((w) => this.copy(w.held));
    this.pending = { updated, held };
    const dispatches: StepDispatch[] = this.tracked.map((w, i) => ({ entry: 'checkFinite', length: w.variable.size, first: updated[i]!.buffer }));
    this.quantized.forEach((w, j) => {
      const i = this.slots[j]!;
      dispatches.push({ entry: 'straightThrough', length: w.variable.size, destination: w.master, first: updated[i]!.buffer, second: held[i]!.buffer, heldIsMaster: w.heldIsMaster });
    });
    this.kernels.resetFlag();
    const encoder = this.device.createCommandEncoder({ label: 'edge-moq tfjs straight-through' });
    for (const w of this.quantized) encoder.copyBufferToBuffer(w.master, 0, w.previous, 0, w.variable.size * 4);
    this.kernels.encode(encoder, dispatches);
    // The updated values are spent: each quantized weight's copy takes its new master, for the quantizer to quantize in place.
    this.quantized.forEach((w, j) => encoder.copyBufferToBuffer(w.master, 0, updated[this.slots[j]!]!.buffer, 0, w.variable.size * 4));
    this.device.queue.submit([encoder.finish()]);
    return false;
  }

  registrations(): Parameter[] {
    return this.quantized.map((w) => ({ name: w.name, shape: w.shape, data: w.standIn }));
  }

  parameters(overflow: boolean): Parameter[] {
    const { pending } = this;
    if (overflow || !pending) this.heldCopies = this.quantized.map((w) => this.copy(w.held));
    return this.quantized.map((w, j) => {
      this.backend.lend(w.standIn, (this.heldCopies ? this.heldCopies[j]! : pending!.updated[this.slots[j]!]!).buffer);
      return { name: w.name, shape: w.shape, data: w.standIn };
    });
  }

  finish(quantized: boolean): void {
    const written = this.quantized.map((w) => this.backend.take(w.standIn));
    const { pending, heldCopies } = this;
    this.pending = null;
    this.heldCopies = null;
    if (!pending) {
      // An overflow the host knows of: restore, or show the re-quantized held values.
      this.quantized.forEach((w, j) => {
        const copy = heldCopies?.[j];
        if (quantized && written[j] && copy) {
          w.hold(copy.tensor);
          w.heldIsMaster = false;
        } else {
          w.restore();
          copy?.tensor.dispose();
        }
      });
      for (const w of this.others) w.restore();
      return;
    }
    const { updated, held } = pending;
    const encoder = this.device.createCommandEncoder({ label: 'edge-moq tfjs restore' });
    this.kernels.encode(
      encoder,
      this.tracked.map((w, i) => ({ entry: 'restoreIfNonFinite', length: w.variable.size, destination: updated[i]!.buffer, first: held[i]!.buffer })),
    );
    this.device.queue.submit([encoder.finish()]);
    this.tracked.forEach((w, i) => {
      w.hold(updated[i]!.tensor);
      held[i]!.tensor.dispose();
    });
    for (const w of this.quantized) w.heldIsMaster = !quantized;
  }

  async readMasters(): Promise<Map<string, Float32Array>> {
    const values = await Promise.all(
      this.quantized.map(async (w) => {
        const tensor = w.masterTensor();
        try {
          return new Float32Array((await tensor.data()) as Float32Array);
        } finally {
          tensor.dispose();
        }
      }),
    );
    return new Map(this.quantized.map((w, i) => [w.name, values[i]!]));
  }

  release(): void {
    this.dropPending();
    for (const w of this.quantized) {
      const master = w.masterTensor();
      w.variable.assign(master);
      master.dispose();
    }
    for (const w of this.tracked) w.dispose();
    this.kernels.dispose();
    this.backend.dispose();
  }

  private copy(tensor: tf.Tensor): GpuCopy {
    return gpuCopy(this.tfBackend, tensor);
  }

  /** Undoes and frees what a step that failed before finishing left behind. */
  private dropPending(): void {
    if (this.pending) {
      const encoder = this.device.createCommandEncoder({ label: 'edge-moq tfjs masters back' });
      for (const w of this.quantized) encoder.copyBufferToBuffer(w.previous, 0, w.master, 0, w.variable.size * 4);
      this.device.queue.submit([encoder.finish()]);
    }
    for (const w of this.quantized) this.backend.take(w.standIn);
    for (const copy of [...(this.pending?.updated ?? []), ...(this.pending?.held ?? []), ...(this.heldCopies ?? [])]) copy.tensor.dispose();
    this.pending = null;
    this.heldCopies = null;
  }
}
