// fakeQuantize(src, options, { into }): the result lands in `into`, equal value for value to
// quantizing a copy in place, `src` is never written, and every pairing of host arrays and
// WasmTensors works, in one chunk or many. Also the in-place host path, which now stages
// cache-sized chunks: bad input in its last chunk leaves the caller's array as it was.

import { beforeAll, describe, expect, it } from 'vitest';
import type { FakeQuantizeOptions } from '../src/kernel-plan.js';
import { WasmBackend } from '../src/backends/wasm/backend.js';
import { InvalidInputError } from '../src/errors.js';
import { randomTensor } from './support/fixtures.js';
import { KERNEL_VARIANTS } from './support/variants.js';

const builds = ['simd', 'scalar'] as const;
const backends: Record<string, { plain: WasmBackend; chunked: WasmBackend }> = {};

beforeAll(async () => {
  for (const build of builds) {
    backends[build] = {
      plain: await WasmBackend.create(build),
      // 64 float32 per chunk: most tensors below take many chunks.
      chunked: await WasmBackend.create(build, undefined, { stagingBytes: 256 }),
    };
  }
});

const variants = KERNEL_VARIANTS;

/** The reference: a WasmTensor quantized in place (the two-pass path). */
function reference(backend: WasmBackend, x: Float32Array, options: FakeQuantizeOptions): Float32Array {
  const tensor = backend.upload(x);
  try {
    backend.fakeQuantizeSync(tensor.array, options);
    return tensor.array.slice();
  } finally {
    tensor.free();
  }
}

describe.each(builds)('out of place, %s build', (build) => {
  it.each(variants)('%s: host into host equals in place, the source untouched', (_, options) => {
    for (const kind of ['plain', 'chunked'] as const) {
      const backend = backends[build]![kind];
      const x = randomTensor(options.groupSize! * 13, options.bits + options.groupSize!);
      x[5] = 0;
      x[6] = -0;
      const before = x.slice();
      const into = new Float32Array(x.length).fill(7);
      const result = backend.fakeQuantizeSync(x, options, { into });
      expect(result).toBe(into);
      expect(into).toEqual(reference(backend, x, options));
      expect(x).toEqual(before);
    }
  });

  it.each(variants)('%s: every pairing of host arrays and WasmTensors, alone and in one fakeQuantizeMany beside a job in place', async (_, options) => {
    const backend = backends[build]!.chunked;
    const x = randomTensor(options.groupSize! * 9, options.bits * 7 + 1);
    const expected = reference(backend, x, options);
    const src = backend.upload(x);
    const dst = backend.allocate(x.length);
    try {
      expect(await backend.fakeQuantize(src.array, options, { into: dst.array })).toBe(dst.array);
      expect(dst.array).toEqual(expected);
      expect(src.array).toEqual(x);
      dst.array.fill(0);
      backend.fakeQuantizeSync(x, options, { into: dst.array });
      expect(dst.array).toEqual(expected);
      const host = new Float32Array(x.length);
      backend.fakeQuantizeSync(src.array, options, { into: host });
      expect(host).toEqual(expected);
      expect(src.array).toEqual(x);
      const source = x.slice();
      const outputs = [new Float32Array(x.length), new Float32Array(x.length), x.slice()];
      dst.array.fill(0);
      backend.fakeQuantizeManySync([
        { data: src.array, options, into: outputs[0] },
        { data: source, options, into: dst.array },
        { data: source, options, into: outputs[1] },
        { data: outputs[2]!, options },
      ]);
      expect(src.array).toEqual(x);
      expect(source).toEqual(x);
      for (const out of [dst.array, ...outputs]) expect(out).toEqual(expected);
    } finally {
      src.free();
      dst.free();
    }
  });

  it('reads a WasmTensor into a host array when staging grows the memory first, alone and in fakeQuantizeMany', async () => {
    const options: FakeQuantizeOptions = { bits: 8, groupSize: 100 };
    const x = randomTensor(20000, 11);
    for (const many of [false, true]) {
      const fresh = await WasmBackend.create(build);
      const src = fresh.upload(x);
      const into = new Float32Array(x.length);
      const inPlace = x.slice();
      if (many) {
        fresh.fakeQuantizeManySync([
          { data: src.array, options, into },
          { data: inPlace, options },
        ]);
      } else {
        fresh.fakeQuantizeSync(src.array, options, { into });
      }
      expect(into).toEqual(reference(fresh, x, options));
      expect(src.array).toEqual(x);
      expect(inPlace).toEqual(many ? into : x);
    }
  });

  it('keeps the stochastic stream of each element wherever the chunks fall', () => {
    const options: FakeQuantizeOptions = { bits: 4, groupSize: 3, rounding: 'stochastic', seed: 1, step: 2, tensorId: 3 };
    const x = randomTensor(3 * 101, 5);
    const into = new Float32Array(x.length);
    backends[build]!.chunked.fakeQuantizeSync(x, options, { into });
    expect(into).toEqual(backends[build]!.plain.fakeQuantizeSync(x.slice(), options));
  });
});

describe('out of place: refused inputs', () => {
  const options: FakeQuantizeOptions = { bits: 8, groupSize: 16 };

  it('an output of another length', () => {
    const backend = backends.simd!.plain;
    const x = randomTensor(64, 1);
    expect(() => backend.fakeQuantizeSync(x, options, { into: new Float32Array(48) })).toThrow(/into holds 48 float32 values but data holds 64/);
  });

  it('an output overlapping the source, host or in WebAssembly memory', () => {
    const backend = backends.simd!.plain;
    const buffer = new Float32Array(96);
    buffer.set(randomTensor(96, 2));
    const before = buffer.slice();
    for (const [src, into] of [
      [buffer.subarray(0, 64), buffer.subarray(32, 96)],
      [buffer.subarray(32, 96), buffer.subarray(0, 64)],
    ]) {
      expect(() => backend.fakeQuantizeSync(src!, options, { into: into! })).toThrow(InvalidInputError);
      expect(() => backend.fakeQuantizeSync(src!, options, { into: into! })).toThrow(/into overlaps data/);
    }
    const x = randomTensor(64, 3);
    expect(() => backend.fakeQuantizeSync(x, options, { into: x })).toThrow(/into overlaps data/);
    expect(buffer).toEqual(before);
    const tensor = backend.upload(randomTensor(128, 4));
    try {
      const same = tensor.array;
      expect(() => backend.fakeQuantizeSync(same.subarray(0, 64), options, { into: same.subarray(16, 80) })).toThrow(/into overlaps data/);
      // Neighbours in one buffer that do not overlap are fine.
      backend.fakeQuantizeSync(same.subarray(0, 64), options, { into: same.subarray(64, 128) });
      expect(same.subarray(64, 128)).toEqual(backend.fakeQuantizeSync(same.slice(0, 64), options));
    } finally {
      tensor.free();
    }
  });

  it('an output that is not a Float32Array, or a target without one', () => {
    const backend = backends.simd!.plain;
    const x = randomTensor(32, 5);
    expect(() => backend.fakeQuantizeSync(x, options, { into: new Float64Array(32) as never })).toThrow(/into must be a Float32Array, got Float64Array/);
    expect(() => backend.fakeQuantizeSync(x, options, null as never)).toThrow(/into must be a Float32Array, got undefined/);
    expect(() => backend.fakeQuantizeSync(x, options, {} as never)).toThrow(/into must be a Float32Array, got undefined/);
  });

  it('a freed WasmTensor as the output', () => {
    const backend = backends.simd!.plain;
    const tensor = backend.allocate(32);
    const view = tensor.array;
    tensor.free();
    expect(() => backend.fakeQuantizeSync(randomTensor(32, 6), options, { into: view })).toThrow(/into is the view of a WasmTensor that was freed/);
  });

  it.each(builds)('a NaN names its element, leaves the source as it was and the groups before it written (%s)', (build) => {
    const backend = backends[build]!.chunked;
    const x = randomTensor(16 * 20, 7);
    x[16 * 12 + 3] = Number.NaN;
    const before = x.slice();
    const into = new Float32Array(x.length).fill(9);
    expect(() => backend.fakeQuantizeSync(x, options, { into })).toThrow(/data\[195\] is NaN: .* data is unchanged; into holds the groups before this one/);
    expect(x).toEqual(before);
    expect(into.subarray(0, 16 * 12)).toEqual(reference(backend, x.slice(0, 16 * 12), options));
    expect(into.subarray(16 * 12).every((v) => v === 9)).toBe(true);
  });
});

describe.each(builds)('host arrays in place through cache-sized chunks, %s build', (build) => {
  it('an Inf in the last chunk leaves the whole array untouched', () => {
    for (const kind of ['plain', 'chunked'] as const) {
      const backend = backends[build]![kind];
      // 256 KiB: more than one chunk at the default size as well.
      const x = randomTensor(65536, 8);
      x[65535] = Number.POSITIVE_INFINITY;
      const before = x.slice();
      expect(() => backend.fakeQuantizeSync(x, { bits: 8, groupSize: 256 })).toThrow(/data\[65535\] is Infinity/);
      expect(x).toEqual(before);
    }
  });

  it('finds a NaN or ±Inf at every position of a 64-bit word and of the tail, alone among finite values', () => {
    // 23 elements, one group: five rounds of two 64-bit words (four floats), then a tail of three.
    const backend = backends[build]!.plain;
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      for (let at = 0; at < 23; at++) {
        // The largest finite exponent sits beside the bad value: it must not be taken for one.
        const x = Float32Array.from({ length: 23 }, (_, i) => (i % 2 ? -3.4028234663852886e38 : 3.4028234663852886e38));
        x[at] = bad;
        const before = x.slice();
        expect(() => backend.fakeQuantizeSync(x, { bits: 8 }), `${bad} at ${at}`).toThrow(new RegExp(`data\\[${at}\\] is ${bad}`));
        expect(x).toEqual(before);
      }
    }
    const finite = Float32Array.from({ length: 23 }, (_, i) => (i % 3 ? -3.4028234663852886e38 : 1.401298464324817e-45));
    expect(() => backend.fakeQuantizeSync(finite.slice(), { bits: 8 })).not.toThrow();
  });

  it('equals the WasmTensor path across many chunks, for every variant', () => {
    for (const [, options] of variants) {
      const x = randomTensor(options.groupSize! * 1500, options.bits);
      expect(backends[build]!.plain.fakeQuantizeSync(x.slice(), options)).toEqual(reference(backends[build]!.plain, x, options));
    }
  });
});
