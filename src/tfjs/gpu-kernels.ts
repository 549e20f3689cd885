// The GPU path's own kernels (gpu-training.ts), run on tfjs's device between tfjs's commands and
// the quantization kernels: the finiteness check of a step, the straight-through update of the
// masters, and the restoration of a step that was not finite. They never leave the GPU: the
// check sets a flag in a GPU buffer, which the other two read.
//
// The update sums master + (updated - held) in float32 pairs, Knuth's TwoSum carrying each
// rounding error, and rounds at the end, to match the host path's sum in doubles (weights.ts,
// nextMaster). That is faithful rather than always correctly rounded (inputs whose exponents lie
// far apart can differ in the last place: master 1, updated 2^-24, held -2^-50), but the two
// paths agreed in every one of 2 M random trials and in every test trajectory. It needs each
// addition correctly rounded and kept where it is written; WGSL specifies the rounding, and an
// XOR with a zero the compiler cannot see (as in shaders/rounding.wgsl) keeps it from
// reassociating the sums.

import { moqStepWgsl } from '../backends/webgpu/shaders.generated.js';
import { USAGE_COPY_DST, USAGE_COPY_SRC, USAGE_STORAGE, USAGE_UNIFORM } from '../backends/webgpu/flags.js';

/** The kernels' workgroup size, as shaders/moq-step.wgsl declares it (spaces may be compacted away in bundles). */
const WORKGROUP_SIZE = Number(/const WORKGROUP_SIZE\s*:\s*u32\s*=\s*(\d+)u/.exec(moqStepWgsl)![1]);
const MAX_WORKGROUPS_PER_DIMENSION = 65535;
/** One Params record per dispatch, at offsets WebGPU's largest minUniformBufferOffsetAlignment allows. */
const PARAMS_SLOT_BYTES = 256;
const PARAMS_BYTES = 16;

type EntryPoint = 'checkFinite' | 'straightThrough' | 'restoreIfNonFinite';

/** One dispatch: float32 elements [0, length) of the buffers. */
export interface StepDispatch {
  entry: EntryPoint;
  length: number;
  /** Read and written (checkFinite: not bound). */
  destination?: GPUBuffer;
  first: GPUBuffer;
  second?: GPUBuffer;
  heldIsMaster?: boolean;
}

export class StepKernels {
  private params: GPUBuffer | null = null;
  private paramsScratch = new DataView(new ArrayBuffer(PARAMS_SLOT_BYTES));
  /** Nonzero after a step's check found a NaN or ±Inf; reset at the start of each step. */
  readonly nonFinite: GPUBuffer;

  private constructor(
    private readonly device: GPUDevice,
    private readonly pipelines: Map<EntryPoint, GPUComputePipeline>,
  ) {
    this.nonFinite = device.createBuffer({ label: 'edge-moq tfjs non-finite flag', size: 4, usage: USAGE_STORAGE | USAGE_COPY_DST | USAGE_COPY_SRC });
  }

  static async create(device: GPUDevice): Promise<StepKernels> {
    const module = device.createShaderModule({ label: 'edge-moq tfjs step', code: moqStepWgsl });
    const entries: EntryPoint[] = ['checkFinite', 'straightThrough', 'restoreIfNonFinite'];
    const pipelines = await Promise.all(
      entries.map((entryPoint) =>
        device.createComputePipelineAsync({
          label: `edge-moq tfjs ${entryPoint}`,
          layout: 'auto',
          compute: { module, entryPoint },
        }),
      ),
    );
    return new StepKernels(device, new Map(entries.map((entry, i) => [entry, pipelines[i]!])));
  }

  /** Clears the flag: the first thing of a step, before any check. */
  resetFlag(): void {
    this.device.queue.writeBuffer(this.nonFinite, 0, new Uint32Array(1));
  }

  /** Records `dispatches` in order in one compute pass of `encoder` (WebGPU orders their memory accesses). */
  encode(encoder: GPUCommandEncoder, dispatches: readonly StepDispatch[]): void {
    if (dispatches.length === 0) return;
    const params = this.paramsFor(dispatches);
    const pass = encoder.beginComputePass({ label: 'edge-moq tfjs step' });
    dispatches.forEach((d, i) => {
      if (d.length === 0) return;
      const pipeline = this.pipelines.get(d.entry)!;
      const buffers: [number, GPUBuffer | undefined][] =
        d.entry === 'checkFinite'
          ? [[1, d.first]]
          : d.entry === 'straightThrough'
            ? [
                [0, d.destination],
                [1, d.first],
                [2, d.second],
              ]
            : [
                [0, d.destination],
                [1, d.first],
              ];
      const group = this.device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: [
          ...buffers.map(([binding, buffer]) => ({ binding, resource: { buffer: buffer!, size: d.length * 4 } })),
          { binding: 3, resource: { buffer: this.nonFinite } },
          { binding: 4, resource: { buffer: params, offset: i * PARAMS_SLOT_BYTES, size: PARAMS_BYTES } },
        ],
      });
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, group);
      const workgroups = Math.max(1, Math.ceil(d.length / WORKGROUP_SIZE));
      if (workgroups <= MAX_WORKGROUPS_PER_DIMENSION) pass.dispatchWorkgroups(workgroups, 1);
      else pass.dispatchWorkgroups(MAX_WORKGROUPS_PER_DIMENSION, Math.ceil(workgroups / MAX_WORKGROUPS_PER_DIMENSION));
    });
    pass.end();
  }

  dispose(): void {
    this.params?.destroy();
    this.nonFinite.destroy();
  }

  /** The dispatches' Params, uploaded into a buffer that only grows. */
  private paramsFor(dispatches: readonly StepDispatch[]): GPUBuffer {
    const bytes = dispatches.length * PARAMS_SLOT_BYTES;
    if (!this.params || this.params.size < bytes) {
      this.params?.destroy();
      this.params = this.device.createBuffer({ label: 'edge-moq tfjs step params', size: 2 ** Math.ceil(Math.log2(bytes)), usage: USAGE_UNIFORM | USAGE_COPY_DST });
    }
    if (this.paramsScratch.byteLength < bytes) this.paramsScratch = new DataView(new ArrayBuffer(this.params.size));
    dispatches.forEach((d, i) => {
      const offset = i * PARAMS_SLOT_BYTES;
      this.paramsScratch.setUint32(offset, d.length, true);
      this.paramsScratch.setUint32(offset + 4, d.heldIsMaster ? 1 : 0, true);
      this.paramsScratch.setUint32(offset + 8, 0, true);
    });
    this.device.queue.writeBuffer(this.params, 0, this.paramsScratch.buffer, 0, bytes);
    return this.params;
  }
}

/** A buffer for a master of `length` float32 values (COPY_SRC: tf.tensor({ buffer }) copies from it). */
export function createMasterBuffer(device: GPUDevice, label: string, length: number): GPUBuffer {
  return device.createBuffer({ label, size: Math.max(4, length * 4), usage: USAGE_STORAGE | USAGE_COPY_SRC | USAGE_COPY_DST });
}
