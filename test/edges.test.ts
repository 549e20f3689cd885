// Edge inputs against DESIGN.md's formulas written out in float32 (Math.fround at every
// operation): one element, groups of one, all-equal and all-zero groups, subnormals, ±FLT_MAX
// (where 2 * absMax, max - min or a sum of |x| overflows), and -0, on both symmetric grids. Every result must be finite
// and equal the formula's: bit for bit at 3..16 bits, within a relative 1e-6 at 1 and 2 bits
// (the conformance rules), and groups the design leaves unchanged must come back bit for bit.
//
// Where the formula itself overflows float32 (an intermediate turns into ±Inf although every
// input is finite) the expected value is the formula applied to x * 2^-k and scaled back by
// 2^k, for the smallest k that keeps every intermediate finite. Scaling by a power of two is
// exact, so this is the formula itself wherever it does not overflow; the symmetric grid
// already computes s as absMax * 2^(1-b) for this reason (assembly/grid.ts).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WasmBackend } from '../src/backends/wasm/backend.js';
import { WebGpuBackend } from '../src/backends/webgpu/backend.js';
import type { FakeQuantizeOptions } from '../src/kernel-plan.js';
import { testGpu, webgpuAvailable } from './support/webgpu.js';

const gpuAvailable = await webgpuAvailable();

const f = Math.fround;
const MAX = f(3.4028234663852886e38);
const TINY = 2 ** -149; // the smallest subnormal
const MIN_NORMAL = 2 ** -126;
const roundHalfEven = (v: number) => { const r = Math.round(v); return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r; };
const THRESHOLD_FACTOR = f(0.7);

interface Row {
  name: string;
  input: number[];
  options: FakeQuantizeOptions;
  /** The design leaves every group as it was: the output must be the input, bit for bit (-0 too). */
  unchanged?: boolean;
  /** Hand-computed values: pins the formula below on simple rows. */
  pinned?: number[];
}

const zeros = (n: number) => Array.from({ length: n }, () => 0);
const fill = (n: number, v: number) => Array.from({ length: n }, () => v);
const mixedSubnormals = [1e-40, -3e-41, 5e-42, 2e-39].map(f);

const ROWS: Row[] = [
  // One element.
  { name: 'one element, symmetric', input: [5], options: { bits: 8 }, pinned: [f(127 * f(10 / 256))] },
  { name: 'one negative element, symmetric (the bottom level is -absMax)', input: [-5], options: { bits: 8 }, pinned: [-5] },
  { name: 'one element, asymmetric (a constant group)', input: [5], options: { bits: 8, type: 'asymmetric' }, unchanged: true },
  { name: 'one element, binary', input: [5], options: { bits: 1 }, pinned: [5] },
  { name: 'one element, ternary', input: [-5], options: { bits: 2 }, pinned: [-5] },
  { name: 'one element, 16 bits stochastic', input: [0.1], options: { bits: 16, rounding: 'stochastic', seed: 3 } },
  { name: 'one zero', input: [0], options: { bits: 8 }, unchanged: true },
  { name: 'one -0, symmetric', input: [-0], options: { bits: 8 }, unchanged: true },
  { name: 'one -0, asymmetric', input: [-0], options: { bits: 8, type: 'asymmetric' }, unchanged: true },
  { name: 'one -0, ternary', input: [-0], options: { bits: 2 }, unchanged: true },
  { name: 'one -0, binary', input: [-0], options: { bits: 1 }, pinned: [0] },
  // Groups of one.
  { name: 'groups of one, symmetric', input: [3, -2, 0.5, -0, 7e-3, 1e30].map(f), options: { bits: 8, groupSize: 1 } },
  { name: 'groups of one, asymmetric (every group constant)', input: [3, -2, 0.5, -0, 7e-3, 1e30].map(f), options: { bits: 8, groups: 6, type: 'asymmetric' }, unchanged: true },
  { name: 'groups of one, binary', input: [3, -2, 0.5, 7e-3, 1e30].map(f), options: { bits: 1, groupSize: 1 }, pinned: [3, -2, 0.5, 7e-3, 1e30].map(f) },
  { name: 'groups of one, ternary', input: [3, -2, 0.5, -0, 7e-3, 1e30].map(f), options: { bits: 2, groupSize: 1 }, unchanged: true },
  { name: 'groups of one, stochastic asymmetric', input: [3, -2, 0.5], options: { bits: 4, groupSize: 1, type: 'asymmetric', rounding: 'stochastic' }, unchanged: true },
  // All-equal groups.
  { name: 'all equal positive, symmetric: one step below', input: fill(8, 2.5), options: { bits: 4, groups: 2 }, pinned: fill(8, 2.1875) },
  { name: 'all equal negative, symmetric: exact', input: fill(8, -2.5), options: { bits: 4, groups: 2 }, pinned: fill(8, -2.5) },
  { name: 'all equal, symmetric, non-dyadic value', input: fill(8, f(0.1)), options: { bits: 8 } },
  { name: 'all equal, asymmetric', input: fill(8, 2.5), options: { bits: 4, type: 'asymmetric' }, unchanged: true },
  { name: 'all equal, asymmetric with the blend', input: fill(8, f(0.1)), options: { bits: 4, type: 'asymmetric', blendRatio: 0.3 }, unchanged: true },
  { name: 'all equal, stochastic symmetric (8 + p always rounds to the clamped top)', input: fill(8, 2.5), options: { bits: 4, rounding: 'stochastic', seed: 9 }, pinned: fill(8, 2.1875) },
  { name: 'all equal, binary', input: fill(8, f(0.1)), options: { bits: 1 } },
  { name: 'all equal, ternary', input: fill(8, f(-0.1)), options: { bits: 2 } },
  // All-zero groups (the reference divides by zero; the design returns them unchanged).
  { name: 'all zero, symmetric', input: [0, -0, 0, -0], options: { bits: 8, groups: 2 }, unchanged: true },
  { name: 'all zero, asymmetric', input: [0, -0, 0, -0], options: { bits: 8, type: 'asymmetric' }, unchanged: true },
  { name: 'all zero, stochastic', input: zeros(6), options: { bits: 3, rounding: 'stochastic' }, unchanged: true },
  { name: 'all zero, ternary', input: [0, -0, 0, -0], options: { bits: 2 }, unchanged: true },
  { name: 'all zero, binary', input: zeros(4), options: { bits: 1 }, pinned: zeros(4) },
  { name: 'all zero, with the blend', input: zeros(4), options: { bits: 8, blendRatio: 0.25 }, unchanged: true },
  { name: 'one zero group among others', input: [0, 0, 1, -3], options: { bits: 3, groups: 2 } },
  // Subnormals.
  { name: 'smallest subnormals, symmetric (the scale underflows to 0)', input: [TINY, -TINY, 0, 0], options: { bits: 8 }, unchanged: true },
  // s = 2 * 2^-126 / 8 = 2^-128 (subnormal, exact): 2^-126 lands on level 4, clamped to 3.
  { name: 'smallest normal with subnormals, symmetric 3 bits', input: [MIN_NORMAL, -3 * TINY, 5 * TINY, 0], options: { bits: 3 }, pinned: [3 * 2 ** -128, 0, 0, 0] },
  ...[3, 8, 16].flatMap((bits): Row[] => [
    { name: `subnormals, symmetric ${bits} bits`, input: mixedSubnormals, options: { bits } },
    { name: `subnormals, asymmetric ${bits} bits`, input: mixedSubnormals, options: { bits, type: 'asymmetric' } },
  ]),
  { name: 'subnormals, stochastic', input: mixedSubnormals, options: { bits: 4, rounding: 'stochastic', seed: 1 } },
  { name: 'subnormals beside normals, asymmetric', input: [1e-38, 2e-45, 3e-39, 1.5e-38].map(f), options: { bits: 4, type: 'asymmetric' } },
  { name: 'smallest subnormals, binary', input: [TINY, -TINY, 0], options: { bits: 1 }, pinned: [TINY, -TINY, 0] },
  // 0.7 * mean rounds up to the mean itself at the bottom of the subnormals: nothing passes.
  { name: 'smallest subnormals, ternary', input: [TINY, -TINY, 0], options: { bits: 2 }, pinned: [0, 0, 0] },
  // The mean underflows to 0, so does the threshold: alpha is the mean of the nonzero |x|.
  { name: 'one subnormal among zeros, ternary (the mean underflows)', input: [TINY, 0, 0, 0], options: { bits: 2 }, pinned: [TINY, 0, 0, 0] },
  { name: 'subnormals among zeros, ternary (the mean underflows)', input: [-TINY, 2 * TINY, 0, 0, 0, 0, 0, 0], options: { bits: 2 }, pinned: [-2 * TINY, 2 * TINY, 0, 0, 0, 0, 0, 0] },
  { name: 'subnormals, ternary', input: mixedSubnormals, options: { bits: 2 } },
  // ±FLT_MAX: 2 * absMax, max - min and sums of |x| overflow in float32.
  { name: '±FLT_MAX, symmetric', input: [MAX, -MAX], options: { bits: 8 }, pinned: [f(127 * f(MAX / 128)), -MAX] },
  { name: 'FLT_MAX twice, symmetric', input: [MAX, MAX], options: { bits: 8 } },
  { name: '-FLT_MAX twice, symmetric', input: [-MAX, -MAX], options: { bits: 16 }, pinned: [-MAX, -MAX] },
  { name: 'FLT_MAX among small values, symmetric', input: [MAX, 1, -1, 0.5], options: { bits: 4 }, pinned: [f(7 * f(MAX / 8)), 0, 0, 0] },
  { name: '±FLT_MAX, symmetric 16 bits stochastic', input: [MAX, -MAX, 1, MAX / 3].map(f), options: { bits: 16, rounding: 'stochastic', seed: 5 } },
  { name: '±FLT_MAX, symmetric with the blend', input: [MAX, -MAX], options: { bits: 8, blendRatio: 1 / 3 } },
  { name: 'FLT_MAX and 0, asymmetric (the range fits)', input: [MAX, 0], options: { bits: 8, type: 'asymmetric' } },
  { name: '±FLT_MAX, asymmetric (max - min overflows)', input: [MAX, -MAX], options: { bits: 8, type: 'asymmetric' } },
  { name: 'FLT_MAX and -FLT_MAX/2, asymmetric (max - min overflows)', input: [MAX, f(-MAX / 2)], options: { bits: 3, type: 'asymmetric' } },
  { name: '±FLT_MAX among small values, asymmetric stochastic (max - min overflows)', input: [MAX, -MAX, 1, -1], options: { bits: 16, type: 'asymmetric', rounding: 'stochastic', seed: 2 } },
  { name: 'FLT_MAX/4, binary (the sum of |x| fits)', input: [MAX / 4, MAX / 4, -MAX / 4].map(f), options: { bits: 1 } },
  { name: '±FLT_MAX, binary (the sum of |x| overflows)', input: [MAX, MAX, -MAX], options: { bits: 1 }, pinned: [MAX, MAX, -MAX] },
  { name: 'FLT_MAX and FLT_MAX/2, binary (the sum of |x| overflows)', input: [MAX, f(MAX / 2)], options: { bits: 1 } },
  { name: '±FLT_MAX, ternary (the sum of |x| overflows)', input: [MAX, MAX, -MAX, 0], options: { bits: 2 } },
  // -0 beside other values.
  { name: '-0 beside values, symmetric', input: [-0, 1, -0.25, 0], options: { bits: 8 } },
  { name: '-0 beside values, asymmetric', input: [-0, 1, 0.25, -0], options: { bits: 3, type: 'asymmetric' } },
  { name: '-0 beside values, binary', input: [-0, 2, -1], options: { bits: 1 } },
  // The full grid: m, the value of largest magnitude, is exact; s = m / -2^(b-1) stays finite.
  { name: 'one element, full grid', input: [5], options: { bits: 8, grid: 'full' }, pinned: [5] },
  { name: 'one negative element, full grid', input: [-5], options: { bits: 8, grid: 'full' }, pinned: [-5] },
  { name: 'one -0, full grid', input: [-0], options: { bits: 8, grid: 'full' }, unchanged: true },
  { name: 'groups of one, full grid (every value exact)', input: [3, -2, 0.5, -0, 7e-3, 1e30].map(f), options: { bits: 3, groupSize: 1, grid: 'full' }, pinned: [3, -2, 0.5, 0, 7e-3, 1e30].map(f) },
  { name: 'all equal positive, full grid: exact', input: fill(8, 2.5), options: { bits: 4, groups: 2, grid: 'full' }, pinned: fill(8, 2.5) },
  { name: 'all equal, stochastic full grid: exact', input: fill(8, 2.5), options: { bits: 4, grid: 'full', rounding: 'stochastic', seed: 9 }, pinned: fill(8, 2.5) },
  { name: 'all zero, full grid', input: [0, -0, 0, -0], options: { bits: 8, groups: 2, grid: 'full' }, unchanged: true },
  { name: 'smallest subnormals, full grid (the scale underflows to 0)', input: [TINY, -TINY, 0, 0], options: { bits: 8, grid: 'full' }, unchanged: true },
  ...[3, 8, 16].map((bits): Row => ({ name: `subnormals, full grid ${bits} bits`, input: mixedSubnormals, options: { bits, grid: 'full' } })),
  { name: '±FLT_MAX, full grid (a tie: -FLT_MAX exact)', input: [MAX, -MAX], options: { bits: 8, grid: 'full' }, pinned: [f(127 * f(MAX / 128)), -MAX] },
  { name: 'FLT_MAX among small values, full grid', input: [MAX, 1, -1, 0.5], options: { bits: 4, grid: 'full' }, pinned: [MAX, 0, 0, 0] },
  { name: '-FLT_MAX beside FLT_MAX/3, full grid 16 bits stochastic', input: [-MAX, 1, f(MAX / 3), 0], options: { bits: 16, grid: 'full', rounding: 'stochastic', seed: 5 } },
  { name: '±FLT_MAX, full grid with the blend', input: [MAX, -MAX], options: { bits: 8, grid: 'full', blendRatio: 1 / 3 } },
  { name: '-0 beside values, full grid', input: [-0, 1, -0.25, 0], options: { bits: 8, grid: 'full' } },
];

// ---------------------------------------------------------------------------------------------
// DESIGN.md's kernels in float32. `noise` holds p for every element (0 for nearest rounding).

/**
 * One group: its values, and whether the design left it as it was (a zero scale or mean: such
 * groups are not blended either). Null when an intermediate is not finite.
 */
function designGroup(x: number[], bits: number, asymmetric: boolean, full: boolean, noise: number[]): { q: number[]; skipped: boolean } | null {
  const finite = (v: number) => Number.isFinite(v);
  const abs = x.map(Math.abs);
  if (bits <= 2) {
    let sum = 0;
    for (const a of abs) sum = f(sum + a);
    const mean = f(sum / x.length);
    if (!finite(mean)) return null;
    if (bits === 1) return { q: x.map((v) => (v > 0 ? mean : v < 0 ? -mean : 0)), skipped: false };
    if (abs.every((a) => a === 0)) return { q: x, skipped: true };
    const threshold = f(THRESHOLD_FACTOR * mean);
    let passed = 0, count = 0;
    for (const a of abs) if (a > threshold) { passed = f(passed + a); count++; }
    // Only at the bottom of the subnormals can 0.7 * mean round up past every |x|: then nothing passes.
    const alpha = count > 0 ? f(passed / count) : 0;
    if (!finite(alpha)) return null;
    return { q: x.map((v) => (v > threshold ? alpha : v < -threshold ? -alpha : 0)), skipped: false };
  }
  const levels = 2 ** bits;
  const min = Math.min(...x), max = Math.max(...x);
  const m = Math.abs(max) > Math.abs(min) ? max : min;
  const scale = asymmetric ? f(f(max - min) / levels) : full ? f(m / -(levels / 2)) : f(f(2 * Math.max(...abs)) / levels);
  if (!finite(scale)) return null;
  if (scale === 0) return { q: x, skipped: true };
  const zero = asymmetric ? f(roundHalfEven(f(min / scale)) * scale) : 0;
  const [lo, hi] = asymmetric ? [0, levels - 1] : [-levels / 2, levels / 2 - 1];
  const out = x.map((v, i) => {
    const k = Math.min(Math.max(roundHalfEven(f(f(f(v - zero) / scale) + noise[i]!)), lo), hi);
    return f(f(k * scale) + zero);
  });
  return out.every(finite) && finite(zero) && x.every((v) => finite(f(v - zero))) ? { q: out, skipped: false } : null;
}

/** The whole call: groups, the overflow rescaling, the blend. */
function design(input: number[], options: FakeQuantizeOptions, noise: number[]): number[] {
  const groups = options.groups ?? (options.groupSize ? input.length / options.groupSize : 1);
  const size = input.length / groups;
  const out: number[] = [];
  for (let g = 0; g < groups; g++) {
    const x = input.slice(g * size, (g + 1) * size);
    const p = noise.slice(g * size, (g + 1) * size);
    const at = (k: number) => designGroup(x.map((v) => f(v * 2 ** -k)), options.bits, options.type === 'asymmetric', options.grid === 'full', p);
    let k = 0;
    let result = at(0);
    while (result === null) {
      if (++k > 8) throw new Error('no power-of-two scaling keeps the formula finite');
      result = at(k);
    }
    if (result.skipped) {
      out.push(...x);
      continue;
    }
    let q = result.q.map((v) => f(v * 2 ** k));
    if (options.blendRatio !== undefined) {
      const ratio = f(options.blendRatio), rest = f(1 - options.blendRatio);
      q = q.map((v, i) => f(f(ratio * x[i]!) + f(rest * v)));
    }
    out.push(...q);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

const signless = (values: ArrayLike<number>) => Array.from(values, (v) => v + 0);

function expected(row: Row, noise: Float32Array): number[] {
  const input = row.input.map(f);
  return design(input, row.options, Array.from(noise));
}

function check(row: Row, got: Float32Array, want: number[], label: string): void {
  const input = Float32Array.from(row.input);
  expect(Array.from(got).every(Number.isFinite), `${label}: finite output, got ${Array.from(got)}`).toBe(true);
  if (row.unchanged) {
    expect(new Uint8Array(got.buffer), `${label}: left unchanged`).toEqual(new Uint8Array(input.buffer));
  }
  if (row.options.bits >= 3) {
    expect(signless(got), label).toEqual(signless(want));
  } else {
    want.forEach((v, i) => expect(Math.abs(got[i]! - v), `${label}: element ${i}: ${got[i]} vs ${v}`).toBeLessThanOrEqual(1e-6 * Math.abs(v)));
  }
}

let simd: WasmBackend;
let scalar: WasmBackend;
beforeAll(async () => {
  simd = await WasmBackend.create('simd');
  scalar = await WasmBackend.create('scalar');
});

const noiseFor = (row: Row) => (row.options.rounding === 'stochastic'
  ? simd.noiseOffsets(row.input.length, { seed: row.options.seed ?? 0, step: row.options.step ?? 0, tensorId: row.options.tensorId ?? 0 })
  : new Float32Array(row.input.length));

describe('the float32 formulas themselves', () => {
  it.each(ROWS.filter((row) => row.pinned))('$name', (row) => {
    expect(signless(expected(row, noiseFor(row)))).toEqual(signless(row.pinned!));
  });
});

describe.each([['wasm-simd', () => simd], ['wasm', () => scalar]] as const)('%s', (kind, backend) => {
  it.each(ROWS)('$name', async (row) => {
    const got = await backend().fakeQuantize(Float32Array.from(row.input), row.options);
    check(row, got, expected(row, noiseFor(row)), kind);
  });
});

// WGSL lets a GPU flush subnormals to zero (SwiftShader does), so rows with subnormal inputs,
// scales or results are WebAssembly-only.
const involvesSubnormals = (row: Row) => [...row.input, ...expected(row, new Float32Array(row.input.length))]
  .some((v) => v !== 0 && Math.abs(v) < MIN_NORMAL) || row.name.includes('subnormal');

describe.skipIf(!gpuAvailable)('webgpu', () => {
  let gpu: WebGpuBackend;
  beforeAll(async () => { gpu = await WebGpuBackend.create({ gpu: testGpu() }); });
  afterAll(() => gpu?.dispose());

  it.each(ROWS.filter((row) => !involvesSubnormals(row)))('$name', async (row) => {
    const got = await gpu.fakeQuantize(Float32Array.from(row.input), row.options);
    check(row, got, expected(row, noiseFor(row)), 'webgpu');
  });
});
