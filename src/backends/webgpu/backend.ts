// The WebGPU backend: the kernels of shaders/ on the caller's GPUDevice or one of our own.
// Host Float32Arrays are uploaded into pooled buffers, quantized, and read back into the same
// arrays, which are written only once the GPU has succeeded; caller-owned GPUBuffers are
// quantized in place. A whole job list is one command submission. If the device is lost or a
// submission fails, host work completes on WebAssembly from the caller's untouched arrays, the
// downgrade is announced, and later calls stay on WebAssembly.

import { planFakeQuantize, planFakeQuantizeLength, type FakeQuantizeOptions, type KernelPlan } from '../../kernel-plan.js';
import { BackendError, InvalidInputError, nonFiniteError } from '../../errors.js';
import type { Backend, BackendKind, FakeQuantizeTarget, GroupStats, QuantizeJob, SelectionReport } from '../backend.js';
import { explainSelection, jobLabel, jobTarget, selectionOf, targetArray } from '../backend.js';
import { WasmBackend } from '../wasm/backend.js';
import { runtimeHasSimd, type WasmSource } from '../wasm/loader.js';
import { JOB_BYTES, JOB_SLOT_BYTES, KERNEL_NAMES, PARTIAL_BYTES, layoutSubmission, workgroupGrid, writeJob, type JobLayout, type KernelName } from './plan.js';
import type { Program, ProgramSpec } from './program.js';
import { GpuFailure } from './submission.js';
import { GpuResources, NO_BAD_INDEX, READBACK_ALIGN, alignUp, checkBuffer, type WebGpuCounters } from './resources.js';

export type { WebGpuCounters } from './resources.js';

const KERNELS: ProgramSpec<KernelName> = { label: 'edge-moq kernels', entryPoints: KERNEL_NAMES };

/** What WebGpuBackend.create takes: the device (or where to find one), the fallback, the logger. */
export interface WebGpuBackendOptions {
  /** The WebGPU entry point (default navigator.gpu); in Node, `create([])` from the `webgpu` package. */
  gpu?: GPU;
  adapter?: GPUAdapter;
  /**
   * Quantize on this device (needed for caller-owned GPUBuffers). It is not destroyed on
   * dispose. In Node, keep the `webgpu` package's GPU object referenced while the device is in
   * use (or pass it as `gpu` too): Dawn tears its devices down when that object is collected.
   */
  device?: GPUDevice;
  /** Where to load the WebAssembly build that takes over if the device is lost. */
  wasm?: { simd?: WasmSource; scalar?: WasmSource };
  /** The WebAssembly backend to take over with (default: one created from `wasm`). */
  wasmBackend?: WasmBackend;
  /**
   * Called with the device once a submission's commands are encoded, just before they are
   * submitted: lets tests lose the device in the middle of an operation.
   */
  beforeSubmit?: (device: GPUDevice) => void;
  /** Receives the line announcing a move to WebAssembly (default: nothing is printed). */
  log?: (message: string) => void;
}

/** float32 values `[0, length)` of a caller-owned GPUBuffer, quantized in place. */
export interface GpuBufferJob {
  buffer: GPUBuffer;
  length: number;
  options: FakeQuantizeOptions;
}

/** The move from WebGPU to WebAssembly, and why. */
export interface DowngradeEvent {
  from: 'webgpu';
  to: BackendKind;
  reason: string;
}

/** What an adapter says about itself (GPUAdapterInfo, the fallback flag, the features). */
export interface AdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isFallbackAdapter: boolean;
  features: string[];
}

/** The first tensor (in job order) holding a NaN or ±Inf, and the index in it. */
type FirstBad = { job: number; index: number } | null;

/**
 * Fake quantization on a GPUDevice (its own, or the caller's). Host arrays are uploaded and read
 * back; GPUBuffers are quantized where they are. Shares its resources with WebGpuPacker.
 */
export class WebGpuBackend implements Backend {
  readonly kind: BackendKind = 'webgpu';
  readonly adapter: AdapterSummary;
  /**
   * The device's pool, lock, counters, submissions and failure state, shared with WebGpuPacker.
   * @internal
   */
  readonly resources: GpuResources;
  private readonly listeners = new Set<(event: DowngradeEvent) => void>();
  private paramsScratch = new DataView(new ArrayBuffer(JOB_SLOT_BYTES));
  private statusScratch = new Uint32Array(4);
  private disposed = false;

  private constructor(
    readonly device: GPUDevice,
    // Dawn's GPU object (Node's `webgpu` package) frees its instance, under any live device,
    // once it is garbage-collected: holding it (and the adapter) keeps the device valid.
    // biome-ignore lint/correctness/noUnusedPrivateClassMembers: never read; held so that Dawn's GPU outlives the device
    private readonly owners: { gpu: GPU | undefined; adapter: GPUAdapter | undefined },
    resources: GpuResources,
    private readonly program: Program<KernelName>,
    /** The WebAssembly backend that takes over after a downgrade (packing too); this backend owns and disposes it. */
    readonly wasm: WasmBackend,
    adapter: AdapterSummary,
    private readonly ownsDevice: boolean,
    private readonly beforeSubmit: ((device: GPUDevice) => void) | undefined,
    private readonly log: ((message: string) => void) | undefined,
  ) {
    this.adapter = adapter;
    this.resources = resources;
    void device.lost.then((info) => {
      if (!this.disposed) resources.fail(`device lost (${info.reason}${info.message ? `: ${info.message}` : ''})`);
    });
  }

  /**
   * Opens the device (or takes the one given), compiles the kernels and the WebAssembly fallback.
   *
   * @param options - Where the device comes from, the fallback, the logger.
   * @returns A backend on that device; createBackend({ kind: 'webgpu' }) gives the same with a selection report.
   * @throws BackendError (BACKEND_UNAVAILABLE) when there is no WebGPU, no adapter, or the kernels do not compile.
   */
  static async create(options: WebGpuBackendOptions = {}): Promise<WebGpuBackend> {
    let { device, adapter } = options;
    const gpu = options.gpu ?? (device || adapter ? undefined : (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu);
    const ownsDevice = !device;
    if (!device) {
      if (!adapter) {
        const found = await findAdapter(gpu);
        if (typeof found === 'string') throw new BackendError('BACKEND_UNAVAILABLE', `${found}; use kind: 'wasm-simd'.`);
        adapter = found;
      }
      device = await adapter.requestDevice({
        requiredFeatures: adapter.features.has('subgroups') ? ['subgroups' as GPUFeatureName] : [],
        // Large tensors need more than the default 128 MiB per binding.
        requiredLimits: {
          maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
          maxBufferSize: adapter.limits.maxBufferSize,
        },
      });
    }
    let backend: WebGpuBackend | undefined;
    const resources = new GpuResources(device, (reason) => backend?.downgrade(reason));
    try {
      const summary = summarizeAdapter(adapter ?? device);
      const program = await resources.program(KERNELS, device.features.has('subgroups'));
      const simd = runtimeHasSimd();
      const wasm = options.wasmBackend ?? (await WasmBackend.create(simd ? 'simd' : 'scalar', simd ? options.wasm?.simd : options.wasm?.scalar));
      backend = new WebGpuBackend(device, { gpu, adapter }, resources, program, wasm, summary, ownsDevice, options.beforeSubmit, options.log);
      return backend;
    } catch (error) {
      if (ownsDevice) device.destroy();
      throw error;
    }
  }

  get selection(): SelectionReport {
    return selectionOf(this);
  }

  /** What createPacker packs on: this backend's device, sharing its resources. */
  get packingBackend(): WebGpuBackend {
    return this;
  }

  /** What runs now: 'webgpu', or the WebAssembly backend after a downgrade. */
  get activeKind(): BackendKind {
    return this.resources.failedBecause === null ? 'webgpu' : this.wasm.kind;
  }

  /** Why the backend moved to WebAssembly, or null while it runs on the GPU. */
  get downgradedBecause(): string | null {
    return this.resources.failedBecause;
  }

  /** Whether the reductions use subgroup operations (the device has the `subgroups` feature). */
  get usesSubgroups(): boolean {
    return this.program.subgroups;
  }

  /**
   * Listens for the move to WebAssembly (a lost device, or a failed submission of fake quantization or packing).
   *
   * @param listener - Called once, with where the work moved and why.
   * @returns A function that stops listening.
   */
  onDowngrade(listener: (event: DowngradeEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Counters: once warm, repeated calls of the same shapes create no modules, pipelines, buffers or bind groups. */
  stats(): WebGpuCounters {
    return { ...this.resources.counters };
  }

  /** Backend.fakeQuantize: with `{ into }`, `data` is uploaded and the result read back into `into`. */
  async fakeQuantize(data: Float32Array, options: FakeQuantizeOptions, target?: FakeQuantizeTarget): Promise<Float32Array> {
    if (target === undefined) {
      await this.fakeQuantizeMany([{ data, options }]);
      return data;
    }
    const plan = planFakeQuantize(data, options);
    const into = targetArray(data, target, plan.length);
    await this.quantizeHost([{ data, options, into }], [plan], ['data']);
    return into;
  }

  /** All jobs in one submission; validated first, and on any error no array is modified. */
  async fakeQuantizeMany(jobs: readonly QuantizeJob[]): Promise<void> {
    if (!Array.isArray(jobs)) {
      throw new InvalidInputError('INVALID_ARGUMENT', 'jobs must be an array of { data, options }.');
    }
    const labels = jobs.map((_, i) => jobLabel(jobs, i));
    const plans = jobs.map((job, i) => planFakeQuantize(job?.data, job?.options, labels[i]));
    jobs.forEach((_, i) => jobTarget(jobs, i, plans[i]!.length, labels[i]!));
    if (plans.length > 0) await this.quantizeHost(jobs, plans, labels);
  }

  /** Host jobs, validated: on the GPU, written to each job's `into` or back to its data; else on WebAssembly. */
  private quantizeHost(jobs: readonly QuantizeJob[], plans: KernelPlan[], labels: string[]): Promise<void> {
    return this.resources.exclusive(async () => {
      const arrays = jobs.map((job) => job.data);
      const bytes = plans.reduce((sum, plan) => sum + plan.length * 4, 0);
      const into = jobs.map((job) => job.into ?? job.data);
      const bad = this.resources.takes(bytes, bytes + READBACK_ALIGN) ? await this.resources.onHost(() => this.submit(plans, { host: arrays, into })) : undefined;
      if (bad === undefined) {
        this.resources.counters.wasmCalls++;
        this.wasm.fakeQuantizeManySync(jobs);
      } else if (bad) {
        throw nonFiniteError(labels[bad.job]!, arrays[bad.job]![bad.index], { ...bad, group: Math.floor(bad.index / plans[bad.job]!.groupSize) });
      }
    });
  }

  /** Quantizes float32 values `[0, length)` of a GPUBuffer on this backend's device, in place. */
  async fakeQuantizeBuffer(buffer: GPUBuffer, length: number, options: FakeQuantizeOptions): Promise<GPUBuffer> {
    await this.fakeQuantizeBuffers([{ buffer, length, options }]);
    return buffer;
  }

  /**
   * Caller-owned buffers, in place, in one submission; validated first, and on any error no
   * buffer is modified. They must belong to `backend.device` and have STORAGE usage. There is
   * no WebAssembly fallback for them: on a lost device this throws DEVICE_LOST.
   */
  async fakeQuantizeBuffers(jobs: readonly GpuBufferJob[]): Promise<void> {
    const { bad, labels, plans } = await this.quantizeBuffers(jobs, true);
    if (bad) throw nonFiniteError(labels[bad.job]!, 'NaN or infinite', { ...bad, group: Math.floor(bad.index / plans[bad.job]!.groupSize) });
  }

  /**
   * fakeQuantizeBuffers with nothing read back, for buffers that stay on the GPU (training on
   * tfjs's WebGPU device): settles once the commands are submitted, before they run, so later
   * submissions on the device's queue see the quantized values. A non-finite value is found on
   * the GPU, as always, and then no buffer is written, but the host is not told: callers keep
   * their inputs finite (or compare on the GPU). WebGPU errors and a lost device throw.
   */
  async enqueueFakeQuantizeBuffers(jobs: readonly GpuBufferJob[]): Promise<void> {
    await this.quantizeBuffers(jobs, false);
  }

  /** Both buffer calls: validated, submitted on the device, read back for a non-finite value only when asked. */
  private async quantizeBuffers(jobs: readonly GpuBufferJob[], readBack: boolean): Promise<{ bad: FirstBad; labels: string[]; plans: KernelPlan[] }> {
    if (!Array.isArray(jobs)) {
      throw new InvalidInputError('INVALID_ARGUMENT', 'jobs must be an array of { buffer, length, options }.');
    }
    const labels = jobs.map((_, i) => (jobs.length === 1 ? 'buffer' : `jobs[${i}].buffer`));
    const plans = jobs.map((job, i) => this.planBufferJob(job, labels[i]!));
    if (plans.length === 0) return { bad: null, labels, plans };
    return this.resources.exclusive(async () => {
      const bad = await this.resources.onBuffers(() => this.submit(plans, { buffers: jobs.map((job) => job.buffer) }, readBack));
      return { bad, labels, plans };
    });
  }

  /**
   * Statistics of a host array come from WebAssembly: they take one pass over memory, which
   * costs less there than the upload alone would.
   */
  async groupStats(data: Float32Array, options: { groups?: number; groupSize?: number }): Promise<GroupStats> {
    this.resources.assertUsable();
    this.resources.counters.wasmCalls++;
    return this.wasm.groupStats(data, options);
  }

  explain(): string {
    const lines = [explainSelection(this.selection)];
    lines.push(`  adapter: ${describeAdapter(this.adapter)}; reductions ${this.program.subgroups ? 'with subgroup operations' : 'in workgroup memory (no subgroups feature)'}`);
    if (this.downgradedBecause !== null) lines.push(`  now running on ${this.wasm.kind}: ${this.downgradedBecause}`);
    return lines.join('\n');
  }

  /** Frees the pooled buffers, the WebAssembly fallback, and the device if this backend opened it. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.resources.dispose();
    this.wasm.dispose();
    if (this.ownsDevice) this.device.destroy();
  }

  /** The one failure state moved to WebAssembly (resources.fail): announce it. */
  private downgrade(reason: string): void {
    this.log?.(`edge-moq: WebGPU stopped, ${reason}; continuing on ${this.wasm.kind}, no data lost.`);
    const event: DowngradeEvent = { from: 'webgpu', to: this.wasm.kind, reason };
    for (const listener of this.listeners) listener(event);
  }

  private planBufferJob(job: GpuBufferJob, label: string): KernelPlan {
    checkBuffer(job?.buffer, label, 0, this.device, 'fakeQuantize');
    const { length } = job;
    if (typeof length !== 'number' || !Number.isInteger(length) || length < 0) {
      throw new InvalidInputError('INVALID_ARGUMENT', `the length for ${label} must be a non-negative integer, got ${String(length)}.`);
    }
    if (length * 4 > job.buffer.size) {
      throw new InvalidInputError('INVALID_ARGUMENT', `${label} holds ${job.buffer.size / 4} float32 values, fewer than the length ${length} given.`);
    }
    return planFakeQuantizeLength(length, job.options, label);
  }

  /**
   * One command submission for all jobs: validation and statistics for every tensor, then the
   * writers (which do nothing if any tensor held a NaN/Inf), then the read-back unless
   * `readBack` is false (buffers only; the result is then null). Throws GpuFailure when the
   * device is lost or WebGPU reports an error.
   */
  private async submit(plans: KernelPlan[], source: { host: Float32Array[]; into: Float32Array[] } | { buffers: GPUBuffer[] }, readBack = true): Promise<FirstBad> {
    const { device, resources } = this;
    const bases: number[] = [];
    let elements = 0;
    for (const plan of plans) {
      bases.push('host' in source ? elements : 0);
      elements += plan.length;
    }
    const { jobs, partialCount } = layoutSubmission(plans, bases);
    const statusWords = jobs.length + 2; // the shared flag, one slot per job, the submission id
    const statusBytes = statusWords * 4;
    const resultOffset = alignUp(statusBytes, READBACK_ALIGN);
    const resultBytes = 'host' in source ? elements * 4 : 0;
    const readbackBytes = resultOffset + resultBytes;
    const submissionId = resources.nextSubmission();

    const encode = (): GPUBuffer | null => {
      const params = resources.pooled('params', jobs.length * JOB_SLOT_BYTES);
      const status = resources.pooled('status', statusBytes);
      const partials = resources.pooled('partials', Math.max(partialCount, 1) * PARTIAL_BYTES);
      const readback = readBack ? resources.pooled('readback', readbackBytes) : null;
      // Host arrays share one pooled buffer, end to end.
      const dataBuffers = 'host' in source ? jobs.map(() => resources.pooled('data', elements * 4)) : source.buffers;
      if ('host' in source) {
        source.host.forEach((array, i) => device.queue.writeBuffer(dataBuffers[i]!, bases[i]! * 4, array as Float32Array<ArrayBuffer>));
      }
      this.writeParams(jobs, params);
      this.writeStatus(jobs.length, submissionId, status);
      const groups = dataBuffers.map((data) =>
        resources.bindGroup(this.program.layout, [
          { buffer: data, size: Math.min(data.size, device.limits.maxStorageBufferBindingSize) & ~3 },
          { buffer: partials },
          { buffer: status },
          { buffer: params, size: JOB_BYTES },
        ]),
      );

      const encoder = device.createCommandEncoder({ label: 'edge-moq' });
      const pass = encoder.beginComputePass({ label: 'edge-moq' });
      for (const phase of ['prepare', 'write'] as const) {
        jobs.forEach((job, i) => {
          if (job[phase].length === 0) return;
          pass.setBindGroup(0, groups[i]!, [i * JOB_SLOT_BYTES]);
          for (const dispatch of job[phase]) {
            pass.setPipeline(this.program.pipelines.get(dispatch.kernel)!);
            const [x, y] = workgroupGrid(dispatch.workgroups);
            pass.dispatchWorkgroups(x, y);
          }
        });
      }
      pass.end();
      if (readback) {
        encoder.copyBufferToBuffer(status, 0, readback, 0, statusBytes);
        if (resultBytes > 0) encoder.copyBufferToBuffer(dataBuffers[0]!, 0, readback, resultOffset, resultBytes);
      }
      const commands = encoder.finish();
      this.beforeSubmit?.(device);
      device.queue.submit([commands]);
      resources.counters.submissions++;
      return readback;
    };
    if (!readBack) {
      await resources.submit(encode);
      return null;
    }
    return resources.read(
      readbackBytes,
      () => encode()!,
      (mapped) => {
        const statusView = new Uint32Array(mapped, 0, statusWords);
        if (statusView[statusWords - 1] !== submissionId) {
          throw new GpuFailure('the submission did not run (its status never came back)', resources.failedBecause !== null);
        }
        const bad = statusView[0] === 0 ? -1 : jobs.findIndex((_, i) => statusView[1 + i] !== NO_BAD_INDEX);
        if (bad >= 0) return { job: bad, index: statusView[1 + bad]! };
        if ('host' in source) {
          source.into.forEach((array, i) => array.set(new Float32Array(mapped, resultOffset + bases[i]! * 4, array.length)));
        }
        return null;
      },
    );
  }

  private writeParams(jobs: JobLayout[], params: GPUBuffer): void {
    const bytes = jobs.length * JOB_SLOT_BYTES;
    if (this.paramsScratch.byteLength < bytes) this.paramsScratch = new DataView(new ArrayBuffer(params.size));
    jobs.forEach((job, i) => writeJob(this.paramsScratch, i, job));
    this.device.queue.writeBuffer(params, 0, this.paramsScratch.buffer, 0, bytes);
  }

  private writeStatus(jobCount: number, submissionId: number, status: GPUBuffer): void {
    const words = jobCount + 2;
    if (this.statusScratch.length < words) this.statusScratch = new Uint32Array(status.size / 4);
    this.statusScratch[0] = 0;
    this.statusScratch.fill(NO_BAD_INDEX, 1, words - 1);
    this.statusScratch[words - 1] = submissionId;
    this.device.queue.writeBuffer(status, 0, this.statusScratch.buffer, 0, words * 4);
  }
}

/** `gpu`'s adapter (navigator.gpu's when `gpu` is undefined), or why there is none. */
export async function findAdapter(gpu: GPU | undefined): Promise<GPUAdapter | string> {
  if (!gpu) {
    return typeof process === 'object' && process.versions?.node
      ? 'no navigator.gpu in Node: pass { gpu: (await nodeGpu()).gpu }, or create([]) from the "webgpu" package'
      : 'no navigator.gpu: this runtime has no WebGPU';
  }
  try {
    return (await gpu.requestAdapter({ powerPreference: 'high-performance' })) ?? 'navigator.gpu found no adapter';
  } catch (error) {
    return `requestAdapter failed: ${(error as Error).message}`;
  }
}

/**
 * What an adapter (or, for a given device, its adapterInfo) says about itself.
 * @param source An adapter, or a device (read through its adapterInfo).
 * @returns Its vendor, architecture, device, description, features, and whether it is a fallback (CPU) adapter.
 */
export function summarizeAdapter(source: GPUAdapter | GPUDevice): AdapterSummary {
  const info = 'info' in source ? source.info : (source as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo;
  // Before GPUAdapterInfo had it, the flag sat on the adapter.
  const legacyFallback = (source as { isFallbackAdapter?: boolean }).isFallbackAdapter;
  return {
    vendor: info?.vendor ?? '',
    architecture: info?.architecture ?? '',
    device: info?.device ?? '',
    description: info?.description ?? '',
    isFallbackAdapter: Boolean(info?.isFallbackAdapter ?? legacyFallback),
    features: [...source.features].sort(),
  };
}

/**
 * @param adapter - What summarizeAdapter gave.
 * @returns vendor / architecture / description, marked when it is a fallback adapter.
 */
export function describeAdapter(adapter: AdapterSummary): string {
  const name = [adapter.vendor, adapter.architecture, adapter.description || adapter.device].filter(Boolean).join(' / ') || 'unnamed adapter';
  return adapter.isFallbackAdapter ? `${name} (fallback adapter)` : name;
}
