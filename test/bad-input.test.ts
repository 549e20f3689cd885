// Bad input gets a typed error that says what was wrong, and nothing is modified: not the
// caller's array, not a tensor in WebAssembly memory, not the other tensors of the same call.

import { beforeAll, describe, expect, it } from 'vitest';
import { WasmBackend } from '../src/backends/wasm/backend.js';
import { EdgeMoqError, InvalidInputError } from '../src/errors.js';
import type { FakeQuantizeOptions } from '../src/kernel-plan.js';
import { randomTensor } from './support/fixtures.js';

let backend: WasmBackend;
beforeAll(async () => { backend = await WasmBackend.create('simd'); });

const withValue = (index: number, value: number) => { const d = randomTensor(64, 1); d[index] = value; return d; };

const CASES: { name: string; data: () => unknown; options: unknown; code: string; message: RegExp }[] = [
  { name: 'NaN', data: () => withValue(37, NaN), options: { bits: 8 }, code: 'NON_FINITE', message: /data\[37\] is NaN/ },
  { name: '+Inf', data: () => withValue(3, Infinity), options: { bits: 4, groups: 4 }, code: 'NON_FINITE', message: /data\[3\] is Infinity/ },
  { name: '-Inf in a ternary call', data: () => withValue(63, -Infinity), options: { bits: 2 }, code: 'NON_FINITE', message: /data\[63\] is -Infinity/ },
  { name: 'NaN in a binary call', data: () => withValue(0, NaN), options: { bits: 1, groups: 8 }, code: 'NON_FINITE', message: /data\[0\] is NaN/ },
  { name: 'empty tensor', data: () => new Float32Array(0), options: { bits: 8 }, code: 'EMPTY_TENSOR', message: /empty/ },
  { name: 'groups that do not divide', data: () => randomTensor(10, 1), options: { bits: 8, groups: 3 }, code: 'GROUPS_DO_NOT_DIVIDE', message: /10 elements, which 3 groups do not divide.*1, 2, 5, 10/ },
  { name: 'groupSize that does not divide', data: () => randomTensor(10, 1), options: { bits: 8, groupSize: 4 }, code: 'GROUPS_DO_NOT_DIVIDE', message: /groups of 4/ },
  { name: 'groups and groupSize that disagree', data: () => randomTensor(12, 1), options: { bits: 8, groups: 3, groupSize: 3 }, code: 'GROUPS_DO_NOT_DIVIDE', message: /give only one/ },
  { name: 'bits 0', data: () => randomTensor(8, 1), options: { bits: 0 }, code: 'INVALID_ARGUMENT', message: /bits must be an integer from 1 to 16, got 0/ },
  { name: 'bits 17', data: () => randomTensor(8, 1), options: { bits: 17 }, code: 'INVALID_ARGUMENT', message: /got 17/ },
  { name: 'fractional bits', data: () => randomTensor(8, 1), options: { bits: 4.5 }, code: 'INVALID_ARGUMENT', message: /got 4.5/ },
  { name: 'asymmetric ternary', data: () => randomTensor(8, 1), options: { bits: 2, type: 'asymmetric' }, code: 'INVALID_ARGUMENT', message: /ternary .* symmetric with nearest rounding only/ },
  { name: 'stochastic binary', data: () => randomTensor(8, 1), options: { bits: 1, rounding: 'stochastic' }, code: 'INVALID_ARGUMENT', message: /binary .* nearest rounding only/ },
  { name: 'unknown type', data: () => randomTensor(8, 1), options: { bits: 8, type: 'sym' }, code: 'INVALID_ARGUMENT', message: /type must be "symmetric" or "asymmetric", got "sym"/ },
  { name: 'unknown option', data: () => randomTensor(8, 1), options: { bits: 8, group: 2 }, code: 'INVALID_ARGUMENT', message: /unknown option "group"/ },
  { name: 'negative seed', data: () => randomTensor(8, 1), options: { bits: 8, rounding: 'stochastic', seed: -1 }, code: 'INVALID_ARGUMENT', message: /seed must be an integer/ },
  { name: 'blend ratio above 1', data: () => randomTensor(8, 1), options: { bits: 8, blendRatio: 1.5 }, code: 'INVALID_ARGUMENT', message: /blendRatio/ },
  { name: 'a Float64Array', data: () => new Float64Array(8), options: { bits: 8 }, code: 'WRONG_DTYPE', message: /must be a Float32Array, got Float64Array/ },
  { name: 'a plain array', data: () => [1, 2, 3], options: { bits: 8 }, code: 'WRONG_DTYPE', message: /got Array/ },
  { name: 'missing options', data: () => randomTensor(8, 1), options: undefined, code: 'INVALID_ARGUMENT', message: /options must be an object/ },
];

describe.each(CASES)('$name', ({ data, options, code, message }) => {
  it('throws a typed error and leaves a host array untouched', async () => {
    const input = data();
    const before = ArrayBuffer.isView(input) ? (input as Float32Array).slice() : input;
    const error = await backend.fakeQuantize(input as Float32Array, options as FakeQuantizeOptions).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EdgeMoqError);
    expect((error as EdgeMoqError).code).toBe(code);
    expect((error as Error).message).toMatch(message);
    expect(input).toEqual(before);
  });

  it('leaves a tensor in WebAssembly memory untouched', () => {
    const input = data();
    if (!(input instanceof Float32Array) || input.length === 0) return;
    const tensor = backend.upload(input);
    expect(() => backend.fakeQuantizeSync(tensor.array, options as FakeQuantizeOptions)).toThrow(InvalidInputError);
    expect(tensor.array).toEqual(input);
    tensor.free();
  });
});

describe('a call over several tensors', () => {
  it('modifies none of them when a later one is bad', async () => {
    const good = randomTensor(256, 2);
    const inMemory = backend.upload(randomTensor(256, 3));
    const bad = withValue(10, NaN);
    const snapshot = [good.slice(), inMemory.array.slice()];
    const error = await backend.fakeQuantizeMany([
      { data: good, options: { bits: 8 } },
      { data: inMemory.array, options: { bits: 4, groups: 4 } },
      { data: bad, options: { bits: 8 } },
    ]).catch((e: unknown) => e);
    expect((error as EdgeMoqError).code).toBe('NON_FINITE');
    expect((error as Error).message).toMatch(/jobs\[2\]\.data\[10\] is NaN/);
    expect(good).toEqual(snapshot[0]);
    expect(inMemory.array).toEqual(snapshot[1]);
    inMemory.free();
  });
});
