// Bad input on a tensor that lives in WebAssembly memory (test/contracts/backend.test.ts runs the
// same cases, test/cases/bad-inputs.json, on host arrays on every implementation): the typed
// error, and nothing modified, not the tensor, not the other tensors of the same call.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackend, InvalidInputError, type WasmBackend, type EdgeMoqError, type FakeQuantizeOptions } from '../src/index.js';
import { randomTensor } from './support/fixtures.js';
import { badData, readCases, type BadCall, type BadData } from './support/implementations.js';

interface BadQuantize extends BadCall {
  data: BadData;
  options?: unknown;
}

/** The cases whose data is a Float32Array with elements: the ones a WebAssembly tensor can hold. */
const CASES = readCases<{ fakeQuantize: BadQuantize[] }>('bad-inputs.json').fakeQuantize.filter((call) => 'random' in call.data && call.data.random > 0);

let backend: WasmBackend;
beforeAll(async () => {
  backend = (await createBackend('wasm-simd')) as WasmBackend;
});
afterAll(() => backend?.dispose());

describe('a tensor in WebAssembly memory', () => {
  it.each(CASES)('is left untouched: $name', (call) => {
    const input = badData(call.data) as Float32Array;
    const tensor = backend.upload(input);
    let error: unknown;
    try {
      backend.fakeQuantizeSync(tensor.array, call.options as FakeQuantizeOptions);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidInputError);
    expect((error as EdgeMoqError).code).toBe(call.code);
    expect(tensor.array).toEqual(input);
    tensor.free();
  });

  it('is not modified, nor is a host array, when a later tensor of the call is bad', async () => {
    const good = randomTensor(256, 2);
    const inMemory = backend.upload(randomTensor(256, 3));
    const bad = randomTensor(64, 1);
    bad[10] = Number.NaN;
    const snapshot = [good.slice(), inMemory.array.slice()];
    const error = await backend
      .fakeQuantizeMany([
        { data: good, options: { bits: 8 } },
        { data: inMemory.array, options: { bits: 4, groups: 4 } },
        { data: bad, options: { bits: 8 } },
      ])
      .catch((e: unknown) => e);
    expect((error as EdgeMoqError).code).toBe('NON_FINITE');
    expect((error as Error).message).toMatch(/jobs\[2\]\.data\[10\] is NaN/);
    expect(good).toEqual(snapshot[0]);
    expect(inMemory.array).toEqual(snapshot[1]);
    inMemory.free();
  });
});
