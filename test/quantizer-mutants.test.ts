// The Quantizer's own decisions, each against an expectation written out by hand: the jobs it
// hands the backend (bits, groups, noise fields, blend ratio), the schedule it keeps, the state
// it saves, and every field restore() refuses. A recording backend stands in for the kernels, so
// what is asserted is the schedule, not arithmetic another suite pins.

import { describe, expect, it } from 'vitest';
import type { Backend, QuantizeJob } from '../src/backends/backend.js';
import { type EdgeMoqError, InvalidInputError } from '../src/errors.js';
import { type Parameter, Quantizer, type QuantizerState } from '../src/quantizer.js';
import { thrown, thrownAsync } from './support/thrown.js';

/** A backend that records each call's jobs (options only) and can be told to fail. */
function recorder() {
  const calls: QuantizeJob['options'][][] = [];
  let failWith: Error | null = null;
  const backend = {
    async fakeQuantizeMany(jobs: readonly QuantizeJob[]) {
      if (failWith) throw failWith;
      calls.push(jobs.map((j) => ({ ...j.options })));
    },
  } as unknown as Backend;
  return {
    backend,
    calls,
    fail: (error: Error | null) => {
      failWith = error;
    },
  };
}

const matrix = (name: string): Parameter => ({ name, shape: [2, 2], data: Float32Array.of(1, -2, 3, -4) });
const vector = (name: string): Parameter => ({ name, shape: [4], data: Float32Array.of(1, 2, 3, 4) });

// FNV-1a of the names, computed by hand.
const ID_A = 0xc75581ae; // 'a.weight'
const ID_B = 0x3b9a3125; // 'b.weight'

function expectInvalid(error: unknown, message: string): void {
  expect(error).toBeInstanceOf(InvalidInputError);
  expect((error as EdgeMoqError).code).toBe('INVALID_ARGUMENT');
  expect((error as Error).message).toBe(message);
}

describe('the jobs a step hands the backend', () => {
  it("carry the options, the step as the noise step and each name's id; vectors are not quantized", async () => {
    const r = recorder();
    const q = new Quantizer({ groups: 2, type: 'asymmetric', rounding: 'stochastic', seed: 0xffffffff, schedules: [{ startBits: 16, targetBits: 15, period: 2 }] }, { backend: r.backend });
    const report = await q.step([[matrix('a.weight'), vector('a.bias')], [matrix('b.weight')]]);
    expect(report).toEqual({ quantized: true, qsteps: 1, ratio: 1, switches: [], parameters: ['a.weight', 'b.weight'] });
    const job = { bits: 16, groups: 2, type: 'asymmetric', rounding: 'stochastic', seed: 0xffffffff, step: 1 };
    expect(r.calls).toEqual([
      [
        { ...job, tensorId: ID_A },
        { ...job, tensorId: ID_B },
      ],
    ]);
    await q.step([matrix('a.weight')]);
    expect(r.calls[1]).toEqual([{ ...job, bits: 15, step: 2, tensorId: ID_A }]);
    expect(q.bitsOf('a.weight')).toBe(15);
    expect(q.bitsOf('b.weight')).toBe(16);
    expect(q.state().parameters['a.bias']).toEqual({ bits: 16, targetBits: 15, period: 2, quantized: false });
  });

  it('mixed fp16: the ratio falls by changeRatio each step, to 0 at least, and is 1 again at a switch', async () => {
    const r = recorder();
    const q = new Quantizer({ mixedFp16: true, changeRatio: 0.375, schedules: [{ startBits: 8, targetBits: 7, period: 4 }] }, { backend: r.backend });
    const ratios: number[] = [];
    for (let i = 0; i < 5; i++) ratios.push((await q.step([matrix('w')])).ratio);
    expect(ratios).toEqual([0.625, 0.25, 0, 1, 0.625]);
    expect(r.calls.map((c) => c[0]!.blendRatio)).toEqual([0.625, 0.25, 0, 1, 0.625]);
    expect(r.calls.map((c) => c[0]!.bits)).toEqual([8, 8, 8, 7, 7]);
    expect(q.ratio).toBe(0.625);
  });

  it('without mixed fp16 there is no blendRatio and the ratio stays 1', async () => {
    const r = recorder();
    const q = new Quantizer({ changeRatio: 0.5, schedules: [{ startBits: 8, targetBits: 8, period: 1 }] }, { backend: r.backend });
    await q.step([matrix('w')]);
    expect(r.calls[0]![0]).not.toHaveProperty('blendRatio');
    expect(q.ratio).toBe(1);
  });

  it('blendRatio 0 reaches the backend as 0', async () => {
    const r = recorder();
    const q = new Quantizer({ mixedFp16: true, changeRatio: 1, schedules: [{ startBits: 8, targetBits: 8, period: 1 }] }, { backend: r.backend });
    await q.step([matrix('w')]);
    expect(r.calls[0]![0]!.blendRatio).toBe(0);
  });

  it('no backend call when no parameter is quantized', async () => {
    const r = recorder();
    r.fail(new Error('the backend must not be called'));
    const q = new Quantizer({ schedules: [{ startBits: 8, targetBits: 4, period: 1, modules: ['weight'] }] }, { backend: r.backend });
    expect(await q.step([vector('a.weight'), matrix('head')])).toEqual({ quantized: true, qsteps: 1, ratio: 1, switches: [], parameters: [] });
  });
});

describe('the schedule', () => {
  it('doubles the period at each switch, stops at the target, and logs each switch only when verbose', async () => {
    for (const verbose of [true, false]) {
      const r = recorder();
      const lines: string[] = [];
      const q = new Quantizer({ verbose, schedules: [{ startBits: 4, targetBits: 2, period: 1 }] }, { backend: r.backend, logger: (l) => lines.push(l) });
      const switches = [];
      for (let i = 0; i < 5; i++) switches.push(...(await q.step([matrix('w')])).switches);
      expect(switches).toEqual([
        { name: 'w', bits: 3, step: 1, period: 2, index: 0 },
        { name: 'w', bits: 2, step: 2, period: 4, index: 0 },
      ]);
      expect(r.calls.map((c) => c[0]!.bits)).toEqual([3, 2, 2, 2, 2]);
      expect(lines).toEqual(
        verbose
          ? [
              'Quantization settings: current bit-precision = 3, step = 1, quantization period = 2, index = 0',
              'Quantization settings: current bit-precision = 2, step = 2, quantization period = 4, index = 0',
            ]
          : [],
      );
    }
  });

  it('the eigenvalue factor multiplies the doubled period, and a huge one stops at 2^53-1', async () => {
    const r = recorder();
    const q = new Quantizer({ schedules: [{ startBits: 8, targetBits: 4, period: 1 }] }, { backend: r.backend });
    await q.step([matrix('a.weight'), matrix('b.weight')], {
      blockEigenvalue: new Map([
        ['a.weight', [0.5, 7]],
        ['b.weight', [1e308, 2]],
      ]),
    });
    expect(q.periodOf('a.weight')).toBe(2 * 3);
    expect(q.periodOf('b.weight')).toBe(Number.MAX_SAFE_INTEGER);
    expect(q.state().parameters['b.weight']!.period).toBe(2 ** 53 - 1);
  });

  it('waits scheduleOffset non-overflow steps, and overflow steps are skipped without counting', async () => {
    const r = recorder();
    const q = new Quantizer({ scheduleOffset: 2, schedules: [{ startBits: 8, targetBits: 7, period: 1 }] }, { backend: r.backend });
    const skipped = { quantized: false, qsteps: 0, ratio: 1, switches: [], parameters: [] };
    expect(await q.step([matrix('w')])).toEqual(skipped);
    expect(await q.step([matrix('w')], { overflow: true })).toEqual(skipped);
    expect(q.state().offsetSteps).toBe(1);
    expect(q.anyPrecisionSwitch()).toBe(false);
    expect(q.anyPrecisionSwitch(2)).toBe(true);
    expect(await q.step([matrix('w')])).toEqual(skipped);
    expect(q.state().offsetSteps).toBe(2);
    expect(r.calls).toEqual([]);
    expect(q.bitsOf('w')).toBe(8);
    expect((await q.step([matrix('w')])).switches).toEqual([{ name: 'w', bits: 7, step: 1, period: 2, index: 0 }]);
    expect(await q.step([matrix('w')], { overflow: true })).toEqual({ ...skipped, qsteps: 1 });
    expect(await q.step([matrix('w')], { overflow: true, eigenvalueEnabled: true })).toMatchObject({ quantized: true, qsteps: 2 });
  });

  it('anyPrecisionSwitch before any parameter is seen reads the schedules; quantized: false parameters never switch', async () => {
    const r = recorder();
    const q = new Quantizer({ parameters: { w: { startBits: 8, targetBits: 8, period: 1 } }, schedules: [{ startBits: 8, targetBits: 7, period: 3 }] }, { backend: r.backend });
    expect([1, 2, 3].map((n) => q.anyPrecisionSwitch(n))).toEqual([false, false, true]);
    expect(q.anyPrecisionSwitch(0)).toBe(false);
    q.register([vector('b')]);
    expect(q.anyPrecisionSwitch(100)).toBe(false);
    q.register([matrix('c')]);
    expect(q.anyPrecisionSwitch(3)).toBe(true);
    expect(q.anyPrecisionSwitch(2)).toBe(false);
  });

  it('an exact parameters entry wins over the schedules', () => {
    const q = new Quantizer({ parameters: { 'a.weight': { startBits: 6, targetBits: 5, period: 9 } }, schedules: [{ startBits: 8, targetBits: 4, period: 1 }] });
    expect(q.scheduleFor('a.weight')).toEqual({ startBits: 6, targetBits: 5, period: 9 });
    expect(q.scheduleFor('b.weight')).toEqual({ name: 'group0', startBits: 8, targetBits: 4, period: 1, modules: ['*'] });
  });

  it('a second step while one runs is refused, and the first one completes', async () => {
    const q = new Quantizer({ schedules: [{ startBits: 8, targetBits: 8, period: 1 }] }, { backend: recorder().backend });
    const first = q.step([matrix('w')]);
    expectInvalid(await thrownAsync(() => q.step([matrix('w')])), 'a step is already running on this quantizer; await it before the next one.');
    expect((await first).qsteps).toBe(1);
    expect((await q.step([matrix('w')])).qsteps).toBe(2);
  });

  it('a backend failure commits nothing, and the quantizer is usable after it', async () => {
    const r = recorder();
    const q = new Quantizer({ mixedFp16: true, schedules: [{ startBits: 8, targetBits: 4, period: 1 }] }, { backend: r.backend });
    await q.step([matrix('a.weight')]);
    const state = q.state();
    const failure = new Error('device lost');
    r.fail(failure);
    expect(await thrownAsync(() => q.step([matrix('a.weight'), matrix('b.weight')]))).toBe(failure);
    expect(q.state()).toEqual(state);
    r.fail(null);
    expect((await q.step([matrix('a.weight')])).qsteps).toBe(2);
  });

  it.each([
    ['not an array', 5, 'parameterGroups must be an array of parameters, or an array of arrays of parameters.'],
    ['a parameter without a name', [{ shape: [1], data: new Float32Array(1) }], 'each parameter must be { name: string, data: Float32Array, shape: number[] }.'],
    ['a negative dimension', [{ name: 'w', shape: [-1], data: new Float32Array(1) }], 'parameter "w": shape must be a list of non-negative integers.'],
    ['a fractional dimension', [{ name: 'w', shape: [0.5, 2], data: new Float32Array(1) }], 'parameter "w": shape must be a list of non-negative integers.'],
    ['a shape that does not match', [{ name: 'w', shape: [3, 3], data: new Float32Array(8) }], 'parameter "w": shape [3, 3] holds 9 elements but data has 8.'],
  ])('refuses %s, before anything changes', async (_name, groups, message) => {
    const r = recorder();
    const q = new Quantizer({ schedules: [{ startBits: 8, targetBits: 4, period: 1 }] }, { backend: r.backend });
    expectInvalid(await thrownAsync(() => q.step(groups as never)), message);
    expect(r.calls).toEqual([]);
    expect(q.qsteps).toBe(0);
  });

  it.each([
    [null, 'step options must be an object such as { overflow: false }, got null.'],
    [{ overflow: 'false' }, 'step option overflow must be true or false, got "false".'],
    [{ eigenvalueEnabled: 1 }, 'step option eigenvalueEnabled must be true or false, got 1.'],
    [{ blockEigenvalue: { w: [-1, 0] } }, 'blockEigenvalue["w"] must be [eigenvalue >= 0, blockId] or null, got [-1,0].'],
    [{ blockEigenvalue: { w: [Infinity, 0] } }, 'blockEigenvalue["w"] must be [eigenvalue >= 0, blockId] or null, got [Infinity,0].'],
    [{ blockEigenvalue: { w: [0.5, 1.5] } }, 'blockEigenvalue["w"] must be [eigenvalue >= 0, blockId] or null, got [0.5,1.5].'],
    [{ blockEigenvalue: { w: 0.5 } }, 'blockEigenvalue["w"] must be [eigenvalue >= 0, blockId] or null, got 0.5.'],
  ])('refuses step options %j', async (options, message) => {
    const q = new Quantizer({ schedules: [{ startBits: 8, targetBits: 4, period: 1 }] }, { backend: recorder().backend });
    expectInvalid(await thrownAsync(() => q.step([matrix('w')], options as never)), message);
  });

  it('an eigenvalue of 0 and a null entry both leave the factor at 1', async () => {
    const q = new Quantizer({ schedules: [{ startBits: 8, targetBits: 4, period: 1 }] }, { backend: recorder().backend });
    const report = await q.step([matrix('a.weight'), matrix('b.weight')], { blockEigenvalue: { 'a.weight': [0, 5], 'b.weight': null } });
    expect(report.switches.map((s) => [s.period, s.index])).toEqual([
      [2, 5],
      [2, 0],
    ]);
  });
});

describe('state and restore', () => {
  const OPTIONS = { mixedFp16: true, changeRatio: 0.25, scheduleOffset: 1, seed: 3, schedules: [{ startBits: 8, targetBits: 6, period: 1 }] };

  async function stepped(): Promise<Quantizer> {
    const q = new Quantizer(OPTIONS, { backend: recorder().backend });
    for (let i = 0; i < 3; i++) await q.step([matrix('a.weight'), vector('a.bias')]);
    return q;
  }

  it('the state written out by hand', async () => {
    const q = await stepped();
    expect(q.state()).toEqual({
      format: 'edge-moq.quantizer/1',
      options: {
        groups: 1,
        type: 'symmetric',
        rounding: 'nearest',
        mixedFp16: true,
        changeRatio: 0.25,
        scheduleOffset: 1,
        verbose: false,
        seed: 3,
        parameters: {},
        schedules: [{ name: 'group0', startBits: 8, targetBits: 6, period: 1, modules: ['*'] }],
        eigenvalue: { enabled: false, verbose: false, maxIter: 100, tol: 0.01, stability: 1e-6, gasBoundaryResolution: 1, layerName: 'bert.encoder.layer', layerNum: 0 },
      },
      qsteps: 2,
      ratio: 1,
      offsetSteps: 1,
      parameters: { 'a.weight': { bits: 6, targetBits: 6, period: 4, quantized: true }, 'a.bias': { bits: 8, targetBits: 6, period: 1, quantized: false } },
    });
    expect(q.toJSON()).toEqual(q.state());
  });

  it('a restored quantizer continues with the jobs and state written out by hand', async () => {
    const r = recorder();
    const q = Quantizer.restore(JSON.stringify(await stepped()), { backend: r.backend });
    expect([q.qsteps, q.ratio, q.bitsOf('a.weight'), q.periodOf('a.weight')]).toEqual([2, 1, 6, 4]);
    await q.step([matrix('a.weight')]);
    expect(r.calls).toEqual([[{ bits: 6, groups: 1, type: 'symmetric', rounding: 'nearest', seed: 3, step: 3, tensorId: ID_A, blendRatio: 0.75 }]]);
    expect(q.state()).toMatchObject({ qsteps: 3, ratio: 0.75, offsetSteps: 1 });
  });

  // Each refusal names the field; the valid state is changed in one place.
  const valid = async () => JSON.parse(JSON.stringify((await stepped()).state())) as Record<string, any>;
  const tail = 'restore takes the state quantizer.state() wrote.';
  const P = 'state.parameters["a.weight"]';
  const setField = (key: string, value: unknown) => (s: any) => {
    s[key] = value;
  };
  const setParameter = (key: string, value: unknown) => (s: any) => {
    s.parameters['a.weight'][key] = value;
  };
  it.each([
    [
      'no format',
      (s: any) => {
        delete s.format;
      },
      'not a quantizer state: expected the object returned by quantizer.state() (format "edge-moq.quantizer/1").',
    ],
    ['an unknown key', setField('extra', 1), 'state.extra is not part of a quantizer state; known keys: format, options, qsteps, ratio, offsetSteps, parameters.'],
    [
      'no options',
      (s: any) => {
        delete s.options;
      },
      'state.options is missing: a state restores with the options it was taken with (quantizer.state() writes them); without them it would continue under other defaults.',
    ],
    ['qsteps -1', setField('qsteps', -1), `state.qsteps must be an integer from 0 to 2^53-1, got -1; ${tail}`],
    ['qsteps 2^53', setField('qsteps', 2 ** 53), `state.qsteps must be an integer from 0 to 2^53-1, got 9007199254740992; ${tail}`],
    ['offsetSteps 1.5', setField('offsetSteps', 1.5), `state.offsetSteps must be an integer from 0 to 2^53-1, got 1.5; ${tail}`],
    ['ratio above 1', setField('ratio', 1.5), `state.ratio must be a number from 0 to 1, got 1.5; ${tail}`],
    ['ratio below 0', setField('ratio', -0.5), `state.ratio must be a number from 0 to 1, got -0.5; ${tail}`],
    ['ratio a string', setField('ratio', '1'), `state.ratio must be a number from 0 to 1, got "1"; ${tail}`],
    ['parameters a list', setField('parameters', []), `state.parameters must be an object mapping parameter names to their schedule state, got []; ${tail}`],
    [
      'a parameter that is not an object',
      (s: any) => {
        s.parameters['a.weight'] = 8;
      },
      `${P} must be { bits, targetBits, period, quantized }, got 8; ${tail}`,
    ],
    ['an unknown parameter key', setParameter('step', 1), `${P}.step is not part of a quantizer state; known keys: bits, targetBits, period, quantized.`],
    ['bits 17', setParameter('bits', 17), `${P}.bits must be an integer from 1 to 16, got 17; ${tail}`],
    ['bits 0', setParameter('bits', 0), `${P}.bits must be an integer from 1 to 16, got 0; ${tail}`],
    ['targetBits 6.5', setParameter('targetBits', 6.5), `${P}.targetBits must be an integer from 1 to 16, got 6.5; ${tail}`],
    ['bits below targetBits', setParameter('bits', 5), `${P}.bits must be at least targetBits (6): precision only steps down, got 5; ${tail}`],
    ['period 0', setParameter('period', 0), `${P}.period must be an integer from 1 to 2^53-1, got 0; ${tail}`],
    ['quantized a string', setParameter('quantized', 'yes'), `${P}.quantized must be true or false, got "yes"; ${tail}`],
  ])('refuses a state with %s', async (_name, edit, message) => {
    const state = await valid();
    edit(state);
    expectInvalid(
      thrown(() => Quantizer.restore(state as QuantizerState)),
      message,
    );
  });

  it('accepts the bounds: ratio 0 and 1, 16 bits, period 2^53-1, counts 0', async () => {
    const state = await valid();
    Object.assign(state, { qsteps: 0, offsetSteps: 0, ratio: 0 });
    state.parameters['a.weight'] = { bits: 16, targetBits: 1, period: 2 ** 53 - 1, quantized: true };
    const q = Quantizer.restore(state as QuantizerState);
    expect([q.qsteps, q.ratio, q.bitsOf('a.weight'), q.periodOf('a.weight')]).toEqual([0, 0, 16, 2 ** 53 - 1]);
    state.ratio = 1;
    expect(Quantizer.restore(state as QuantizerState).ratio).toBe(1);
  });

  it('refuses 1- and 2-bit targets under asymmetric or stochastic options, and accepts 3', async () => {
    const state = await valid();
    state.options.rounding = 'stochastic';
    state.options.schedules[0].targetBits = 3;
    state.parameters['a.weight'].targetBits = 3;
    expect(Quantizer.restore(structuredClone(state) as QuantizerState).bitsOf('a.weight')).toBe(6);
    state.parameters['a.weight'].targetBits = 2;
    expectInvalid(
      thrown(() => Quantizer.restore(state as QuantizerState)),
      `${P}.targetBits must be at least 3 under symmetric grids with stochastic rounding (1 and 2 bits are symmetric nearest only), got 2; ${tail}`,
    );
  });

  it('refuses text that is not JSON, and a state whose options are incomplete', async () => {
    const error = thrown(() => Quantizer.restore('{"format":'));
    expect(error).toBeInstanceOf(InvalidInputError);
    expect((error as Error).message.startsWith('not valid JSON: ')).toBe(true);
    const state = await valid();
    delete state.options.verbose;
    const missing = thrown(() => Quantizer.restore(state as QuantizerState));
    expect((missing as EdgeMoqError).code).toBe('CONFIG');
    expect((missing as Error).message).toBe('state.options.verbose: is missing: a saved state holds every option, as quantizer.state() writes them.');
  });
});
