// The WebGPU backend's compiled kernels: the WGSL module composed from shaders/ (WGSL has no
// includes), one bind group layout shared by every kernel, and one pipeline per entry point,
// all created once per device.

import { BackendError } from '../errors.js';
import { JOB_BYTES, KERNEL_NAMES, type KernelName } from './webgpu-plan.js';
import {
  binaryWgsl, blendWgsl, gridWgsl, jobWgsl, roundingWgsl, statsSubgroupWgsl, statsWgsl, statsWorkgroupWgsl, ternaryWgsl,
} from './shaders.generated.js';

// GPUShaderStage.COMPUTE, spelled out: in Node the GPU* globals exist only if the caller
// installed them.
const COMPUTE_STAGE = 4;

export interface KernelProgram {
  layout: GPUBindGroupLayout;
  pipelines: ReadonlyMap<KernelName, GPUComputePipeline>;
  /** Whether the reductions use subgroup operations. */
  subgroups: boolean;
}

/** The whole module: every kernel family in one, so all pipelines share its bind group layout. */
export function composeShaderSource(subgroups: boolean): string {
  const parts = [
    jobWgsl, roundingWgsl, blendWgsl, statsWgsl, subgroups ? statsSubgroupWgsl : statsWorkgroupWgsl,
    gridWgsl, ternaryWgsl, binaryWgsl,
  ];
  return (subgroups ? 'enable subgroups;\n\n' : '') + parts.join('\n');
}

/** Compiles the kernels; `created` counts the shader modules and pipelines made. */
export async function createProgram(
  device: GPUDevice, subgroups: boolean, created: { shaderModules: number; pipelines: number },
): Promise<KernelProgram> {
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ label: 'edge-moq kernels', code: composeShaderSource(subgroups) });
  created.shaderModules++;
  const info = await module.getCompilationInfo();
  const errors = info.messages.filter((m) => m.type === 'error');
  if (errors.length > 0) {
    await device.popErrorScope();
    throw new BackendError('BACKEND_UNAVAILABLE',
      `this WebGPU implementation rejected the edge-moq kernels (${errors.map((m) => `line ${m.lineNum}: ${m.message}`).join('; ')}); ` +
      `use a WebAssembly backend (kind: 'wasm-simd').`);
  }
  const layout = device.createBindGroupLayout({
    label: 'edge-moq kernels',
    entries: [
      { binding: 0, visibility: COMPUTE_STAGE, buffer: { type: 'storage' } },
      { binding: 1, visibility: COMPUTE_STAGE, buffer: { type: 'storage' } },
      { binding: 2, visibility: COMPUTE_STAGE, buffer: { type: 'storage' } },
      { binding: 3, visibility: COMPUTE_STAGE, buffer: { type: 'uniform', hasDynamicOffset: true, minBindingSize: JOB_BYTES } },
    ],
  });
  const pipelineLayout = device.createPipelineLayout({ bindGroupLayouts: [layout] });
  const entries = await Promise.all(KERNEL_NAMES.map(async (name) =>
    [name, await device.createComputePipelineAsync({ label: name, layout: pipelineLayout, compute: { module, entryPoint: name } })] as const));
  created.pipelines += entries.length;
  const error = await device.popErrorScope();
  if (error) {
    throw new BackendError('BACKEND_UNAVAILABLE',
      `could not build the edge-moq WebGPU pipelines (${error.message}); use a WebAssembly backend (kind: 'wasm-simd').`);
  }
  return { layout, pipelines: new Map(entries), subgroups };
}
