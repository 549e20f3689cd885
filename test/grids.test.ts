// The full symmetric grid (`grid: 'full'`, onnxruntime's and ggml's) on every backend: a table of
// hand-worked groups checked value for value, code for code and scale for scale against the
// formula computed here in float32, for fakeQuantize and packing alike; what the option does
// where it does not apply; and unpack's acceptance of negative scales on the full grid only.

import { describe, expect, it } from 'vitest';
import { planFakeQuantize } from '../src/kernel-plan.js';
import { Quantizer } from '../src/quantizer.js';
import { validatePacked, type PackedTensor, type PackOptions } from '../src/packed/layout.js';
import { codeAt } from './support/layout-reader.js';
import { differenceFromFake, usePackers } from './support/packers.js';

const packers = usePackers();
const f = Math.fround;
const MAX = f(3.4028234663852886e38);

function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 ? 2 * Math.round(v / 2) : r;
}

/**
 * The full grid as the issue states it, in float32: s = m / -2^(b-1) (m the value of largest
 * magnitude, the minimum on a tie; +0 for an all-zero group), q = clamp(round_half_even(x / s),
 * -2^(b-1), 2^(b-1) - 1), code q + 2^(b-1), value q * s. (A double quotient of two float32
 * rounded to float32 is the float32 quotient.)
 */
function fullGrid(x: Float32Array, bits: number, groupSize: number): { values: number[]; codes: number[]; scales: number[] } {
  const half = 2 ** (bits - 1);
  const values: number[] = [],
    codes: number[] = [],
    scales: number[] = [];
  for (let start = 0; start < x.length; start += groupSize) {
    const group = Array.from(x.subarray(start, start + groupSize));
    const lo = Math.min(...group),
      hi = Math.max(...group);
    const m = Math.abs(hi) > Math.abs(lo) ? hi : lo;
    const s = f(m / -half) + 0;
    scales.push(s);
    for (const v of group) {
      const q = s === 0 ? 0 : Math.min(half - 1, Math.max(-half, roundHalfEven(f(v / s))));
      codes.push(q + half);
      values.push(s === 0 ? v : f(q * s));
    }
  }
  return { values, codes, scales };
}

interface Case {
  name: string;
  bits: number;
  groupSize?: number;
  x: number[];
  /** Hand-worked expectations (the formula above must agree with them too). */
  values?: number[];
  codes?: number[];
  scales?: number[];
}

const every = (bits: number, sign: 1 | -1) => Array.from({ length: 2 ** bits }, (_, k) => sign * (k - 2 ** (bits - 1)));

const cases: Case[] = [
  { name: 'positive m: exact, at code 0, with a negative scale', bits: 4, x: [0.3, -0.1, 1.7, 0.2], scales: [f(-1.7 / 8)], values: [NaN, NaN, f(1.7), NaN] },
  { name: 'negative m: exact, with a positive scale', bits: 4, x: [-2.5, 1, 0.5, 2], scales: [0.3125], codes: [0, 11, 10, 14], values: [-2.5, 0.9375, 0.625, 1.875] },
  { name: 'a tie between +m and -m takes -m (s > 0, as onnxruntime)', bits: 4, x: [2, -2, 1, 0], scales: [0.25], codes: [15, 0, 12, 8], values: [1.75, -2, 1, 0] },
  { name: 'ties round half to even', bits: 4, x: [-8, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5], scales: [1], codes: [0, 8, 10, 10, 8, 6, 6, 12], values: [-8, 0, 2, 2, -0, -2, -2, 4] },
  ...[3, 4, 8].flatMap((bits) => [
    { name: `all 2^${bits} codes are reached (m < 0)`, bits, x: every(bits, 1), codes: every(bits, 1).map((_, k) => k), values: every(bits, 1) },
    { name: `all 2^${bits} codes are reached (m > 0)`, bits, x: every(bits, -1), codes: every(bits, 1).map((_, k) => k), values: every(bits, -1) },
  ]),
  { name: 'an all-zero group: scale +0, code 2^(b-1), value 0', bits: 5, groupSize: 4, x: [0, -0, 0, 0, 1, 2, 3, 4], scales: [0, -0.25], codes: [16, 16, 16, 16, 12, 8, 4, 0] },
  { name: 'groups of one keep every value exactly', bits: 3, groupSize: 1, x: [3, -1.5, 0, f(1e-3), f(-7e30)], values: [3, -1.5, 0, f(1e-3), f(-7e30)], codes: [0, 0, 4, 0, 0] },
  { name: '±FLT_MAX tied: -FLT_MAX exact, +FLT_MAX clamped, all finite', bits: 8, x: [MAX, -MAX, f(1e38), 0], scales: [f(MAX / 128)], values: [f(127 * f(MAX / 128)), -MAX, NaN, 0] },
  { name: '+FLT_MAX as m: exact with scale -FLT_MAX/2^(b-1)', bits: 16, x: [MAX, f(-1e38), 3, f(-3e38)], scales: [f(-MAX / 32768)], values: [MAX, NaN, NaN, NaN] },
  { name: 'one step below m and the smallest steps, at 16 bits', bits: 16, x: [-1, f(-32767 / 32768), f(1 / 32768), f(1.5 / 32768), f(2.5 / 32768)], codes: [0, 1, 32769, 32770, 32770] },
];

describe.each(['fakeQuantize', 'pack'] as const)('the full grid by %s', (operation) => {
  it.each(cases)('$name', async ({ bits, groupSize, x: values, ...hand }) => {
    const x = Float32Array.from(values);
    const size = groupSize ?? x.length;
    const want = fullGrid(x, bits, size);
    // The hand-worked numbers hold for the formula (NaN: not worked by hand).
    hand.values?.forEach((v, i) => Number.isNaN(v) || expect(Object.is(want.values[i], v), `value ${i}`).toBe(true));
    if (hand.codes) expect(want.codes).toEqual(hand.codes);
    if (hand.scales) expect(want.scales).toEqual(hand.scales);
    expect(packers.length).toBeGreaterThanOrEqual(2);
    for (const { name, backend, packer } of packers) {
      const options: PackOptions = { bits, groupSize: size, grid: 'full' };
      if (operation === 'fakeQuantize') {
        const y = await backend.fakeQuantize(x.slice(), options);
        for (let i = 0; i < x.length; i++) expect(Object.is(y[i], want.values[i]), `${name}: element ${i} is ${y[i]}, want ${want.values[i]}`).toBe(true);
        continue;
      }
      const packed = await packer.pack(x, options);
      expect(packed.grid, name).toBe('full');
      expect(Array.from(packed.scales), name).toEqual(want.scales);
      expect(
        Array.from({ length: x.length }, (_, i) => codeAt(packed.codes, bits, i)),
        name,
      ).toEqual(want.codes);
      const unpacked = await packer.unpack(packed);
      expect(differenceFromFake(x, Float32Array.from(want.values), unpacked, packed), name).toBeNull();
    }
  });
});

describe('the full grid with stochastic rounding', () => {
  it('keeps m exact, stays on the grid and unpacks to what fakeQuantize writes, on every backend', async () => {
    // m is element 5 of each group: 3, -3, 3.
    const x = Float32Array.from({ length: 96 }, (_, i) => (i % 32 === 5 ? (i % 64 === 5 ? 3 : -3) : f(Math.sin(i * 1.7))));
    for (const bits of [3, 4, 8]) {
      const options: PackOptions = { bits, groupSize: 32, grid: 'full', rounding: 'stochastic', seed: 5, step: 2, tensorId: 9 };
      const results: Float32Array[] = [];
      for (const { name, backend, packer } of packers) {
        const fake = await backend.fakeQuantize(x.slice(), options);
        for (const g of [0, 1, 2]) expect(fake[g * 32 + 5], `${name}: m of group ${g}`).toBe(x[g * 32 + 5]);
        const packed = await packer.pack(x, options);
        expect(differenceFromFake(x, fake, await packer.unpack(packed), packed), name).toBeNull();
        results.push(fake);
      }
      for (const other of results.slice(1)) expect(Array.from(other)).toEqual(Array.from(results[0]!));
    }
  });
});

describe('where the grid option does not apply', () => {
  it('refuses grid "full" with type asymmetric, and a grid that is not one, with typed errors', () => {
    const x = new Float32Array(8);
    expect(() => planFakeQuantize(x, { bits: 4, type: 'asymmetric', grid: 'full' })).toThrow(/grid "full" is a symmetric grid/);
    expect(() => planFakeQuantize(x, { bits: 4, type: 'asymmetric', grid: 'full' })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => planFakeQuantize(x, { bits: 4, grid: 'ggml' as never })).toThrow(/grid must be "deepspeed" or "full", got "ggml"/);
  });

  it('leaves ternary and binary (bits 1 and 2) as they are, packed as on the deepspeed grid', async () => {
    const x = Float32Array.from({ length: 16 }, (_, i) => f(Math.cos(i) - 0.2));
    for (const { name, backend, packer } of packers) {
      for (const bits of [1, 2]) {
        const plain = await backend.fakeQuantize(x.slice(), { bits, groupSize: 8 });
        expect(Array.from(await backend.fakeQuantize(x.slice(), { bits, groupSize: 8, grid: 'full' })), name).toEqual(Array.from(plain));
        const packed = await packer.pack(x, { bits, groupSize: 8, grid: 'full' });
        expect(packed.grid, name).toBe('deepspeed');
        expect(packed).toEqual({ ...(await packer.pack(x, { bits, groupSize: 8 })), grid: 'deepspeed' });
      }
    }
  });

  it("is no Quantizer option: MoQ stays on DeepSpeed's grid", () => {
    expect(() => new Quantizer({ grid: 'full' } as never)).toThrow(expect.objectContaining({ code: 'CONFIG', message: expect.stringMatching(/options\.grid: unknown key/) }));
  });

  it('keeps the deepspeed grid the default', async () => {
    const x = Float32Array.from([0.3, -0.1, 1.7, 0.2]);
    for (const { name, backend, packer } of packers) {
      // DeepSpeed's grid maps +absmax one full step low: 1.7 -> 7/8 * 1.7.
      expect((await backend.fakeQuantize(x.slice(), { bits: 4 }))[2], name).toBe(f(7 * f(1.7 / 8)));
      expect((await packer.pack(x, { bits: 4 })).grid, name).toBe('deepspeed');
    }
  });
});

describe('unpack validation and the grid', () => {
  const negative = () => Float32Array.from([1, -0.5, 0.25, 0.75, -3, 1, 2, 0]);

  it('accepts negative scales on the full grid and refuses them elsewhere, naming the group, writing nothing', async () => {
    for (const { name, packer } of packers) {
      const packed = await packer.pack(negative(), { bits: 4, groupSize: 4, grid: 'full' });
      expect(packed.scales[0], name).toBeLessThan(0);
      expect(packed.scales[1], name).toBeGreaterThan(0);
      expect(Array.from(await packer.unpack(packed)), name).toEqual([1, -0.5, 0.25, 0.75, -3, 1.125, 1.875, 0]);
      for (const grid of [undefined, 'deepspeed' as const]) {
        const out = new Float32Array(8).fill(7.5);
        const { grid: _, ...unlabelled } = packed;
        const relabelled: PackedTensor = grid ? { ...unlabelled, grid } : unlabelled;
        await expect(packer.unpack(relabelled, out), name).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', location: { group: 0 } });
        await expect(packer.unpack(relabelled, out), name).rejects.toThrow(/group 0 \(elements 0\.\.3\): its scale is -0\.125/);
        expect(
          out.every((v) => v === 7.5),
          `${name}: out untouched`,
        ).toBe(true);
      }
    }
  });

  it('still refuses NaN, infinite and overflowing scales on the full grid', async () => {
    for (const { name, packer } of packers) {
      const packed = await packer.pack(negative(), { bits: 4, groupSize: 4, grid: 'full' });
      for (const scale of [NaN, -Infinity, Infinity, -MAX]) {
        const damaged = { ...packed, scales: Float32Array.from([packed.scales[0]!, scale]) };
        await expect(packer.unpack(damaged), `${name}: scale ${scale}`).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', location: { group: 1 } });
      }
    }
  });

  it('refuses a grid that is not one, or "full" on codes that are not symmetric', async () => {
    const packed = await packers[0]!.packer.pack(negative(), { bits: 4, groupSize: 4, type: 'asymmetric' });
    expect(() => validatePacked({ ...packed, grid: 'full' })).toThrow(/grid "full" is a symmetric grid, but the codes are asymmetric/);
    expect(() => validatePacked({ ...packed, grid: 'onnx' as never })).toThrow(/grid must be "deepspeed" or "full"/);
  });

  it('wants `into` allocated for the same grid', async () => {
    const { packer } = packers[0]!;
    const into = await packer.pack(negative(), { bits: 4, groupSize: 4 });
    await expect(packer.pack(negative(), { bits: 4, groupSize: 4, grid: 'full' }, into)).rejects.toThrow(/on the deepspeed grid, but this call packs on the full grid/);
  });
});
