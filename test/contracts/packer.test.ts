// The Packer contract, on every implementation (test/support/implementations.ts), with the cases
// of test/cases/pack-cases.json and test/cases/bad-inputs.json: unpack(pack(x)) equals the same
// backend's fakeQuantize(x) with only the exceptions src/packed/packer.ts states; the stream
// decodes by the layout text (`edge-moq.packed/1`, read bit by bit in test/support/layout-reader.ts);
// the codes equal the reference implementation's; parts packed with firstIndex join into the
// whole; the top and the bottom of float32 pack to finite scales; bad input is refused with a
// typed error and touches nothing.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidInputError, type EdgeMoqError } from '../../src/index.js';
import { allocatePacked, createPacker, planPack, type PackedTensor, type Packer, type PackOptions } from '../../src/packed/index.js';
import { addErrors, errorTotals } from '../../src/packed/errors.js';
import { randomTensor } from '../support/fixtures.js';
import {
  GPU_GROUP_BOUNDARIES,
  IMPLEMENTATIONS,
  REFERENCE,
  badData,
  caseValue,
  caseValues,
  expectError,
  readCases,
  useImplementation,
  type BadCall,
  type BadData,
  type CaseValue,
  type Implementation,
} from '../support/implementations.js';
import { codeAt, layoutValueAt, randomLayouts, valueAt } from '../support/layout-reader.js';
import { differenceFromFake } from '../support/packers.js';
import { weights } from '../support/webgpu.js';

interface PackCases {
  layouts: { length: number; groupSize: number }[];
  variants: PackOptions[];
  bytes: { name: string; input: CaseValue[]; options: PackOptions; scales: CaseValue[]; codes: number[] }[];
  constantGroups: { input: CaseValue[]; groupSize: number; zeros: CaseValue[]; options: PackOptions[] };
  firstIndex: { shapes: [number, number][] };
  top: { rows: { name: string; input: CaseValue[]; options: PackOptions; scale?: CaseValue; zero?: CaseValue }[] };
  subnormals: {
    variants: PackOptions[];
    rows: { name: string; input: CaseValue[]; groups?: number }[];
    underflow: { input: CaseValue[]; scale: CaseValue; options: PackOptions[] };
  };
}

interface BadPack extends BadCall {
  data: Exclude<BadData, { float64: number }>;
  options: PackOptions;
  into?: true | { length: number; options: PackOptions };
}

interface BadUnpack extends BadCall {
  change?: { drop: 'codes' | 'scales' } | { set: Partial<PackedTensor> };
  out?: number;
}

const CASES = readCases<PackCases>('pack-cases.json');
const BAD = readCases<{ pack: BadPack[]; unpack: { cases: BadUnpack[] } }>('bad-inputs.json');

/** A tensor for `options`: shifted for asymmetric grids, with an exact +0 and -0 in it. */
function tensorFor(length: number, seed: number, options: PackOptions): Float32Array {
  const x = weights(length, seed, options.type === 'asymmetric' ? 0.05 : 0);
  if (length > 6) {
    x[3] = 0;
    x[6] = -0;
  }
  return x;
}

/** The first element whose stream value differs from the unpacked one, or whose padding bits are set. */
function differenceFromStream(packed: PackedTensor, unpacked: Float32Array): string | null {
  for (let i = 0; i < packed.length; i++) {
    if (valueAt(packed, i) + 0 !== unpacked[i]! + 0) return `element ${i}: stream ${valueAt(packed, i)}, unpacked ${unpacked[i]}`;
  }
  const usedBits = (packed.length * packed.bits) % 8;
  if (usedBits !== 0 && packed.codes[packed.codes.length - 1]! >> usedBits !== 0) return 'the bits past the last code are not zero';
  return null;
}

/**
 * Where the codes differ from the reference's. At 3..16 bits they must be equal; at 1 and 2 bits
 * both sum a group's |x| in float32 in their own order: the means agree to 1e-6, and a ternary
 * code may differ only for a value that close to the threshold.
 */
function differenceFromReference(x: Float32Array, packed: PackedTensor, reference: PackedTensor): string | null {
  const { bits, groupSize } = packed;
  if (bits >= 3) {
    // A zero point of 0 takes the sign of the group's minimum, and min(-0, +0) may be either.
    const zeros = (p: PackedTensor) => Array.from(p.zeros ?? [], (z) => z + 0);
    if (!packed.codes.every((c, k) => c === reference.codes[k])) return 'codes differ';
    if (!packed.scales.every((s, g) => s === reference.scales[g])) return 'scales differ';
    return zeros(packed).every((z, g) => z === zeros(reference)[g]) ? null : 'zero points differ';
  }
  for (const [g, s] of packed.scales.entries()) {
    if (Math.abs(s - reference.scales[g]!) > 1e-6 * reference.scales[g]!) return `group ${g}: scale ${s}, reference ${reference.scales[g]}`;
  }
  for (let i = 0; i < x.length; i++) {
    if (codeAt(packed.codes, bits, i) === codeAt(reference.codes, bits, i)) continue;
    const group = x.subarray(i - (i % groupSize), i - (i % groupSize) + groupSize);
    const threshold = (0.7 * group.reduce((sum, v) => sum + Math.abs(v), 0)) / groupSize;
    if (Math.abs(Math.abs(x[i]!) - threshold) > 2e-6 * threshold) return `element ${i} (${x[i]}): codes differ away from the threshold ${threshold}`;
  }
  return null;
}

let reference: Packer;
beforeAll(async () => {
  reference = await createPacker(REFERENCE.kind);
});
afterAll(() => reference?.dispose());

it('the layouts take every GPU path: small groups up to SMALL_GROUP_MAX and past it, groups of over one chunk', () => {
  const sizes = CASES.layouts.map((l) => l.groupSize);
  const { SMALL_GROUP_MAX, CHUNK_SIZE } = GPU_GROUP_BOUNDARIES;
  expect(sizes).toEqual(expect.arrayContaining([1, SMALL_GROUP_MAX, SMALL_GROUP_MAX + 1, CHUNK_SIZE + 1]));
  expect(sizes.some((s) => s > SMALL_GROUP_MAX && s <= CHUNK_SIZE)).toBe(true);
});

describe('createPacker', () => {
  it("packs on WebAssembly for 'auto' and for explicit kinds", async () => {
    for (const kind of ['auto', 'wasm-simd', 'wasm'] as const) {
      const packer = await createPacker(kind);
      expect(packer.kind).toBe(kind === 'wasm' ? 'wasm' : 'wasm-simd');
      packer.dispose();
    }
  });

  it('refuses what is not a backend', async () => {
    const error = await createPacker({ kind: 'cpu' } as never).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidInputError);
    expect((error as Error).message).toMatch(/createPacker needs a backend/);
  });
});

function contract(implementation: Implementation): void {
  const under = useImplementation(implementation);

  it('is the implementation it says', () => {
    expect(under.packer.kind).toBe(implementation.kind);
  });

  describe("unpack(pack(x)) equals fakeQuantize(x); the stream reads back by the layout text; the codes are the reference's", () => {
    it.each(CASES.variants.filter((options) => implementation.sweepBits.includes(options.bits)))('%o', async (options) => {
      for (const { length, groupSize } of CASES.layouts) {
        const x = tensorFor(length, 1000 * options.bits + length, options);
        const original = x.slice();
        const packed = await under.packer.pack(x, { ...options, groupSize });
        expect(x).toEqual(original);
        expect(packed).toMatchObject({ bits: options.bits, length, groupSize });
        expect(packed.codes.length).toBe(Math.ceil((length * options.bits) / 8));
        const unpacked = await under.packer.unpack(packed);
        const fake = await under.backend.fakeQuantize(x.slice(), { ...options, groupSize });
        const where = `${length} elements in groups of ${groupSize}`;
        expect(differenceFromFake(x, fake, unpacked, packed), where).toBeNull();
        expect(differenceFromStream(packed, unpacked), where).toBeNull();
        expect(differenceFromReference(x, packed, await reference.pack(x, { ...options, groupSize })), where).toBeNull();
      }
    });

    it('keeps all-zero and constant groups as they are', async () => {
      const { input, groupSize, zeros, options: all } = CASES.constantGroups;
      const x = caseValues(input);
      for (const options of all) {
        const packed = await under.packer.pack(x, { ...options, groupSize });
        const unpacked = await under.packer.unpack(packed);
        const fake = await under.backend.fakeQuantize(x.slice(), { ...options, groupSize });
        expect(differenceFromFake(x, fake, unpacked, packed), JSON.stringify(options)).toBeNull();
        if (options.type === 'asymmetric') expect(signless(packed.zeros!)).toEqual(zeros.map(caseValue));
      }
    });
  });

  describe('the codes', () => {
    it.each(CASES.bytes)('$name', async ({ input, options, scales, codes }) => {
      const packed = await under.packer.pack(caseValues(input), options);
      expect(Array.from(packed.scales)).toEqual(scales.map(caseValue));
      expect(Array.from(packed.codes)).toEqual(codes);
    });

    it('come out the same when a tensor is packed 8 groups at a time with firstIndex', async () => {
      for (const [bits, groupSize] of CASES.firstIndex.shapes) {
        const x = weights(40 * groupSize, bits);
        const options: PackOptions = { bits, groupSize, rounding: 'stochastic', seed: 3 };
        const whole = await under.packer.pack(x, options);
        const step = 8 * groupSize;
        const codes: number[] = [];
        const scales: number[] = [];
        for (let first = 0; first < x.length; first += step) {
          const part = await under.packer.pack(x.subarray(first, first + step), { ...options, firstIndex: first });
          codes.push(...part.codes);
          scales.push(...part.scales);
        }
        expect(codes).toEqual(Array.from(whole.codes));
        expect(scales).toEqual(Array.from(whole.scales));
        expect((await reference.pack(x, options)).codes).toEqual(whole.codes);
      }
    });

    it('fill a given PackedTensor without allocating new arrays', async () => {
      const x = randomTensor(256, 2);
      const into = allocatePacked(planPack(256, { bits: 5, groupSize: 64 }));
      const { codes, scales } = into;
      const result = await under.packer.pack(x, { bits: 5, groupSize: 64 }, into);
      expect(result).toBe(into);
      expect(result.codes).toBe(codes);
      expect(result.scales).toBe(scales);
      const out = new Float32Array(256);
      await expect(under.packer.unpack(into, out)).resolves.toBe(out);
    });

    it('decode by the layout text when built elsewhere', async () => {
      for (const { bits, type, packed, expected } of randomLayouts()) {
        expect(await under.packer.unpack(packed), `${bits} bits, ${type}`).toEqual(expected);
      }
    });
  });

  describe('the top of float32: finite scales, and values by the layout text at half scale', () => {
    it.each(CASES.top.rows)('$name', async ({ input, options, scale, zero }) => {
      const x = caseValues(input);
      const packed = await under.packer.pack(x, options);
      expect([...packed.scales, ...(packed.zeros ?? [])].every(Number.isFinite)).toBe(true);
      if (scale !== undefined) expect(packed.scales[0]).toBe(caseValue(scale));
      if (zero !== undefined) expect(packed.zeros![0]).toBe(caseValue(zero));
      const fake = await under.backend.fakeQuantize(x.slice(), options);
      expect(Array.from(fake).every(Number.isFinite)).toBe(true);
      const unpacked = await under.packer.unpack(packed);
      expect(differenceFromFake(x, fake, unpacked, packed)).toBeNull();
      for (let i = 0; i < x.length; i++) expect(layoutValueAt(packed, i) + 0).toBe(unpacked[i]! + 0);
    });

    it('needs the half-scale evaluation: the plain float32 one overflows at the top code', async () => {
      const MAX = caseValue('0x7f7fffff');
      const packed = await under.packer.pack(Float32Array.of(MAX, -MAX), { bits: 8, type: 'asymmetric' });
      expect(codeAt(packed.codes, 8, 0)).toBe(255);
      expect(valueAt(packed, 0)).toBe(Infinity);
      expect(layoutValueAt(packed, 0)).toBe((await under.packer.unpack(packed))[0]);
    });
  });

  describe('subnormal groups: unpack(pack(x)) == fakeQuantize(x), and no NaN', () => {
    it.each(CASES.subnormals.rows)('$name', async ({ input, groups = 1 }) => {
      const x = caseValues(input);
      for (const options of CASES.subnormals.variants.filter((o) => implementation.sweepBits.includes(o.bits))) {
        const where = JSON.stringify(options);
        const packed = await under.packer.pack(x, { ...options, groups });
        expect([...packed.scales, ...(packed.zeros ?? [])].every(Number.isFinite), `${where}: scales and zero points`).toBe(true);
        const unpacked = await under.packer.unpack(packed);
        const fake = await under.backend.fakeQuantize(x.slice(), { ...options, groups });
        expect(fake.every(Number.isFinite), `${where}: fakeQuantize`).toBe(true);
        expect(unpacked.every(Number.isFinite), `${where}: unpack`).toBe(true);
        expect(differenceFromFake(x, fake, unpacked, packed), where).toBeNull();
      }
    });

    if (implementation.keepsSubnormals)
      it('a group whose scale underflows is left as it is, and packs exactly', async () => {
        const { input, scale, options: all } = CASES.subnormals.underflow;
        const x = caseValues(input);
        for (const options of all) {
          const packed = await under.packer.pack(x, options);
          expect(packed.scales[0]).toBe(caseValue(scale));
          expect(await under.packer.unpack(packed)).toEqual(x);
          expect(await under.backend.fakeQuantize(x.slice(), options)).toEqual(x);
        }
      });
  });

  describe('measure: the errors of unpack(pack(x)), added in the order addErrors adds them', () => {
    const MEASURED: PackOptions[] = [
      { bits: 4, groupSize: 32 },
      { bits: 8, groupSize: 64, type: 'asymmetric' },
      { bits: 2, groupSize: 16 },
      { bits: 1, groupSize: 8 },
      { bits: 5, groupSize: 3 },
    ];

    it.each(MEASURED)('%o: bit for bit, from any first element, across calls', async (options) => {
      for (const first of [0, 1, 2, 3, 2 ** 33 + 1]) {
        const totals = errorTotals();
        const expected = errorTotals();
        for (const [part, groups] of [7, 5].entries()) {
          const x = tensorFor(groups * options.groupSize!, 31 * part + first, options);
          const packed = await under.packer.pack(x, options);
          const at = first + part * 7 * options.groupSize!;
          await under.packer.measure(x, packed, totals, at);
          addErrors(x, await under.packer.unpack(packed), expected, at);
        }
        expect(Array.from(totals), `first ${first}`).toEqual(Array.from(expected));
        expect(totals[0]).toBeGreaterThan(0);
      }
    });

    it('says NaN where the original holds one, as addErrors does', async () => {
      const x = randomTensor(64, 4);
      const packed = await under.packer.pack(x, { bits: 4, groupSize: 16 });
      x[37] = Number.NaN;
      const totals = errorTotals();
      const expected = errorTotals();
      await under.packer.measure(x, packed, totals, 5);
      addErrors(x, await under.packer.unpack(packed), expected, 5);
      expect(Array.from(totals)).toEqual(Array.from(expected));
      expect(totals[0]).toBeNaN();
    });

    it('refuses bad arguments and packed data as unpack does, and leaves the totals as they were', async () => {
      const x = randomTensor(64, 1);
      const good = await under.packer.pack(x, { bits: 4, groupSize: 16 });
      const totals = errorTotals().fill(0.5);
      for (const [original, sums, first, message] of [
        [x.subarray(1), totals, 0, /original must be a Float32Array of 64 values/],
        [x, new Float64Array(4), 0, /totals must be a Float64Array of 5 values/],
        [x, totals, -1, /first must be the index/],
        [x, totals, 0.5, /first must be the index/],
      ] as const) {
        await expect(under.packer.measure(original, good, sums, first)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(message) });
      }
      for (const call of BAD.unpack.cases.filter((c) => c.out === undefined)) {
        let packed: PackedTensor = good;
        if (call.change && 'drop' in call.change) packed = { ...good, [call.change.drop]: good[call.change.drop].subarray(1) };
        if (call.change && 'set' in call.change) packed = { ...good, ...call.change.set };
        expectError(await under.packer.measure(x, packed, totals).catch((e: unknown) => e), call);
      }
      expect(Array.from(totals)).toEqual([0.5, 0.5, 0.5, 0.5, 0.5]);
    });
  });

  describe('bad input: a typed error, and nothing touched', () => {
    it.each(BAD.pack)('pack: $name', async (call) => {
      const x = badData(call.data) as Float32Array;
      const before = ArrayBuffer.isView(x) ? x.slice() : structuredClone(x);
      const into = call.into === undefined ? undefined : call.into === true ? allocatePacked(planPack(x.length, call.options)) : allocatePacked(planPack(call.into.length, call.into.options));
      into?.codes.fill(0xaa);
      const error = await under.packer.pack(x, call.options, into).catch((e: unknown) => e);
      expectError(error, call);
      expect(x).toEqual(before);
      if (into) {
        expect(into.codes.every((b) => b === 0xaa)).toBe(true);
        expect(into.scales.every((s) => s === 0)).toBe(true);
      }
    });

    it.each(BAD.pack.filter((call) => call.location))('pack: $name: the error says where', async (call) => {
      const error = await under.packer.pack(badData(call.data) as Float32Array, call.options).catch((e: unknown) => e);
      expect((error as EdgeMoqError).location).toEqual(call.location);
    });

    it.each(BAD.unpack.cases)('unpack: $name', async (call) => {
      const good = await under.packer.pack(randomTensor(64, 1), { bits: 4, groupSize: 16 });
      const kept = structuredClone(good);
      let packed: PackedTensor = good;
      if (call.change && 'drop' in call.change) packed = { ...good, [call.change.drop]: good[call.change.drop].subarray(1) };
      if (call.change && 'set' in call.change) packed = { ...good, ...call.change.set };
      const out = new Float32Array(call.out ?? 64).fill(7);
      expectError(await under.packer.unpack(packed, out).catch((e: unknown) => e), call);
      expect(out.every((v) => v === 7)).toBe(true);
      expect(good).toEqual(kept);
    });
  });
}

const signless = (values: ArrayLike<number>) => Array.from(values, (v) => v + 0);

for (const implementation of IMPLEMENTATIONS) describe.skipIf(!implementation.present)(implementation.name, () => contract(implementation));
