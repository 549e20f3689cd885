// The Backend contract, on every implementation (test/support/implementations.ts): fakeQuantize
// of the edge rows (test/cases/edges.json) equals DESIGN.md's formulas written out in float32;
// bad input (test/cases/bad-inputs.json) gets its typed error, its code and its location, and
// nothing is modified; stochastic rounding stays on the grid, is unbiased and reproducible; and
// random tensors, group layouts that take every kernel path, grid ties and parameter groups come
// out as on the reference (wasm-simd, which the formulas pin).
//
// Conformance rules: equal bit for bit at 3..16 bits; at 1 and 2 bits the group means are float32
// sums whose order is the implementation's, so within a relative 1e-6.

import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackend, InvalidInputError, type Backend, type EdgeMoqError, type FakeQuantizeOptions } from '../../src/index.js';
import { randomTensor } from '../support/fixtures.js';
import { FUZZ_SEED } from '../support/fuzz.js';
import {
  IMPLEMENTATIONS,
  badData,
  expectError,
  type BadCall,
  type BadData,
  REFERENCE,
  caseValue,
  caseValues,
  noiseOffsets,
  ranOn,
  readCases,
  usesSubgroups,
  useImplementation,
  type CaseValue,
  type Implementation,
} from '../support/implementations.js';
import { weights } from '../support/webgpu.js';
import { optionsOf, tensorOf } from '../support/random-jobs.js';

fc.configureGlobal({ seed: FUZZ_SEED });

const f = Math.fround;
const MIN_NORMAL = 2 ** -126;
const THRESHOLD_FACTOR = f(0.7);
const roundHalfEven = (v: number) => {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
};
/** -0 equals 0 (conformance README); toEqual would tell them apart. */
const signless = (values: ArrayLike<number>) => Array.from(values, (v) => v + 0);

// ---------------------------------------------------------------------------------------------
// DESIGN.md's kernels in float32 (Math.fround at every operation). `noise` holds p for every
// element (0 for nearest rounding).
//
// Where the formula itself overflows float32 (an intermediate turns into ±Inf although every
// input is finite) the expected value is the formula applied to x * 2^-k and scaled back by
// 2^k, for the smallest k that keeps every intermediate finite. Scaling by a power of two is
// exact, so this is the formula itself wherever it does not overflow; the symmetric grid
// already computes s as absMax * 2^(1-b) for this reason (assembly/grid.ts).

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
    let passed = 0,
      count = 0;
    for (const a of abs)
      if (a > threshold) {
        passed = f(passed + a);
        count++;
      }
    // Only at the bottom of the subnormals can 0.7 * mean round up past every |x|: then nothing passes.
    const alpha = count > 0 ? f(passed / count) : 0;
    if (!finite(alpha)) return null;
    return { q: x.map((v) => (v > threshold ? alpha : v < -threshold ? -alpha : 0)), skipped: false };
  }
  const levels = 2 ** bits;
  const min = Math.min(...x),
    max = Math.max(...x);
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
    const at = (k: number) =>
      designGroup(
        x.map((v) => f(v * 2 ** -k)),
        options.bits,
        options.type === 'asymmetric',
        options.grid === 'full',
        p,
      );
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
      const ratio = f(options.blendRatio),
        rest = f(1 - options.blendRatio);
      q = q.map((v, i) => f(f(ratio * x[i]!) + f(rest * v)));
    }
    out.push(...q);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The edge rows.

interface EdgeRow {
  name: string;
  input: CaseValue[];
  options: FakeQuantizeOptions;
  /** The design leaves every group as it was: the output must be the input, bit for bit (-0 too). */
  unchanged?: boolean;
  /** Hand-computed values: pins the formula on simple rows. */
  pinned?: CaseValue[];
}

const EDGES = readCases<{ rows: EdgeRow[] }>('edges.json').rows;

async function expectedFor(row: EdgeRow): Promise<number[]> {
  const input = Array.from(caseValues(row.input));
  const { options } = row;
  const noise =
    options.rounding === 'stochastic' ? await noiseOffsets(input.length, { seed: options.seed ?? 0, step: options.step ?? 0, tensorId: options.tensorId ?? 0 }) : new Float32Array(input.length);
  return design(input, options, Array.from(noise));
}

/** Rows whose inputs, scales or results are subnormal: only for implementations that keep them. */
function involvesSubnormals(row: EdgeRow): boolean {
  const input = Array.from(caseValues(row.input));
  return (
    [
      ...input,
      ...design(
        input,
        row.options,
        input.map(() => 0),
      ),
    ].some((v) => v !== 0 && Math.abs(v) < MIN_NORMAL) || row.name.includes('subnormal')
  );
}

function checkEdge(row: EdgeRow, got: Float32Array, want: number[]): void {
  const input = caseValues(row.input);
  expect(Array.from(got).every(Number.isFinite), `finite output, got ${Array.from(got)}`).toBe(true);
  if (row.unchanged) expect(new Uint8Array(got.buffer), 'left unchanged').toEqual(new Uint8Array(input.buffer));
  if (row.options.bits >= 3) {
    expect(signless(got)).toEqual(signless(want));
  } else {
    want.forEach((v, i) => expect(Math.abs(got[i]! - v), `element ${i}: ${got[i]} vs ${v}`).toBeLessThanOrEqual(1e-6 * Math.abs(v)));
  }
}

describe('the float32 formulas themselves', () => {
  it.each(EDGES.filter((row) => row.pinned))('$name', async (row) => {
    expect(signless(await expectedFor(row))).toEqual(signless(row.pinned!.map(caseValue)));
  });
});

// ---------------------------------------------------------------------------------------------
// Bad input.

interface BadQuantize extends BadCall {
  data: BadData;
  options?: unknown;
}

const BAD = readCases<{ fakeQuantize: BadQuantize[] }>('bad-inputs.json').fakeQuantize;

// ---------------------------------------------------------------------------------------------
// Random tensors against the reference.

/** Index of the first element that differs beyond what the bit width allows, or -1. */
function firstMismatch(got: Float32Array, want: ArrayLike<number>, bits: number): number {
  for (let i = 0; i < want.length; i++) {
    const ok = bits >= 3 ? got[i] === want[i] : Math.abs(got[i]! - want[i]!) <= 1e-6 * Math.abs(want[i]!);
    if (!ok) return i;
  }
  return -1;
}

function variants(bits: number): FakeQuantizeOptions[] {
  if (bits <= 2) return [{ bits }, { bits, blendRatio: 0.25 }];
  const all: FakeQuantizeOptions[] = [];
  for (const type of ['symmetric', 'asymmetric', 'full'] as const) {
    for (const rounding of ['nearest', 'stochastic'] as const) {
      for (const blendRatio of [undefined, 0.25]) {
        all.push({
          bits,
          ...(type === 'full' ? { grid: type } : { type }),
          rounding,
          seed: 42,
          step: 3,
          tensorId: 7,
          ...(blendRatio === undefined ? {} : { blendRatio }),
        });
      }
    }
  }
  return all;
}

/**
 * Multiples of 2^-10 at one of a few magnitudes, and blend ratios in steps of 2^-16, so that no
 * value, scale, mean or blend product is subnormal (WGSL may flush those to zero).
 */
const normalJob = fc.constantFrom(1e-3, 1, 1e3, 1e6).chain((magnitude) =>
  tensorOf(
    fc.integer({ min: -(2 ** 20), max: 2 ** 20 }).map((i) => f(i * 2 ** -10 * magnitude)),
    fc.integer({ min: 0, max: 2 ** 16 }).map((i) => i * 2 ** -16),
  ),
);

let reference: Backend;
beforeAll(async () => {
  reference = await createBackend(REFERENCE.kind);
});
afterAll(() => reference?.dispose());

// ---------------------------------------------------------------------------------------------

function contract(implementation: Implementation): void {
  const under = useImplementation(implementation);
  const quantize = (data: Float32Array, options: FakeQuantizeOptions) => under.backend.fakeQuantize(data, options);

  it('is the implementation it says', () => {
    expect(under.backend.kind).toBe(implementation.kind);
    if (implementation.name === 'webgpu without subgroups') expect(usesSubgroups(under.backend)).toBe(false);
  });

  describe('edge rows equal the float32 formulas', () => {
    it.each(EDGES.filter((row) => implementation.keepsSubnormals || !involvesSubnormals(row)))('$name', async (row) => {
      const got = await quantize(caseValues(row.input), row.options);
      checkEdge(row, got, await expectedFor(row));
    });
  });

  describe('bad input: a typed error, and nothing modified', () => {
    it.each(BAD)('$name', async (call) => {
      const data = badData(call.data);
      const before = ArrayBuffer.isView(data) ? (data as Float32Array).slice() : structuredClone(data);
      const error = await quantize(data as Float32Array, call.options as FakeQuantizeOptions).catch((e: unknown) => e);
      expectError(error, call);
      expect(data).toEqual(before);
    });

    it.each(BAD.filter((call) => call.location))('$name: the error says where', async (call) => {
      const error = await quantize(badData(call.data) as Float32Array, call.options as FakeQuantizeOptions).catch((e: unknown) => e);
      expect((error as EdgeMoqError).location).toEqual(call.location);
    });

    it('modifies none of several tensors when a later one is bad', async () => {
      const good = [randomTensor(256, 2), randomTensor(256, 3)];
      const bad = badData(BAD[0]!.data) as Float32Array;
      const snapshot = good.map((x) => x.slice());
      const error = await under.backend
        .fakeQuantizeMany([
          { data: good[0]!, options: { bits: 8 } },
          { data: good[1]!, options: { bits: 4, groups: 4 } },
          { data: bad, options: { bits: 8 } },
        ])
        .catch((e: unknown) => e);
      expect((error as EdgeMoqError).code).toBe('NON_FINITE');
      expect((error as Error).message).toMatch(/jobs\[2\]\.data\[37\] is NaN/);
      expect((error as EdgeMoqError).location).toEqual({ job: 2, index: 37, group: 0 });
      expect(good).toEqual(snapshot);
    });

    it('with into, writes no into and modifies no data when a later job is bad', async () => {
      const good = [randomTensor(256, 2), randomTensor(256, 3)];
      const bad = badData(BAD[0]!.data) as Float32Array;
      const snapshot = good.map((x) => x.slice());
      const into = [new Float32Array(256).fill(5), new Float32Array(bad.length).fill(6)];
      const error = await under.backend
        .fakeQuantizeMany([
          { data: good[0]!, options: { bits: 8 }, into: into[0] },
          { data: good[1]!, options: { bits: 4, groups: 4 } },
          { data: bad, options: { bits: 8 }, into: into[1] },
        ])
        .catch((e: unknown) => e);
      expect((error as EdgeMoqError).code).toBe('NON_FINITE');
      expect((error as EdgeMoqError).location).toEqual({ job: 2, index: 37, group: 0 });
      expect(good).toEqual(snapshot);
      expect(into[0]!.every((x) => x === 5)).toBe(true);
      expect(into[1]!.every((x) => x === 6)).toBe(true);
    });

    it.each([
      ['of another length', (data: Float32Array) => new Float32Array(data.length - 4), 'INVALID_ARGUMENT', /jobs\[1\]\.into holds 252 float32 values but jobs\[1\]\.data holds 256/],
      ['overlapping its data', (data: Float32Array) => data, 'INVALID_ARGUMENT', /jobs\[1\]\.into overlaps jobs\[1\]\.data/],
      ['not a Float32Array', () => new Float64Array(256) as unknown as Float32Array, 'WRONG_DTYPE', /jobs\[1\]\.into must be a Float32Array, got Float64Array/],
    ])('refuses an into %s, naming its job, before anything is written', async (_, intoFor, code, message) => {
      const data = [randomTensor(256, 4), randomTensor(256, 5)];
      const snapshot = data.map((x) => x.slice());
      const first = new Float32Array(256).fill(3);
      const error = await under.backend
        .fakeQuantizeMany([
          { data: data[0]!, options: { bits: 8 }, into: first },
          { data: data[1]!, options: { bits: 8 }, into: intoFor(data[1]!) },
        ])
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidInputError);
      expect((error as EdgeMoqError).code).toBe(code);
      expect((error as Error).message).toMatch(message);
      expect(data).toEqual(snapshot);
      expect(first.every((x) => x === 3)).toBe(true);
    });
  });

  // At 1 and 2 bits the oracle is float64, within the implementation's tolerance for the mean
  // of a million float32 terms. The ternary threshold comes from the implementation's own mean
  // (the binary result, checked against float64 first), since an element can sit exactly on
  // a threshold one ulp away.
  it("one group of more than a million elements at 1 and 2 bits: the means are float64's", async () => {
    const values = weights(1_200_000, 99);
    const meanOver = (keep: (a: number) => boolean) => {
      let sum = 0,
        count = 0;
      for (const x of values)
        if (keep(Math.abs(x))) {
          sum += Math.abs(x);
          count++;
        }
      return sum / count;
    };
    const within = (got: Float32Array, want: Float64Array) => got.findIndex((v, i) => !(Math.abs(v - want[i]!) <= implementation.largeMeanTolerance * Math.abs(want[i]!)));
    const mean = meanOver(() => true);
    const binary = await quantize(values.slice(), { bits: 1, groups: 1 });
    expect(
      within(
        binary,
        Float64Array.from(values, (x) => Math.sign(x) * mean),
      ),
      '1 bit',
    ).toBe(-1);
    const threshold = f(THRESHOLD_FACTOR * Math.abs(binary[0]!));
    const alpha = meanOver((a) => a > threshold);
    const ternary = await quantize(values.slice(), { bits: 2, groups: 1 });
    expect(
      within(
        ternary,
        Float64Array.from(values, (x) => (x > threshold ? alpha : x < -threshold ? -alpha : 0)),
      ),
      '2 bits',
    ).toBe(-1);
  });

  describe('stochastic rounding', () => {
    it.each([
      { bits: 3, type: 'symmetric' },
      { bits: 8, type: 'symmetric' },
      { bits: 8, type: 'asymmetric' },
      { bits: 16, type: 'asymmetric' },
    ] as const)('puts every value on its group grid ($bits bits, $type)', async ({ bits, type }) => {
      const data = randomTensor(4096 + 3, 11, 2);
      const q = await quantize(data.slice(), { bits, type, rounding: 'stochastic', groups: 1, seed: 3 });
      let lo = Infinity,
        hi = -Infinity;
      for (const x of data) {
        lo = Math.min(lo, x);
        hi = Math.max(hi, x);
      }
      const levels = 2 ** bits;
      const scale = type === 'symmetric' ? f(Math.max(-lo, hi) * f(2 / levels)) : f(f(hi - lo) / levels);
      const zero = type === 'symmetric' ? 0 : f(Math.round(f(lo / scale)) * scale);
      for (const y of q) {
        const k = Math.round((y - zero) / scale);
        expect(Math.abs(f(k * scale) + zero - y)).toBeLessThanOrEqual(Math.abs(y) * 2 ** -22);
        expect(k).toBeGreaterThanOrEqual(type === 'symmetric' ? -levels / 2 : 0);
        expect(k).toBeLessThanOrEqual(type === 'symmetric' ? levels / 2 - 1 : levels - 1);
      }
    });

    it('is unbiased: rounds up with probability equal to the fractional part', async () => {
      // One group: a 1.0 fixes the scale at 2^-7 (8 bits), every other value sits at 5.37 steps.
      const n = 1 << 16;
      const step = 2 ** -7;
      const x = f(5.37 * step);
      const data = new Float32Array(n).fill(x);
      data[0] = 1;
      const q = await quantize(data, { bits: 8, rounding: 'stochastic', seed: 42 });
      let sum = 0;
      for (let i = 1; i < n; i++) sum += q[i]!;
      const mean = sum / (n - 1);
      // Each value is 5 or 6 steps with p = 0.37: the mean's standard deviation is step*sqrt(p(1-p)/n).
      const sigma = step * Math.sqrt((0.37 * 0.63) / (n - 1));
      expect(Math.abs(mean - x)).toBeLessThan(5 * sigma);
    });

    it('has zero mean error over random tensors (5 sigma bound)', async () => {
      // Each group's first element pins its scale at 1.0 / 8 (4 bits); the others stay inside the
      // grid's range, where no clamping biases the result.
      const n = 1 << 18;
      const data = randomTensor(n, 5, 0.8);
      for (let g = 0; g < n; g += 1024) data[g] = 1;
      const q = await quantize(data.slice(), { bits: 4, rounding: 'stochastic', groupSize: 1024, seed: 9 });
      let error = 0,
        count = 0;
      for (let i = 0; i < n; i++) {
        if (i % 1024 === 0) continue;
        error += q[i]! - data[i]!;
        count++;
      }
      // Each error lies within one step (1/8) and has variance <= step^2 / 4.
      expect(Math.abs(error / count)).toBeLessThan((5 * (1 / 8)) / (2 * Math.sqrt(count)));
    });

    it('reproduces exactly from the same seed, step and tensor id; differs otherwise', async () => {
      const data = randomTensor(10_001, 8);
      const base = { bits: 8, rounding: 'stochastic', seed: 1, step: 2, tensorId: 3 } as const;
      const a = await quantize(data.slice(), base);
      expect(await quantize(data.slice(), base)).toEqual(a);
      for (const change of [{ seed: 2 }, { step: 3 }, { tensorId: 4 }]) {
        const b = await quantize(data.slice(), { ...base, ...change });
        expect(b.filter((v, i) => v !== a[i]).length).toBeGreaterThan(data.length / 10);
      }
    });
  });

  // The reference is not compared with itself.
  if (implementation !== REFERENCE)
    describe(`agrees with ${REFERENCE.name}`, () => {
      async function compare(values: Float32Array, options: FakeQuantizeOptions): Promise<void> {
        const got = await quantize(values.slice(), options);
        const want = await reference.fakeQuantize(values.slice(), options);
        const at = firstMismatch(got, want, options.bits);
        expect(at, `${JSON.stringify(options)}: element ${at} of ${values.length}: input ${values[at]}, ` + `${implementation.name} ${got[at]}, ${REFERENCE.name} ${want[at]}`).toBe(-1);
      }

      // [elements, groups]: groups of 1, small groups (one GPU invocation each), one chunk per
      // group, a group a little over one chunk, several chunks per group.
      it.each([
        [1, 1],
        [7, 7],
        [96, 32],
        [64, 1],
        [6400, 100],
        [65, 1],
        [130, 2],
        [4096, 4],
        [12291, 3],
        [10000, 2],
        [40000, 1],
      ])('%i elements in %i groups, at every swept bit width', async (length, groups) => {
        for (const bits of implementation.sweepBits) {
          for (const options of variants(bits)) {
            await compare(weights(length, 1000 * bits + length, options.type === 'asymmetric' ? 0.05 : 0), { ...options, groups });
          }
        }
      });

      // Eighteen calls on 1.2M elements: minutes on SwiftShader when the machine is busy.
      it('one group of more than a million elements, at 3, 8 and 16 bits', { timeout: 300_000 }, async () => {
        const values = weights(1_200_000, 99);
        for (const bits of [3, 8, 16].filter((b) => implementation.sweepBits.includes(b))) {
          for (const options of variants(bits).filter((o) => o.blendRatio === undefined)) await compare(values, { ...options, groups: 1 });
        }
      });

      // Inputs made to sit within a few ulps of k + 1/2 grid steps: where an inexact division
      // would round the other way.
      it('rounds values at grid ties exactly', async () => {
        const bitsOf = new Float32Array(1);
        const asInt = new Int32Array(bitsOf.buffer);
        const nudge = (x: number, ulps: number) => {
          bitsOf[0] = x;
          asInt[0]! += ulps;
          return bitsOf[0]!;
        };
        for (const bits of [3, 8, 12, 16]) {
          for (const type of ['symmetric', 'asymmetric', 'full'] as const) {
            const groupSize = 4096;
            const values = new Float32Array(4 * groupSize);
            for (let g = 0; g < 4; g++) {
              const absMax = f(0.3 + 0.37 * g);
              // The full grid: m = +absMax exact, its scale negative (the grid runs down from m).
              const lo = type === 'symmetric' ? -absMax : f((type === 'full' ? -0.93 : -0.41) * absMax);
              const scale = type === 'symmetric' ? f(absMax * 2 ** (1 - bits)) : type === 'full' ? f(-absMax * 2 ** (1 - bits)) : f(f(absMax - lo) * 2 ** -bits);
              const base = g * groupSize;
              values[base] = lo;
              values[base + 1] = absMax;
              for (let i = 2; i < groupSize; i++) {
                const t = (type === 'full' ? absMax : lo) + (((i * 7919) % 2 ** Math.min(bits, 12)) + 0.5) * scale;
                values[base + i] = Math.min(absMax, Math.max(lo, nudge(f(t), (i % 9) - 4)));
              }
            }
            const grid = type === 'full' ? { grid: type } : { type };
            for (const rounding of ['nearest', 'stochastic'] as const) await compare(values, { bits, ...grid, rounding, groups: 4, seed: 5 });
          }
        }
      });

      it('quantizes a parameter group (fakeQuantizeMany) as each tensor alone', async () => {
        const jobs = [
          { length: 4096, options: { bits: 8, groups: 4 } },
          { length: 100, options: { bits: 2, groups: 1 } },
          { length: 9000, options: { bits: 4, groups: 2, type: 'asymmetric', rounding: 'stochastic', seed: 1, tensorId: 9, blendRatio: 0.5 } },
          { length: 64, options: { bits: 1, groups: 64 } },
          { length: 12288, options: { bits: 16, groups: 1, rounding: 'stochastic', seed: 1, tensorId: 10 } },
        ] as { length: number; options: FakeQuantizeOptions }[];
        const inputs = jobs.map((job, i) => weights(job.length, 500 + i));
        const many = inputs.map((values, i) => ({ data: values.slice(), options: jobs[i]!.options }));
        await under.backend.fakeQuantizeMany(many);
        for (const [i, job] of many.entries()) {
          const want = await reference.fakeQuantize(inputs[i]!.slice(), job.options);
          expect(firstMismatch(job.data, want, job.options.bits), `job ${i}`).toBe(-1);
        }
      });

      it('writes the jobs that have an into there, data untouched, and the others in place', async () => {
        const options: FakeQuantizeOptions[] = [{ bits: 8, groups: 4 }, { bits: 3, type: 'asymmetric', rounding: 'stochastic', seed: 2, groups: 2 }, { bits: 2 }, { bits: 1, groups: 8 }];
        const inputs = options.map((_, i) => weights(4096 + 64 * i, 700 + i));
        const data = inputs.map((x) => x.slice());
        const into = [new Float32Array(inputs[0]!.length), undefined, new Float32Array(inputs[2]!.length), undefined];
        await under.backend.fakeQuantizeMany(data.map((values, i) => ({ data: values, options: options[i]!, into: into[i] })));
        for (const [i, o] of options.entries()) {
          const want = await reference.fakeQuantize(inputs[i]!.slice(), o);
          if (into[i]) {
            expect(data[i], `job ${i}'s data`).toEqual(inputs[i]);
            expect(firstMismatch(into[i]!, want, o.bits), `job ${i}`).toBe(-1);
          } else {
            expect(firstMismatch(data[i]!, want, o.bits), `job ${i}`).toBe(-1);
          }
        }
      });

      it('on random tensors, options, seeds and blends (fast-check)', async () => {
        await fc.assert(
          fc.asyncProperty(normalJob, async (j) => {
            const data = Float32Array.from(j.data);
            const options = optionsOf(j);
            const got = await quantize(data.slice(), options);
            const want = await reference.fakeQuantize(data.slice(), options);
            if (options.bits >= 3) expect(signless(got)).toEqual(signless(want));
            else want.forEach((v, i) => expect(Math.abs(got[i]! - v)).toBeLessThanOrEqual(1e-6 * Math.abs(v)));
          }),
          { numRuns: 25 },
        );
        expect(ranOn(under.backend)).toBe(implementation.kind);
      });

      it('on the full grid, bit for bit (fast-check)', async () => {
        await fc.assert(
          fc.asyncProperty(
            normalJob.filter((j) => j.shape.bits >= 3),
            async (j) => {
              const data = Float32Array.from(j.data);
              const options: FakeQuantizeOptions = { ...optionsOf(j), type: 'symmetric', grid: 'full' };
              expect(signless(await quantize(data.slice(), options))).toEqual(signless(await reference.fakeQuantize(data.slice(), options)));
            },
          ),
          { numRuns: 25 },
        );
        expect(ranOn(under.backend)).toBe(implementation.kind);
      });

      it.each([1, 3, 4, 15, 16, 17, 1000, 4099])('stochastic rounding draws the same noise (%i elements)', async (n) => {
        const data = randomTensor(n * 2, n);
        for (const type of ['symmetric', 'asymmetric'] as const) {
          const options: FakeQuantizeOptions = { bits: 8, rounding: 'stochastic', type, groups: 2, seed: 77, step: 5, tensorId: 6 };
          expect(signless(await quantize(data.slice(), options))).toEqual(signless(await reference.fakeQuantize(data.slice(), options)));
        }
      });
    });
}

for (const implementation of IMPLEMENTATIONS) describe.skipIf(!implementation.present)(implementation.name, () => contract(implementation));
