// Packing what only the WebAssembly implementations have: a tensor that lives in WebAssembly
// memory, packed in place and unpacked into WebAssembly memory. test/contracts/packer.test.ts runs
// the Packer contract on every implementation.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackend, type WasmBackend } from '../src/index.js';
import { createPacker, type Packer } from '../src/packed/index.js';
import { addErrors, errorTotals } from '../src/packed/errors.js';
import { randomTensor } from './support/fixtures.js';

describe.each(['wasm-simd', 'wasm'] as const)('%s', (kind) => {
  let backend: WasmBackend;
  let packer: Packer;
  beforeAll(async () => {
    backend = (await createBackend(kind)) as WasmBackend;
    packer = await createPacker(backend);
  });
  afterAll(() => {
    packer.dispose();
    backend.dispose();
  });

  it('packs a tensor that lives in WebAssembly memory in place, and unpacks into WebAssembly memory', async () => {
    const tensor = backend.upload(randomTensor(512, 4));
    const original = tensor.array.slice();
    const fromHost = await packer.pack(tensor.array.slice(), { bits: 6, groups: 4 });
    const inPlace = await packer.pack(tensor.array, { bits: 6, groups: 4 });
    expect(tensor.array).toEqual(original);
    expect(inPlace.codes).toEqual(fromHost.codes);
    expect(inPlace.scales).toEqual(fromHost.scales);
    const out = backend.allocate(512);
    await expect(packer.unpack(inPlace, out.array)).resolves.toBe(out.array);
    expect(out.array).toEqual(await packer.unpack(fromHost));
    // measure reads a WasmTensor where it is, even when its scratch region grows the memory.
    const totals = errorTotals();
    const expected = errorTotals();
    await packer.measure(tensor.array, inPlace, totals, 3);
    addErrors(original, await packer.unpack(fromHost), expected, 3);
    expect(Array.from(totals)).toEqual(Array.from(expected));
    const big = randomTensor(1 << 20, 5);
    await packer.measure(big, await packer.pack(big, { bits: 4, groupSize: 64 }), errorTotals());
    const again = errorTotals();
    await packer.measure(tensor.array, inPlace, again, 3);
    expect(Array.from(again)).toEqual(Array.from(expected));
    tensor.free();
    out.free();
  });
});
