// Selection with a WebGPU adapter present: a fallback adapter (SwiftShader) is not preferred over
// WebAssembly SIMD for host data, an explicit request gets it anyway, a given device makes
// 'auto' route each call by size, and `edge-moq info` describes all of it.

import { afterEach, describe, expect, it, vi } from 'vitest';
import { createBackend, WEBGPU_CROSSOVER_ELEMENTS } from '../src/backends/select.js';
import { AutoBackend } from '../src/backends/auto.js';
import { WasmBackend } from '../src/backends/wasm/backend.js';
import { WebGpuBackend } from '../src/backends/webgpu/backend.js';
import { infoCommand } from '../src/cli/info.js';
import { nodeGpu } from '../src/backends/webgpu/node-gpu.js';
import { testDevice, testGpu, webgpuAvailable, weights } from './support/webgpu.js';

const available = await webgpuAvailable();

describe.skipIf(!available)('createBackend with WebGPU', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("'auto' passes over a fallback adapter for wasm-simd and says why", async () => {
    const backend = await createBackend({ kind: 'auto', gpu: testGpu() });
    expect(backend).toBeInstanceOf(WasmBackend);
    expect(backend.kind).toBe('wasm-simd');
    expect(backend.explain()).toMatch(/webgpu +available: adapter .*swiftshader.*\(fallback adapter\): a fallback \(software\) adapter is slower than wasm-simd/);
    expect(backend.explain()).toMatch(/\* wasm-simd/);
  });

  it('gives WebGPU when asked, even on a fallback adapter, and explains the choice', async () => {
    const backend = await createBackend({ kind: 'webgpu', gpu: testGpu() });
    expect(backend).toBeInstanceOf(WebGpuBackend);
    expect(backend.kind).toBe('webgpu');
    const text = backend.explain();
    expect(text).toMatch(/^backend: webgpu \(requested: webgpu\)/);
    expect(text).toMatch(/\* webgpu +available: adapter google \/ swiftshader/);
    expect(text).toMatch(/wasm-simd +available: .*; not requested/);
    expect(text).toMatch(/if the device is lost, host work continues on wasm-simd/);
    expect(text).toMatch(/reductions with subgroup operations/);
    backend.dispose();
  });

  it('says how to get WebGPU in Node, and nodeGpu() gets it', async () => {
    await expect(createBackend({ kind: 'webgpu' })).rejects.toMatchObject({
      code: 'BACKEND_UNAVAILABLE',
      message: expect.stringMatching(/no navigator.gpu in Node: pass \{ gpu: \(await nodeGpu\(\)\).gpu \}/),
    });
    const found = await nodeGpu();
    expect(found?.note).toMatch(/the "webgpu" package \(Dawn\)/);
    const backend = await createBackend({ kind: 'webgpu', gpu: found!.gpu });
    expect(backend.kind).toBe('webgpu');
    await expect(backend.fakeQuantize(weights(16, 1), { bits: 8 })).resolves.toHaveLength(16);
    backend.dispose();
  });

  it("routes each host call by size under 'auto' when a device is given", async () => {
    const device = await testDevice();
    const backend = (await createBackend({ kind: 'auto', gpu: testGpu(), device, crossoverElements: 5000 })) as AutoBackend;
    expect(backend).toBeInstanceOf(AutoBackend);
    expect(backend.explain()).toMatch(/routing: per call by size, crossover 5000 elements/);
    expect(backend.explain()).toMatch(/wasm-simd +available: .*runs host calls under 5000 elements/);
    const wasm = await WasmBackend.create('simd');
    for (const [length, kind] of [
      [4096, 'wasm-simd'],
      [8192, 'webgpu'],
    ] as const) {
      const values = weights(length, length);
      const result = await backend.fakeQuantize(values.slice(), { bits: 6, groups: 4 });
      expect(backend.lastKind).toBe(kind);
      expect(backend.kind, 'kind says what ran the call').toBe(kind);
      expect(result).toEqual(await wasm.fakeQuantize(values.slice(), { bits: 6, groups: 4 }));
    }
    // A parameter group counts as a whole.
    await backend.fakeQuantizeMany([3000, 3000].map((n, i) => ({ data: weights(n, i), options: { bits: 8 } })));
    expect(backend.lastKind).toBe('webgpu');
    backend.dispose();
    device.destroy();
  });

  it('quantizes out of place ({ into }) on either side of the crossover, and on WebGPU alone, leaving data untouched', async () => {
    const device = await testDevice();
    const auto = (await createBackend({ kind: 'auto', gpu: testGpu(), device, crossoverElements: 5000 })) as AutoBackend;
    const wasm = await WasmBackend.create('simd');
    for (const [length, kind] of [
      [4096, 'wasm-simd'],
      [8192, 'webgpu'],
    ] as const) {
      const values = weights(length, length + 1);
      const before = values.slice();
      const into = new Float32Array(length);
      await expect(auto.fakeQuantize(values, { bits: 5, groups: 8 }, { into })).resolves.toBe(into);
      expect(auto.kind).toBe(kind);
      expect(values).toEqual(before);
      expect(into).toEqual(await wasm.fakeQuantize(values.slice(), { bits: 5, groups: 8 }));
    }
    const gpu = auto.gpu;
    const values = weights(2048, 9);
    const into = new Float32Array(2048);
    await expect(gpu.fakeQuantize(values, { bits: 4, groupSize: 256, type: 'asymmetric' }, { into })).resolves.toBe(into);
    expect(into).toEqual(await wasm.fakeQuantize(values.slice(), { bits: 4, groupSize: 256, type: 'asymmetric' }));
    values[1500] = NaN;
    await expect(gpu.fakeQuantize(values, { bits: 8, groupSize: 256 }, { into })).rejects.toMatchObject({
      code: 'NON_FINITE',
      message: expect.stringMatching(/^data\[1500\] is NaN/),
      location: { job: 0, index: 1500, group: 5 },
    });
    await expect(gpu.fakeQuantize(values, { bits: 8 }, { into: into.subarray(1) })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(gpu.fakeQuantize(values, { bits: 8 }, { into: values })).rejects.toThrow(/into overlaps data/);
    wasm.dispose();
    auto.dispose();
    device.destroy();
  });

  it("disposes each resource once: 'auto' disposes the WebGPU backend, which disposes its WebAssembly fallback", async () => {
    const device = await testDevice();
    const auto = (await createBackend({ kind: 'auto', gpu: testGpu(), device, crossoverElements: 5000 })) as AutoBackend;
    expect(auto.wasm).toBe(auto.gpu.wasm);
    const disposeGpu = vi.spyOn(auto.gpu, 'dispose');
    const disposeWasm = vi.spyOn(auto.wasm, 'dispose');
    auto.dispose();
    expect(disposeGpu).toHaveBeenCalledTimes(1);
    expect(disposeWasm).toHaveBeenCalledTimes(1);
    device.destroy();
  });

  it('checks the crossover option', async () => {
    expect(WEBGPU_CROSSOVER_ELEMENTS).toBeGreaterThan(0);
    await expect(createBackend({ kind: 'auto', crossoverElements: -1 })).rejects.toThrow(/crossoverElements must be a non-negative integer/);
  });

  it('`edge-moq info` lists the adapter, its features and what auto picks', async () => {
    const lines: string[] = [];
    vi.spyOn(console, 'log').mockImplementation((line: string) => {
      lines.push(line);
    });
    expect(await infoCommand()).toBe(0);
    const text = lines.join('\n');
    expect(text).toMatch(/WebAssembly SIMD: yes/);
    expect(text).toMatch(/adapter: SwiftShader/);
    expect(text).toMatch(/vendor: google, architecture: swiftshader/);
    expect(text).toMatch(/fallback \(software\) adapter: yes/);
    expect(text).toMatch(/features: .*subgroups/);
    expect(text).toMatch(/auto picks:\nbackend: wasm-simd \(requested: auto\)/);
  });
});
