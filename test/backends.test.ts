// Backend selection and WebAssembly memory ownership.

import { describe, expect, it } from 'vitest';
import { createBackend } from '../src/backends/select.js';
import { WasmBackend } from '../src/backends/wasm/backend.js';
import { BackendError } from '../src/errors.js';
import { randomTensor } from './support/fixtures.js';

describe('createBackend', () => {
  it("'auto' picks WebAssembly SIMD here and explains every candidate", async () => {
    const backend = await createBackend({ kind: 'auto' });
    expect(backend.kind).toBe('wasm-simd');
    expect(backend.selection.picked).toBe('wasm-simd');
    const text = backend.explain();
    expect(text).toMatch(/backend: wasm-simd \(requested: auto\)/);
    expect(text).toMatch(/wasm-simd +available: WebAssembly.validate accepted the SIMD probe/);
    expect(text).toMatch(/wasm +available: .*wasm-simd ranks higher/);
    for (const c of backend.selection.candidates) expect(c.reason.length).toBeGreaterThan(10);
  });

  it.each(['wasm-simd', 'wasm'] as const)('gives %s when asked', async (kind) => {
    expect((await createBackend({ kind })).kind).toBe(kind);
  });

  it('rejects an unknown kind', async () => {
    await expect(createBackend({ kind: 'cuda' as never })).rejects.toThrow(/kind must be one of auto, wasm-simd, wasm, webgpu/);
  });

  it('says how to fix a missing WebAssembly build', async () => {
    await expect(createBackend({ kind: 'wasm', wasm: { scalar: new URL('file:///nonexistent.wasm') } })).rejects.toThrow(BackendError);
  });
});

describe('groupStats', () => {
  it('gives min, max, abs-max and mean |x| per group', async () => {
    const backend = await WasmBackend.create('scalar');
    const stats = await backend.groupStats(Float32Array.of(1, -3, 2, 0, 0.5, -0.5), { groupSize: 3 });
    expect(stats).toEqual({
      min: Float32Array.of(-3, -0.5),
      max: Float32Array.of(2, 0.5),
      absMax: Float32Array.of(3, 0.5),
      meanAbs: Float32Array.of(2, Math.fround(1 / 3)),
    });
    await expect(backend.groupStats(Float32Array.of(1, NaN), { groups: 1 })).rejects.toThrow(/data\[1\] is NaN/);
  });
});

describe('WebAssembly memory', () => {
  it('quantizes WasmTensors in place and keeps their views valid across memory growth', async () => {
    const backend = await WasmBackend.create('simd');
    const values = randomTensor(4096, 1);
    const tensor = backend.upload(values);
    const expected = backend.fakeQuantizeSync(values.slice(), { bits: 4, groups: 4 });
    // A large host call grows the memory, detaching old views of it.
    backend.fakeQuantizeSync(randomTensor(1 << 22, 2), { bits: 8 });
    backend.fakeQuantizeSync(tensor.array, { bits: 4, groups: 4 });
    expect(tensor.array).toEqual(expected);
    tensor.free();
    expect(() => tensor.array).toThrow(/freed/);
  });

  it('reuses freed space instead of growing', async () => {
    const backend = await WasmBackend.create('scalar');
    const a = backend.allocate(1 << 20);
    a.free();
    const b = backend.allocate(1 << 19);
    const c = backend.allocate(1 << 19);
    expect([b.byteOffset, c.byteOffset].sort()).toEqual([a.byteOffset, a.byteOffset + (1 << 21)].sort());
  });

  it('allocates nothing per call once warm', async () => {
    const backend = await WasmBackend.create('simd');
    const data = randomTensor(1 << 16, 3);
    backend.fakeQuantizeSync(data.slice(), { bits: 8, groups: 16 });
    const pages = (backend as unknown as { kernels: { memory: WebAssembly.Memory } }).kernels.memory.buffer.byteLength;
    for (let i = 0; i < 50; i++) backend.fakeQuantizeSync(data.slice(), { bits: 8, groups: 16 });
    expect((backend as unknown as { kernels: { memory: WebAssembly.Memory } }).kernels.memory.buffer.byteLength).toBe(pages);
  });
});
