// Packing what only the WebAssembly implementations have: a tensor that lives in WebAssembly
// memory, packed in place and unpacked into WebAssembly memory. test/contracts/packer.test.ts runs
// the Packer contract on every implementation.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackend, type WasmBackend } from '../src/index.js';
import { createPacker, type Packer } from '../src/packed/index.js';
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
    tensor.free();
    out.free();
  });
});
