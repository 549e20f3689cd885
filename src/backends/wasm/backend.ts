// The WebAssembly backends (SIMD and scalar builds of assembly/). Tensors already in the
// module's memory (WasmTensor) are quantized where they are; host arrays go through one
// reusable staging area, so a call allocates nothing once warm.

import { float32Length, planFakeQuantize, type FakeQuantizeOptions, type KernelPlan } from '../../kernel-plan.js';
import { describeValue } from '../../describe.js';
import { InvalidInputError } from '../../errors.js';
import { noiseKey } from '../../noise.js';
import type { Backend, BackendKind, GroupStats, QuantizeJob, SelectionReport } from '../backend.js';
import { explainSelection } from '../backend.js';
import { compileWasm, type WasmBuild, type WasmSource } from './loader.js';
import { WasmHeap, WasmTensor } from './memory.js';
import type { KernelExports } from './kernel-exports.js';

/** What src/backends/wasm/packer.ts uses of a WasmBackend: its kernels and its memory. */
export interface WasmInternals {
  kernels: KernelExports;
  heap: WasmHeap;
}

interface Staged { plan: KernelPlan; pointer: number; host: Float32Array | null; label: string; stats: number }

export interface WasmBackendOptions {
  /**
   * The most host data staged in WebAssembly memory at once (default 64 MiB). Larger host
   * arrays are quantized in chunks of whole groups, so memory stays near this bound (a Worker
   * has 128 MB) and tensors beyond what one WebAssembly memory holds (over 2 GB) go through.
   */
  stagingBytes?: number;
}

export const DEFAULT_STAGING_BYTES = 64 << 20;

export class WasmBackend implements Backend {
  readonly kind: BackendKind;
  selection: SelectionReport;
  private readonly kernels: KernelExports;
  private readonly heap: WasmHeap;
  // Reused between calls: host arrays are copied here, per-group statistics kept here.
  private staging = { offset: 0, bytes: 0 };
  private statistics = { offset: 0, bytes: 0 };

  private readonly stagingLimit: number;

  private constructor(build: WasmBuild, instance: WebAssembly.Instance, options: WasmBackendOptions) {
    const { stagingBytes = DEFAULT_STAGING_BYTES } = options;
    if (!Number.isInteger(stagingBytes) || stagingBytes < 16) {
      throw new InvalidInputError('INVALID_ARGUMENT', `stagingBytes must be an integer of at least 16, got ${describeValue(stagingBytes)}.`);
    }
    this.stagingLimit = stagingBytes;
    this.kind = build === 'simd' ? 'wasm-simd' : 'wasm';
    this.kernels = instance.exports as unknown as KernelExports;
    this.heap = new WasmHeap(this.kernels.memory, this.kernels.heapBase());
    this.selection = {
      requested: this.kind,
      picked: this.kind,
      candidates: [{ kind: this.kind, available: true, picked: true, reason: 'requested explicitly' }],
    };
  }

  static async create(build: WasmBuild, source?: WasmSource, options: WasmBackendOptions = {}): Promise<WasmBackend> {
    if (build !== 'simd' && build !== 'scalar') {
      throw new InvalidInputError('INVALID_ARGUMENT', `build must be 'simd' or 'scalar', got ${describeValue(build)}; createBackend({ kind }) picks one for you.`);
    }
    if (typeof options !== 'object' || options === null || Object.keys(options).some((key) => key !== 'stagingBytes')) {
      throw new InvalidInputError('INVALID_ARGUMENT', `options must be { stagingBytes? }, got ${describeValue(options)}.`);
    }
    const module = await compileWasm(build, source);
    return new WasmBackend(build, await WebAssembly.instantiate(module, {}), options);
  }

  /** For src/packed/: the module's exports and the heap over its memory. */
  get internals(): WasmInternals {
    return { kernels: this.kernels, heap: this.heap };
  }

  /** A tensor in this backend's memory: quantizing it copies nothing. */
  allocate(length: number): WasmTensor {
    if (!Number.isInteger(length) || length <= 0) {
      throw new InvalidInputError('INVALID_ARGUMENT', `length must be a positive integer, got ${describeValue(length)}.`);
    }
    return new WasmTensor(this.heap, this.heap.allocate(length * 4), length);
  }

  /** Copies `values` into a new WasmTensor. */
  upload(values: Float32Array): WasmTensor {
    const tensor = this.allocate(float32Length(values, 'values'));
    tensor.array.set(values);
    return tensor;
  }

  async fakeQuantize(data: Float32Array, options: FakeQuantizeOptions): Promise<Float32Array> {
    return this.fakeQuantizeSync(data, options);
  }

  async fakeQuantizeMany(jobs: readonly QuantizeJob[]): Promise<void> {
    this.fakeQuantizeManySync(jobs);
  }

  fakeQuantizeSync(data: Float32Array, options: FakeQuantizeOptions): Float32Array {
    this.fakeQuantizeManySync([{ data, options }]);
    return data;
  }

  /**
   * Validates every job, then quantizes them all; on any error nothing is modified.
   * Host arrays are copied into staging and quantized there in one fused pass (the copy is
   * what the caller keeps until every job succeeded). Arrays already in our memory are
   * quantized where they are, in two passes: statistics and NaN/Inf checks for every such job
   * first, then the writes.
   */
  fakeQuantizeManySync(jobs: readonly QuantizeJob[]): void {
    if (!Array.isArray(jobs)) {
      throw new InvalidInputError('INVALID_ARGUMENT', 'jobs must be an array of { data, options }.');
    }
    const plans = jobs.map((job, i) => planFakeQuantize(job?.data, job?.options, jobs.length === 1 ? 'data' : `jobs[${i}].data`));
    const memoryBuffer = this.kernels.memory.buffer;
    jobs.forEach((job, i) => {
      if (job.data.buffer === memoryBuffer) this.heap.assertLiveView(job.data, jobs.length === 1 ? 'data' : `jobs[${i}].data`);
    });
    const hostBytes = jobs.reduce((sum, job, i) => sum + (job.data.buffer === memoryBuffer ? 0 : plans[i]!.length * 4), 0);
    if (hostBytes > this.stagingLimit) {
      this.quantizeInChunks(jobs, plans);
      return;
    }
    const staged = this.stage(jobs, plans);
    for (const s of staged) {
      if (s.host) continue;
      const { groupCount, groupSize } = s.plan;
      const badGroup = s.plan.bits >= 3
        ? this.kernels.groupRanges(s.pointer, groupCount, groupSize, s.stats)
        : this.kernels.groupAbsMeans(s.pointer, groupCount, groupSize, s.stats);
      if (badGroup >= 0) throw this.nonFinite(s, badGroup);
    }
    for (const s of staged) {
      if (!s.host) continue;
      const badGroup = this.run(s, 0);
      if (badGroup >= 0) throw this.nonFinite(s, badGroup);
    }
    for (const s of staged) if (!s.host) this.run(s, s.stats);
    const memory = this.kernels.memory.buffer;
    for (const s of staged) {
      if (s.host) s.host.set(new Float32Array(memory, s.pointer, s.plan.length));
    }
  }

  /**
   * Host data larger than the staging limit: every job is checked first (statistics of each
   * chunk, and of each tensor already in our memory), then written chunk by chunk, so bad input
   * anywhere still leaves everything untouched. Chunks hold whole groups; the stochastic noise
   * is indexed from each chunk's first element, so results equal the unchunked ones.
   */
  private quantizeInChunks(jobs: readonly QuantizeJob[], plans: KernelPlan[]): void {
    const memory = this.kernels.memory;
    const inMemory = jobs.map((job) => job.data.buffer === memory.buffer);
    const pointers = jobs.map((job, i) => (inMemory[i] ? job.data.byteOffset : -1));
    const chunkElements = plans.map((plan) => Math.max(1, Math.floor(this.stagingLimit / 4 / plan.groupSize)) * plan.groupSize);
    const stagingBytes = Math.max(...plans.map((plan, i) => (inMemory[i] ? 0 : Math.min(plan.length, chunkElements[i]!) * 4)));
    const statBytes = Math.max(...plans.map((plan, i) => (inMemory[i] ? plan.length : Math.min(plan.length, chunkElements[i]!)) / plan.groupSize * 8));
    const staging = this.reserve(this.staging, stagingBytes);
    const stats = this.reserve(this.statistics, statBytes);
    const label = (i: number) => (jobs.length === 1 ? 'data' : `jobs[${i}].data`);
    const chunksOf = function* (i: number) {
      for (let first = 0; first < plans[i]!.length; first += chunkElements[i]!) {
        yield { first, plan: { ...plans[i]!, length: Math.min(chunkElements[i]!, plans[i]!.length - first) } };
      }
    };
    const check = (plan: KernelPlan, pointer: number, i: number, first: number) => {
      const groupCount = plan.length / plan.groupSize;
      const badGroup = plan.bits >= 3
        ? this.kernels.groupRanges(pointer, groupCount, plan.groupSize, stats)
        : this.kernels.groupAbsMeans(pointer, groupCount, plan.groupSize, stats);
      if (badGroup >= 0) throw this.nonFinite({ plan, pointer, host: null, label: label(i), stats }, badGroup, first);
    };
    jobs.forEach((job, i) => {
      if (inMemory[i]) {
        check(plans[i]!, pointers[i]!, i, 0);
        return;
      }
      for (const { first, plan } of chunksOf(i)) {
        new Float32Array(memory.buffer, staging, plan.length).set(job.data.subarray(first, first + plan.length));
        check({ ...plan, groupCount: plan.length / plan.groupSize }, staging, i, first);
      }
    });
    jobs.forEach((job, i) => {
      if (inMemory[i]) {
        this.run({ plan: plans[i]!, pointer: pointers[i]!, host: null, label: label(i), stats: 0 }, 0);
        return;
      }
      for (const { first, plan } of chunksOf(i)) {
        const view = new Float32Array(memory.buffer, staging, plan.length);
        view.set(job.data.subarray(first, first + plan.length));
        this.run({ plan: { ...plan, groupCount: plan.length / plan.groupSize }, pointer: staging, host: null, label: label(i), stats: 0 }, 0, first);
        job.data.set(view, first);
      }
    });
  }

  private nonFinite(s: Staged, badGroup: number, first = 0): InvalidInputError {
    const group = new Float32Array(this.kernels.memory.buffer, s.pointer + badGroup * s.plan.groupSize * 4, s.plan.groupSize);
    const at = group.findIndex((x) => !Number.isFinite(x));
    const index = first + badGroup * s.plan.groupSize + at;
    return new InvalidInputError('NON_FINITE',
      `${s.label}[${index}] is ${group[at]}: quantization needs finite values (a NaN/Inf usually means an overflowed ` +
      `step; skip it with overflow: true). Nothing was modified.`);
  }

  async groupStats(data: Float32Array, options: { groups?: number; groupSize?: number }): Promise<GroupStats> {
    const plan = planFakeQuantize(data, { bits: 8, ...pickGroups(options) });
    if (data.buffer === this.kernels.memory.buffer) this.heap.assertLiveView(data, 'data');
    const [s] = this.stage([{ data, options: { bits: 8 } }], [plan]);
    const out = this.heap.allocate(plan.groupCount * 16);
    try {
      this.kernels.groupStats(s!.pointer, plan.groupCount, plan.groupSize, out);
      const all = new Float32Array(this.kernels.memory.buffer, out, plan.groupCount * 4);
      // A NaN shows in the mean |x|, an Inf in the range (the mean itself stays finite: see stats.ts).
      const bad = all.findIndex((v, i) => Number.isNaN(v) || (i % 4 < 2 && !Number.isFinite(v)));
      if (bad >= 0) throw this.nonFinite(s!, Math.floor(bad / 4));
      const column = (k: number) => Float32Array.from({ length: plan.groupCount }, (_, g) => all[g * 4 + k]!);
      return { min: column(0), max: column(1), absMax: column(2), meanAbs: column(3) };
    } finally {
      this.heap.release(out, plan.groupCount * 16);
    }
  }

  /** The stochastic-rounding offsets p in [-0.5, 0.5) for elements first..first+count-1. */
  noiseOffsets(count: number, stream: { seed?: number; step?: number; tensorId?: number }, first = 0): Float32Array {
    const out = this.heap.allocate(count * 4);
    try {
      this.kernels.fillStochasticOffsets(out, first, count, noiseKey(stream.seed ?? 0, stream.step ?? 0, stream.tensorId ?? 0));
      return new Float32Array(this.kernels.memory.buffer, out, count).slice();
    } finally {
      this.heap.release(out, count * 4);
    }
  }

  explain(): string {
    return explainSelection(this.selection);
  }

  dispose(): void {
    for (const region of [this.staging, this.statistics]) {
      if (region.bytes) this.heap.release(region.offset, region.bytes);
      region.offset = region.bytes = 0;
    }
  }

  /**
   * In place; `stats` = 0 runs the fused pass, which returns the first non-finite group.
   * `firstIndex`: the tensor index of the first element (the stochastic noise's counter).
   */
  private run({ plan, pointer }: Staged, stats: number, firstIndex = 0): number {
    const { groupCount, groupSize } = plan;
    const blend = plan.blend ? 1 : 0;
    if (plan.bits >= 3) {
      return this.kernels.quantizeGrid(pointer, pointer, groupCount, groupSize, stats, plan.bits, plan.asymmetric ? 1 : 0,
        plan.full ? 1 : 0, plan.stochastic ? 1 : 0, plan.key | 0, firstIndex, blend, plan.ratio, plan.rest);
    }
    const kernel = plan.bits === 2 ? this.kernels.quantizeTernary : this.kernels.quantizeBinary;
    return kernel(pointer, pointer, groupCount, groupSize, stats, blend, plan.ratio, plan.rest);
  }

  /** Grows a reusable region to at least `bytes`; returns its offset. */
  private reserve(region: { offset: number; bytes: number }, bytes: number): number {
    if (bytes > region.bytes) {
      if (region.bytes) this.heap.release(region.offset, region.bytes);
      region.offset = this.heap.allocate(bytes);
      region.bytes = bytes;
    }
    return region.offset;
  }

  /** Pointers for every job: in place for data in our memory, else copied into staging. */
  private stage(jobs: readonly QuantizeJob[], plans: KernelPlan[]): Staged[] {
    const memory = this.kernels.memory;
    const inMemory = jobs.map((job) => job.data.buffer === memory.buffer);
    const hostBytes = plans.reduce((sum, plan, i) => sum + (inMemory[i] ? 0 : plan.length * 4), 0);
    // Pointers into our memory are fixed before staging may grow (and detach) the buffer.
    const pointers = jobs.map((job, i) => (inMemory[i] ? job.data.byteOffset : -1));
    // Two-pass jobs keep (min, max) per group for the grid, mean |x| for ternary and binary.
    const statBytes = plans.map((plan, i) => (inMemory[i] ? plan.groupCount * (plan.bits >= 3 ? 8 : 4) : 0));
    let statCursor = this.reserve(this.statistics, statBytes.reduce((a, b) => a + b, 0));
    let cursor = this.reserve(this.staging, hostBytes);
    return jobs.map((job, i) => {
      const plan = plans[i]!;
      const label = jobs.length === 1 ? 'data' : `jobs[${i}].data`;
      const stats = statCursor;
      statCursor += statBytes[i]!;
      if (inMemory[i]) return { plan, pointer: pointers[i]!, host: null, label, stats };
      const pointer = cursor;
      cursor += plan.length * 4;
      new Float32Array(memory.buffer, pointer, plan.length).set(job.data);
      return { plan, pointer, host: job.data, label, stats };
    });
  }
}

function pickGroups(options: { groups?: number; groupSize?: number }): { groups?: number; groupSize?: number } {
  const picked: { groups?: number; groupSize?: number } = {};
  if (options?.groups !== undefined) picked.groups = options.groups;
  if (options?.groupSize !== undefined) picked.groupSize = options.groupSize;
  return picked;
}
