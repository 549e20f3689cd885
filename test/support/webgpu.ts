// WebGPU in Node for the test suites: Dawn (the `webgpu` package) on SwiftShader's Vulkan
// driver, which Debian's `chromium` package ships. One GPU object per test file, kept in this
// module for the life of the process: Dawn frees its devices when that object is collected.

import { existsSync } from 'node:fs';
import { afterAll, beforeAll } from 'vitest';
import { WebGpuBackend } from '../../src/backends/webgpu/backend.js';
import { uniforms } from './fixtures.js';
import { runtimeAvailable } from './runtimes.js';

const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

let gpu: GPU | undefined;

async function probe(): Promise<string | null> {
  if (existsSync(SWIFTSHADER_ICD)) process.env.VK_ICD_FILENAMES ??= SWIFTSHADER_ICD;
  const { create, globals } = await import('webgpu');
  Object.assign(globalThis, globals);
  gpu = create([]);
  const adapter = await gpu.requestAdapter();
  return adapter ? null : `Dawn found no WebGPU adapter (no Vulkan driver; ${SWIFTSHADER_ICD} ${existsSync(SWIFTSHADER_ICD) ? 'exists but gave none' : 'is missing'})`;
}

/** Whether the suite can run; records the skip (or fails under CI) when it cannot. */
export function webgpuAvailable(): Promise<boolean> {
  return runtimeAvailable({ name: 'WebGPU (Dawn on SwiftShader)', install: 'apt-get install -y chromium libvulkan1' }, probe);
}

/** The GPU object probed by webgpuAvailable(). */
export function testGpu(): GPU {
  if (!gpu) throw new Error('call webgpuAvailable() first');
  return gpu;
}

/** A device of its own, with or without the `subgroups` feature. */
export async function testDevice(subgroups = true): Promise<GPUDevice> {
  const adapter = (await testGpu().requestAdapter())!;
  const features: GPUFeatureName[] = subgroups && adapter.features.has('subgroups') ? ['subgroups' as GPUFeatureName] : [];
  return adapter.requestDevice({ requiredFeatures: features });
}

/**
 * For a describe block: a WebGpuBackend on a device of its own, created before the tests and
 * destroyed after them. Read `.backend` and `.device` inside the tests.
 */
export function useBackendOnOwnDevice(): { backend: WebGpuBackend; device: GPUDevice } {
  const context = {} as { backend: WebGpuBackend; device: GPUDevice };
  beforeAll(async () => {
    context.device = await testDevice();
    context.backend = await WebGpuBackend.create({ gpu: testGpu(), device: context.device });
  });
  afterAll(() => {
    context.backend.dispose();
    context.device.destroy();
  });
  return context;
}

/** A GPUBuffer holding `values`, usable as a quantization target. */
export function bufferWith(device: GPUDevice, values: Float32Array): GPUBuffer {
  const buffer = device.createBuffer({
    size: Math.max(4, values.byteLength),
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    mappedAtCreation: true,
  });
  new Float32Array(buffer.getMappedRange()).set(values);
  buffer.unmap();
  return buffer;
}

/** The float32 contents of a buffer. */
export async function readBuffer(device: GPUDevice, buffer: GPUBuffer, length: number): Promise<Float32Array> {
  const staging = device.createBuffer({ size: length * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const encoder = device.createCommandEncoder();
  encoder.copyBufferToBuffer(buffer, 0, staging, 0, length * 4);
  device.queue.submit([encoder.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const values = new Float32Array(staging.getMappedRange().slice(0));
  staging.destroy();
  return values;
}

/** Seeded normal-ish values (sum of uniforms), optionally shifted: realistic weights. */
export function weights(length: number, seed: number, shift = 0): Float32Array {
  // Seed 0 maps to 1 (not uniforms' own default) so that existing expectations keep their values.
  const next = uniforms(seed >>> 0 || 1);
  return Float32Array.from({ length }, () => Math.fround((next() + next() + next() - 1.5) * 0.1 + shift));
}
