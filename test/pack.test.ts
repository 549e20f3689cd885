// Packing on the WebAssembly backends: the codes decode to exactly what fakeQuantize writes, the
// bit stream follows `edge-moq.packed/1`, chunks pack as the whole tensor, bad input is refused.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WasmBackend } from '../src/backends/wasm/backend.js';
import { InvalidInputError } from '../src/errors.js';
import { allocatePacked, createPacker, planPack, WasmPacker, type PackedTensor, type PackOptions } from '../src/packed/index.js';
import { randomTensor } from './support/fixtures.js';
import { codeAt, layoutValueAt, valueAt } from './support/layout-reader.js';
import { differenceFromFake } from './support/packers.js';

const builds = ['simd', 'scalar'] as const;
const backends = new Map<string, WasmBackend>();
const packers = new Map<string, WasmPacker>();

beforeAll(async () => {
  for (const build of builds) {
    const backend = await WasmBackend.create(build);
    backends.set(build, backend);
    packers.set(build, new WasmPacker(backend));
  }
});
afterAll(() => backends.forEach((b) => b.dispose()));

const layouts = [
  { length: 1, groupSize: 1 },
  { length: 7, groupSize: 7 },
  { length: 21, groupSize: 3 },
  { length: 96, groupSize: 32 },
  { length: 4100, groupSize: 1025 },
];
const variants: PackOptions[] = [];
for (let bits = 1; bits <= 16; bits++) {
  variants.push({ bits });
  if (bits >= 3) {
    variants.push({ bits, type: 'asymmetric' });
    variants.push({ bits, rounding: 'stochastic', seed: 7, step: 3, tensorId: 11 });
    variants.push({ bits, type: 'asymmetric', rounding: 'stochastic', seed: 1 });
    variants.push({ bits, grid: 'full' });
    variants.push({ bits, grid: 'full', rounding: 'stochastic', seed: 3, step: 1 });
  }
}

describe.each(builds)('WasmPacker (%s build)', (build) => {
  it.each(variants)('unpack(pack(x)) == fakeQuantize(x) and the stream decodes by the layout text: %o', async (options) => {
    const packer = packers.get(build)!;
    const backend = backends.get(build)!;
    for (const [k, { length, groupSize }] of layouts.entries()) {
      const x = randomTensor(length, 100 + k + options.bits);
      if (length > 20) x[5] = 0; // an exact zero: binary's exception, ternary's middle code
      const original = x.slice();
      const packed = await packer.pack(x, { ...options, groupSize });
      expect(x).toEqual(original);
      const fake = await backend.fakeQuantize(x.slice(), { ...options, groupSize });
      const unpacked = await packer.unpack(packed);
      expect(differenceFromFake(x, fake, unpacked, packed)).toBeNull();
      for (let i = 0; i < length; i++) expect(valueAt(packed, i) + 0).toBe(unpacked[i]! + 0);
      expect(packed.codes.length).toBe(Math.ceil((length * options.bits) / 8));
    }
  });

  it('packs constant and all-zero groups so that they decode unchanged', async () => {
    const packer = packers.get(build)!;
    const x = new Float32Array([0, 0, 0, 0, 2.5, 2.5, 2.5, 2.5]);
    for (const options of [{ bits: 4 }, { bits: 4, type: 'asymmetric' as const }, { bits: 2 }]) {
      const unpacked = await packer.unpack(await packer.pack(x, { ...options, groupSize: 4 }));
      const fake = await backends.get(build)!.fakeQuantize(x.slice(), { ...options, groupSize: 4 });
      expect(Array.from(unpacked)).toEqual(Array.from(fake));
    }
  });
});

describe('the packed bytes', () => {
  it('put 4-bit symmetric codes low nibble first with zero point 8 (MatMulNBits)', async () => {
    const packer = packers.get('simd')!;
    // absmax 8 → s = 1: codes are x + 8.
    const x = new Float32Array([-8, 7, 0, 1, 2, -3, 5, 8]);
    const packed = await packer.pack(x, { bits: 4 });
    expect(packed.scales[0]).toBe(1);
    expect(Array.from(packed.codes)).toEqual([0x0f << 4 | 0x00, 0x09 << 4 | 0x08, 0x05 << 4 | 0x0a, 0x0f << 4 | 0x0d]);
  });

  it('is the same from both builds', async () => {
    const x = randomTensor(3 * 1031, 5);
    for (const options of variants) {
      const [a, b] = await Promise.all(builds.map((build) => packers.get(build)!.pack(x, { ...options, groups: 3 })));
      expect(a!.codes).toEqual(b!.codes);
      expect(a!.scales).toEqual(b!.scales);
      expect(a!.zeros).toEqual(b!.zeros);
    }
  });

  it('comes out the same when a tensor is packed 8 groups at a time with firstIndex', async () => {
    const packer = packers.get('simd')!;
    const groupSize = 5, groups = 40, bits = 3;
    const x = randomTensor(groupSize * groups, 9);
    const options: PackOptions = { bits, groupSize, rounding: 'stochastic', seed: 3 };
    const whole = await packer.pack(x, options);
    const chunkElements = 8 * groupSize; // 8 groups: every chunk starts on a byte
    const codes: number[] = [];
    const scales: number[] = [];
    for (let first = 0; first < x.length; first += chunkElements) {
      const part = await packer.pack(x.subarray(first, first + chunkElements), { ...options, firstIndex: first });
      codes.push(...part.codes);
      scales.push(...part.scales);
    }
    expect(codes).toEqual(Array.from(whole.codes));
    expect(scales).toEqual(Array.from(whole.scales));
  });

  it('fills a given PackedTensor without allocating new arrays', async () => {
    const packer = packers.get('simd')!;
    const x = randomTensor(256, 2);
    const into = allocatePacked(planPack(256, { bits: 5, groupSize: 64 }));
    const codes = into.codes;
    const result = await packer.pack(x, { bits: 5, groupSize: 64 }, into);
    expect(result).toBe(into);
    expect(result.codes).toBe(codes);
  });

  it('packs a tensor that lives in WebAssembly memory in place', async () => {
    const backend = backends.get('simd')!;
    const tensor = backend.upload(randomTensor(512, 4));
    const packer = packers.get('simd')!;
    const fromHost = await packer.pack(tensor.array.slice(), { bits: 6, groups: 4 });
    const inPlace = await packer.pack(tensor.array, { bits: 6, groups: 4 });
    expect(inPlace.codes).toEqual(fromHost.codes);
    const out = backend.allocate(512);
    await packer.unpack(inPlace, out.array);
    expect(out.array).toEqual(await packer.unpack(fromHost));
    tensor.free();
    out.free();
  });
});

describe('packing refuses bad input and touches nothing', () => {
  const packer = () => packers.get('simd')!;

  it('names the first NaN and leaves `into` as it was', async () => {
    const x = randomTensor(64, 1);
    x[40] = Number.NaN;
    const into = allocatePacked(planPack(64, { bits: 8, groupSize: 16 }));
    into.codes.fill(0xaa);
    await expect(packer().pack(x, { bits: 8, groupSize: 16 }, into)).rejects.toThrow(/data\[40\] is NaN/);
    expect(into.codes.every((b) => b === 0xaa)).toBe(true);
    expect(into.scales.every((s) => s === 0)).toBe(true);
  });

  it.each([
    [{ bits: 4, blendRatio: 0.5 }, /blendRatio has no packed form/],
    [{ bits: 17 }, /bits must be an integer from 1 to 16/],
    [{ bits: 4, groupSize: 5 }, /do not divide evenly/],
    [{ bits: 4, firstIndex: -1 }, /firstIndex must be an integer/],
    [{ bits: 2, type: 'asymmetric' }, /ternary quantization/],
  ] as [PackOptions, RegExp][])('options %o', async (options, message) => {
    await expect(packer().pack(randomTensor(64, 1), options)).rejects.toThrow(message);
  });

  it('wants a Float32Array and a matching `into`', async () => {
    await expect(packer().pack([1, 2] as unknown as Float32Array, { bits: 4 })).rejects.toMatchObject({ code: 'WRONG_DTYPE' });
    const wrong = allocatePacked(planPack(32, { bits: 4 }));
    await expect(packer().pack(randomTensor(64, 1), { bits: 4 }, wrong)).rejects.toThrow(/allocatePacked/);
  });

  it('checks a PackedTensor before unpacking it', async () => {
    const good = await packer().pack(randomTensor(64, 1), { bits: 4, groupSize: 16 });
    const cases: [Partial<PackedTensor>, RegExp][] = [
      [{ codes: good.codes.subarray(1) }, /codes must be a Uint8Array of ceil\(64\*4\/8\) = 32 bytes/],
      [{ scales: good.scales.subarray(1) }, /scales must be a Float32Array of 4 values/],
      [{ type: 'asymmetric' }, /zeros must be a Float32Array/],
      [{ groupSize: 10 }, /groupSize 10 must divide length 64/],
      [{ bits: 2 }, /type symmetric does not fit bits 2/],
    ];
    for (const [change, message] of cases) {
      await expect(packer().unpack({ ...good, ...change })).rejects.toBeInstanceOf(InvalidInputError);
      await expect(packer().unpack({ ...good, ...change })).rejects.toThrow(message);
    }
    await expect(packer().unpack(good, new Float32Array(3))).rejects.toThrow(/out must be a Float32Array of 64 values/);
  });
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
    await expect(createPacker({ kind: 'cpu' } as never)).rejects.toThrow(/createPacker needs a backend/);
  });
});

// The top of float32 (test/edges.test.ts checks the fakeQuantize side). An asymmetric group whose
// range reaches 2^127 is quantized at half scale, y = 2 * Q(x / 2), and stores its scale and
// zero point at full scale: 2s and 2zp, both finite (s <= FLT_MAX * 2^(1-b), and a zero point
// beyond -FLT_MAX is clamped to it). The layout text's float32 `code * s` overflows at the top
// codes of such a group, so there `code * s + zero` is taken at half scale,
// 2 * (code * (s/2) + zero/2): unpacking does so for every asymmetric group with s >= 2^(127-b)
// (equal to the plain evaluation wherever that is finite). Binary and ternary groups whose sum
// of |x| overflows store their mean, 2^33 * mean(|x| * 2^-33), finite, and decode as usual.
describe.each(builds)('packing at the top of float32 (%s build)', (build) => {
  const MAX = Math.fround(3.4028234663852886e38);
  const f = Math.fround;

  it.each([
    { name: '±FLT_MAX, asymmetric (max - min overflows)', input: [MAX, -MAX], options: { bits: 8, type: 'asymmetric' }, scale: f(MAX / 128), zero: -MAX },
    { name: 'FLT_MAX and -FLT_MAX/2, asymmetric 3 bits', input: [MAX, f(-MAX / 2)], options: { bits: 3, type: 'asymmetric' } },
    { name: '±FLT_MAX among small values, asymmetric stochastic', input: [MAX, -MAX, 1, -1], options: { bits: 16, type: 'asymmetric', rounding: 'stochastic', seed: 2 } },
    { name: 'FLT_MAX and 0, asymmetric (the range fits: half scale changes nothing)', input: [MAX, 0], options: { bits: 8, type: 'asymmetric' }, scale: f(MAX / 256), zero: 0 },
    // min / s = -8.89 rounds to -9: the zero point would be -1.0125 * FLT_MAX.
    { name: 'a zero point below -FLT_MAX, at half scale: clamped to -FLT_MAX', input: [-MAX, f(-MAX * 0.1)], options: { bits: 3, type: 'asymmetric' }, zero: -MAX },
    // min / s = -32.65 rounds to -33, with a range under 2^127.
    { name: 'a zero point below -FLT_MAX, at full scale: clamped to -FLT_MAX', input: [-MAX, f(-MAX * 0.51)], options: { bits: 4, type: 'asymmetric' }, zero: -MAX },
    { name: '±FLT_MAX, binary (the sum of |x| overflows)', input: [MAX, MAX, -MAX], options: { bits: 1 }, scale: MAX },
    { name: '±FLT_MAX, ternary (the sum of |x| overflows)', input: [MAX, MAX, -MAX, 0], options: { bits: 2 }, scale: MAX },
  ] as { name: string; input: number[]; options: PackOptions; scale?: number; zero?: number }[])('$name', async ({ input, options, scale, zero }) => {
    const packer = packers.get(build)!;
    const x = Float32Array.from(input);
    const packed = await packer.pack(x, options);
    expect([...packed.scales, ...(packed.zeros ?? [])].every(Number.isFinite)).toBe(true);
    if (scale !== undefined) expect(packed.scales[0]).toBe(scale);
    if (zero !== undefined) expect(packed.zeros![0]).toBe(zero);
    const fake = await backends.get(build)!.fakeQuantize(x.slice(), options);
    expect(Array.from(fake).every(Number.isFinite)).toBe(true);
    const unpacked = await packer.unpack(packed);
    expect(differenceFromFake(x, fake, unpacked, packed)).toBeNull();
    for (let i = 0; i < x.length; i++) expect(layoutValueAt(packed, i) + 0).toBe(unpacked[i]! + 0);
  });

  it('needs the half-scale evaluation: the plain float32 one overflows at the top code', async () => {
    const packed = await packers.get(build)!.pack(Float32Array.of(MAX, -MAX), { bits: 8, type: 'asymmetric' });
    expect(codeAt(packed.codes, 8, 0)).toBe(255);
    expect(valueAt(packed, 0)).toBe(Infinity);
    expect(layoutValueAt(packed, 0)).toBe((await packers.get(build)!.unpack(packed))[0]);
  });
});
