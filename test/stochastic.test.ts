// The noise stochastic rounding adds, as the WebAssembly builds draw it (WasmBackend.noiseOffsets):
// uniform on [-0.5, 0.5), the same on both builds. test/contracts/backend.test.ts checks what
// every implementation does with it: on the grid, unbiased, reproducible, the same everywhere.

import { describe, expect, it } from 'vitest';
import { wasmBackends } from './support/wasm-backends.js';

const { simd, scalar } = await wasmBackends();

describe('stochastic noise', () => {
  it('draws offsets in [-0.5, 0.5), the same on both builds', () => {
    const stream = { seed: 123, step: 4, tensorId: 9 };
    const offsets = simd.noiseOffsets(100_003, stream);
    expect(scalar.noiseOffsets(100_003, stream)).toEqual(offsets);
    let mean = 0,
      outside = 0;
    for (const p of offsets) {
      if (!(p >= -0.5 && p < 0.5)) outside++;
      mean += p / offsets.length;
    }
    expect(outside).toBe(0);
    // Uniform on [-0.5, 0.5): standard deviation of the mean is sqrt(1/12/n).
    expect(Math.abs(mean)).toBeLessThan(5 * Math.sqrt(1 / 12 / offsets.length));
  });
});
