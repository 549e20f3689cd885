// Stochastic rounding: on the grid, unbiased, reproducible from (seed, step, tensor id), and
// identical between the SIMD and scalar builds.

import { beforeAll, describe, expect, it } from 'vitest';
import { WasmBackend } from '../src/backends/wasm/backend.js';
import { randomTensor } from './support/fixtures.js';

let simd: WasmBackend;
let scalar: WasmBackend;
beforeAll(async () => {
  simd = await WasmBackend.create('simd');
  scalar = await WasmBackend.create('scalar');
});

const quantize = (backend: WasmBackend, data: Float32Array, options: object) =>
  backend.fakeQuantizeSync(data.slice(), { bits: 8, rounding: 'stochastic', ...options });

describe('stochastic rounding', () => {
  it.each([
    { bits: 3, type: 'symmetric' }, { bits: 8, type: 'symmetric' }, { bits: 8, type: 'asymmetric' }, { bits: 16, type: 'asymmetric' },
  ] as const)('puts every value on its group grid ($bits bits, $type)', ({ bits, type }) => {
    const data = randomTensor(4096 + 3, 11, 2);
    const q = simd.fakeQuantizeSync(data.slice(), { bits, type, rounding: 'stochastic', groups: 1, seed: 3 });
    let lo = Infinity, hi = -Infinity;
    for (const x of data) { lo = Math.min(lo, x); hi = Math.max(hi, x); }
    const levels = 2 ** bits;
    const scale = type === 'symmetric' ? Math.fround(Math.max(-lo, hi) * Math.fround(2 / levels)) : Math.fround(Math.fround(hi - lo) / levels);
    const zero = type === 'symmetric' ? 0 : Math.fround(Math.round(Math.fround(lo / scale)) * scale);
    for (const y of q) {
      const k = Math.round((y - zero) / scale);
      expect(Math.abs(Math.fround(k * scale) + zero - y)).toBeLessThanOrEqual(Math.abs(y) * 2 ** -22);
      expect(k).toBeGreaterThanOrEqual(type === 'symmetric' ? -levels / 2 : 0);
      expect(k).toBeLessThanOrEqual(type === 'symmetric' ? levels / 2 - 1 : levels - 1);
    }
  });

  it('is unbiased: rounds up with probability equal to the fractional part', () => {
    // One group: a 1.0 fixes the scale at 2^-7 (8 bits), every other value sits at 5.37 steps.
    const n = 1 << 16;
    const step = 2 ** -7;
    const x = Math.fround(5.37 * step);
    const data = new Float32Array(n).fill(x);
    data[0] = 1;
    const q = simd.fakeQuantizeSync(data, { bits: 8, rounding: 'stochastic', seed: 42 });
    let sum = 0;
    for (let i = 1; i < n; i++) sum += q[i]!;
    const mean = sum / (n - 1);
    // Each value is 5 or 6 steps with p = 0.37: the mean's standard deviation is step*sqrt(p(1-p)/n).
    const sigma = step * Math.sqrt((0.37 * 0.63) / (n - 1));
    expect(Math.abs(mean - x)).toBeLessThan(5 * sigma);
  });

  it('has zero mean error over random tensors (5 sigma bound)', () => {
    // Each group's first element pins its scale at 1.0 / 8 (4 bits); the others stay inside the
    // grid's range, where no clamping biases the result.
    const n = 1 << 18;
    const data = randomTensor(n, 5, 0.8);
    for (let g = 0; g < n; g += 1024) data[g] = 1;
    const q = simd.fakeQuantizeSync(data.slice(), { bits: 4, rounding: 'stochastic', groupSize: 1024, seed: 9 });
    let error = 0, count = 0;
    for (let i = 0; i < n; i++) {
      if (i % 1024 === 0) continue;
      error += q[i]! - data[i]!;
      count++;
    }
    // Each error lies within one step (1/8) and has variance <= step^2 / 4.
    expect(Math.abs(error / count)).toBeLessThan((5 * (1 / 8)) / (2 * Math.sqrt(count)));
  });

  it('reproduces exactly from the same seed, step and tensor id; differs otherwise', () => {
    const data = randomTensor(10_001, 8);
    const base = { seed: 1, step: 2, tensorId: 3 };
    const a = quantize(simd, data, base);
    expect(quantize(simd, data, base)).toEqual(a);
    for (const change of [{ seed: 2 }, { step: 3 }, { tensorId: 4 }]) {
      const b = quantize(simd, data, { ...base, ...change });
      const differing = b.filter((v, i) => v !== a[i]).length;
      expect(differing).toBeGreaterThan(data.length / 10);
    }
  });

  it.each([1, 3, 4, 15, 16, 17, 1000, 4099])('is identical on the SIMD and scalar builds (%i elements)', (n) => {
    const data = randomTensor(n * 2, n);
    for (const type of ['symmetric', 'asymmetric'] as const) {
      const options = { type, groups: 2, seed: 77, step: 5, tensorId: 6 };
      expect(quantize(scalar, data, options)).toEqual(quantize(simd, data, options));
    }
  });

  it('draws offsets in [-0.5, 0.5), the same on both builds', () => {
    const stream = { seed: 123, step: 4, tensorId: 9 };
    const offsets = simd.noiseOffsets(100_003, stream);
    expect(scalar.noiseOffsets(100_003, stream)).toEqual(offsets);
    let mean = 0, outside = 0;
    for (const p of offsets) {
      if (!(p >= -0.5 && p < 0.5)) outside++;
      mean += p / offsets.length;
    }
    expect(outside).toBe(0);
    // Uniform on [-0.5, 0.5): standard deviation of the mean is sqrt(1/12/n).
    expect(Math.abs(mean)).toBeLessThan(5 * Math.sqrt(1 / 12 / offsets.length));
  });
});
