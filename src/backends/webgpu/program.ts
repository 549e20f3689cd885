// The WebGPU backend's compiled kernels: the WGSL module composed from shaders/ (WGSL has no
// includes), one bind group layout shared by every kernel, and one pipeline per entry point,
// all created once per device. src/packed/ builds a second program the same way, from the same
// files plus its own, with more bindings.

import { BackendError } from '../../errors.js';
import { JOB_BYTES, KERNEL_NAMES, type KernelName } from './plan.js';
import { binaryWgsl, blendWgsl, gridWgsl, jobWgsl, roundingWgsl, statsSubgroupWgsl, statsWgsl, statsWorkgroupWgsl, ternaryWgsl } from './shaders.generated.js';

// GPUShaderStage.COMPUTE, spelled out: in Node the GPU* globals exist only if the caller
// installed them.
export const COMPUTE_STAGE = 4;

export interface Program<Name extends string> {
  layout: GPUBindGroupLayout;
  pipelines: ReadonlyMap<Name, GPUComputePipeline>;
  /** Whether the reductions use subgroup operations. */
  subgroups: boolean;
}

export type KernelProgram = Program<KernelName>;

/** A program: its entry points and, beyond the kernels of shaders/, more WGSL and more bindings. */
export interface ProgramSpec<Name extends string> {
  label: string;
  entryPoints: readonly Name[];
  parts?: readonly string[];
  /** Layout entries after the four of shaders/job.wgsl. */
  bindings?: readonly GPUBindGroupLayoutEntry[];
}

/** The whole module: every kernel family in one, so all pipelines share its bind group layout. */
function composeShaderSource(subgroups: boolean, extraParts: readonly string[] = []): string {
  const parts = [jobWgsl, roundingWgsl, blendWgsl, statsWgsl, subgroups ? statsSubgroupWgsl : statsWorkgroupWgsl, gridWgsl, ternaryWgsl, binaryWgsl, ...extraParts];
  return (subgroups ? 'enable subgroups;\n\n' : '') + parts.join('\n');
}

/**
 * Compiles the kernels (or shaders/ plus `spec.parts`, for `spec.entryPoints`); `created` counts
 * the shader modules and pipelines made.
 */
export async function createProgram<Name extends string = KernelName>(
  device: GPUDevice,
  subgroups: boolean,
  created: { shaderModules: number; pipelines: number },
  spec: ProgramSpec<Name> = { label: 'edge-moq kernels', entryPoints: KERNEL_NAMES as readonly string[] as readonly Name[] },
): Promise<Program<Name>> {
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ label: spec.label, code: composeShaderSource(subgroups, spec.parts) });
  created.shaderModules++;
  const info = await module.getCompilationInfo();
  const errors = info.messages.filter((m) => m.type === 'error');
  if (errors.length > 0) {
    await device.popErrorScope();
    throw new BackendError(
      'BACKEND_UNAVAILABLE',
      `this WebGPU implementation rejected the ${spec.label} (${errors.map((m) => `line ${m.lineNum}: ${m.message}`).join('; ')}); use a WebAssembly backend (kind: 'wasm-simd').`,
    );
  }
  const layout = device.createBindGroupLayout({
    label: spec.label,
    entries: [
      { binding: 0, visibility: COMPUTE_STAGE, buffer: { type: 'storage' } },
      { binding: 1, visibility: COMPUTE_STAGE, buffer: { type: 'storage' } },
      { binding: 2, visibility: COMPUTE_STAGE, buffer: { type: 'storage' } },
      { binding: 3, visibility: COMPUTE_STAGE, buffer: { type: 'uniform', hasDynamicOffset: true, minBindingSize: JOB_BYTES } },
      ...(spec.bindings ?? []),
    ],
  });
  const pipelineLayout = device.createPipelineLayout({ bindGroupLayouts: [layout] });
  const entries = await Promise.all(
    spec.entryPoints.map(async (name) => [name, await device.createComputePipelineAsync({ label: name, layout: pipelineLayout, compute: { module, entryPoint: name } })] as const),
  );
  created.pipelines += entries.length;
  const error = await device.popErrorScope();
  if (error) {
    throw new BackendError('BACKEND_UNAVAILABLE', `could not build the WebGPU pipelines of the ${spec.label} (${error.message}); use a WebAssembly backend (kind: 'wasm-simd').`);
  }
  return { layout, pipelines: new Map(entries), subgroups };
}
