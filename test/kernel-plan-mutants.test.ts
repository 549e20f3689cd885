// kernel-plan.ts on its own: every option's accepted range up to its boundaries, the plan each
// call resolves to (written out by hand), and every refusal by class, code and whole message.
// These are the tests `npm run mutate kernel-plan` runs; the backends' suites reach the same
// code only through the kernels.

import { describe, expect, it } from 'vitest';
import { type EdgeMoqError, InvalidInputError } from '../src/errors.js';
import { type FakeQuantizeOptions, float32Length, type KernelPlan, planFakeQuantize, planFakeQuantizeLength } from '../src/kernel-plan.js';
import { thrown } from './support/thrown.js';

function expectRefusal(call: () => unknown, code: string, message: string): void {
  const error = thrown(call);
  expect(error).toBeInstanceOf(InvalidInputError);
  expect((error as EdgeMoqError).code).toBe(code);
  expect((error as Error).message).toBe(message);
}

const plain: KernelPlan = {
  length: 12,
  bits: 8,
  groupCount: 1,
  groupSize: 12,
  asymmetric: false,
  full: false,
  stochastic: false,
  key: 0,
  blend: false,
  ratio: 1,
  rest: 0,
};

describe('planFakeQuantizeLength: the plan', () => {
  it('defaults: one symmetric group, nearest rounding, the DeepSpeed grid, no blend', () => {
    expect(planFakeQuantizeLength(12, { bits: 8 })).toEqual(plain);
  });

  it.each([
    ['groups', { bits: 8, groups: 3 }, { groupCount: 3, groupSize: 4 }],
    ['groupSize', { bits: 8, groupSize: 6 }, { groupCount: 2, groupSize: 6 }],
    ['groups and groupSize that agree', { bits: 8, groups: 4, groupSize: 3 }, { groupCount: 4, groupSize: 3 }],
    ['a group per element', { bits: 8, groupSize: 1 }, { groupCount: 12, groupSize: 1 }],
    ['asymmetric', { bits: 8, type: 'asymmetric' }, { asymmetric: true }],
    ['the full grid at 3 bits', { bits: 3, grid: 'full' }, { bits: 3, full: true }],
    ['the full grid at 16 bits', { bits: 16, grid: 'full' }, { bits: 16, full: true }],
    ['the full grid ignored at 2 bits', { bits: 2, grid: 'full' }, { bits: 2, full: false }],
    ['the DeepSpeed grid named', { bits: 8, grid: 'deepspeed' }, { full: false }],
    ['bits 1', { bits: 1 }, { bits: 1 }],
    ['bits 16', { bits: 16 }, { bits: 16 }],
    ['a seed with nearest rounding (no key)', { bits: 8, seed: 7 }, { key: 0 }],
    ['blendRatio 0: all quantized', { bits: 8, blendRatio: 0 }, { blend: true, ratio: 0, rest: 1 }],
    ['blendRatio 1: all kept', { bits: 8, blendRatio: 1 }, { blend: true, ratio: 1, rest: 0 }],
    // Each factor rounds to float32 on its own: fround(0.1) and fround(0.9), not 1 - fround(0.1).
    ['blendRatio 0.1', { bits: 8, blendRatio: 0.1 }, { blend: true, ratio: 0.10000000149011612, rest: 0.8999999761581421 }],
  ] as [string, FakeQuantizeOptions, Partial<KernelPlan>][])('%s', (_name, options, expected) => {
    expect(planFakeQuantizeLength(12, options)).toEqual({ ...plain, ...expected });
  });

  // Keys computed by hand from noise.ts's murmur3 finalizer chain.
  it.each([
    [{}, 0xce9b2364],
    [{ seed: 0, step: 0, tensorId: 0 }, 0xce9b2364],
    [{ seed: 0xffffffff }, 0x87714856],
    [{ seed: 7, step: 3, tensorId: 5 }, 0x137c7584],
    [{ seed: 0xffffffff, step: 0xffffffff, tensorId: 0xffffffff }, 0x89e740d6],
  ])('stochastic rounding with %j has key %i', (noise, key) => {
    expect(planFakeQuantizeLength(12, { bits: 3, rounding: 'stochastic', ...noise })).toEqual({ ...plain, bits: 3, stochastic: true, key });
  });

  it('the options object is only read', () => {
    const options = Object.freeze({ bits: 4, groups: 2, rounding: 'stochastic', seed: 1 } as const);
    expect(planFakeQuantizeLength(8, options).groupSize).toBe(4);
  });
});

describe('planFakeQuantizeLength: refusals', () => {
  const known = 'known options: bits, groups, groupSize, type, grid, rounding, seed, step, tensorId, blendRatio.';

  it.each([
    ['bits 0', { bits: 0 }, 'bits must be an integer from 1 to 16, got 0.'],
    ['bits 17', { bits: 17 }, 'bits must be an integer from 1 to 16, got 17.'],
    ['bits 8.5', { bits: 8.5 }, 'bits must be an integer from 1 to 16, got 8.5.'],
    ['bits "8"', { bits: '8' }, 'bits must be an integer from 1 to 16, got "8".'],
    ['no bits', {}, 'bits must be an integer from 1 to 16, got undefined.'],
    ['an unknown option', { bits: 8, groupsize: 4 }, `unknown option "groupsize"; ${known}`],
    ['a bad type', { bits: 8, type: 'sym' }, 'type must be "symmetric" or "asymmetric", got "sym".'],
    ['a bad grid', { bits: 8, grid: 'half' }, 'grid must be "deepspeed" or "full", got "half".'],
    [
      'the full grid with the asymmetric type',
      { bits: 8, grid: 'full', type: 'asymmetric' },
      'grid "full" is a symmetric grid; the asymmetric grid already spans all 2^bits levels: drop grid, or use type "symmetric".',
    ],
    ['a bad rounding', { bits: 8, rounding: 'up' }, 'rounding must be "nearest" or "stochastic", got "up".'],
    [
      'binary asymmetric',
      { bits: 1, type: 'asymmetric' },
      'binary quantization (bits 1) is symmetric with nearest rounding only (as in DeepSpeed), got asymmetric with nearest rounding; use bits >= 3 for asymmetric grids.',
    ],
    [
      'ternary stochastic',
      { bits: 2, rounding: 'stochastic' },
      'ternary quantization (bits 2) is symmetric with nearest rounding only (as in DeepSpeed), got symmetric with stochastic rounding; use bits >= 3 for stochastic rounding.',
    ],
    ['seed 2^32', { bits: 8, seed: 2 ** 32 }, 'seed must be an integer from 0 to 2^32-1, got 4294967296.'],
    ['seed -1', { bits: 8, seed: -1 }, 'seed must be an integer from 0 to 2^32-1, got -1.'],
    ['step 0.5', { bits: 8, step: 0.5 }, 'step must be an integer from 0 to 2^32-1, got 0.5.'],
    ['tensorId "1"', { bits: 8, tensorId: '1' }, 'tensorId must be an integer from 0 to 2^32-1, got "1".'],
    ['blendRatio below 0', { bits: 8, blendRatio: -0.01 }, 'blendRatio must be a number from 0 to 1, got -0.01.'],
    ['blendRatio above 1', { bits: 8, blendRatio: 1.01 }, 'blendRatio must be a number from 0 to 1, got 1.01.'],
    ['blendRatio NaN', { bits: 8, blendRatio: NaN }, 'blendRatio must be a number from 0 to 1, got NaN.'],
    ['blendRatio "0.5"', { bits: 8, blendRatio: '0.5' }, 'blendRatio must be a number from 0 to 1, got "0.5".'],
    ['groups 0', { bits: 8, groups: 0 }, 'groups must be a positive integer, got 0.'],
    ['groups 1.5', { bits: 8, groups: 1.5 }, 'groups must be a positive integer, got 1.5.'],
    ['groups "2"', { bits: 8, groups: '2' }, 'groups must be a positive integer, got "2".'],
    ['groupSize -3', { bits: 8, groupSize: -3 }, 'groupSize must be a positive integer, got -3.'],
  ])('%s', (_name, options, message) => {
    expectRefusal(() => planFakeQuantizeLength(12, options as never), 'INVALID_ARGUMENT', message);
  });

  it.each([null, 8, 'bits'])('options %j', (options) => {
    expectRefusal(() => planFakeQuantizeLength(12, options as never), 'INVALID_ARGUMENT', `options must be an object such as { bits: 8 }, got ${options === null ? 'null' : typeof options}.`);
  });

  it('an empty tensor, before its options are looked at', () => {
    expectRefusal(() => planFakeQuantizeLength(0, null as never), 'EMPTY_TENSOR', 'data is empty: there is nothing to quantize; skip empty tensors.');
    expectRefusal(() => planFakeQuantizeLength(0, { bits: 8 }, 'weights'), 'EMPTY_TENSOR', 'weights is empty: there is nothing to quantize; skip empty tensors.');
  });

  it.each([
    ['groups and groupSize that disagree', 12, { groups: 4, groupSize: 4 }, 'groups (4) x groupSize (4) must equal the w length 12; give only one of them.'],
    ['groups that do not divide', 12, { groups: 5 }, 'w has 12 elements, which 5 groups do not divide evenly; choose a group count that divides 12 (for example 1, 2, 3, 4, 6, 12).'],
    ['more groups than elements', 4, { groups: 8 }, 'w has 4 elements, which 8 groups do not divide evenly; choose a group count that divides 4 (for example 1, 2, 4).'],
    ['a groupSize that does not divide', 12, { groupSize: 5 }, 'w has 12 elements, which groups of 5 do not divide evenly; choose a group count that divides 12 (for example 1, 2, 3, 4, 6, 12).'],
    ['a groupSize larger than the tensor', 12, { groupSize: 24 }, 'w has 12 elements, which groups of 24 do not divide evenly; choose a group count that divides 12 (for example 1, 2, 3, 4, 6, 12).'],
    // The hint stops at six divisors.
    ['groups of a length with many divisors', 48, { groups: 5 }, 'w has 48 elements, which 5 groups do not divide evenly; choose a group count that divides 48 (for example 1, 2, 3, 4, 6, 8).'],
    ['a prime length', 7, { groups: 2 }, 'w has 7 elements, which 2 groups do not divide evenly; choose a group count that divides 7 (for example 1, 7).'],
  ])('%s', (_name, length, groups, message) => {
    expectRefusal(() => planFakeQuantizeLength(length, { bits: 8, ...groups }, 'w'), 'GROUPS_DO_NOT_DIVIDE', message);
  });
});

describe('float32Length and planFakeQuantize: the data', () => {
  it('counts a Float32Array and a view into a larger buffer', () => {
    expect(float32Length(new Float32Array(5))).toBe(5);
    expect(float32Length(new Float32Array(new ArrayBuffer(64), 8, 3))).toBe(3);
    expect(planFakeQuantize(new Float32Array(6), { bits: 4, groups: 2 })).toEqual({ ...plain, length: 6, bits: 4, groupCount: 2, groupSize: 3 });
  });

  it('an empty, live Float32Array is an empty tensor, not a detached one', () => {
    expect(float32Length(new Float32Array(0))).toBe(0);
    expectRefusal(() => planFakeQuantize(new Float32Array(0), { bits: 8 }, 'x'), 'EMPTY_TENSOR', 'x is empty: there is nothing to quantize; skip empty tensors.');
  });

  it.each([
    ['an array', [1, 2], 'Array'],
    ['a Float64Array', new Float64Array(2), 'Float64Array'],
    ['null', null, 'null'],
    ['a number', 3, 'number'],
  ])('refuses %s', (_name, data, type) => {
    expectRefusal(() => float32Length(data, 'x'), 'WRONG_DTYPE', `x must be a Float32Array, got ${type}; convert it first (e.g. Float32Array.from(values)).`);
    expectRefusal(() => planFakeQuantize(data, { bits: 8 }), 'WRONG_DTYPE', `data must be a Float32Array, got ${type}; convert it first (e.g. Float32Array.from(values)).`);
  });

  it('refuses look-alikes that pass instanceof', () => {
    const message = 'x passes instanceof Float32Array but is not one (a Proxy, or an object made from Float32Array.prototype); pass the Float32Array itself.';
    expectRefusal(() => float32Length(new Proxy(new Float32Array(4), {}), 'x'), 'WRONG_DTYPE', message);
    expectRefusal(() => float32Length(Object.create(Float32Array.prototype), 'x'), 'WRONG_DTYPE', message);
  });

  it('refuses a revoked Proxy as something that is not a Float32Array (instanceof throws on it)', () => {
    const { proxy, revoke } = Proxy.revocable(new Float32Array(4), {});
    revoke();
    const error = thrown(() => float32Length(proxy, 'x'));
    expect(error).toBeInstanceOf(InvalidInputError);
    expect((error as EdgeMoqError).code).toBe('WRONG_DTYPE');
    expect((error as Error).message).toMatch(/^x must be a Float32Array, got .*; convert it first/);
  });

  it('refuses a detached array', () => {
    const data = new Float32Array(8);
    structuredClone(data.buffer, { transfer: [data.buffer] });
    expectRefusal(
      () => float32Length(data, 'x'),
      'INVALID_ARGUMENT',
      'x is detached: its ArrayBuffer was transferred (postMessage, structuredClone with transfer, ArrayBuffer.transfer) ' +
        'or it viewed WebAssembly memory that has grown since; pass a live array (for a WasmTensor, read tensor.array again).',
    );
  });

  it('refuses a subclass whose length lies, or throws', () => {
    const lying = new (class extends Float32Array {
      override get length() {
        return 64;
      }
    })(8);
    expectRefusal(
      () => float32Length(lying, 'x'),
      'INVALID_ARGUMENT',
      'x reports length 64 but holds 8 float32 values (a subclass overriding length?); ' + 'pass a plain Float32Array over the same memory: new Float32Array(data.buffer, data.byteOffset, n).',
    );
    const throwing = new (class extends Float32Array {
      override get length(): number {
        throw new RangeError('no');
      }
    })(2);
    const error = thrown(() => float32Length(throwing, 'x'));
    expect(error).toBeInstanceOf(InvalidInputError);
    expect((error as EdgeMoqError).code).toBe('INVALID_ARGUMENT');
    expect((error as Error).message).toMatch(/^x reports length .* but holds 2 float32 values/);
  });

  it('accepts a subclass that tells the truth', () => {
    expect(float32Length(new (class extends Float32Array {})(3))).toBe(3);
  });
});
