// Property tests (fast-check) over random shapes, group counts, bit widths, types, roundings,
// seeds and blend ratios: agreement of the two WebAssembly builds, the grid every output lies on,
// the rounding error, symmetry, unbiased stochastic rounding, what quantizing twice does, and a
// Quantizer resumed from JSON mid-schedule. Seeded (FUZZ_SEED overrides the seed). WebGPU's
// agreement with WebAssembly on random jobs is part of test/contracts/backend.test.ts.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { QuantizerOptions } from '../src/config.js';
import type { FakeQuantizeOptions } from '../src/kernel-plan.js';
import { Quantizer, type Parameter } from '../src/quantizer.js';
import { FUZZ_SEED } from './support/fuzz.js';
import { wasmBackends } from './support/wasm-backends.js';
import { type JobShape, optionsOf, tensorOf } from './support/random-jobs.js';

fc.configureGlobal({ seed: FUZZ_SEED });

const { simd, scalar } = await wasmBackends();

/** -0 equals 0 (conformance README); toEqual would tell them apart. */
const signless = (a: Float32Array) => a.map((x) => x + 0);

const finite = fc.float({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 });

const job = tensorOf(finite);

/** `property` over `numRuns` random jobs of 3 to 16 bits, each with its data in float32. */
function forJobsFrom3Bits(numRuns: number, property: (j: { shape: JobShape; data: number[] }, data: Float32Array) => void): void {
  fc.assert(
    fc.property(job, (j) => {
      fc.pre(j.shape.bits >= 3);
      property(j, Float32Array.from(j.data));
    }),
    { numRuns },
  );
}

const f = Math.fround;
const roundHalfEven = (v: number) => {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
};

/** A group's grid from DESIGN.md in float32: y = zero + k * scale for integer k in [lo, hi]. */
function groupGrid(group: ArrayLike<number>, bits: number, asymmetric: boolean): { scale: number; zero: number; lo: number; hi: number } {
  let min = Infinity,
    max = -Infinity;
  for (let i = 0; i < group.length; i++) {
    min = Math.min(min, group[i]!);
    max = Math.max(max, group[i]!);
  }
  const levels = 2 ** bits;
  const scale = asymmetric ? f(f(max - min) / levels) : f(f(2 * Math.max(Math.abs(min), Math.abs(max))) / levels);
  const zero = asymmetric && scale > 0 ? f(roundHalfEven(f(min / scale)) * scale) : 0;
  return { scale, zero, lo: asymmetric ? 0 : -levels / 2, hi: asymmetric ? levels - 1 : levels / 2 - 1 };
}

/** The grid written out plainly from DESIGN.md, in float32, as an independent oracle. */
function referenceGrid(data: Float32Array, groups: number, bits: number, asymmetric: boolean): Float32Array {
  const out = data.slice();
  const size = data.length / groups;
  for (let g = 0; g < groups; g++) {
    const group = data.subarray(g * size, (g + 1) * size);
    const { scale, zero, lo, hi } = groupGrid(group, bits, asymmetric);
    if (!(scale > 0)) continue;
    for (let i = 0; i < size; i++) {
      const v = f(f(group[i]! - zero) / scale);
      const k = Math.min(Math.max(roundHalfEven(v), lo), hi);
      out[g * size + i] = f(f(k * scale) + zero);
    }
  }
  return out;
}

/** The integer level k in [lo, hi] with fround(fround(k * scale) + zero) === y, or null. */
function levelOf(y: number, grid: { scale: number; zero: number; lo: number; hi: number }): number | null {
  const near = Math.round((y - grid.zero) / grid.scale);
  // Where |zero| dwarfs the scale, float32 sums merge neighbouring levels: look around.
  for (const k of [near, near - 1, near + 1, near - 2, near + 2]) {
    if (k >= grid.lo && k <= grid.hi && f(f(k * grid.scale) + grid.zero) === y) return k;
  }
  return null;
}

describe('properties', () => {
  it('the SIMD and scalar builds agree bit for bit on every operation', () => {
    fc.assert(
      fc.property(job, (j) => {
        const data = Float32Array.from(j.data);
        const options = optionsOf(j);
        expect(signless(simd.fakeQuantizeSync(data.slice(), options))).toEqual(signless(scalar.fakeQuantizeSync(data.slice(), options)));
      }),
      { numRuns: 300 },
    );
  });

  it('nearest rounding at 3..16 bits equals a plain float32 reading of the reference', () => {
    forJobsFrom3Bits(300, (j, data) => {
      const asymmetric = j.shape.asymmetric;
      const got = simd.fakeQuantizeSync(data.slice(), { bits: j.shape.bits, groups: j.shape.groups, type: asymmetric ? 'asymmetric' : 'symmetric' });
      expect(signless(got)).toEqual(signless(referenceGrid(data, j.shape.groups, j.shape.bits, asymmetric)));
    });
  });

  it('nearest values inside the grid move by at most half a step; symmetric grids are symmetric', () => {
    forJobsFrom3Bits(200, (j, data) => {
      const { bits, groups } = j.shape;
      const q = simd.fakeQuantizeSync(data.slice(), { bits, groups });
      const negated = simd.fakeQuantizeSync(
        data.map((x) => -x),
        { bits, groups },
      );
      const size = data.length / groups;
      for (let g = 0; g < groups; g++) {
        const group = data.subarray(g * size, (g + 1) * size);
        const absMax = Math.max(...group.map(Math.abs));
        const scale = Math.fround(absMax * 2 ** (1 - bits));
        if (!(scale > 0)) continue;
        for (let i = g * size; i < (g + 1) * size; i++) {
          if (Math.abs(data[i]! / scale) >= 2 ** (bits - 1) - 1) continue; // clamped at the top
          expect(Math.abs(q[i]! - data[i]!)).toBeLessThanOrEqual((scale / 2) * (1 + 2 ** -20));
          expect(negated[i]! + 0).toBe(-q[i]! + 0);
        }
      }
    });
  });

  it('the mixed-fp16 blend is fround(r)*x + fround(1-r)*Q(x), each product in float32', () => {
    fc.assert(
      fc.property(job, fc.double({ min: 0, max: 1, noNaN: true }), (j, ratio) => {
        const data = Float32Array.from(j.data);
        const options = { ...optionsOf(j) };
        delete options.blendRatio;
        const q = simd.fakeQuantizeSync(data.slice(), options);
        const blended = simd.fakeQuantizeSync(data.slice(), { ...options, blendRatio: ratio });
        const r = Math.fround(ratio),
          rest = Math.fround(1 - ratio);
        const expected = data.map((x, i) => Math.fround(Math.fround(r * x) + Math.fround(rest * q[i]!)));
        // Groups with scale 0 come back unchanged, blended or not.
        expect(signless(blended.map((v, i) => (q[i] === data[i] ? data[i]! : v)))).toEqual(signless(expected.map((v, i) => (q[i] === data[i] ? data[i]! : v))));
      }),
      { numRuns: 200 },
    );
  });
});

describe('the grid', () => {
  it('every output at 3..16 bits lies on its group grid, its level in range (nearest and stochastic)', () => {
    fc.assert(
      fc.property(job, (j) => {
        const { bits, groups } = j.shape;
        fc.pre(bits >= 3);
        const options = { ...optionsOf(j) };
        delete options.blendRatio;
        const data = Float32Array.from(j.data);
        const q = simd.fakeQuantizeSync(data.slice(), options);
        const size = data.length / groups;
        for (let g = 0; g < groups; g++) {
          const grid = groupGrid(data.subarray(g * size, (g + 1) * size), bits, options.type === 'asymmetric');
          for (let i = g * size; i < (g + 1) * size; i++) {
            if (!(grid.scale > 0))
              expect(q[i]).toBe(data[i]); // a zero scale leaves the group as it was
            else expect(levelOf(q[i]!, grid), `output ${i} = ${q[i]} off the grid ${JSON.stringify(grid)}`).not.toBeNull();
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('nearest moves a value inside its asymmetric grid by at most half a step', () => {
    forJobsFrom3Bits(200, (j, data) => {
      const { bits, groups } = j.shape;
      const q = simd.fakeQuantizeSync(data.slice(), { bits, groups, type: 'asymmetric' });
      const size = data.length / groups;
      for (let g = 0; g < groups; g++) {
        const { scale, zero, hi } = groupGrid(data.subarray(g * size, (g + 1) * size), bits, true);
        if (!(scale > 0)) continue;
        const top = zero + hi * scale;
        for (let i = g * size; i < (g + 1) * size; i++) {
          const x = data[i]!,
            y = q[i]!;
          if (x < zero || x > top) continue; // clamped below the zero point or above the top level
          // float32 rounding of x - zero, of the division and of k * scale + zero.
          const slack = 2 ** -22 * (Math.abs(x) + 2 * Math.abs(zero) + Math.abs(y));
          expect(Math.abs(x - y)).toBeLessThanOrEqual(scale / 2 + slack);
        }
      }
    });
  });

  it('binary and ternary are odd: quantizing -x gives exactly -Q(x)', () => {
    fc.assert(
      fc.property(job, fc.constantFrom(1, 2), (j, bits) => {
        const data = Float32Array.from(j.data);
        const options = { bits, groups: j.shape.groups };
        const q = simd.fakeQuantizeSync(data.slice(), options);
        const negated = simd.fakeQuantizeSync(
          data.map((x) => -x),
          options,
        );
        expect(signless(negated)).toEqual(signless(q.map((v) => -v)));
      }),
      { numRuns: 150 },
    );
  });
});

/** The full grid's scale in float32: m / -2^(b-1), m of largest magnitude (the minimum on a tie), +0 when m is. */
function fullScale(group: ArrayLike<number>, bits: number): number {
  let min = Infinity,
    max = -Infinity;
  for (let i = 0; i < group.length; i++) {
    min = Math.min(min, group[i]!);
    max = Math.max(max, group[i]!);
  }
  return f((Math.abs(max) > Math.abs(min) ? max : min) / -(2 ** (bits - 1))) + 0;
}

describe('the full grid', () => {
  const fullJob = job.filter((j) => j.shape.bits >= 3);
  const fullOptions = (j: { shape: Parameters<typeof optionsOf>[0]['shape'] }): FakeQuantizeOptions => {
    const { blendRatio: _, ...options } = optionsOf(j);
    return { ...options, type: 'symmetric', grid: 'full' };
  };

  it('nearest equals the formula read plainly in float32, on both builds', () => {
    fc.assert(
      fc.property(fullJob, (j) => {
        const { bits, groups } = j.shape;
        const data = Float32Array.from(j.data);
        const size = data.length / groups;
        const expected = data.slice();
        for (let g = 0; g < groups; g++) {
          const s = fullScale(data.subarray(g * size, (g + 1) * size), bits);
          if (s === 0) continue;
          for (let i = g * size; i < (g + 1) * size; i++) {
            const k = Math.min(Math.max(roundHalfEven(f(data[i]! / s)), -(2 ** (bits - 1))), 2 ** (bits - 1) - 1);
            expected[i] = f(k * s);
          }
        }
        const options = { ...fullOptions(j), rounding: 'nearest' as const };
        expect(signless(simd.fakeQuantizeSync(data.slice(), options))).toEqual(signless(expected));
        expect(signless(scalar.fakeQuantizeSync(data.slice(), options))).toEqual(signless(expected));
      }),
      { numRuns: 300 },
    );
  });

  it('every output lies on the grid, in range, and m stays exact (nearest and stochastic)', () => {
    fc.assert(
      fc.property(fullJob, (j) => {
        const { bits, groups } = j.shape;
        const data = Float32Array.from(j.data);
        const options = fullOptions(j);
        const q = simd.fakeQuantizeSync(data.slice(), options);
        expect(Array.from(scalar.fakeQuantizeSync(data.slice(), options))).toEqual(Array.from(q));
        const size = data.length / groups;
        for (let g = 0; g < groups; g++) {
          const group = data.subarray(g * size, (g + 1) * size);
          const s = fullScale(group, bits);
          const grid = { scale: s, zero: 0, lo: -(2 ** (bits - 1)), hi: 2 ** (bits - 1) - 1 };
          for (let i = g * size; i < (g + 1) * size; i++) {
            if (s === 0) expect(q[i]).toBe(data[i]);
            else expect(levelOf(q[i]!, grid), `output ${i} = ${q[i]} off the grid ${JSON.stringify(grid)}`).not.toBeNull();
            // m / s is exactly -2^(b-1) while s is normal, and no noise offset moves it.
            if (Math.abs(s) >= 2 ** -126 && data[i] === f(s * grid.lo)) expect(q[i]).toBe(data[i]);
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('stochastic rounding', () => {
  // One group: pins fix the grid (symmetric: -absMax, the bottom level, exact; asymmetric: the
  // min and the max), then n copies of a value x strictly inside the grid, where no clamping
  // biases the result. E[Q(x)] = zero + scale * v with v = fround(fround(x - zero) / scale);
  // each output is one of two neighbouring levels, so the mean's standard deviation is
  // scale * sqrt(frac(v) * (1 - frac(v)) / n). Bound: 5 sigma, plus float32 slack for adding
  // the 24-bit noise to v and for rounding k * scale + zero.
  const n = 4096;
  const case_ = fc.record({
    bits: fc.integer({ min: 3, max: 8 }),
    asymmetric: fc.boolean(),
    seed: fc.nat(),
    step: fc.nat(1000),
    absMax: fc.double({ min: 1e-3, max: 1e3, noNaN: true }),
    offset: fc.double({ min: -2, max: 2, noNaN: true }),
    position: fc.double({ min: 0.01, max: 0.99, noNaN: true }),
  });

  it('is unbiased: the mean over many copies is the value (5 sigma)', () => {
    let checked = 0;
    fc.assert(
      fc.property(case_, ({ bits, asymmetric, seed, step, absMax, offset, position }) => {
        const low = f(asymmetric ? offset * absMax : -absMax);
        const high = f(asymmetric ? low + absMax : absMax);
        const grid = groupGrid([low, high], bits, asymmetric);
        // Half a step inside the lowest and the highest level: never clamped.
        const first = grid.zero + grid.scale * (grid.lo + 0.5);
        const last = grid.zero + grid.scale * (grid.hi - 0.5);
        const x = f(first + (last - first) * position);
        fc.pre(x > low && x < high);
        checked++;
        const data = new Float32Array(n + 2).fill(x);
        data[0] = low;
        data[1] = high;
        const q = simd.fakeQuantizeSync(data, { bits, type: asymmetric ? 'asymmetric' : 'symmetric', rounding: 'stochastic', seed, step });
        let sum = 0;
        for (let i = 2; i < q.length; i++) sum += q[i]!;
        const mean = sum / n;
        const v = f(f(x - grid.zero) / grid.scale);
        const frac = v - Math.floor(v);
        const expected = grid.zero + grid.scale * v;
        const sigma = grid.scale * Math.sqrt((frac * (1 - frac)) / n);
        const slack = grid.scale * 2 ** -12 + 2 ** -22 * (Math.abs(expected) + Math.abs(grid.zero));
        expect(Math.abs(mean - expected), `x ${x}, grid ${JSON.stringify(grid)}`).toBeLessThanOrEqual(5 * sigma + slack);
      }),
      { numRuns: 60 },
    );
    expect(checked).toBe(60);
  });
});

describe('quantizing twice', () => {
  // Plain idempotence, Q(Q(x)) = Q(x), does NOT hold for DeepSpeed's grids. The scale comes
  // from the data, and the grid is lopsided: symmetric levels run from -2^(b-1) to 2^(b-1) - 1,
  // so +absMax lands on (2^(b-1) - 1) * s, one step below itself. Unless some value lands on the
  // bottom level -2^(b-1) * s = -absMax (-absMax itself does), the result's absMax is smaller,
  // the second pass has a smaller scale, and the values move again: the top shrinks by
  // (1 - 2^(1-b)) every pass.
  // Asymmetric grids always lose their top: the max lands on level 2^b - 1 of a range of 2^b
  // steps, so the result spans (2^b - 1) * s and every pass rescales by (1 - 2^-b). What does
  // hold is stated below, each with its proof sketch.

  it('counterexamples: symmetric [1, 0.3] and asymmetric [0, 1] at 3 bits keep shrinking', () => {
    const passes = (values: number[], options: FakeQuantizeOptions, count: number) => {
      const trail = [values];
      const data = Float32Array.from(values);
      for (let i = 0; i < count; i++) trail.push(Array.from(simd.fakeQuantizeSync(data, options)));
      return trail;
    };
    // s = 2 * 1 / 8 = 1/4: 1 -> level 4, clamped to 3 -> 0.75; 0.3 -> level 1 -> 0.25. Then
    // s = 2 * 0.75 / 8 = 3/16: 0.75 -> level 4 -> 3 -> 9/16; 0.25 -> level 1.33 -> 1 -> 3/16.
    expect(passes([1, 0.3], { bits: 3 }, 3)).toEqual([
      [1, 0.3],
      [0.75, 0.25],
      [0.5625, 0.1875],
      [0.421875, 0.140625],
    ]);
    // s = 1/8, zero 0: 1 -> level 8, clamped to 7 -> 7/8. Then s = 7/64: 7/8 -> 8 -> 7 -> 49/64.
    expect(passes([0, 1], { bits: 3, type: 'asymmetric' }, 2)).toEqual([
      [0, 1],
      [0, 0.875],
      [0, 0.765625],
    ]);
    // With -absMax present the symmetric grid is a fixed point: s stays 1/4.
    expect(passes([-1, 0.3], { bits: 3 }, 2)).toEqual([
      [-1, 0.3],
      [-1, 0.25],
      [-1, 0.25],
    ]);
    // Symmetric-looking output is not enough: [-3s, 3s] (s = 1/4 from absMax 1) moves again,
    // its top clamped one step down on the grid of s = 3/16.
    expect(passes([-0.8, 1], { bits: 3 }, 2)).toEqual([
      [-0.8, 1],
      [-0.75, 0.75],
      [-0.75, 0.5625],
    ]);
  });

  /** Moderate magnitudes: no subnormal scales, so float32 scaling by powers of two is exact. */
  const tensor = fc
    .record({
      bits: fc.integer({ min: 3, max: 16 }),
      groupSize: fc.integer({ min: 1, max: 40 }),
      groups: fc.integer({ min: 1, max: 4 }),
    })
    .chain((shape) =>
      fc.record({
        shape: fc.constant(shape),
        data: fc.array(
          fc.float({ min: -1e4, max: 1e4, noNaN: true }).map((x) => (Math.abs(x) < 1e-20 ? 0 : x)),
          { minLength: shape.groupSize * shape.groups, maxLength: shape.groupSize * shape.groups },
        ),
      }),
    );

  function perGroup(data: Float32Array, groups: number, check: (group: Float32Array, offset: number) => void): void {
    const size = data.length / groups;
    for (let g = 0; g < groups; g++) check(data.subarray(g * size, (g + 1) * size), g * size);
  }

  // y = Q(x) has levels k * s with s = absMax(x) * 2^(1-b). If y holds -absMax(x) (level
  // -2^(b-1)), its absMax is absMax(x) exactly, the second scale is s again, and each y / s
  // rounds back to its k (float32 error below |k| * 2^-24 < 1/2): Q(y) = y. If it does not, x's
  // absMax was reached only by positive values, which landed on the top level 2^(b-1) - 1, and
  // no negative value went below -(2^(b-1) - 1) * s: max(y) = max|y| < absMax(x). The second
  // scale is smaller, and max(y) lands on the clamped top of the new grid, one step lower. So:
  // Q(Q(x)) = Q(x) exactly when quantizing kept the group's absMax (max|Q(x)| = max|x|).
  // (Not "when min(Q(x)) = -max|Q(x)|": y = [-3s, 3s] at 3 bits has that and still moves.)
  it('symmetric nearest: Q(Q(x)) = Q(x) exactly when max|Q(x)| = max|x|; otherwise max(Q(x)) moves down a step', () => {
    fc.assert(
      fc.property(tensor, ({ shape: { bits, groups }, data: values }) => {
        const data = Float32Array.from(values);
        const once = simd.fakeQuantizeSync(data.slice(), { bits, groups });
        const twice = simd.fakeQuantizeSync(once.slice(), { bits, groups });
        perGroup(data, groups, (x, offset) => {
          const y = once.subarray(offset, offset + x.length);
          const again = twice.subarray(offset, offset + x.length);
          const top = Math.max(...y.map(Math.abs));
          if (top === Math.max(...x.map(Math.abs))) {
            expect(signless(again)).toEqual(signless(y));
          } else {
            expect(Math.max(...y)).toBe(top);
            expect(Math.max(...again)).toBe(f((2 ** (bits - 1) - 1) * f(top * 2 ** (1 - bits))));
            expect(Math.max(...again)).toBeLessThan(top);
          }
        });
      }),
      { numRuns: 200 },
    );
  });

  // zero = round(min / s) * s is within s/2 of the min, so the min lands on level 0 and the max
  // (2^b steps above the min) on 2^b - 1 after clamping: y spans (2^b - 1) * s, the second scale
  // is (1 - 2^-b) * s, and no non-constant group is a fixed point. This needs float32 to resolve
  // the levels: groups far from zero compared to their range (|x| > 2^(b+2) * s, where x - zero
  // is off by more than s/64) merge neighbouring levels and are left out.
  it('asymmetric nearest: Q(x) uses levels 0 and 2^b - 1, so a second pass always rescales', () => {
    fc.assert(
      fc.property(tensor, ({ shape: { bits, groups }, data: values }) => {
        const data = Float32Array.from(values);
        const once = simd.fakeQuantizeSync(data.slice(), { bits, groups, type: 'asymmetric' });
        const twice = simd.fakeQuantizeSync(once.slice(), { bits, groups, type: 'asymmetric' });
        perGroup(data, groups, (x, offset) => {
          const grid = groupGrid(x, bits, true);
          const y = once.subarray(offset, offset + x.length);
          const again = twice.subarray(offset, offset + x.length);
          if (!(grid.scale > 0)) {
            expect(again).toEqual(x);
            return;
          }
          if (Math.max(...x.map(Math.abs)) > 2 ** (bits + 2) * grid.scale) return;
          expect(Math.min(...y) + 0).toBe(f(f(grid.lo * grid.scale) + grid.zero) + 0);
          expect(Math.max(...y) + 0).toBe(f(f(grid.hi * grid.scale) + grid.zero) + 0);
          const range = (a: Float32Array) => Math.max(...a) - Math.min(...a);
          if (range(y) > 0) expect(range(again)).toBeLessThan(range(y));
        });
      }),
      { numRuns: 200 },
    );
  });

  // Ternary: y is +-alpha or 0; mean|y| = alpha * (nonzeros / n), the threshold 0.7 times that
  // is below alpha, so the same elements pass and their mean is alpha: a fixed point (up to the
  // float32 sum). Binary: mean|y| = mean|x| * (nonzeros / n): a fixed point exactly when x has
  // no zeros.
  it('ternary is idempotent; binary is idempotent when the group has no zeros (within 1e-6)', () => {
    fc.assert(
      fc.property(tensor, fc.constantFrom(1, 2), ({ shape: { groups }, data: values }, bits) => {
        const data = Float32Array.from(values);
        const once = simd.fakeQuantizeSync(data.slice(), { bits, groups });
        const twice = simd.fakeQuantizeSync(once.slice(), { bits, groups });
        perGroup(data, groups, (x, offset) => {
          if (bits === 1 && x.some((v) => v === 0)) return;
          for (let i = offset; i < offset + x.length; i++) {
            expect(Math.abs(twice[i]! - once[i]!)).toBeLessThanOrEqual(1e-6 * Math.abs(once[i]!));
          }
        });
      }),
      { numRuns: 150 },
    );
  });
});

describe('Quantizer state', () => {
  // Random schedules and models; the quantizer is saved to JSON at a random step, restored, and
  // both copies are driven on (one on each WebAssembly build): every later step gives the same
  // data, bits, periods and ratio.
  const scenario = fc.record({
    groups: fc.constantFrom(1, 2, 4),
    type: fc.constantFrom('symmetric', 'asymmetric'),
    rounding: fc.constantFrom('nearest', 'stochastic'),
    mixedFp16: fc.boolean(),
    changeRatio: fc.double({ min: 0, max: 0.5, noNaN: true }),
    scheduleOffset: fc.nat(3),
    seed: fc.nat(),
    startBits: fc.integer({ min: 3, max: 16 }),
    drop: fc.nat(6),
    period: fc.integer({ min: 1, max: 4 }),
    steps: fc.integer({ min: 2, max: 14 }),
    saveAt: fc.nat(13),
    overflowAt: fc.array(fc.nat(13), { maxLength: 3 }),
    eigenAt: fc.option(fc.nat(13), { nil: undefined }),
  });

  function model(seed: number): Parameter[] {
    const values = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => f(Math.sin(seed + k * 31 + i * 0.7) * 0.5));
    return [
      { name: 'block.0.weight', shape: [4, 8], data: values(32, 1) },
      { name: 'block.0.bias', shape: [8], data: values(8, 2) },
      { name: 'block.1.weight', shape: [8, 4], data: values(32, 3) },
    ];
  }

  it('survives a JSON round trip mid-schedule and continues identically', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        const asymmetric = s.type === 'asymmetric';
        const targetBits = Math.max(asymmetric || s.rounding === 'stochastic' ? 3 : 1, s.startBits - s.drop);
        const options: QuantizerOptions = {
          groups: s.groups,
          type: s.type,
          rounding: s.rounding,
          mixedFp16: s.mixedFp16,
          changeRatio: s.changeRatio,
          scheduleOffset: s.scheduleOffset,
          seed: s.seed,
          schedules: [{ startBits: s.startBits, targetBits, period: s.period, modules: ['weight'] }],
        };
        const straight = new Quantizer(options, { backend: simd });
        let resumed = new Quantizer(options, { backend: scalar });
        const a = model(s.seed),
          b = model(s.seed);
        for (let step = 0; step < s.steps; step++) {
          for (const params of [a, b]) {
            for (const p of params) for (let i = 0; i < p.data.length; i++) p.data[i] = f(p.data[i]! + f(Math.cos(step * 13 + i) * 1e-2));
          }
          const stepOptions = {
            overflow: s.overflowAt.includes(step),
            ...(s.eigenAt === step ? { eigenvalueEnabled: true, blockEigenvalue: { 'block.0.weight': [0.6, 0], 'block.1.weight': [0.2, 1] } as const } : {}),
          };
          await straight.step([a], stepOptions);
          await resumed.step([b], stepOptions);
          if (step === s.saveAt) resumed = Quantizer.restore(JSON.parse(JSON.stringify(resumed)), { backend: scalar });
          expect(b.map((p) => signless(p.data))).toEqual(a.map((p) => signless(p.data)));
        }
        expect(resumed.state()).toEqual(straight.state());
      }),
      { numRuns: 40 },
    );
  });

  it('stays restorable whatever finite eigenvalues the steps are given: every period a safe integer', async () => {
    const eigenvalue = fc.oneof(fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: Number.MAX_VALUE, noNaN: true }), fc.constantFrom(1e308, Number.MAX_VALUE, 2 ** 51, 2 ** 53));
    const steps = fc.array(fc.record({ overflow: fc.boolean(), eigen: fc.option(fc.tuple(eigenvalue, eigenvalue), { nil: undefined }) }), { minLength: 1, maxLength: 12 });
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 3 }), steps, async (period, plan) => {
        const q = new Quantizer({ schedules: [{ startBits: 16, targetBits: 3, period, modules: ['weight'] }] }, { backend: scalar });
        const params = model(period);
        for (const { overflow, eigen } of plan) {
          await q.step([params], {
            overflow,
            ...(eigen ? { eigenvalueEnabled: true, blockEigenvalue: { 'block.0.weight': [eigen[0], 0], 'block.1.weight': [eigen[1], 1] } } : {}),
          });
          for (const name of ['block.0.weight', 'block.1.weight']) expect(Number.isSafeInteger(q.periodOf(name))).toBe(true);
          const saved = JSON.parse(JSON.stringify(q.state()));
          expect(Quantizer.restore(saved, { backend: scalar }).state()).toEqual(q.state());
        }
      }),
      { numRuns: 60 },
    );
  });
});
