// Fuzzing packed tensors, on every packer present. Two classes: packed data damaged as a file
// gets damaged or crafted (scales and zero points replaced by NaN, ±Inf, negatives, subnormals,
// huge values; codes set at random, ternary code 3 included; bytes flipped), which unpack must
// decode to finite values or refuse as the layout's rules say (test/support/layout-reader.ts,
// firstInvalidElement) naming that group, writing nothing; and groups of subnormals beside
// zeros and normals, which must pack to exactly what fakeQuantize writes, with no NaN anywhere.
// Seeded; FUZZ_RUNS scales the campaigns up (test/support/fuzz.ts).

import fc from 'fast-check';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { allocatePacked, planPack, type PackedTensor, type PackOptions } from '../src/packed/layout.js';
import { Campaign, FUZZ_TIMEOUT_MS, campaignParameters, fuzzRuns } from './support/fuzz.js';
import { codeAt, firstInvalidElement, layoutValueAt, setCodeAt } from './support/layout-reader.js';
import { differenceFromFake, usePackers, type PackerUnderTest } from './support/packers.js';
import { webgpuAvailable, weights } from './support/webgpu.js';

vi.setConfig({ testTimeout: FUZZ_TIMEOUT_MS });

const gpuAvailable = await webgpuAvailable();
const packers = usePackers();

const campaigns: Campaign[] = [];
afterAll(() => {
  for (const c of campaigns) console.log(c.summary());
});

const f = Math.fround;
const TINY = 2 ** -149;
const MAX = f(3.4028234663852886e38);
const SENTINEL = 7.5;

/** Runs per packer: a software GPU takes a smaller share. */
const runsFor = (name: PackerUnderTest['name'], wasm: number) => (name === 'webgpu' ? fuzzRuns(Math.round(wasm / 8), 0.02) : fuzzRuns(wasm));
const NAMES = gpuAvailable ? (['wasm-simd', 'wasm', 'webgpu'] as const) : (['wasm-simd', 'wasm'] as const);
const packerNamed = (name: PackerUnderTest['name']) => packers.find((p) => p.name === name)!;

const shape = fc.record({
  bits: fc.integer({ min: 1, max: 16 }),
  asymmetric: fc.boolean(),
  full: fc.boolean(),
  stochastic: fc.boolean(),
  groupSize: fc.integer({ min: 1, max: 12 }),
  groups: fc.integer({ min: 1, max: 9 }),
  seed: fc.nat(),
});

function optionsOf(s: { bits: number; asymmetric: boolean; full: boolean; stochastic: boolean; groupSize: number; seed: number }): PackOptions {
  return {
    bits: s.bits,
    groupSize: s.groupSize,
    ...(s.asymmetric && s.bits >= 3 ? { type: 'asymmetric' } : {}),
    ...(s.full && !s.asymmetric && s.bits >= 3 ? { grid: 'full' } : {}),
    ...(s.stochastic && s.bits >= 3 ? { rounding: 'stochastic', seed: s.seed } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// Damaged packed data.

const hostileFloat = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(NaN, Infinity, -Infinity, -0, 0, -1, -TINY, TINY, MAX, -MAX, 2 ** 126, 2 ** 110, 1e30, 0.5) },
  { weight: 1, arbitrary: fc.float() },
);

type Damage = { kind: 'scale' | 'zero'; at: number; value: number } | { kind: 'code'; at: number; code: number } | { kind: 'byte'; at: number; xor: number };

const damage: fc.Arbitrary<Damage> = fc.oneof(
  fc.record({ kind: fc.constantFrom('scale' as const, 'zero' as const), at: fc.nat(), value: hostileFloat }),
  fc.record({ kind: fc.constant('code' as const), at: fc.nat(), code: fc.nat(65535) }),
  fc.record({ kind: fc.constant('byte' as const), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
);

/** A copy of `packed` with the damages applied; bits past the last code stay 0. */
function damaged(packed: PackedTensor, damages: readonly Damage[]): PackedTensor {
  const copy = { ...packed, codes: packed.codes.slice(), scales: packed.scales.slice(), zeros: packed.zeros?.slice() ?? null };
  for (const d of damages) {
    if (d.kind === 'scale') copy.scales[d.at % copy.scales.length] = d.value;
    else if (d.kind === 'zero' && copy.zeros) copy.zeros[d.at % copy.zeros.length] = d.value;
    else if (d.kind === 'code') setCodeAt(copy.codes, copy.bits, d.at % copy.length, d.code % 2 ** copy.bits);
    else if (d.kind === 'byte') {
      const at = d.at % copy.codes.length;
      copy.codes[at]! ^= d.xor;
      for (let i = Math.floor((at * 8) / copy.bits); i * copy.bits < (at + 1) * 8 && i < copy.length; i++) {
        setCodeAt(copy.codes, copy.bits, i, codeAt(copy.codes, copy.bits, i));
      }
      if (at === copy.codes.length - 1) copy.codes[at]! &= 0xff >> ((8 - ((copy.length * copy.bits) % 8)) % 8);
    }
  }
  return copy;
}

describe('fuzz: damaged packed tensors', () => {
  it.each(NAMES)('%s: finite values, or INVALID_ARGUMENT naming the first bad group with nothing written', async (name) => {
    const c = new Campaign(`unpack damaged packed data (${name})`);
    campaigns.push(c);
    const { packer } = packerNamed(name);
    const reference = packerNamed('wasm-simd').packer;
    const mayFlush = name === 'webgpu';
    await fc.assert(
      fc.asyncProperty(shape, fc.array(damage, { minLength: 1, maxLength: 4 }), async (s, damages) => {
        const length = s.groupSize * s.groups;
        const packed = damaged(await reference.pack(weights(length, s.seed, s.asymmetric ? 0.05 : 0), optionsOf(s)), damages);
        const before = { ...packed, codes: packed.codes.slice(), scales: packed.scales.slice(), zeros: packed.zeros?.slice() ?? null };
        const invalid = firstInvalidElement(packed);
        const out = new Float32Array(length).fill(SENTINEL);
        const error = await c.attemptAsync(() => packer.unpack(packed, out));
        expect(packed, 'packed is not modified').toEqual(before);
        if (invalid >= 0) {
          const group = Math.floor(invalid / s.groupSize);
          expect(error, `the layout says element ${invalid} is invalid`).not.toBeNull();
          expect(error).toMatchObject({ code: 'INVALID_ARGUMENT', location: { group } });
          expect(error!.message).toContain(`group ${group} (elements ${group * s.groupSize}..${(group + 1) * s.groupSize - 1})`);
          expect(
            out.every((v) => v === SENTINEL),
            'out untouched',
          ).toBe(true);
          return;
        }
        expect(error, 'valid data decodes').toBeNull();
        for (let i = 0; i < length; i++) {
          const want = layoutValueAt(packed, i) + 0;
          if (out[i]! + 0 !== want && !(mayFlush && Math.abs(want) < 2 ** -126 && out[i] === 0)) {
            expect.fail(`element ${i}: unpacked ${out[i]}, the layout gives ${want}`);
          }
        }
      }),
      campaignParameters(runsFor(name, 600)),
    );
    expect(c.accepted, 'some damages leave valid data').toBeGreaterThan(0);
    expect(c.rejected.get('INVALID_ARGUMENT'), 'most damages are refused').toBeGreaterThan(0);
  });
});

// ---------------------------------------------------------------------------------------------
// Subnormal groups.

const subnormal = fc
  .integer({ min: 1, max: 23 })
  .chain((bits) => fc.integer({ min: -(2 ** bits) + 1, max: 2 ** bits - 1 }))
  .map((m) => m * TINY);
const value = fc.oneof(
  { weight: 6, arbitrary: subnormal },
  { weight: 2, arbitrary: fc.constantFrom(0, -0) },
  { weight: 1, arbitrary: fc.float({ min: f(1e-38), max: f(1e-30), noNaN: true }).map((v) => Math.max(v, 0)) },
  { weight: 1, arbitrary: fc.float({ min: -1, max: 1, noNaN: true }) },
);

describe('fuzz: subnormal groups', () => {
  it.each(NAMES)('%s: unpack(pack(x)) == fakeQuantize(x), and no NaN', async (name) => {
    const c = new Campaign(`pack subnormal groups (${name})`);
    campaigns.push(c);
    const { backend, packer } = packerNamed(name);
    const tensor = shape.chain((s) => {
      const length = s.groupSize * s.groups;
      return fc.record({ s: fc.constant(s), data: fc.array(value, { minLength: length, maxLength: length }) });
    });
    await fc.assert(
      fc.asyncProperty(tensor, async ({ s, data }) => {
        const x = Float32Array.from(data);
        const options = optionsOf(s);
        let packed = allocatePacked(planPack(x.length, options));
        let unpacked: Float32Array = new Float32Array(0);
        let fake: Float32Array = new Float32Array(0);
        const error = await c.attemptAsync(async () => {
          packed = await packer.pack(x, options);
          unpacked = await packer.unpack(packed);
          fake = await backend.fakeQuantize(x.slice(), options);
        });
        expect(error, 'finite input packs').toBeNull();
        expect([...packed.scales, ...(packed.zeros ?? []), ...unpacked, ...fake].every(Number.isFinite), 'no NaN or Inf').toBe(true);
        expect(differenceFromFake(x, fake, unpacked, packed), JSON.stringify(options)).toBeNull();
      }),
      campaignParameters(runsFor(name, 600)),
    );
  });
});
