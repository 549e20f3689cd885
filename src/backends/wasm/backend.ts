// The WebAssembly backends (SIMD and scalar builds of assembly/). Tensors already in the
// module's memory (WasmTensor) are quantized where they are; host arrays go through one
// reusable staging area, so a call allocates nothing once warm.

import { float32Length, planFakeQuantize, type FakeQuantizeOptions, type KernelPlan } from '../../kernel-plan.js';
import { describeValue } from '../../describe.js';
import { InvalidInputError, nonFiniteError } from '../../errors.js';
import { noiseKey } from '../../noise.js';
import type { Backend, BackendKind, FakeQuantizeTarget, GroupStats, QuantizeJob, SelectionReport } from '../backend.js';
import { explainSelection, jobLabel, jobTarget, selectionOf, targetArray } from '../backend.js';
import { compileWasm, type WasmBuild, type WasmSource } from './loader.js';
import { WasmHeap, WasmTensor } from './memory.js';
import type { KernelExports } from './kernel-exports.js';

/** What src/backends/wasm/packer.ts uses of a WasmBackend: its kernels and its memory. */
export interface WasmInternals {
  kernels: KernelExports;
  heap: WasmHeap;
}

interface Staged {
  plan: KernelPlan;
  pointer: number;
  label: string;
  job: number;
}

/** WasmBackend.create's options: how much host data a call stages in WebAssembly memory. */
export interface WasmBackendOptions {
  /**
   * The most host data staged in WebAssembly memory at once (default 64 MiB). Larger host
   * arrays are quantized in chunks of whole groups, so memory stays near this bound (a Worker
   * has 128 MB) and tensors beyond what one WebAssembly memory holds (over 2 GB) go through.
   */
  stagingBytes?: number;
}

export const DEFAULT_STAGING_BYTES = 64 << 20;

// Host data is staged in chunks this large (whole groups): copied in, quantized and copied out
// while the chunk is still in cache (bench/kernels-host.mjs measures the choice).
const CACHE_CHUNK_BYTES = 128 << 10;

export class WasmBackend implements Backend {
  readonly kind: BackendKind;
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
  }

  get selection(): SelectionReport {
    return selectionOf(this);
  }

  /** What createPacker packs on: this backend's memory. */
  get packingBackend(): WasmBackend {
    return this;
  }

  /**
   * Compiles (once per build and source) and instantiates a WebAssembly build.
   * @param build 'simd' or 'scalar'; createBackend picks the one the runtime runs.
   * @param source Where the .wasm comes from (default: the package's file, or the URL beside the bundle).
   * @param options How much host data a call stages at once.
   * @returns A backend with its own memory.
   */
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

  /**
   * For the packer: the module's exports and the heap over its memory.
   * @internal
   */
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

  async fakeQuantize(data: Float32Array, options: FakeQuantizeOptions, target?: FakeQuantizeTarget): Promise<Float32Array> {
    return this.fakeQuantizeSync(data, options, target);
  }

  async fakeQuantizeMany(jobs: readonly QuantizeJob[]): Promise<void> {
    this.fakeQuantizeManySync(jobs);
  }

  /** fakeQuantize, synchronously: in place, or with `{ into }` out of place (Backend.fakeQuantize). */
  fakeQuantizeSync(data: Float32Array, options: FakeQuantizeOptions, target?: FakeQuantizeTarget): Float32Array {
    if (target === undefined) {
      this.fakeQuantizeManySync([{ data, options }]);
      return data;
    }
    return this.quantizeInto(data, options, target);
  }

  /**
   * Validates every job, then quantizes them all; on any error nothing is modified.
   * Arrays already in our memory are quantized where they are, in two passes: statistics and
   * NaN/Inf checks, then the writes. Host arrays pass through staging in chunks of whole groups
   * small enough to stay in cache: every chunk is copied in and checked for NaN/Inf first, then
   * copied in again, quantized in one fused pass and copied back while still in cache, so the
   * caller's memory is read twice and written once. A job with `into` is checked the same way,
   * then written there in one fused pass (writeInto).
   */
  fakeQuantizeManySync(jobs: readonly QuantizeJob[]): void {
    if (!Array.isArray(jobs)) {
      throw new InvalidInputError('INVALID_ARGUMENT', 'jobs must be an array of { data, options }.');
    }
    const labels = jobs.map((_, i) => jobLabel(jobs, i));
    const plans = jobs.map((job, i) => planFakeQuantize(job?.data, job?.options, labels[i]));
    const memory = this.kernels.memory;
    const intos = jobs.map((_, i) => jobTarget(jobs, i, plans[i]!.length, labels[i]!));
    const inMemory = jobs.map((job) => job.data.buffer === memory.buffer);
    jobs.forEach((job, i) => {
      if (inMemory[i]) this.heap.assertLiveView(job.data, labels[i]!);
      if (intos[i]?.buffer === memory.buffer) this.heap.assertLiveView(intos[i]!, `the into of ${labels[i]}`);
    });
    // Pointers into our memory are fixed before reserving may grow (and detach) the buffer.
    const pointers = jobs.map((job, i) => (inMemory[i] ? job.data.byteOffset : -1));
    const intoPointers = intos.map((into) => (into?.buffer === memory.buffer ? into.byteOffset : -1));
    const chunks = plans.map((plan) => this.chunkElements(plan));
    // Statistics found by the checking pass spare the writing pass its own: kept for tensors in
    // our memory, and for host arrays while they stay small beside the staging area.
    const statBytes = plans.map((plan, i) => {
      const bytes = plan.groupCount * statisticsBytes(plan);
      return inMemory[i] || (!intos[i] && bytes <= this.stagingLimit / 8) ? bytes : 0;
    });
    const statStarts: number[] = [];
    let statCursor = this.reserve(
      this.statistics,
      statBytes.reduce((a, b) => a + b, 0),
    );
    for (const bytes of statBytes) {
      statStarts.push(statCursor);
      statCursor += bytes;
    }
    // Where job i keeps the statistics of the chunk starting at element `first`; 0: none kept,
    // and the writing pass finds its own.
    const statisticsAt = (i: number, first: number) => (statBytes[i] ? statStarts[i]! + (first / plans[i]!.groupSize) * statisticsBytes(plans[i]!) : 0);
    const needsStaging = (i: number) => !inMemory[i] || (intos[i] !== undefined && intoPointers[i]! < 0);
    const staging = this.reserve(this.staging, Math.max(0, ...plans.map((plan, i) => (needsStaging(i) ? Math.min(plan.length, chunks[i]!) * 4 : 0))));
    const staged = (i: number, pointer: number): Staged => ({ plan: plans[i]!, pointer, label: labels[i]!, job: i });
    jobs.forEach((job, i) => {
      const plan = plans[i]!;
      if (inMemory[i]) {
        const badGroup = this.gatherStatistics(plan, pointers[i]!, plan.groupCount, statStarts[i]!);
        if (badGroup >= 0) throw this.nonFinite(staged(i, pointers[i]!), badGroup);
        return;
      }
      for (let first = 0; first < plan.length; first += chunks[i]!) {
        const count = Math.min(chunks[i]!, plan.length - first);
        new Float32Array(memory.buffer, staging, count).set(job.data.subarray(first, first + count));
        const groups = count / plan.groupSize;
        const at = statisticsAt(i, first);
        const badGroup = at ? this.gatherStatistics(plan, staging, groups, at) : this.kernels.firstNonFiniteGroup(staging, groups, plan.groupSize);
        if (badGroup >= 0) throw this.nonFinite(staged(i, staging), badGroup, first);
      }
    });
    jobs.forEach((job, i) => {
      const plan = plans[i]!;
      if (intos[i]) {
        this.writeInto(plan, job.data, pointers[i]!, intos[i]!, intoPointers[i]!, staging, labels[i]!, i);
        return;
      }
      if (inMemory[i]) {
        this.run(plan, pointers[i]!, pointers[i]!, plan.groupCount, statStarts[i]!, 0);
        return;
      }
      for (let first = 0; first < plan.length; first += chunks[i]!) {
        const count = Math.min(chunks[i]!, plan.length - first);
        const view = new Float32Array(memory.buffer, staging, count);
        view.set(job.data.subarray(first, first + count));
        this.run(plan, staging, staging, count / plan.groupSize, statisticsAt(i, first), first);
        job.data.set(view, first);
      }
    });
  }

  /** Out of place, one fused pass: `data` is only read (writeInto). */
  private quantizeInto(data: Float32Array, options: FakeQuantizeOptions, target: FakeQuantizeTarget): Float32Array {
    const plan = planFakeQuantize(data, options, 'data');
    const into = targetArray(data, target, plan.length);
    const memory = this.kernels.memory;
    if (data.buffer === memory.buffer) this.heap.assertLiveView(data, 'data');
    if (into.buffer === memory.buffer) this.heap.assertLiveView(into, 'into');
    // Taken before reserving staging may grow the memory and detach views of it.
    const src = data.buffer === memory.buffer ? data.byteOffset : -1;
    const dst = into.buffer === memory.buffer ? into.byteOffset : -1;
    const staging = src >= 0 && dst >= 0 ? 0 : this.reserve(this.staging, Math.min(plan.length, this.chunkElements(plan)) * 4);
    this.writeInto(plan, data, src, into, dst, staging, 'data', 0);
    return into;
  }

  /**
   * Quantizes `plan` from `data` into `into` in one fused pass. `src` and `dst` are the arrays'
   * offsets in our memory, taken before anything could grow it, or -1 for host arrays, which
   * pass through `staging` in cache-sized chunks. The kernel stops before the first group holding
   * a NaN or ±Inf, so `into` keeps the groups before it.
   */
  private writeInto(plan: KernelPlan, data: Float32Array, src: number, into: Float32Array, dst: number, staging: number, label: string, job: number): void {
    const memory = this.kernels.memory;
    const chunk = src >= 0 && dst >= 0 ? plan.length : this.chunkElements(plan);
    for (let first = 0; first < plan.length; first += chunk) {
      const count = Math.min(chunk, plan.length - first);
      const from = src >= 0 ? src + first * 4 : staging;
      const to = dst >= 0 ? dst + first * 4 : staging;
      if (src < 0) new Float32Array(memory.buffer, staging, count).set(data.subarray(first, first + count));
      const badGroup = this.run(plan, from, to, count / plan.groupSize, 0, first);
      if (badGroup >= 0) {
        throw this.nonFinite({ plan, pointer: from, label, job }, badGroup, first, `${label} is unchanged; into holds the groups before this one.`);
      }
      if (dst < 0) into.set(new Float32Array(memory.buffer, staging, count), first);
    }
  }

  /**
   * The checking pass over `groupCount` groups at `pointer`: what the writing pass reads per
   * group (the range, or for a symmetric grid (-max |x|, max |x|), or mean |x|) into `out`.
   * Returns the first group holding a NaN or ±Inf, or -1.
   */
  private gatherStatistics(plan: KernelPlan, pointer: number, groupCount: number, out: number): number {
    const kernel = plan.bits < 3 ? this.kernels.groupAbsMeans : plan.asymmetric || plan.full ? this.kernels.groupRanges : this.kernels.groupAbsRanges;
    return kernel(pointer, groupCount, plan.groupSize, out);
  }

  /** Elements per chunk of host data: whole groups, cache-sized where groups allow, at most the staging limit. */
  private chunkElements(plan: KernelPlan): number {
    const bytes = Math.min(CACHE_CHUNK_BYTES, this.stagingLimit);
    return Math.max(1, Math.floor(bytes / 4 / plan.groupSize)) * plan.groupSize;
  }

  private nonFinite(s: Staged, badGroup: number, first = 0, outcome?: string): InvalidInputError {
    const group = new Float32Array(this.kernels.memory.buffer, s.pointer + badGroup * s.plan.groupSize * 4, s.plan.groupSize);
    const at = group.findIndex((x) => !Number.isFinite(x));
    const index = first + badGroup * s.plan.groupSize + at;
    return nonFiniteError(s.label, group[at], { job: s.job, index, group: Math.floor(index / s.plan.groupSize) }, false, outcome);
  }

  async groupStats(data: Float32Array, options: { groups?: number; groupSize?: number }): Promise<GroupStats> {
    const plan = planFakeQuantize(data, { bits: 8, ...pickGroups(options) });
    if (data.buffer === this.kernels.memory.buffer) this.heap.assertLiveView(data, 'data');
    const s: Staged = { plan, pointer: this.stageHost(data, plan.length), label: 'data', job: 0 };
    const out = this.heap.allocate(plan.groupCount * 16);
    try {
      this.kernels.groupStats(s.pointer, plan.groupCount, plan.groupSize, out);
      const all = new Float32Array(this.kernels.memory.buffer, out, plan.groupCount * 4);
      // A NaN shows in the mean |x|, an Inf in the range (the mean itself stays finite: see stats.ts).
      const bad = all.findIndex((v, i) => Number.isNaN(v) || (i % 4 < 2 && !Number.isFinite(v)));
      if (bad >= 0) throw this.nonFinite(s, Math.floor(bad / 4));
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
   * Quantizes `groupCount` groups of `plan` from `src` to `dst` (the same pointer: in place).
   * `stats` = 0 runs the fused pass, which returns the first non-finite group. `firstIndex`:
   * the tensor index of the first element (the stochastic noise's counter).
   */
  private run(plan: KernelPlan, src: number, dst: number, groupCount: number, stats: number, firstIndex: number): number {
    const { groupSize } = plan;
    const blend = plan.blend ? 1 : 0;
    if (plan.bits >= 3) {
      return this.kernels.quantizeGrid(
        src,
        dst,
        groupCount,
        groupSize,
        stats,
        plan.bits,
        plan.asymmetric ? 1 : 0,
        plan.full ? 1 : 0,
        plan.stochastic ? 1 : 0,
        plan.key | 0,
        firstIndex,
        blend,
        plan.ratio,
        plan.rest,
      );
    }
    const kernel = plan.bits === 2 ? this.kernels.quantizeTernary : this.kernels.quantizeBinary;
    return kernel(src, dst, groupCount, groupSize, stats, blend, plan.ratio, plan.rest);
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

  /** Where `data` is in our memory: in place if it lives there, else copied into staging. */
  private stageHost(data: Float32Array, length: number): number {
    if (data.buffer === this.kernels.memory.buffer) return data.byteOffset;
    const pointer = this.reserve(this.staging, length * 4);
    new Float32Array(this.kernels.memory.buffer, pointer, length).set(data);
    return pointer;
  }
}

/** Bytes of statistics per group: a range (two float32), or at 1 and 2 bits a mean. */
function statisticsBytes(plan: KernelPlan): number {
  return plan.bits >= 3 ? 8 : 4;
}

function pickGroups(options: { groups?: number; groupSize?: number }): { groups?: number; groupSize?: number } {
  const picked: { groups?: number; groupSize?: number } = {};
  if (options?.groups !== undefined) picked.groups = options.groups;
  if (options?.groupSize !== undefined) picked.groupSize = options.groupSize;
  return picked;
}
