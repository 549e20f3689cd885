// Limits: host arrays larger than the staging bound go through WebAssembly in chunks of whole
// groups with results equal to the unchunked ones, memory stays near the bound, and bad input
// in a late chunk still leaves everything untouched.

import { beforeAll, describe, expect, it } from 'vitest';
import type { FakeQuantizeOptions } from '../src/kernel-plan.js';
import { WasmBackend } from '../src/backends/wasm/backend.js';
import { randomTensor } from './support/fixtures.js';

let whole: WasmBackend;
let chunked: WasmBackend;
const STAGING = 1024; // bytes: 256 float32 values

beforeAll(async () => {
  whole = await WasmBackend.create('simd');
  chunked = await WasmBackend.create('simd', undefined, { stagingBytes: STAGING });
});

const variants: FakeQuantizeOptions[] = [];
for (let bits = 1; bits <= 16; bits++) {
  variants.push({ bits, groupSize: 48 });
  if (bits >= 3) {
    variants.push({ bits, groupSize: 100, type: 'asymmetric' });
    variants.push({ bits, groupSize: 7, rounding: 'stochastic', seed: 5, step: 2, tensorId: 3 });
    variants.push({ bits, groupSize: 60, blendRatio: 0.25 });
  }
}

describe('host arrays larger than stagingBytes', () => {
  it.each(variants)('are quantized in chunks of whole groups, equal to one pass: %o', (options) => {
    const length = options.groupSize! * 37;
    const x = randomTensor(length, options.bits + options.groupSize!);
    expect(chunked.fakeQuantizeSync(x.slice(), options)).toEqual(whole.fakeQuantizeSync(x.slice(), options));
  });

  it('handle a group larger than the bound (one group per chunk)', () => {
    const x = randomTensor(2000 * 3, 1);
    expect(chunked.fakeQuantizeSync(x.slice(), { bits: 5, groups: 3 })).toEqual(whole.fakeQuantizeSync(x.slice(), { bits: 5, groups: 3 }));
  });

  it('mix with tensors in WebAssembly memory in one call', () => {
    const a = randomTensor(4096, 2);
    const b = randomTensor(512, 3);
    const inMemory = chunked.upload(b);
    const expectedA = whole.fakeQuantizeSync(a.slice(), { bits: 4, groupSize: 64 });
    const expectedB = whole.fakeQuantizeSync(b.slice(), { bits: 6, groupSize: 32 });
    chunked.fakeQuantizeManySync([
      { data: a, options: { bits: 4, groupSize: 64 } },
      { data: inMemory.array, options: { bits: 6, groupSize: 32 } },
    ]);
    expect(a).toEqual(expectedA);
    expect(inMemory.array).toEqual(expectedB);
    inMemory.free();
  });

  it('leave every array untouched when a late chunk holds a NaN', () => {
    const a = randomTensor(4096, 4);
    const b = randomTensor(4096, 5);
    b[4000] = Number.NaN;
    const [a0, b0] = [a.slice(), b.slice()];
    expect(() =>
      chunked.fakeQuantizeManySync([
        { data: a, options: { bits: 8, groupSize: 64 } },
        { data: b, options: { bits: 8, groupSize: 64 } },
      ]),
    ).toThrow(/jobs\[1\]\.data\[4000\] is NaN/);
    expect(a).toEqual(a0);
    expect(Object.is(b[4000], Number.NaN) || Number.isNaN(b[4000])).toBe(true);
    expect(b.map((v, i) => (i === 4000 ? 0 : v))).toEqual(b0.map((v, i) => (i === 4000 ? 0 : v)));
  });

  it('keep WebAssembly memory near the bound over a stream of large tensors', async () => {
    const backend = await WasmBackend.create('simd', undefined, { stagingBytes: 1 << 20 });
    const memory = backend.internals.kernels.memory;
    const before = memory.buffer.byteLength;
    for (let i = 0; i < 8; i++) backend.fakeQuantizeSync(randomTensor(1 << 20, i), { bits: 4, groupSize: 256 }); // 4 MiB each
    // The staging region (1 MiB) and the statistics of one chunk, nothing per tensor.
    expect(memory.buffer.byteLength - before).toBeLessThanOrEqual((1 << 20) + (1 << 16) + 65536);
  });

  it('refuse a staging bound that is not a positive size', async () => {
    await expect(WasmBackend.create('simd', undefined, { stagingBytes: 0 })).rejects.toThrow(/stagingBytes must be an integer of at least 16/);
  });
});
