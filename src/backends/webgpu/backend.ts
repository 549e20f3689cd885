// The WebGPU backend: the kernels of shaders/ on the caller's GPUDevice or one of our own.
// Host Float32Arrays are uploaded into pooled buffers, quantized, and read back into the same
// arrays, which are written only once the GPU has succeeded; caller-owned GPUBuffers are
// quantized in place. A whole job list is one command submission. If the device is lost or a
// submission fails, host work completes on WebAssembly from the caller's untouched arrays, the
// downgrade is announced, and later calls stay on WebAssembly.

import { planFakeQuantize, planFakeQuantizeLength, type FakeQuantizeOptions, type KernelPlan } from '../../kernel-plan.js';
import { BackendError, InvalidInputError } from '../../errors.js';
import type { Backend, BackendKind, GroupStats, QuantizeJob, SelectionReport } from '../backend.js';
import { explainSelection } from '../backend.js';
import { WasmBackend } from '../wasm/backend.js';
import { runtimeHasSimd, type WasmSource } from '../wasm/loader.js';
import { JOB_BYTES, JOB_SLOT_BYTES, PARTIAL_BYTES, layoutSubmission, workgroupGrid, writeJob, type JobLayout } from './plan.js';
import { createProgram, type KernelProgram } from './program.js';
import { GpuFailure, submitAndRead, submitOnly } from './submission.js';
import { USAGE_COPY_DST, USAGE_COPY_SRC, USAGE_MAP_READ, USAGE_STORAGE, USAGE_UNIFORM } from './flags.js';

const NO_BAD_INDEX = 0xffffffff;
// Status words come back first in the readback buffer; results start at this offset.
const READBACK_ALIGN = 256;

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
}

/** float32 values `[0, length)` of a caller-owned GPUBuffer, quantized in place. */
export interface GpuBufferJob {
  buffer: GPUBuffer;
  length: number;
  options: FakeQuantizeOptions;
}

export interface DowngradeEvent {
  from: 'webgpu';
  to: BackendKind;
  reason: string;
}

/** Objects created and work done since the backend was created. */
export interface WebGpuCounters {
  shaderModules: number;
  pipelines: number;
  buffers: number;
  bindGroups: number;
  submissions: number;
  /** Calls that ran on the GPU, and calls that ran on WebAssembly (after a downgrade, or too large for the device). */
  gpuCalls: number;
  wasmCalls: number;
}

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

type PoolName = 'data' | 'partials' | 'status' | 'params' | 'readback';

const POOL_USAGE: Record<PoolName, number> = {
  data: USAGE_STORAGE | USAGE_COPY_DST | USAGE_COPY_SRC,
  partials: USAGE_STORAGE,
  status: USAGE_STORAGE | USAGE_COPY_DST | USAGE_COPY_SRC,
  params: USAGE_UNIFORM | USAGE_COPY_DST,
  readback: USAGE_MAP_READ | USAGE_COPY_DST,
};

/** Buffers reused across calls; they only grow. */
class BufferPool {
  private readonly buffers = new Map<PoolName, GPUBuffer>();
  /** Bumps whenever a buffer every bind group holds (partials, status, params) is replaced. */
  generation = 0;

  constructor(private readonly device: GPUDevice, private readonly counters: WebGpuCounters) {}

  get(name: PoolName, bytes: number): GPUBuffer {
    const have = this.buffers.get(name);
    if (have && have.size >= bytes) return have;
    have?.destroy();
    // The small buffers double so a workload that varies settles quickly; data buffers fit.
    const size = name === 'data' || name === 'readback' ? alignUp(bytes, 256) : 2 ** Math.ceil(Math.log2(Math.max(bytes, 256)));
    const buffer = this.device.createBuffer({ label: `edge-moq ${name}`, size, usage: POOL_USAGE[name] });
    this.counters.buffers++;
    this.buffers.set(name, buffer);
    if (name !== 'data' && name !== 'readback') this.generation++;
    return buffer;
  }

  destroy(): void {
    for (const buffer of this.buffers.values()) buffer.destroy();
    this.buffers.clear();
  }
}

export class WebGpuBackend implements Backend {
  readonly kind: BackendKind = 'webgpu';
  selection: SelectionReport;
  readonly adapter: AdapterSummary;
  private readonly counters: WebGpuCounters;
  private readonly pool: BufferPool;
  private readonly bindGroups = new WeakMap<GPUBuffer, { generation: number; group: GPUBindGroup }>();
  private readonly listeners = new Set<(event: DowngradeEvent) => void>();
  private paramsScratch = new DataView(new ArrayBuffer(JOB_SLOT_BYTES));
  private statusScratch = new Uint32Array(4);
  private submissionId = 0;
  private tail: Promise<unknown> = Promise.resolve();
  private downgradeReason: string | null = null;
  private disposed = false;

  private constructor(
    readonly device: GPUDevice,
    // Dawn's GPU object (Node's `webgpu` package) frees its instance, under any live device,
    // once it is garbage-collected: holding it (and the adapter) keeps the device valid.
    private readonly owners: { gpu: GPU | undefined; adapter: GPUAdapter | undefined },
    private readonly program: KernelProgram,
    /** The WebAssembly backend that takes over after a downgrade (src/packed/ packs on it then). */
    readonly wasm: WasmBackend,
    adapter: AdapterSummary,
    private readonly ownsDevice: boolean,
    counters: WebGpuCounters,
    private readonly beforeSubmit: ((device: GPUDevice) => void) | undefined,
  ) {
    this.adapter = adapter;
    this.counters = counters;
    this.pool = new BufferPool(device, counters);
    this.selection = {
      requested: 'webgpu',
      picked: 'webgpu',
      candidates: [{ kind: 'webgpu', available: true, picked: true, reason: `requested explicitly; adapter ${describeAdapter(adapter)}` }],
    };
    void device.lost.then((info) => {
      if (!this.disposed) this.downgrade(`device lost (${info.reason}${info.message ? `: ${info.message}` : ''})`);
    });
  }

  /** Opens the device (or takes the one given), compiles the kernels and the WebAssembly fallback. */
  static async create(options: WebGpuBackendOptions = {}): Promise<WebGpuBackend> {
    let { device, adapter } = options;
    const gpu = options.gpu ?? (device || adapter ? undefined : (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu);
    const ownsDevice = !device;
    if (!device) {
      if (!adapter) {
        if (!gpu) {
          throw new BackendError('BACKEND_UNAVAILABLE',
            'no WebGPU here (no navigator.gpu); in Node pass { gpu: create([]) } from the "webgpu" package, or use kind \'wasm-simd\'.');
        }
        adapter = (await gpu.requestAdapter({ powerPreference: 'high-performance' })) ?? undefined;
        if (!adapter) {
          throw new BackendError('BACKEND_UNAVAILABLE', "WebGPU found no adapter on this machine; use kind: 'wasm-simd'.");
        }
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
    const counters: WebGpuCounters = { shaderModules: 0, pipelines: 0, buffers: 0, bindGroups: 0, submissions: 0, gpuCalls: 0, wasmCalls: 0 };
    try {
      const summary = summarizeAdapter(adapter ?? device);
      const program = await createProgram(device, device.features.has('subgroups'), counters);
      const simd = runtimeHasSimd();
      const wasm = options.wasmBackend ?? await WasmBackend.create(simd ? 'simd' : 'scalar', simd ? options.wasm?.simd : options.wasm?.scalar);
      return new WebGpuBackend(device, { gpu, adapter }, program, wasm, summary, ownsDevice, counters, options.beforeSubmit);
    } catch (error) {
      if (ownsDevice) device.destroy();
      throw error;
    }
  }

  /** What runs now: 'webgpu', or the WebAssembly backend after a downgrade. */
  get activeKind(): BackendKind {
    return this.downgradeReason === null ? 'webgpu' : this.wasm.kind;
  }

  /** Why the backend moved to WebAssembly, or null while it runs on the GPU. */
  get downgradedBecause(): string | null {
    return this.downgradeReason;
  }

  /** Whether the reductions use subgroup operations (the device has the `subgroups` feature). */
  get usesSubgroups(): boolean {
    return this.program.subgroups;
  }

  /** Listens for the move to WebAssembly; returns a function that stops listening. */
  onDowngrade(listener: (event: DowngradeEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Counters: once warm, repeated calls of the same shapes create no modules, pipelines, buffers or bind groups. */
  stats(): WebGpuCounters {
    return { ...this.counters };
  }

  async fakeQuantize(data: Float32Array, options: FakeQuantizeOptions): Promise<Float32Array> {
    await this.fakeQuantizeMany([{ data, options }]);
    return data;
  }

  /** All jobs in one submission; validated first, and on any error no array is modified. */
  async fakeQuantizeMany(jobs: readonly QuantizeJob[]): Promise<void> {
    if (!Array.isArray(jobs)) {
      throw new InvalidInputError('INVALID_ARGUMENT', 'jobs must be an array of { data, options }.');
    }
    const labels = jobs.map((_, i) => (jobs.length === 1 ? 'data' : `jobs[${i}].data`));
    const plans = jobs.map((job, i) => planFakeQuantize(job?.data, job?.options, labels[i]));
    if (plans.length === 0) return;
    await this.exclusive(async () => {
      const arrays = jobs.map((job) => job.data);
      if (!this.gpuTakes(plans)) {
        this.counters.wasmCalls++;
        this.wasm.fakeQuantizeManySync(jobs);
        return;
      }
      let bad: FirstBad;
      try {
        bad = await this.submit(plans, { host: arrays });
      } catch (error) {
        if (!(error instanceof GpuFailure)) throw error;
        this.downgrade(error.message);
        this.counters.wasmCalls++;
        this.wasm.fakeQuantizeManySync(jobs);
        return;
      }
      this.counters.gpuCalls++;
      if (bad) throw nonFiniteError(`${labels[bad.job]}[${bad.index}] is ${arrays[bad.job]![bad.index]}`);
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
    const { bad, labels } = await this.quantizeBuffers(jobs, true);
    if (bad) throw nonFiniteError(`${labels[bad.job]}[${bad.index}] is NaN or infinite`);
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
  private async quantizeBuffers(jobs: readonly GpuBufferJob[], readBack: boolean): Promise<{ bad: FirstBad; labels: string[] }> {
    if (!Array.isArray(jobs)) {
      throw new InvalidInputError('INVALID_ARGUMENT', 'jobs must be an array of { buffer, length, options }.');
    }
    const labels = jobs.map((_, i) => (jobs.length === 1 ? 'buffer' : `jobs[${i}].buffer`));
    const plans = jobs.map((job, i) => this.planBufferJob(job, labels[i]!));
    if (plans.length === 0) return { bad: null, labels };
    return this.exclusive(async () => {
      this.assertUsable();
      if (this.downgradeReason !== null) throw deviceLostError(this.downgradeReason);
      let bad: FirstBad;
      try {
        bad = await this.submit(plans, { buffers: jobs.map((job) => job.buffer) }, readBack);
      } catch (error) {
        if (!(error instanceof GpuFailure)) throw error;
        if (!error.lost) {
          throw new InvalidInputError('INVALID_ARGUMENT',
            `WebGPU rejected these buffers (${error.message}): each must belong to backend.device and be alive. Nothing was modified.`);
        }
        this.downgrade(error.message);
        throw deviceLostError(error.message);
      }
      this.counters.gpuCalls++;
      return { bad, labels };
    });
  }

  /**
   * Statistics of a host array come from WebAssembly: they take one pass over memory, which
   * costs less there than the upload alone would.
   */
  async groupStats(data: Float32Array, options: { groups?: number; groupSize?: number }): Promise<GroupStats> {
    this.assertUsable();
    this.counters.wasmCalls++;
    return this.wasm.groupStats(data, options);
  }

  explain(): string {
    const lines = [explainSelection(this.selection)];
    lines.push(`  adapter: ${describeAdapter(this.adapter)}; reductions ${this.program.subgroups ? 'with subgroup operations' : 'in workgroup memory (no subgroups feature)'}`);
    if (this.downgradeReason !== null) lines.push(`  now running on ${this.wasm.kind}: ${this.downgradeReason}`);
    return lines.join('\n');
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.pool.destroy();
    this.wasm.dispose();
    if (this.ownsDevice) this.device.destroy();
  }

  private assertUsable(): void {
    if (this.disposed) {
      throw new BackendError('BACKEND_UNAVAILABLE', 'this WebGPU backend was disposed; create a new one with createBackend().');
    }
  }

  /** Whether host work goes to the GPU: not after a downgrade, and not beyond the device's binding limit. */
  private gpuTakes(plans: readonly KernelPlan[]): boolean {
    this.assertUsable();
    if (this.downgradeReason !== null) return false;
    const bytes = plans.reduce((sum, plan) => sum + plan.length * 4, 0);
    const { maxStorageBufferBindingSize, maxBufferSize } = this.device.limits;
    return bytes <= maxStorageBufferBindingSize && bytes + READBACK_ALIGN <= maxBufferSize;
  }

  private downgrade(reason: string): void {
    if (this.downgradeReason !== null) return;
    this.downgradeReason = reason;
    this.pool.destroy();
    console.warn(`edge-moq: WebGPU stopped, ${reason}; continuing on ${this.wasm.kind}, no data lost.`);
    const event: DowngradeEvent = { from: 'webgpu', to: this.wasm.kind, reason };
    for (const listener of this.listeners) listener(event);
  }

  /** Runs operations one at a time: they share the pooled buffers. */
  private exclusive<T>(operation: () => Promise<T>): Promise<T> {
    const run = this.tail.then(operation, operation);
    this.tail = run.catch(() => undefined);
    return run;
  }

  private planBufferJob(job: GpuBufferJob, label: string): KernelPlan {
    const buffer = job?.buffer as Partial<GPUBuffer> | undefined;
    if (typeof buffer !== 'object' || buffer === null || typeof buffer.size !== 'number' || typeof buffer.usage !== 'number') {
      throw new InvalidInputError('WRONG_DTYPE',
        `${label} must be a GPUBuffer of backend.device; for host data use fakeQuantize.`);
    }
    if ((buffer.usage & USAGE_STORAGE) === 0) {
      throw new InvalidInputError('INVALID_ARGUMENT', `${label} lacks GPUBufferUsage.STORAGE: create it with that usage.`);
    }
    if (buffer.mapState !== 'unmapped') {
      throw new InvalidInputError('INVALID_ARGUMENT', `${label} is ${buffer.mapState}: unmap it before quantizing it.`);
    }
    if (buffer.size % 4 !== 0 || buffer.size > this.device.limits.maxStorageBufferBindingSize) {
      throw new InvalidInputError('INVALID_ARGUMENT',
        `${label} is ${buffer.size} bytes: it must be a multiple of 4, at most maxStorageBufferBindingSize; split the tensor.`);
    }
    const { length } = job;
    if (typeof length !== 'number' || !Number.isInteger(length) || length < 0) {
      throw new InvalidInputError('INVALID_ARGUMENT', `the length for ${label} must be a non-negative integer, got ${String(length)}.`);
    }
    if (length * 4 > buffer.size) {
      throw new InvalidInputError('INVALID_ARGUMENT',
        `${label} holds ${buffer.size / 4} float32 values, fewer than the length ${length} given.`);
    }
    return planFakeQuantizeLength(length, job.options, label);
  }

  private bindGroupFor(data: GPUBuffer, partials: GPUBuffer, status: GPUBuffer, params: GPUBuffer): GPUBindGroup {
    const cached = this.bindGroups.get(data);
    if (cached && cached.generation === this.pool.generation) return cached.group;
    const dataBytes = Math.min(data.size, this.device.limits.maxStorageBufferBindingSize) & ~3;
    const group = this.device.createBindGroup({
      layout: this.program.layout,
      entries: [
        { binding: 0, resource: { buffer: data, size: dataBytes } },
        { binding: 1, resource: { buffer: partials } },
        { binding: 2, resource: { buffer: status } },
        { binding: 3, resource: { buffer: params, size: JOB_BYTES } },
      ],
    });
    this.counters.bindGroups++;
    this.bindGroups.set(data, { generation: this.pool.generation, group });
    return group;
  }

  /**
   * One command submission for all jobs: validation and statistics for every tensor, then the
   * writers (which do nothing if any tensor held a NaN/Inf), then the read-back unless
   * `readBack` is false (buffers only; the result is then null). Throws GpuFailure when the
   * device is lost or WebGPU reports an error.
   */
  private async submit(plans: KernelPlan[], source: { host: Float32Array[] } | { buffers: GPUBuffer[] }, readBack = true): Promise<FirstBad> {
    const { device } = this;
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
    const submissionId = (this.submissionId = (this.submissionId + 1) >>> 0);

    const encode = (): GPUBuffer | null => {
      const params = this.pool.get('params', jobs.length * JOB_SLOT_BYTES);
      const status = this.pool.get('status', statusBytes);
      const partials = this.pool.get('partials', Math.max(partialCount, 1) * PARTIAL_BYTES);
      const readback = readBack ? this.pool.get('readback', readbackBytes) : null;
      // Host arrays share one pooled buffer, end to end.
      const dataBuffers = 'host' in source ? jobs.map(() => this.pool.get('data', elements * 4)) : source.buffers;
      if ('host' in source) {
        source.host.forEach((array, i) => device.queue.writeBuffer(dataBuffers[i]!, bases[i]! * 4, array as Float32Array<ArrayBuffer>));
      }
      this.writeParams(jobs, params);
      this.writeStatus(jobs.length, submissionId, status);
      const groups = jobs.map((_, i) => this.bindGroupFor(dataBuffers[i]!, partials, status, params));

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
      this.counters.submissions++;
      return readback;
    };
    if (!readBack) {
      await submitOnly(device, encode, () => this.downgradeReason !== null);
      return null;
    }
    return submitAndRead(device, readbackBytes, () => encode()!, (mapped) => {
      const statusView = new Uint32Array(mapped, 0, statusWords);
      if (statusView[statusWords - 1] !== submissionId) {
        throw new GpuFailure('the submission did not run (its status never came back)', this.downgradeReason !== null);
      }
      const bad = statusView[0] === 0 ? -1 : jobs.findIndex((_, i) => statusView[1 + i] !== NO_BAD_INDEX);
      if (bad >= 0) return { job: bad, index: statusView[1 + bad]! };
      if ('host' in source) {
        source.host.forEach((array, i) => array.set(new Float32Array(mapped, resultOffset + bases[i]! * 4, array.length)));
      }
      return null;
    }, () => this.downgradeReason !== null);
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

/** `what`: "data[3] is NaN", as WasmBackend words it. */
function nonFiniteError(what: string): InvalidInputError {
  return new InvalidInputError('NON_FINITE',
    `${what}: quantization needs finite values (a NaN/Inf usually means an overflowed step; skip it with overflow: true). ` +
    'Nothing was modified.');
}

function deviceLostError(reason: string): BackendError {
  return new BackendError('DEVICE_LOST',
    `the WebGPU device is gone (${reason}), and the contents of its buffers with it; host arrays still work (on ` +
    'WebAssembly). For GPU buffers, create a new device and backend and upload the tensors again.');
}

/** What an adapter (or, for a given device, its adapterInfo) says about itself. */
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

export function describeAdapter(adapter: AdapterSummary): string {
  const name = [adapter.vendor, adapter.architecture, adapter.description || adapter.device].filter(Boolean).join(' / ') || 'unnamed adapter';
  return adapter.isFallbackAdapter ? `${name} (fallback adapter)` : name;
}

function alignUp(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}
