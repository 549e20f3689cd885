// Both WebAssembly builds for one test file: created as the file loads, disposed after its tests.

import { afterAll } from 'vitest';
import { WasmBackend } from '../../src/backends/wasm/backend.js';

export async function wasmBackends(): Promise<{ simd: WasmBackend; scalar: WasmBackend }> {
  const [simd, scalar] = await Promise.all([WasmBackend.create('simd'), WasmBackend.create('scalar')]);
  afterAll(() => {
    simd.dispose();
    scalar.dispose();
  });
  return { simd, scalar };
}
