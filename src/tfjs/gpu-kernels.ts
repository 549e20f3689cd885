// The GPU path's own kernels (gpu-training.ts), run on tfjs's device between tfjs's commands and
// the quantization kernels: the finiteness check of a step, the straight-through update of the
// masters, and the restoration of a step that was not finite. They never leave the GPU: the
// check sets a flag in a GPU buffer, which the other two read.
//
// The update sums master + (updated - held) exactly and rounds once, as the host path does in
// doubles (weights.ts, nextMaster): Knuth's TwoSum carries each rounding error. That needs each
// addition correctly rounded and kept where it is written; WGSL specifies the rounding, and an
// XOR with a zero the compiler cannot see (as in shaders/rounding.wgsl) keeps it from
// reassociating the sums.

const WORKGROUP_SIZE = 256;
const MAX_WORKGROUPS_PER_DIMENSION = 65535;
/** One Params record per dispatch, at offsets WebGPU's largest minUniformBufferOffsetAlignment allows. */
const PARAMS_SLOT_BYTES = 256;
const PARAMS_BYTES = 16;

// GPUBufferUsage values, spelled out: in Node the GPU* globals exist only if the caller installed them.
const USAGE_COPY_SRC = 4;
const USAGE_COPY_DST = 8;
const USAGE_UNIFORM = 64;
const USAGE_STORAGE = 128;

const STEP_WGSL = /* wgsl */ `
struct Params {
  length: u32,
  // 1 while the variable held the master itself: the new master is then the updated values.
  heldIsMaster: u32,
  // Always 0; the compiler cannot know it (see opaque).
  opaqueZero: u32,
}

@group(0) @binding(0) var<storage, read_write> destination: array<f32>;
@group(0) @binding(1) var<storage, read> first: array<f32>;
@group(0) @binding(2) var<storage, read> second: array<f32>;
// Nonzero once any value checked this step was NaN or infinite.
@group(0) @binding(3) var<storage, read_write> nonFinite: atomic<u32>;
@group(0) @binding(4) var<uniform> params: Params;

fn elementIndex(id: vec3<u32>, groups: vec3<u32>) -> u32 {
  return id.x + id.y * groups.x * ${WORKGROUP_SIZE}u;
}

// x as computed: an XOR with a zero the compiler cannot see, so it can neither fold nor reorder
// the sum x came from.
fn opaque(x: f32) -> f32 {
  return bitcast<f32>(bitcast<u32>(x) ^ params.opaqueZero);
}

// a + b as the float32 sum and its exact rounding error.
fn twoSum(a: f32, b: f32) -> vec2<f32> {
  let sum = opaque(a + b);
  let aPart = opaque(sum - b);
  let bPart = opaque(sum - aPart);
  return vec2<f32>(sum, opaque(opaque(a - aPart) + opaque(b - bPart)));
}

// first: a variable's values after the optimizer's update.
@compute @workgroup_size(${WORKGROUP_SIZE})
fn checkFinite(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = elementIndex(id, groups);
  if (i < params.length && (bitcast<u32>(first[i]) & 0x7f800000u) == 0x7f800000u) {
    atomicOr(&nonFinite, 1u);
  }
}

// destination: the master, updated in place; first: the updated values; second: the held values.
@compute @workgroup_size(${WORKGROUP_SIZE})
fn straightThrough(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = elementIndex(id, groups);
  if (i >= params.length || atomicLoad(&nonFinite) != 0u) {
    return;
  }
  if (params.heldIsMaster != 0u) {
    destination[i] = first[i];
    return;
  }
  let difference = twoSum(first[i], -second[i]);
  let sum = twoSum(destination[i], difference.x);
  destination[i] = opaque(sum.x + opaque(sum.y + difference.y));
}

// destination: what the variable is to hold; first: what it held after the last step.
@compute @workgroup_size(${WORKGROUP_SIZE})
fn restoreIfNonFinite(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = elementIndex(id, groups);
  if (i < params.length && atomicLoad(&nonFinite) != 0u) {
    destination[i] = first[i];
  }
}
`;

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

  private constructor(private readonly device: GPUDevice, private readonly pipelines: Map<EntryPoint, GPUComputePipeline>) {
    this.nonFinite = device.createBuffer({ label: 'edge-moq tfjs non-finite flag', size: 4, usage: USAGE_STORAGE | USAGE_COPY_DST | USAGE_COPY_SRC });
  }

  static async create(device: GPUDevice): Promise<StepKernels> {
    const module = device.createShaderModule({ label: 'edge-moq tfjs step', code: STEP_WGSL });
    const entries: EntryPoint[] = ['checkFinite', 'straightThrough', 'restoreIfNonFinite'];
    const pipelines = await Promise.all(entries.map((entryPoint) => device.createComputePipelineAsync({
      label: `edge-moq tfjs ${entryPoint}`, layout: 'auto', compute: { module, entryPoint },
    })));
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
      const buffers: [number, GPUBuffer | undefined][] = d.entry === 'checkFinite'
        ? [[1, d.first]]
        : d.entry === 'straightThrough' ? [[0, d.destination], [1, d.first], [2, d.second]] : [[0, d.destination], [1, d.first]];
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
