// Packing on a WebGpuBackend (shaders/pack.wgsl), on the backend's resources: its device,
// pooled buffers, lock, counters, submissions and failure state (resources.ts). Host arrays go
// through the pool, one command submission per call, and reach the caller's arrays only once
// the GPU has succeeded; tensors that stay on the device pack from and unpack into GPUBuffers
// (GpuPackedTensor). The group statistics come from the same kernels, in the same order, as the
// backend's fakeQuantize, so unpack(pack(x)) equals its result. If the device is lost or a
// submission fails (packing or fake quantization), host arrays pack on the backend's
// WebAssembly fallback from then on (`kind` says so); GPUBuffers cannot follow and throw
// DEVICE_LOST.

import { addErrors, checkMeasure, type ErrorTotals } from '../../packed/errors.js';
import type { BackendKind } from '../backend.js';
import type { Grid, KernelPlan } from '../../kernel-plan.js';
import { BackendError, InvalidInputError, nonFiniteError } from '../../errors.js';
import { packWgsl } from './shaders.generated.js';
import type { WebGpuBackend } from './backend.js';
import { JOB_BYTES, JOB_SLOT_BYTES, PARTIAL_BYTES, SMALL_GROUP_MAX, WORKGROUP_SIZE, jobLayout, layoutSubmission, workgroupGrid, writeJob, type JobLayout } from './plan.js';
import { COMPUTE_STAGE, type Program, type ProgramSpec } from './program.js';
import { PACK_BYTES, PackField, writePack } from './interface.js';
import {
  allocatePacked,
  invalidPackedError,
  packedGridProblem,
  packedType,
  planPack,
  planPackData,
  shapeOptions,
  validateInto,
  validatePacked,
  type PackedTensor,
  type PackedType,
  type PackOptions,
  type PackPlan,
} from '../../packed/layout.js';
import type { Packer } from '../../packed/packer.js';
import { WasmPacker } from '../wasm/packer.js';
import { GpuFailure } from './submission.js';
import { NO_BAD_INDEX, OUTPUT_USAGE, READBACK_ALIGN, alignUp, checkBuffer, type GpuResources, type WebGpuCounters } from './resources.js';

/** Groups per invocation of checkGroups: CHECKED_GROUPS in shaders/pack.wgsl. */
const CHECKED_GROUPS = 16;
// The params buffer: the Job in slot 0, the Pack record (shaders/pack.wgsl) in slot 1.
const PACK_OFFSET = JOB_SLOT_BYTES;
const STATUS_WORDS = 3; // the shared flag, the tensor's slot, the submission id

const PACK_ENTRY_POINTS = [
  'checkFinite',
  'chunkStats',
  'combineStats',
  'aboveThresholdChunks',
  'combineAboveThreshold',
  'packGroups',
  'packCodes',
  'checkGroups',
  'checkTernaryCodes',
  'unpackCodes',
] as const;
type PackEntryPoint = (typeof PACK_ENTRY_POINTS)[number];

const storageEntry = (binding: number): GPUBindGroupLayoutEntry => ({ binding, visibility: COMPUTE_STAGE, buffer: { type: 'storage' } });

const PACK_PROGRAM: ProgramSpec<PackEntryPoint> = {
  label: 'edge-moq pack kernels',
  entryPoints: PACK_ENTRY_POINTS,
  parts: [packWgsl],
  bindings: [storageEntry(4), storageEntry(5), storageEntry(6), { binding: 7, visibility: COMPUTE_STAGE, buffer: { type: 'uniform', minBindingSize: PACK_BYTES } }],
};

/**
 * A packed tensor whose arrays are GPUBuffers of the backend's device: PackedTensor's fields,
 * with `codes` as ceil(length * bits / 32) little-endian u32 words (PackedTensor.codes padded
 * with zero bytes to a multiple of 4).
 */
export interface GpuPackedTensor {
  bits: number;
  type: PackedType;
  length: number;
  groupSize: number;
  codes: GPUBuffer;
  /** One float32 per group. */
  scales: GPUBuffer;
  /** One float32 per group, asymmetric only (else null). */
  zeros: GPUBuffer | null;
  /** As PackedTensor.grid (absent: 'deepspeed'). */
  grid?: Grid;
}

/** What one submission runs: the Job and Pack records, its dispatches, the buffers it binds. */
interface Run {
  job: JobLayout;
  bits: number;
  firstIndex: number;
  wordCount: number;
  smallGroups: boolean;
  partialCount: number;
  dispatches: { kernel: PackEntryPoint; workgroups: number }[];
  data: GPUBuffer;
  codes: GPUBuffer;
  scales: GPUBuffer;
  zeros: GPUBuffer | null;
}

/**
 * A Packer on a WebGpuBackend's device and resources (from createPacker(webGpuBackend)); it also
 * packs GPUBuffers where they are (packBuffer, unpackToBuffer, upload, download).
 */
export class WebGpuPacker implements Packer {
  private readonly device: GPUDevice;
  private readonly resources: GpuResources;
  private readonly params = new DataView(new ArrayBuffer(PACK_OFFSET + PACK_BYTES));
  private readonly status = new Uint32Array(STATUS_WORDS);
  private readonly codeTail = new Uint8Array(4);
  private fallback: WasmPacker | null = null;
  private disposed = false;

  private constructor(
    private readonly backend: WebGpuBackend,
    private readonly program: Program<PackEntryPoint> | null,
  ) {
    this.device = backend.device;
    this.resources = backend.resources;
  }

  /**
   * Compiles the pack kernels on `backend`'s device, once per backend (nothing, if it already runs on WebAssembly).
   *
   * @param backend - The WebGPU backend whose device, buffers and failure state the packer shares.
   * @returns A packer; disposing it leaves the backend as it was.
   */
  static async create(backend: WebGpuBackend): Promise<WebGpuPacker> {
    const program = backend.downgradedBecause === null ? await backend.resources.program(PACK_PROGRAM, backend.usesSubgroups) : null;
    return new WebGpuPacker(backend, program);
  }

  /** 'webgpu', or the WebAssembly backend's kind once the device is lost or a submission failed. */
  get kind(): BackendKind {
    return this.backend.activeKind;
  }

  /** The backend's counters (packing included): once warm, calls of the same shapes create no modules, pipelines, buffers or bind groups. */
  stats(): WebGpuCounters {
    return this.backend.stats();
  }

  async pack(data: Float32Array, options: PackOptions, into?: PackedTensor): Promise<PackedTensor> {
    const plan = planPackData(data, options);
    if (into !== undefined) validateInto(into, plan);
    return this.resources.exclusive(async () => {
      const words = wordCount(plan.length, plan.bits);
      const groupBytes = plan.groupCount * 4;
      const results = [words * 4, groupBytes, plan.type === 'asymmetric' ? groupBytes : 0];
      if (!this.gpuTakes(plan.length * 4, results)) return this.onWasm((packer) => packer.packSync(data, options, into));
      const run = this.packRun(plan, this.resources.pooled('data', plan.length * 4), this.pooledOutputs(plan));
      const upload = () => this.device.queue.writeBuffer(run.data, 0, data as Float32Array<ArrayBuffer>);
      const copies = [run.codes, run.scales, run.zeros].map((buffer, i) => ({ buffer: buffer!, bytes: results[i]! }));
      let result: PackedTensor | undefined;
      const bad = await this.hostSubmit(run, upload, copies, (mapped, [codes, scales, zeros]) => {
        result = into ?? allocatePacked(plan);
        result.codes.set(new Uint8Array(mapped, codes, plan.codeBytes));
        result.scales.set(new Float32Array(mapped, scales, plan.groupCount));
        result.zeros?.set(new Float32Array(mapped, zeros, plan.groupCount));
      });
      if (bad === undefined) return this.onWasm((packer) => packer.packSync(data, options, into));
      if (bad !== null) throw nonFiniteError('data', data[bad], { job: 0, index: bad, group: Math.floor(bad / plan.groupSize) }, true);
      return result!;
    });
  }

  async unpack(packed: PackedTensor, out?: Float32Array): Promise<Float32Array> {
    validatePacked(packed);
    const { length, codes } = packed;
    if (out !== undefined && (!(out instanceof Float32Array) || out.length !== length)) {
      throw new InvalidInputError('INVALID_ARGUMENT', `out must be a Float32Array of ${length} values (packed.length).`);
    }
    return this.resources.exclusive(async () => {
      if (!this.gpuTakes(length * 4, [length * 4])) return this.onWasm((packer) => packer.unpackSync(packed, out));
      const groupCount = length / packed.groupSize;
      const inputs = {
        codes: this.resources.pooled('codes', wordCount(length, packed.bits) * 4),
        scales: this.resources.pooled('scales', groupCount * 4),
        zeros: packed.zeros ? this.resources.pooled('zeros', groupCount * 4) : null,
      };
      const run = this.unpackRun(packed, this.resources.pooled('data', length * 4), inputs);
      const upload = () => {
        const { queue } = this.device;
        // Only whole words can be written: the last partial one goes through a zeroed copy.
        const whole = codes.length & ~3;
        if (whole > 0) queue.writeBuffer(inputs.codes, 0, codes as Uint8Array<ArrayBuffer>, 0, whole);
        if (whole < codes.length) {
          this.codeTail.fill(0).set(codes.subarray(whole));
          queue.writeBuffer(inputs.codes, whole, this.codeTail);
        }
        queue.writeBuffer(inputs.scales, 0, packed.scales as Float32Array<ArrayBuffer>);
        if (inputs.zeros) queue.writeBuffer(inputs.zeros, 0, packed.zeros as Float32Array<ArrayBuffer>);
      };
      let result: Float32Array | undefined;
      const done = await this.hostSubmit(run, upload, [{ buffer: run.data, bytes: length * 4 }], (mapped, [values]) => {
        result = out ?? new Float32Array(length);
        result.set(new Float32Array(mapped, values, length));
      });
      if (done === undefined) return this.onWasm((packer) => packer.unpackSync(packed, out));
      if (done !== null) throw invalidPackedError(packed, done);
      return result!;
    });
  }

  async measure(original: Float32Array, packed: PackedTensor, totals: ErrorTotals, first = 0): Promise<void> {
    validatePacked(packed);
    checkMeasure(original, packed.length, totals, first);
    addErrors(original, await this.unpack(packed), totals, first);
  }

  /**
   * Packs float32 values `[0, length)` of `buffer` (a STORAGE buffer of the backend's device)
   * into `into`'s buffers, or new ones (STORAGE | COPY_SRC | COPY_DST, yours to destroy). On
   * NaN/Inf it throws NON_FINITE and writes nothing. No WebAssembly fallback: on a lost device
   * this throws DEVICE_LOST.
   */
  async packBuffer(buffer: GPUBuffer, length: number, options: PackOptions, into?: GpuPackedTensor): Promise<GpuPackedTensor> {
    if (typeof length !== 'number' || !Number.isInteger(length) || length < 0) {
      throw new InvalidInputError('INVALID_ARGUMENT', `length must be a non-negative integer, got ${String(length)}.`);
    }
    const plan = planPack(length, options, 'buffer');
    checkBuffer(buffer, 'buffer', length * 4, this.device, 'pack');
    if (into !== undefined) this.checkGpuPacked(into, 'into', plan);
    return this.resources.exclusive(async () => {
      this.assertGpu();
      const result = into ?? this.createOutputs(plan);
      const run = this.packRun(plan, buffer, result);
      let bad: number | null;
      try {
        bad = await this.bufferSubmit(run);
      } catch (error) {
        if (!into) destroyBuffers(result);
        throw error;
      }
      if (bad !== null) {
        if (!into) destroyBuffers(result);
        throw nonFiniteError('buffer', 'NaN or infinite', { job: 0, index: bad, group: Math.floor(bad / plan.groupSize) }, true);
      }
      return result;
    });
  }

  /**
   * Dequantizes a GpuPackedTensor into float32 values `[0, packed.length)` of `out`, or a new
   * buffer. Invalid packed data (see Packer.unpack) throws INVALID_ARGUMENT and leaves `out` as
   * it was.
   */
  async unpackToBuffer(packed: GpuPackedTensor, out?: GPUBuffer): Promise<GPUBuffer> {
    this.checkGpuPacked(packed, 'packed');
    if (out !== undefined) checkBuffer(out, 'out', packed.length * 4, this.device, 'unpack');
    return this.resources.exclusive(async () => {
      this.assertGpu();
      const target = out ?? this.createBuffer('unpacked', packed.length * 4);
      let invalid: number | null;
      try {
        invalid = await this.bufferSubmit(this.unpackRun(packed, target, packed));
      } catch (error) {
        if (!out) target.destroy();
        throw error;
      }
      if (invalid !== null) {
        if (!out) target.destroy();
        throw invalidPackedError(await this.read(packed), invalid);
      }
      return target;
    });
  }

  /** A PackedTensor's arrays in new GPUBuffers of the backend's device (yours to destroy). */
  upload(packed: PackedTensor): GpuPackedTensor {
    validatePacked(packed);
    this.assertGpu();
    const fill = (label: string, bytes: Uint8Array | Float32Array) => {
      const buffer = this.createBuffer(label, bytes.byteLength, true);
      new Uint8Array(buffer.getMappedRange()).set(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      buffer.unmap();
      return buffer;
    };
    const { codes, scales, zeros, ...shape } = packed;
    return { ...shape, codes: fill('codes', codes), scales: fill('scales', scales), zeros: zeros ? fill('zeros', zeros) : null };
  }

  /** Reads a GpuPackedTensor back into `into` (sized for it, e.g. by allocatePacked), or new arrays. */
  async download(packed: GpuPackedTensor, into?: PackedTensor): Promise<PackedTensor> {
    this.checkGpuPacked(packed, 'packed');
    if (into !== undefined) {
      validateInto(into, planPack(packed.length, shapeOptions(packed)));
    }
    return this.resources.exclusive(() => this.read(packed, into));
  }

  /** Frees the WebAssembly fallback's scratch memory; the backend's buffers stay the backend's. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.fallback?.dispose();
  }

  /** download's work, for callers already inside exclusive(). */
  private async read(packed: GpuPackedTensor, into?: PackedTensor): Promise<PackedTensor> {
    const { bits, length } = packed;
    const plan = planPack(length, shapeOptions(packed));
    this.assertGpu();
    const codeBytes = wordCount(length, bits) * 4;
    const groupBytes = plan.groupCount * 4;
    const total = codeBytes + groupBytes * (packed.zeros ? 2 : 1);
    return this.resources.onBuffers(
      () =>
        this.resources.read(
          total,
          () => {
            const readback = this.resources.pooled('readback', total);
            const encoder = this.device.createCommandEncoder({ label: 'edge-moq download' });
            encoder.copyBufferToBuffer(packed.codes, 0, readback, 0, codeBytes);
            encoder.copyBufferToBuffer(packed.scales, 0, readback, codeBytes, groupBytes);
            if (packed.zeros) encoder.copyBufferToBuffer(packed.zeros, 0, readback, codeBytes + groupBytes, groupBytes);
            this.device.queue.submit([encoder.finish()]);
            this.resources.counters.submissions++;
            return readback;
          },
          (mapped) => {
            const result = into ?? allocatePacked(plan);
            result.codes.set(new Uint8Array(mapped, 0, plan.codeBytes));
            result.scales.set(new Float32Array(mapped, codeBytes, plan.groupCount));
            result.zeros?.set(new Float32Array(mapped, codeBytes + groupBytes, plan.groupCount));
            return result;
          },
        ),
      'each must belong to backend.device, be alive and have COPY_SRC usage',
    );
  }

  private assertUsable(): void {
    if (this.disposed) throw new BackendError('BACKEND_UNAVAILABLE', 'this packer was disposed; create a new one.');
    this.resources.assertUsable();
  }

  /** For GPUBuffers, which cannot move to WebAssembly. */
  private assertGpu(): void {
    this.assertUsable();
    this.resources.assertGpu();
  }

  /** Whether a host call runs on the GPU: not after a failure, not past the device's limits. */
  private gpuTakes(dataBytes: number, resultBytes: number[]): boolean {
    this.assertUsable();
    return (
      this.program !== null &&
      this.resources.takes(
        dataBytes,
        resultBytes.reduce((sum, bytes) => sum + bytes, READBACK_ALIGN),
      )
    );
  }

  private onWasm<T>(work: (packer: WasmPacker) => T): T {
    this.resources.counters.wasmCalls++;
    this.fallback ??= new WasmPacker(this.backend.wasm);
    return work(this.fallback);
  }

  private pooledOutputs(plan: PackPlan): { codes: GPUBuffer; scales: GPUBuffer; zeros: GPUBuffer | null } {
    return {
      codes: this.resources.pooled('codes', wordCount(plan.length, plan.bits) * 4),
      scales: this.resources.pooled('scales', plan.groupCount * 4),
      zeros: plan.type === 'asymmetric' ? this.resources.pooled('zeros', plan.groupCount * 4) : null,
    };
  }

  /** A new buffer for the caller to keep (STORAGE | COPY_SRC | COPY_DST). */
  private createBuffer(label: string, bytes: number, mappedAtCreation = false): GPUBuffer {
    this.resources.counters.buffers++;
    return this.device.createBuffer({ label: `edge-moq ${label}`, size: alignUp(Math.max(bytes, 4), 4), usage: OUTPUT_USAGE, mappedAtCreation });
  }

  private createOutputs(plan: PackPlan): GpuPackedTensor {
    return {
      bits: plan.bits,
      type: plan.type,
      length: plan.length,
      groupSize: plan.groupSize,
      grid: plan.grid,
      codes: this.createBuffer('codes', wordCount(plan.length, plan.bits) * 4),
      scales: this.createBuffer('scales', plan.groupCount * 4),
      zeros: plan.type === 'asymmetric' ? this.createBuffer('zeros', plan.groupCount * 4) : null,
    };
  }

  /** The validation and statistics passes fakeQuantize runs for this plan, then the pack writers. */
  private packRun(plan: PackPlan, data: GPUBuffer, outputs: { codes: GPUBuffer; scales: GPUBuffer; zeros: GPUBuffer | null }): Run {
    const {
      jobs: [job],
      partialCount,
    } = layoutSubmission([plan], [0]);
    const words = wordCount(plan.length, plan.bits);
    const dispatches = job!.prepare.map(({ kernel, workgroups }) => ({ kernel: kernel as PackEntryPoint, workgroups }));
    dispatches.push({ kernel: 'packGroups', workgroups: Math.ceil(plan.groupCount / WORKGROUP_SIZE) }, { kernel: 'packCodes', workgroups: Math.ceil(words / WORKGROUP_SIZE) });
    return {
      job: job!,
      bits: plan.bits,
      firstIndex: plan.firstIndex,
      wordCount: words,
      smallGroups: plan.groupSize <= SMALL_GROUP_MAX,
      partialCount,
      dispatches,
      data,
      ...outputs,
    };
  }

  /** The checks of the packed data, then the unpack kernel (which writes nothing if they fail). */
  private unpackRun(
    packed: { bits: number; type: PackedType; length: number; groupSize: number; grid?: Grid },
    data: GPUBuffer,
    inputs: { codes: GPUBuffer; scales: GPUBuffer; zeros: GPUBuffer | null },
  ): Run {
    const { bits, length, groupSize } = packed;
    const plan: KernelPlan = {
      length,
      bits,
      groupSize,
      groupCount: length / groupSize,
      asymmetric: packed.type === 'asymmetric',
      full: packed.grid === 'full',
      stochastic: false,
      key: 0,
      blend: false,
      ratio: 1,
      rest: 0,
    };
    const job = jobLayout(plan, 0, 1);
    const words = wordCount(length, bits);
    const dispatches: Run['dispatches'] = [{ kernel: 'checkGroups', workgroups: Math.ceil(plan.groupCount / (WORKGROUP_SIZE * CHECKED_GROUPS)) }];
    if (packed.type === 'ternary') dispatches.push({ kernel: 'checkTernaryCodes', workgroups: Math.ceil(words / WORKGROUP_SIZE) });
    dispatches.push({ kernel: 'unpackCodes', workgroups: Math.ceil(length / WORKGROUP_SIZE) });
    return { job, bits, firstIndex: 0, wordCount: words, smallGroups: false, partialCount: 0, dispatches, data, ...inputs };
  }

  /**
   * A host call's submission, its results copied out by `read` (the read-back buffer and each
   * copy's offset in it). Resolves to null, the first bad index (a NaN/Inf packing, an invalid
   * element unpacking), or undefined after a GPU failure: the call then moves to WebAssembly, as
   * every later one will.
   */
  private hostSubmit(run: Run, upload: () => void, copies: { buffer: GPUBuffer; bytes: number }[], read: (mapped: ArrayBuffer, offsets: number[]) => void): Promise<number | null | undefined> {
    return this.resources.onHost(() => this.submit(run, upload, copies, read));
  }

  /** A GPUBuffer call's submission: null, or the first bad index (as hostSubmit). */
  private bufferSubmit(run: Run): Promise<number | null> {
    return this.resources.onBuffers(() =>
      this.submit(
        run,
        () => {},
        [],
        () => {},
      ),
    );
  }

  /**
   * One command submission: uploads, validation and statistics, the writers (which write
   * nothing if the data held a NaN/Inf or the packed data is invalid), then the status and
   * `copies` into the read-back buffer. Throws GpuFailure when the device is lost or WebGPU
   * reports an error.
   */
  private async submit(run: Run, upload: () => void, copies: { buffer: GPUBuffer; bytes: number }[], read: (mapped: ArrayBuffer, offsets: number[]) => void): Promise<number | null> {
    const { device } = this;
    const statusBytes = STATUS_WORDS * 4;
    const offsets: number[] = [];
    let readbackBytes = READBACK_ALIGN;
    for (const copy of copies) {
      offsets.push(readbackBytes);
      readbackBytes += copy.bytes;
    }
    if (copies.length === 0) readbackBytes = statusBytes;
    const { resources } = this;
    const submissionId = resources.nextSubmission();

    return resources.read(
      readbackBytes,
      () => {
        const params = resources.pooled('params', PACK_OFFSET + PACK_BYTES);
        const status = resources.pooled('status', statusBytes);
        const partials = resources.pooled('partials', Math.max(run.partialCount, 1) * PARTIAL_BYTES);
        const readback = resources.pooled('readback', readbackBytes);
        upload();
        writeJob(this.params, 0, run.job);
        writePack(this.params, PACK_OFFSET, {
          [PackField.bits]: run.bits,
          [PackField.firstIndex]: run.firstIndex,
          [PackField.wordCount]: run.wordCount,
          [PackField.smallGroups]: run.smallGroups ? 1 : 0,
        });
        device.queue.writeBuffer(params, 0, this.params.buffer);
        this.status.set([0, NO_BAD_INDEX, submissionId]);
        device.queue.writeBuffer(status, 0, this.status);
        const group = resources.bindGroup(this.program!.layout, [
          { buffer: run.data, size: Math.min(run.data.size, device.limits.maxStorageBufferBindingSize) & ~3 },
          { buffer: partials },
          { buffer: status },
          { buffer: params, size: JOB_BYTES },
          { buffer: run.codes },
          { buffer: run.scales },
          { buffer: run.zeros ?? resources.pooled('zeros', 4) },
          { buffer: params, offset: PACK_OFFSET, size: PACK_BYTES },
        ]);

        const encoder = device.createCommandEncoder({ label: 'edge-moq pack' });
        const pass = encoder.beginComputePass({ label: 'edge-moq pack' });
        pass.setBindGroup(0, group, [0]);
        for (const dispatch of run.dispatches) {
          pass.setPipeline(this.program!.pipelines.get(dispatch.kernel)!);
          const [x, y] = workgroupGrid(dispatch.workgroups);
          pass.dispatchWorkgroups(x, y);
        }
        pass.end();
        encoder.copyBufferToBuffer(status, 0, readback, 0, statusBytes);
        copies.forEach((copy, i) => {
          if (copy.bytes > 0) encoder.copyBufferToBuffer(copy.buffer, 0, readback!, offsets[i]!, copy.bytes);
        });
        device.queue.submit([encoder.finish()]);
        resources.counters.submissions++;
        return readback;
      },
      (mapped) => {
        const status = new Uint32Array(mapped, 0, STATUS_WORDS);
        if (status[2] !== submissionId) {
          throw new GpuFailure('the submission did not run (its status never came back)', resources.failedBecause !== null);
        }
        if (status[0] !== 0) return status[1]!;
        read(mapped, offsets);
        return null;
      },
    );
  }

  /** A GpuPackedTensor's fields against each other and, given `plan`, against a pack call. */
  private checkGpuPacked(packed: GpuPackedTensor, label: string, plan?: PackPlan): void {
    const fail = (what: string) => {
      throw new InvalidInputError('INVALID_ARGUMENT', `${label}: ${what}`);
    };
    if (packed === null || typeof packed !== 'object') fail('must be a GpuPackedTensor ({ bits, type, length, groupSize, codes, scales, zeros }).');
    const { bits, type, length, groupSize } = packed;
    if (!Number.isInteger(bits) || bits < 1 || bits > 16) fail(`bits must be an integer in 1..16, got ${String(bits)}.`);
    if (type !== packedType(bits, type === 'asymmetric')) fail(`type ${String(type)} does not fit bits ${bits} (1: binary, 2: ternary, 3..16: symmetric or asymmetric).`);
    if (!Number.isInteger(length) || length <= 0) fail(`length must be a positive integer, got ${String(length)}.`);
    if (!Number.isInteger(groupSize) || groupSize <= 0 || length % groupSize !== 0) fail(`groupSize ${String(groupSize)} must divide length ${length}.`);
    const gridProblem = packedGridProblem(packed);
    if (gridProblem) fail(gridProblem);
    if (plan && (bits !== plan.bits || type !== plan.type || length !== plan.length || groupSize !== plan.groupSize || (packed.grid ?? 'deepspeed') !== plan.grid)) {
      fail(
        `it holds ${length} ${type} ${bits}-bit codes in groups of ${groupSize} on the ${packed.grid ?? 'deepspeed'} grid, but this call packs ` +
          `${plan.length} ${plan.type} ${plan.bits}-bit codes in groups of ${plan.groupSize} on the ${plan.grid} grid.`,
      );
    }
    const groupBytes = (length / groupSize) * 4;
    checkBuffer(packed.codes, `${label}.codes`, wordCount(length, bits) * 4, this.device, 'unpack');
    checkBuffer(packed.scales, `${label}.scales`, groupBytes, this.device, 'unpack');
    if (type === 'asymmetric') checkBuffer(packed.zeros, `${label}.zeros`, groupBytes, this.device, 'unpack');
    else if (packed.zeros !== null && packed.zeros !== undefined) fail(`zeros must be null for ${type} codes.`);
  }
}

/** 32-bit words holding `length` codes of `bits` bits. */
function wordCount(length: number, bits: number): number {
  return Math.ceil((length * bits) / 32);
}

function destroyBuffers(packed: GpuPackedTensor): void {
  packed.codes.destroy();
  packed.scales.destroy();
  packed.zeros?.destroy();
}
