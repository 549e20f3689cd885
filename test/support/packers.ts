// Every packer present, each with the backend whose fakeQuantize it must reproduce, and the one
// comparison of unpack(pack(x)) against fakeQuantize(x) the pack tests share.

import { afterAll, beforeAll } from 'vitest';
import type { Backend } from '../../src/backends/backend.js';
import { WasmBackend } from '../../src/backends/wasm/backend.js';
import { WebGpuBackend } from '../../src/backends/webgpu/backend.js';
import type { PackedTensor } from '../../src/packed/layout.js';
import type { Packer } from '../../src/packed/packer.js';
import { WasmPacker } from '../../src/backends/wasm/packer.js';
import { WebGpuPacker } from '../../src/backends/webgpu/packer.js';
import { testGpu, webgpuAvailable } from './webgpu.js';

export interface PackerUnderTest {
  name: 'wasm-simd' | 'wasm' | 'webgpu';
  backend: Backend;
  packer: Packer;
}

/**
 * For a test file: the packers present (both WebAssembly builds, and WebGPU where Dawn finds an
 * adapter), created before its tests and disposed after them. Read the array inside the tests.
 */
export function usePackers(): PackerUnderTest[] {
  const packers: PackerUnderTest[] = [];
  beforeAll(async () => {
    for (const [name, build] of [
      ['wasm-simd', 'simd'],
      ['wasm', 'scalar'],
    ] as const) {
      const backend = await WasmBackend.create(build);
      packers.push({ name, backend, packer: new WasmPacker(backend) });
    }
    if (await webgpuAvailable()) {
      const backend = await WebGpuBackend.create({ gpu: testGpu() });
      packers.push({ name: 'webgpu', backend, packer: await WebGpuPacker.create(backend) });
    }
  });
  afterAll(() => {
    for (const { backend, packer } of packers) {
      packer.dispose();
      backend.dispose();
    }
  });
  return packers;
}

/**
 * The first element where unpacking differs from fakeQuantize, or null. The exceptions
 * src/packed/packer.ts states: a zero keeps no sign, and binary, having no code for 0, packs
 * as +mean what fakeQuantize writes as 0 (an exact 0, or a subnormal on a device that reads
 * subnormals as zeros).
 */
export function differenceFromFake(x: Float32Array, fake: Float32Array, unpacked: Float32Array, packed: PackedTensor): string | null {
  for (let i = 0; i < x.length; i++) {
    const want = packed.type === 'binary' && fake[i] === 0 ? packed.scales[Math.floor(i / packed.groupSize)]! : fake[i]! + 0;
    if (unpacked[i]! + 0 !== want) return `element ${i}: x = ${x[i]}, unpacked ${unpacked[i]}, fakeQuantize ${fake[i]}`;
  }
  return null;
}

/** One wasm-simd backend and its packer for a test file; read the fields inside the tests. */
export function useWasmSimdPacker(): { backend: WasmBackend; packer: WasmPacker } {
  const pair = {} as { backend: WasmBackend; packer: WasmPacker };
  beforeAll(async () => {
    pair.backend = await WasmBackend.create('simd');
    pair.packer = new WasmPacker(pair.backend);
  });
  afterAll(() => pair.backend.dispose());
  return pair;
}
