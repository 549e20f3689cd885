// MoQ on tfjs's WebGPU backend without host round trips. The masters and the values the
// variables held after the last step are tfjs tensors, so GPUBuffers on tfjs's device; each step
// the straight-through update, the finiteness check and the selection between the step and its
// restoration are tfjs ops, and the quantization is our kernels on a GPU copy of each master
// (tensor.dataToGPU(), whose tensor then becomes the weight). Nothing is mapped or read back.
//
// One thing the host path reads that this path cannot without a read-back: whether the updated
// weights are finite. It is decided on the GPU instead: a step whose weights are not finite
// leaves masters and variables as they were (as on the host path), but the host does not learn
// of it, so the schedule counts the step. The loss, which model.fit hands over as a number
// anyway, still marks overflow steps on the host, exactly as on the host path.

import type * as tf from '@tensorflow/tfjs';
import type { Backend, GroupStats, QuantizeJob } from '../backends/backend.js';
import type { FakeQuantizeOptions } from '../config.js';
import { InvalidInputError } from '../errors.js';
import type { WebGpuBackend } from '../backends/webgpu.js';
import type { Parameter } from '../quantizer.js';
import type { RestorableWeight, StepDriver, TfNamespace, WeightListing } from './weights.js';

/** The TensorFlow.js namespace as the GPU path uses it. */
export type GpuTfNamespace = TfNamespace & Pick<typeof tf, 'getBackend' | 'backend' | 'where' | 'add' | 'sub' | 'neg'>;

/** tfjs's WebGPU backend, as far as the GPU path reads it. */
interface TfWebGpuBackend {
  device: GPUDevice;
}

/** The GPUDevice tfjs computes on, or why there is none to train on. */
export function tfjsDevice(tf: TfNamespace): { device: GPUDevice } | { reason: string } {
  const namespace = tf as Partial<GpuTfNamespace>;
  const missing = (['getBackend', 'backend', 'where', 'add', 'sub', 'neg'] as const).filter((k) => typeof namespace[k] !== 'function');
  if (missing.length > 0) return { reason: `the tf namespace given lacks ${missing.join(', ')}` };
  const name = namespace.getBackend!();
  if (name !== 'webgpu') {
    return { reason: `tfjs runs on its '${name}' backend, whose tensors are not GPUBuffers; the host path serves every backend but 'webgpu' (@tensorflow/tfjs-backend-webgpu)` };
  }
  const device = (namespace.backend!() as unknown as Partial<TfWebGpuBackend>).device;
  if (typeof device !== 'object' || device === null || typeof (device as GPUDevice).createBuffer !== 'function') {
    return { reason: "tfjs's 'webgpu' backend exposes no GPUDevice (backend().device)" };
  }
  return { device };
}

/**
 * The quantizer's backend on the GPU path. The Quantizer drives host Float32Arrays; here each
 * weight lends it a placeholder array of the weight's length (never read or written) standing
 * for a tensor on the GPU, and a call naming placeholders quantizes GPU copies of those tensors
 * instead, leaving the results for the driver to take. Host arrays go to the WebGPU backend.
 */
export class GpuParameterBackend implements Backend {
  readonly kind = 'webgpu' as const;
  private readonly lent = new Map<Float32Array, { source: tf.Tensor; result: tf.Tensor | null }>();

  constructor(readonly gpu: WebGpuBackend, private readonly ownsGpu: boolean) {}

  get selection(): Backend['selection'] {
    return this.gpu.selection;
  }

  /** Lends `placeholder` for `source` until `take`. */
  lend(placeholder: Float32Array, source: tf.Tensor): void {
    this.lent.set(placeholder, { source, result: null });
  }

  /** The quantized copy made for `placeholder` (null if the quantizer did not quantize), and the loan ends. */
  take(placeholder: Float32Array): tf.Tensor | null {
    const loan = this.lent.get(placeholder);
    this.lent.delete(placeholder);
    return loan?.result ?? null;
  }

  async fakeQuantize(data: Float32Array, options: FakeQuantizeOptions): Promise<Float32Array> {
    await this.fakeQuantizeMany([{ data, options }]);
    return data;
  }

  async fakeQuantizeMany(jobs: readonly QuantizeJob[]): Promise<void> {
    const loans = Array.isArray(jobs) ? jobs.map((job) => this.lent.get(job?.data)) : [];
    if (loans.every((loan) => loan === undefined)) return this.gpu.fakeQuantizeMany(jobs);
    if (loans.some((loan) => loan === undefined)) {
      throw new InvalidInputError('INVALID_ARGUMENT',
        'a call mixes the weights MoQ keeps on the GPU with host arrays; quantize host arrays in a call of their own.');
    }
    const copies = loans.map((loan) => loan!.source.dataToGPU());
    try {
      await this.gpu.enqueueFakeQuantizeBuffers(copies.map(({ buffer }, i) => ({ buffer: buffer!, length: jobs[i]!.data.length, options: jobs[i]!.options })));
    } catch (error) {
      for (const copy of copies) copy.tensorRef.dispose();
      throw error;
    }
    loans.forEach((loan, i) => {
      loan!.result = copies[i]!.tensorRef;
    });
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

class GpuTrackedWeight implements RestorableWeight {
  /** What the variable held after the last step. */
  held: tf.Tensor;

  constructor(protected readonly tf: GpuTfNamespace, readonly name: string, readonly shape: readonly number[], readonly variable: tf.Variable) {
    this.held = tf.keep(tf.clone(variable));
  }

  get quantized(): boolean {
    return false;
  }

  restore(): void {
    this.variable.assign(this.held);
  }

  /** The variable holds `tensor` (kept) from now on. */
  show(tensor: tf.Tensor): void {
    this.variable.assign(tensor);
    this.held.dispose();
    this.held = tensor;
  }

  dispose(): void {
    this.held.dispose();
  }
}

class GpuQuantizedWeight extends GpuTrackedWeight {
  master: tf.Tensor;
  /** Whether the variable held the master itself (before the first quantization, or during the offset). */
  heldIsMaster = true;
  /** Stands for this weight in the quantizer's calls (see GpuParameterBackend). */
  readonly placeholder: Float32Array;

  constructor(tf: GpuTfNamespace, name: string, shape: readonly number[], variable: tf.Variable, placeholders: ArrayBuffer) {
    super(tf, name, shape, variable);
    this.master = tf.keep(tf.clone(variable));
    this.placeholder = new Float32Array(placeholders, 0, variable.size);
  }

  override get quantized(): boolean {
    return true;
  }

  /**
   * The master after the optimizer turned the held values into the variable's, if `finite`
   * (a scalar bool on the GPU), else the master as it was.
   *
   * The host path sums master + (updated - held) in doubles, where it is exact, and rounds
   * once to float32. In float32, fl(master + fl(updated - held)) rounds twice, and differs
   * wherever updated - held is no float32 (an update larger than half the held value). So the
   * sum is carried exactly in float32 pairs (Knuth's TwoSum, each operation its own tfjs
   * kernel, so no compiler can reassociate it) and rounded once at the end: the same float32
   * as the host's, unless the two error terms themselves do not add exactly, and the result
   * then sits on a rounding tie.
   */
  nextMaster(finite: tf.Tensor): tf.Tensor {
    const { tf } = this;
    return tf.keep(tf.tidy(() => {
      if (this.heldIsMaster) return tf.where(finite, this.variable, this.master);
      const difference = twoSum(tf, this.variable, tf.neg(this.held));
      const sum = twoSum(tf, this.master, difference.sum);
      return tf.where(finite, tf.add(sum.sum, tf.add(sum.error, difference.error)), this.master);
    }));
  }

  release(): void {
    this.variable.assign(this.master);
  }

  override dispose(): void {
    super.dispose();
    this.master.dispose();
  }
}

/** a + b as the float32 sum and its exact rounding error (Knuth's TwoSum: six correctly rounded operations). */
function twoSum(tf: GpuTfNamespace, a: tf.Tensor, b: tf.Tensor): { sum: tf.Tensor; error: tf.Tensor } {
  const sum = tf.add(a, b);
  const aPart = tf.sub(sum, b);
  const bPart = tf.sub(sum, aPart);
  return { sum, error: tf.add(tf.sub(a, aPart), tf.sub(b, bPart)) };
}

export class GpuStepDriver implements StepDriver {
  readonly tracked: readonly GpuTrackedWeight[];
  readonly quantized: readonly GpuQuantizedWeight[];
  private readonly others: readonly GpuTrackedWeight[];
  /** This step's finiteness (a scalar bool on the GPU) and new masters; null after an overflow the host knows of. */
  private pending: { finite: tf.Tensor; masters: tf.Tensor[] } | null = null;

  constructor(private readonly tf: GpuTfNamespace, listing: readonly WeightListing[], readonly backend: GpuParameterBackend) {
    // One zeroed buffer backs every placeholder: they are never read or written.
    const placeholders = new ArrayBuffer(Math.max(0, ...listing.map((w) => w.variable.size)) * 4);
    this.tracked = listing.map(({ name, shape, variable, quantized }) => (quantized
      ? new GpuQuantizedWeight(tf, name, shape, variable, placeholders)
      : new GpuTrackedWeight(tf, name, shape, variable)));
    this.quantized = this.tracked.filter((w): w is GpuQuantizedWeight => w instanceof GpuQuantizedWeight);
    this.others = this.tracked.filter((w) => !(w instanceof GpuQuantizedWeight));
  }

  async prepare(overflow: boolean): Promise<boolean> {
    this.dropPending();
    if (overflow) return true;
    const { tf } = this;
    const finite = tf.keep(tf.tidy(() => this.tracked
      .map((w) => tf.all(tf.isFinite(w.variable)))
      .reduce((a, b) => tf.logicalAnd(a, b))));
    this.pending = { finite, masters: this.quantized.map((w) => w.nextMaster(finite)) };
    return false;
  }

  registrations(): Parameter[] {
    return this.quantized.map((w) => ({ name: w.name, shape: w.shape, data: w.placeholder }));
  }

  parameters(overflow: boolean): Parameter[] {
    const { pending } = this;
    return this.quantized.map((w, i) => {
      this.backend.lend(w.placeholder, overflow || !pending ? w.held : pending.masters[i]!);
      return { name: w.name, shape: w.shape, data: w.placeholder };
    });
  }

  finish(quantized: boolean): void {
    const { tf, pending } = this;
    const results = this.quantized.map((w) => this.backend.take(w.placeholder));
    if (!pending) {
      // An overflow the host knows of: restore, or show the re-quantized held values.
      this.quantized.forEach((w, i) => {
        const result = results[i];
        if (quantized && result) {
          w.show(tf.keep(result));
          w.heldIsMaster = false;
        } else {
          w.restore();
        }
      });
      for (const w of this.others) w.restore();
      return;
    }
    const { finite, masters } = pending;
    this.quantized.forEach((w, i) => {
      const candidate = (quantized ? results[i] : null) ?? masters[i]!;
      w.show(tf.keep(tf.tidy(() => tf.where(finite, candidate, w.held))));
      w.master.dispose();
      w.master = masters[i]!;
      w.heldIsMaster = !quantized;
      results[i]?.dispose();
    });
    for (const w of this.others) w.show(tf.keep(tf.tidy(() => tf.where(finite, w.variable, w.held))));
    finite.dispose();
    this.pending = null;
  }

  async readMasters(): Promise<Map<string, Float32Array>> {
    const values = await Promise.all(this.quantized.map(async (w) => new Float32Array(await w.master.data() as Float32Array)));
    return new Map(this.quantized.map((w, i) => [w.name, values[i]!]));
  }

  release(): void {
    this.dropPending();
    for (const w of this.quantized) w.release();
    for (const w of this.tracked) w.dispose();
    this.backend.dispose();
  }

  /** Frees what a step that failed before finishing left behind. */
  private dropPending(): void {
    for (const w of this.quantized) this.backend.take(w.placeholder)?.dispose();
    if (!this.pending) return;
    this.pending.finite.dispose();
    for (const master of this.pending.masters) master.dispose();
    this.pending = null;
  }
}
