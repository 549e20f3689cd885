// Caller-owned GPUBuffers, quantized in place on the caller's device, and the promise that a
// warm backend creates nothing: no shader modules, pipelines, buffers or bind groups per call.

import { describe, expect, it } from 'vitest';
import type { FakeQuantizeOptions } from '../src/kernel-plan.js';
import { WebGpuBackend } from '../src/backends/webgpu/backend.js';
import { KERNEL_NAMES } from '../src/backends/webgpu/plan.js';
import { bufferWith, readBuffer, testGpu, useBackendOnOwnDevice, webgpuAvailable, weights } from './support/webgpu.js';

const available = await webgpuAvailable();

const CASES: [number, FakeQuantizeOptions][] = [
  [4096, { bits: 8, groups: 4 }],
  [9000, { bits: 4, groups: 3, type: 'asymmetric', rounding: 'stochastic', seed: 2, tensorId: 5, blendRatio: 0.75 }],
  [600, { bits: 2, groups: 10 }],
  [20000, { bits: 1, groups: 2 }],
  [48, { bits: 16, groups: 48 }],
];

describe.skipIf(!available)('caller-owned GPUBuffers', () => {
  const gpu = useBackendOnOwnDevice();

  it('quantizes a buffer in place, as the host path quantizes an array', async () => {
    for (const [length, options] of CASES) {
      const values = weights(length, length);
      const buffer = bufferWith(gpu.device, values);
      await expect(gpu.backend.fakeQuantizeBuffer(buffer, length, options)).resolves.toBe(buffer);
      const fromHost = await gpu.backend.fakeQuantize(values.slice(), options);
      expect(await readBuffer(gpu.device, buffer, length)).toEqual(fromHost);
      buffer.destroy();
    }
  });

  it('quantizes several buffers in one submission and leaves what lies past `length` alone', async () => {
    const inputs = CASES.map(([length], i) => weights(length + 5, 40 + i));
    const buffers = inputs.map((values) => bufferWith(gpu.device, values));
    const before = gpu.backend.stats().submissions;
    await gpu.backend.fakeQuantizeBuffers(CASES.map(([length, options], i) => ({ buffer: buffers[i]!, length, options })));
    expect(gpu.backend.stats().submissions).toBe(before + 1);
    const fromHost = CASES.map(([length, options], i) => ({ data: inputs[i]!.slice(0, length), options }));
    await gpu.backend.fakeQuantizeMany(fromHost);
    for (const [i, [length]] of CASES.entries()) {
      const contents = await readBuffer(gpu.device, buffers[i]!, length + 5);
      expect(contents.subarray(0, length)).toEqual(fromHost[i]!.data);
      expect(contents.subarray(length)).toEqual(inputs[i]!.subarray(length));
      buffers[i]!.destroy();
    }
  });

  it('creates no modules, pipelines, buffers or bind groups once warm', async () => {
    const fresh = await WebGpuBackend.create({ gpu: testGpu(), device: gpu.device });
    expect(fresh.stats()).toMatchObject({ shaderModules: 1, pipelines: KERNEL_NAMES.length, buffers: 0, bindGroups: 0, submissions: 0 });
    const hostArrays = CASES.map(([length], i) => weights(length, i));
    const buffers = CASES.map(([length], i) => bufferWith(gpu.device, weights(length, 10 + i)));
    const step = async () => {
      await fresh.fakeQuantizeMany(CASES.map(([, options], i) => ({ data: hostArrays[i]!, options })));
      await fresh.fakeQuantizeBuffers(CASES.map(([length, options], i) => ({ buffer: buffers[i]!, length, options })));
      await fresh.fakeQuantize(hostArrays[0]!, CASES[0]![1]);
      await fresh.groupStats(hostArrays[1]!, { groups: 3 });
    };
    await step();
    const warm = fresh.stats();
    for (let i = 0; i < 3; i++) await step();
    const { shaderModules, pipelines, buffers: created, bindGroups, submissions } = fresh.stats();
    expect({ shaderModules, pipelines, buffers: created, bindGroups }).toEqual({ shaderModules: warm.shaderModules, pipelines: warm.pipelines, buffers: warm.buffers, bindGroups: warm.bindGroups });
    // groupStats reads host arrays on WebAssembly: three submissions per step.
    expect(submissions).toBe(warm.submissions + 3 * 3);
    fresh.dispose();
    for (const buffer of buffers) buffer.destroy();
  });
});
