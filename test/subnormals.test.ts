// Packing at the bottom of float32: groups of subnormals (alone, beside zeros, beside normals,
// of both signs, groups of one or two) at every width, symmetric (both grids) and asymmetric,
// nearest and stochastic, on every backend. unpack(pack(x)) equals the same backend's fakeQuantize(x) with
// only the exceptions src/packed/packer.ts states, and nothing is NaN: not the stored scales,
// not the values.
//
// The WebAssembly kernels keep subnormals (WebAssembly forbids flushing them); a group whose
// scale underflows to 0 is left unchanged by fakeQuantize and packed on the grid of the smallest
// subnormal, where it is exact. WGSL lets a GPU flush subnormals (SwiftShader does): there a
// group of scale 0 takes its zero point in fakeQuantize and in packing alike (shaders/grid.wgsl).

import { describe, expect, it } from 'vitest';
import type { PackOptions } from '../src/packed/layout.js';
import { uniforms } from './support/fixtures.js';
import { differenceFromFake, usePackers } from './support/packers.js';
import { webgpuAvailable } from './support/webgpu.js';

const f = Math.fround;
const TINY = 2 ** -149;
const MIN_NORMAL = 2 ** -126;
const fill = (n: number, v: number) => Array.from({ length: n }, () => v);
const nextUp = (x: number) => {
  const bits = new Uint32Array(Float32Array.of(x).buffer);
  bits[0]! += 1;
  return new Float32Array(bits.buffer)[0]!;
};

/** Seeded subnormals of random magnitude (any number of significant bits) and sign. */
function randomSubnormals(n: number, seed: number): number[] {
  const next = uniforms(seed);
  return Array.from({ length: n }, () => (next() < 0.5 ? -1 : 1) * Math.floor(next() * 2 ** (1 + Math.floor(next() * 23))) * TINY);
}

const ROWS: { name: string; input: number[]; groups?: number }[] = [
  { name: 'the smallest subnormal and its negative', input: [TINY, -TINY] },
  { name: 'smallest subnormals with a zero (ternary: 0.7 * mean rounds up past every |x|)', input: [TINY, -TINY, 0] },
  { name: 'a few smallest subnormals apart (every scale underflows)', input: [TINY, 2 * TINY, 3 * TINY, -2 * TINY, 0, TINY, -TINY, 4 * TINY] },
  { name: 'all subnormal, spread out', input: [1e-40, -3e-41, 5e-42, 2e-39].map(f) },
  { name: 'subnormals mixed with zeros (the mean underflows)', input: [0, TINY, 0, -0, 2 * TINY, 0, 0, 0] },
  { name: 'one subnormal among zeros (the mean underflows)', input: [TINY, 0, 0, 0] },
  { name: 'subnormals beside normals', input: [1e-38, 2e-45, 3e-39, 1.5e-38].map(f) },
  { name: 'subnormals beside values near 1', input: [1, TINY, -1e-40, 0.5, -0.25].map(f) },
  { name: 'the largest subnormal and the smallest normals', input: [MIN_NORMAL - TINY, MIN_NORMAL, -MIN_NORMAL, nextUp(MIN_NORMAL)] },
  { name: 'normals one ulp apart near 1e-34 (the asymmetric scale underflows)', input: [f(1e-34), nextUp(f(1e-34))] },
  { name: 'one subnormal', input: [-5 * TINY] },
  { name: 'two subnormals', input: [TINY, 3 * TINY] },
  { name: 'one subnormal repeated', input: fill(8, 3 * TINY) },
  { name: 'random subnormals, 8 groups of 8', input: randomSubnormals(64, 5), groups: 8 },
  { name: 'random subnormals beside zeros and normals, groups of 3', input: randomSubnormals(30, 9).map((v, i) => (i % 5 === 0 ? 0 : i % 7 === 0 ? v * 2 ** 100 : v)), groups: 10 },
];

const VARIANTS: PackOptions[] = [];
for (let bits = 1; bits <= 16; bits++) {
  for (const type of bits >= 3 ? ['symmetric', 'asymmetric'] as const : ['symmetric'] as const) {
    for (const rounding of bits >= 3 ? ['nearest', 'stochastic'] as const : ['nearest'] as const) {
      VARIANTS.push({ bits, type, rounding, ...(rounding === 'stochastic' ? { seed: 3, step: 1, tensorId: bits } : {}) });
      if (type === 'symmetric' && bits >= 3) VARIANTS.push({ bits, grid: 'full', rounding, ...(rounding === 'stochastic' ? { seed: 3 } : {}) });
    }
  }
}

const packers = usePackers();
const present = (await webgpuAvailable()) ? ['wasm-simd', 'wasm', 'webgpu'] : ['wasm-simd', 'wasm'];

describe('subnormal groups: unpack(pack(x)) == fakeQuantize(x), and no NaN', () => {
  it.each(ROWS)('$name', async ({ input, groups = 1 }) => {
    expect(packers.map((p) => p.name)).toEqual(present);
    const x = Float32Array.from(input);
    for (const { name, backend, packer } of packers) {
      for (const options of VARIANTS) {
        const where = `${name}, ${JSON.stringify(options)}`;
        const packed = await packer.pack(x, { ...options, groups });
        expect([...packed.scales, ...(packed.zeros ?? [])].every(Number.isFinite), `${where}: scales and zero points`).toBe(true);
        const unpacked = await packer.unpack(packed);
        const fake = await backend.fakeQuantize(x.slice(), { ...options, groups });
        expect(fake.every(Number.isFinite), `${where}: fakeQuantize`).toBe(true);
        expect(unpacked.every(Number.isFinite), `${where}: unpack`).toBe(true);
        expect(differenceFromFake(x, fake, unpacked, packed), where).toBeNull();
      }
    }
  });

  it('on WebAssembly a group whose scale underflows is left as it is, and packs exactly', async () => {
    const x = Float32Array.from([TINY, 2 * TINY, -2 * TINY, 0]);
    for (const { name, backend, packer } of packers.filter((p) => p.name !== 'webgpu')) {
      const cases = [{ bits: 4 }, { bits: 8, type: 'asymmetric' }, { bits: 3, rounding: 'stochastic', seed: 1 }, { bits: 4, grid: 'full' }, { bits: 3, grid: 'full', rounding: 'stochastic', seed: 1 }];
      for (const options of cases as PackOptions[]) {
        const packed = await packer.pack(x, options);
        expect(packed.scales[0], name).toBe(TINY);
        expect(await packer.unpack(packed), name).toEqual(x);
        expect(await backend.fakeQuantize(x.slice(), options), name).toEqual(x);
      }
    }
  });
});
