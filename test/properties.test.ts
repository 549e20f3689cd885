// Property tests (fast-check) over random shapes, group counts, bit widths, types, roundings,
// seeds and blend ratios.

import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { WasmBackend } from '../src/backends/wasm.js';
import type { FakeQuantizeOptions } from '../src/config.js';

let simd: WasmBackend;
let scalar: WasmBackend;
beforeAll(async () => {
  simd = await WasmBackend.create('simd');
  scalar = await WasmBackend.create('scalar');
});

/** -0 equals 0 (conformance README); toEqual would tell them apart. */
const signless = (a: Float32Array) => a.map((x) => x + 0);

const finite = fc.float({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 });

/** A tensor split into `groups` groups, with options valid for it. */
const job = fc.record({
  groupSize: fc.integer({ min: 1, max: 70 }),
  groups: fc.integer({ min: 1, max: 6 }),
  bits: fc.integer({ min: 1, max: 16 }),
  asymmetric: fc.boolean(),
  stochastic: fc.boolean(),
  seed: fc.nat(),
  blend: fc.option(fc.double({ min: 0, max: 1, noNaN: true }), { nil: undefined }),
}).chain((shape) => fc.record({
  shape: fc.constant(shape),
  data: fc.array(finite, { minLength: shape.groupSize * shape.groups, maxLength: shape.groupSize * shape.groups }),
}));

function optionsOf({ shape }: { shape: { groups: number; bits: number; asymmetric: boolean; stochastic: boolean; seed: number; blend: number | undefined } }): FakeQuantizeOptions {
  const lowBits = shape.bits <= 2;
  return {
    bits: shape.bits,
    groups: shape.groups,
    type: shape.asymmetric && !lowBits ? 'asymmetric' : 'symmetric',
    rounding: shape.stochastic && !lowBits ? 'stochastic' : 'nearest',
    seed: shape.seed,
    ...(shape.blend === undefined ? {} : { blendRatio: shape.blend }),
  };
}

/** The grid written out plainly from DESIGN.md, in float32, as an independent oracle. */
function referenceGrid(data: Float32Array, groups: number, bits: number, asymmetric: boolean): Float32Array {
  const f = Math.fround;
  const out = data.slice();
  const size = data.length / groups;
  const levels = 2 ** bits;
  const roundHalfEven = (v: number) => { const r = Math.round(v); return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r; };
  for (let g = 0; g < groups; g++) {
    const group = data.subarray(g * size, (g + 1) * size);
    const lo = Math.min(...group), hi = Math.max(...group);
    const scale = asymmetric ? f(f(hi - lo) / levels) : f(f(2 * Math.max(Math.abs(lo), Math.abs(hi))) / levels);
    if (!(scale > 0)) continue;
    const zero = asymmetric ? f(roundHalfEven(f(lo / scale)) * scale) : 0;
    for (let i = 0; i < size; i++) {
      const v = f(f(group[i]! - zero) / scale);
      const k = Math.min(Math.max(roundHalfEven(v), asymmetric ? 0 : -levels / 2), asymmetric ? levels - 1 : levels / 2 - 1);
      out[g * size + i] = f(f(k * scale) + zero);
    }
  }
  return out;
}

describe('properties', () => {
  it('the SIMD and scalar builds agree bit for bit on every operation', () => {
    fc.assert(fc.property(job, (j) => {
      const data = Float32Array.from(j.data);
      const options = optionsOf(j);
      expect(signless(simd.fakeQuantizeSync(data.slice(), options))).toEqual(signless(scalar.fakeQuantizeSync(data.slice(), options)));
    }), { numRuns: 300 });
  });

  it('nearest rounding at 3..16 bits equals a plain float32 reading of the reference', () => {
    fc.assert(fc.property(job, (j) => {
      fc.pre(j.shape.bits >= 3);
      const data = Float32Array.from(j.data);
      const asymmetric = j.shape.asymmetric;
      const got = simd.fakeQuantizeSync(data.slice(), { bits: j.shape.bits, groups: j.shape.groups, type: asymmetric ? 'asymmetric' : 'symmetric' });
      expect(signless(got)).toEqual(signless(referenceGrid(data, j.shape.groups, j.shape.bits, asymmetric)));
    }), { numRuns: 300 });
  });

  it('nearest values inside the grid move by at most half a step; symmetric grids are symmetric', () => {
    fc.assert(fc.property(job, (j) => {
      const { bits, groups } = j.shape;
      fc.pre(bits >= 3);
      const data = Float32Array.from(j.data);
      const q = simd.fakeQuantizeSync(data.slice(), { bits, groups });
      const negated = simd.fakeQuantizeSync(data.map((x) => -x), { bits, groups });
      const size = data.length / groups;
      for (let g = 0; g < groups; g++) {
        const group = data.subarray(g * size, (g + 1) * size);
        const absMax = Math.max(...group.map(Math.abs));
        const scale = Math.fround(absMax * 2 ** (1 - bits));
        if (!(scale > 0)) continue;
        for (let i = g * size; i < (g + 1) * size; i++) {
          if (Math.abs(data[i]! / scale) >= 2 ** (bits - 1) - 1) continue; // clamped at the top
          expect(Math.abs(q[i]! - data[i]!)).toBeLessThanOrEqual(scale / 2 * (1 + 2 ** -20));
          expect(negated[i]! + 0).toBe(-q[i]! + 0);
        }
      }
    }), { numRuns: 200 });
  });

  it('the mixed-fp16 blend is fround(r)*x + fround(1-r)*Q(x), each product in float32', () => {
    fc.assert(fc.property(job, fc.double({ min: 0, max: 1, noNaN: true }), (j, ratio) => {
      const data = Float32Array.from(j.data);
      const options = { ...optionsOf(j) };
      delete options.blendRatio;
      const q = simd.fakeQuantizeSync(data.slice(), options);
      const blended = simd.fakeQuantizeSync(data.slice(), { ...options, blendRatio: ratio });
      const r = Math.fround(ratio), rest = Math.fround(1 - ratio);
      const expected = data.map((x, i) => Math.fround(Math.fround(r * x) + Math.fround(rest * q[i]!)));
      // Groups with scale 0 come back unchanged, blended or not.
      expect(signless(blended.map((v, i) => (q[i] === data[i] ? data[i]! : v)))).toEqual(signless(expected.map((v, i) => (q[i] === data[i] ? data[i]! : v))));
    }), { numRuns: 200 });
  });
});
