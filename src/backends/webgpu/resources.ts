// One GPUDevice's resources, shared by fake quantization (backend.ts) and packing (packer.ts):
// the compiled programs, the buffers pooled across calls, the lock that runs one operation at a
// time over them, the counters, the bind-group cache, the submissions with their error scopes
// and read-back, and the one failure state: after a lost device or a failed submission, host
// work of both moves to WebAssembly and GPUBuffers throw DEVICE_LOST.

import { BackendError, InvalidInputError } from '../../errors.js';
import { USAGE_COPY_DST, USAGE_COPY_SRC, USAGE_MAP_READ, USAGE_STORAGE, USAGE_UNIFORM } from './flags.js';
import { createProgram, type Program, type ProgramSpec } from './program.js';
import { GpuFailure, submitAndRead, submitOnly } from './submission.js';

/** A status slot no kernel wrote: no bad element. */
export const NO_BAD_INDEX = 0xffffffff;
/** Status words come back first in the read-back buffer; results start at this offset. */
export const READBACK_ALIGN = 256;

/** Objects created and work done on the device since the backend was created (packing included). */
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

export type PoolName = 'data' | 'codes' | 'scales' | 'zeros' | 'partials' | 'status' | 'params' | 'readback';

export const OUTPUT_USAGE = USAGE_STORAGE | USAGE_COPY_SRC | USAGE_COPY_DST;

/** A bind group entry: binding i is the i-th of the list. */
export interface Bound {
  buffer: GPUBuffer;
  offset?: number;
  size?: number;
}

export class GpuResources {
  readonly counters: WebGpuCounters = { shaderModules: 0, pipelines: 0, buffers: 0, bindGroups: 0, submissions: 0, gpuCalls: 0, wasmCalls: 0 };
  private readonly pool = new Map<PoolName, GPUBuffer>();
  private readonly programs = new Map<string, Promise<Program<string>>>();
  /** Per layout, bind groups by the buffer of binding 0, with all the buffers they bind. */
  private readonly bindGroups = new WeakMap<GPUBindGroupLayout, WeakMap<GPUBuffer, { buffers: GPUBuffer[]; group: GPUBindGroup }>>();
  private tail: Promise<unknown> = Promise.resolve();
  private submissionId = 0;
  private failure: string | null = null;
  private disposed = false;

  /** `onFail` hears the first failure (a lost device, a failed submission), once. */
  constructor(
    readonly device: GPUDevice,
    private readonly onFail: (reason: string) => void,
  ) {}

  /** Why the device stopped being used, or null while it is. */
  get failedBecause(): string | null {
    return this.failure;
  }

  /** The program of `spec` on this device, compiled once (`subgroups`: whether reductions use subgroup operations). */
  program<Name extends string>(spec: ProgramSpec<Name>, subgroups: boolean): Promise<Program<Name>> {
    let program = this.programs.get(spec.label);
    if (!program) {
      program = createProgram(this.device, subgroups, this.counters, spec);
      this.programs.set(spec.label, program);
    }
    return program as Promise<Program<Name>>;
  }

  /** The pooled buffer `name`, at least `bytes` long; they only grow. */
  pooled(name: PoolName, bytes: number): GPUBuffer {
    const have = this.pool.get(name);
    if (have && have.size >= bytes) return have;
    have?.destroy();
    // Tensor-sized buffers fit; the small ones double, so a workload that varies settles quickly.
    const size = name === 'data' || name === 'codes' || name === 'readback' ? alignUp(bytes, 256) : 2 ** Math.ceil(Math.log2(Math.max(bytes, 256)));
    const usage = name === 'readback' ? USAGE_MAP_READ | USAGE_COPY_DST : name === 'params' ? USAGE_UNIFORM | USAGE_COPY_DST : name === 'partials' ? USAGE_STORAGE : OUTPUT_USAGE;
    const buffer = this.device.createBuffer({ label: `edge-moq ${name}`, size, usage });
    this.counters.buffers++;
    this.pool.set(name, buffer);
    return buffer;
  }

  /** A bind group of `layout` over `entries`, reused while the same buffers are bound. */
  bindGroup(layout: GPUBindGroupLayout, entries: readonly Bound[]): GPUBindGroup {
    let byData = this.bindGroups.get(layout);
    // biome-ignore lint/suspicious/noAssignInExpressions: the assignment inside the expression keeps the main bundles, at their 75 KB budget, from growing
    if (!byData) this.bindGroups.set(layout, (byData = new WeakMap()));
    const buffers = entries.map((entry) => entry.buffer);
    const cached = byData.get(buffers[0]!);
    if (cached?.buffers.every((buffer, i) => buffer === buffers[i])) return cached.group;
    const group = this.device.createBindGroup({ layout, entries: entries.map((resource, binding) => ({ binding, resource })) });
    this.counters.bindGroups++;
    byData.set(buffers[0]!, { buffers, group });
    return group;
  }

  /** A new submission id, for the status word that proves a submission ran. */
  nextSubmission(): number {
    // biome-ignore lint/suspicious/noAssignInExpressions: the assignment inside the expression keeps the main bundles, at their 75 KB budget, from growing
    return (this.submissionId = (this.submissionId + 1) >>> 0);
  }

  /** Runs operations one at a time: they share the pooled buffers. */
  exclusive<T>(operation: () => Promise<T>): Promise<T> {
    const run = this.tail.then(operation, operation);
    this.tail = run.catch(() => undefined);
    return run;
  }

  /** submitAndRead on this device: `encode` submits and returns the read-back buffer, `read` maps `bytes` of it. */
  read<T>(bytes: number, encode: () => GPUBuffer, read: (mapped: ArrayBuffer) => T): Promise<T> {
    return submitAndRead(this.device, bytes, encode, read, () => this.failure !== null);
  }

  /** submitOnly on this device: `encode` submits, nothing is read back. */
  submit(encode: () => void): Promise<void> {
    return submitOnly(this.device, encode, () => this.failure !== null);
  }

  /** Whether host work of these sizes goes to the GPU: not after a failure, not past the device's limits. */
  takes(dataBytes: number, readbackBytes: number): boolean {
    this.assertUsable();
    if (this.failure !== null) return false;
    const { maxStorageBufferBindingSize, maxBufferSize } = this.device.limits;
    return dataBytes <= maxStorageBufferBindingSize && readbackBytes <= maxBufferSize;
  }

  /**
   * A host call's GPU work: resolves to its result, or to undefined after a GPU failure, which
   * moves this call (its inputs untouched) and every later one to WebAssembly.
   */
  onHost<T>(work: () => Promise<T>): Promise<T | undefined> {
    return this.run(work, (failure) => {
      this.fail(failure.message);
      return undefined;
    });
  }

  /**
   * A call on caller-owned GPUBuffers, which cannot move to WebAssembly: a WebGPU error is the
   * buffers' fault (INVALID_ARGUMENT, saying they must be `what`), a lost device DEVICE_LOST.
   */
  onBuffers<T>(work: () => Promise<T>, what = 'each must belong to backend.device and be alive'): Promise<T> {
    this.assertGpu();
    return this.run(work, (failure) => {
      if (!failure.lost) throw new InvalidInputError('INVALID_ARGUMENT', `WebGPU rejected these buffers (${failure.message}): ${what}. Nothing was modified.`);
      this.fail(failure.message);
      throw deviceLostError(failure.message);
    });
  }

  /** `work`, counted as a GPU call when it succeeds; a GpuFailure goes to `failed`. */
  private async run<T, F>(work: () => Promise<T>, failed: (failure: GpuFailure) => F): Promise<T | F> {
    try {
      const result = await work();
      this.counters.gpuCalls++;
      return result;
    } catch (error) {
      if (!(error instanceof GpuFailure)) throw error;
      return failed(error);
    }
  }

  /** Records the first failure: frees the pool and tells `onFail`. */
  fail(reason: string): void {
    if (this.failure !== null || this.disposed) return;
    this.failure = reason;
    this.destroyPool();
    this.onFail(reason);
  }

  assertUsable(): void {
    if (this.disposed) throw new BackendError('BACKEND_UNAVAILABLE', 'this WebGPU backend was disposed; create a new one with createBackend().');
  }

  /** For GPUBuffers, which cannot move to WebAssembly. */
  assertGpu(): void {
    this.assertUsable();
    if (this.failure !== null) throw deviceLostError(this.failure);
  }

  dispose(): void {
    this.disposed = true;
    this.destroyPool();
  }

  private destroyPool(): void {
    for (const buffer of this.pool.values()) buffer.destroy();
    this.pool.clear();
  }
}

function deviceLostError(reason: string): BackendError {
  return new BackendError(
    'DEVICE_LOST',
    `the WebGPU device is gone (${reason}), and the contents of its buffers with it; host arrays still work (on ` +
      'WebAssembly). For GPU buffers, create a new device and backend (and packer) and upload the tensors again.',
  );
}

/**
 * A caller's GPUBuffer the kernels can bind, holding at least `bytes`; `hostCall` names the
 * call that takes host arrays instead.
 */
export function checkBuffer(buffer: unknown, label: string, bytes: number, device: GPUDevice, hostCall: string): asserts buffer is GPUBuffer {
  const b = buffer as Partial<GPUBuffer> | null | undefined;
  if (typeof b !== 'object' || b === null || typeof b.size !== 'number' || typeof b.usage !== 'number') {
    throw new InvalidInputError('WRONG_DTYPE', `${label} must be a GPUBuffer of backend.device; for host data use ${hostCall}.`);
  }
  if ((b.usage & USAGE_STORAGE) === 0) {
    throw new InvalidInputError('INVALID_ARGUMENT', `${label} lacks GPUBufferUsage.STORAGE: create it with that usage.`);
  }
  if (b.mapState !== 'unmapped') {
    throw new InvalidInputError('INVALID_ARGUMENT', `${label} is ${b.mapState}: unmap it first.`);
  }
  if (b.size % 4 !== 0 || b.size > device.limits.maxStorageBufferBindingSize) {
    throw new InvalidInputError('INVALID_ARGUMENT', `${label} is ${b.size} bytes: it must be a multiple of 4, at most maxStorageBufferBindingSize; split the tensor.`);
  }
  if (b.size < bytes) {
    throw new InvalidInputError('INVALID_ARGUMENT', `${label} is ${b.size} bytes, fewer than the ${bytes} it must hold.`);
  }
}

export function alignUp(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}
