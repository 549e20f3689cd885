// Fuzzing everything a user hands us: DeepSpeed configs (objects and JSON text), Quantizer
// options and saved states, per-call FakeQuantizeOptions and data, and step() arguments. The
// inputs are random JSON and mutations of real config shapes (wrong types, missing and extra
// keys, nested garbage, numbers at the edges, look-alike strings, Object.prototype names). Each
// call must succeed or throw a ConfigError / InvalidInputError that says something, at once,
// leaving the caller's data (and config, and quantizer) as it was. Seeded; run counts are for
// CI, FUZZ_RUNS scales every campaign up (see test/support/fuzz.ts).

import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { WasmBackend } from '../src/backends/wasm/backend.js';
import type { Backend } from '../src/backends/backend.js';
import { WebGpuBackend } from '../src/backends/webgpu/backend.js';
import { optionsFromDeepSpeed, resolveQuantizerOptions } from '../src/config.js';
import type { FakeQuantizeOptions } from '../src/kernel-plan.js';
import { InvalidInputError } from '../src/errors.js';
import { Quantizer, type Parameter, type QuantizerState } from '../src/quantizer.js';
import { baseConfig } from './cases/deepspeed-configs.js';
import { Campaign, FUZZ_TIMEOUT_MS, PROTOTYPE_NAMES, applyMutations, campaignParameters, contractViolation, damagedText, fuzzRuns, hostileValue, jsonGarbage, mutation } from './support/fuzz.js';
import { testGpu, webgpuAvailable } from './support/webgpu.js';

vi.setConfig({ testTimeout: FUZZ_TIMEOUT_MS });

const gpuAvailable = await webgpuAvailable();

// Real DeepSpeed config shapes, every MoQ key present, plus sections of the engine we do not read
// (test/cases/deepspeed-configs.json), and the legacy form with its eigenvalue section inside.
const CURRENT = baseConfig('current');
const LEGACY = baseConfig('legacy');
const LEGACY_NESTED = (() => {
  const config = baseConfig('legacy') as Record<string, any>;
  config.quantize_training.eigenvalue = config.eigenvalue;
  delete config.eigenvalue;
  return config;
})();

const QUANTIZER_OPTIONS = {
  groups: 4,
  type: 'symmetric',
  rounding: 'stochastic',
  mixedFp16: true,
  changeRatio: 0.01,
  scheduleOffset: 2,
  verbose: false,
  seed: 7,
  parameters: { 'head.weight': { startBits: 8, targetBits: 8, period: 1 } },
  schedules: [{ name: 'body', startBits: 12, targetBits: 3, period: 5, modules: ['layer\\.\\d+', 'embed'] }],
  eigenvalue: { enabled: true, verbose: false, maxIter: 10, tol: 0.01, stability: 1e-6, gasBoundaryResolution: 1, layerName: 'layer', layerNum: 2 },
};

/** Every key name the readers know, so an "add" mutation also puts right keys in wrong places. */
const KNOWN_KEYS = [
  // DeepSpeed's sections
  ...['compression_training', 'weight_quantization', 'shared_parameters', 'different_groups', 'quantize_training', 'eigenvalue'],
  // shared_parameters
  ...['enabled', 'quantizer_kernel', 'schedule_offset', 'quantize_groups', 'quantize_verbose', 'quantization_type', 'rounding', 'quantize_weight_in_forward', 'fp16_mixed_quantize'],
  // mixed fp16, different_groups and their params
  ...['quantize_change_ratio', 'params', 'modules', 'related_modules', 'start_bits', 'target_bits', 'quantization_period'],
  // the legacy quantize_training section and eigenvalue
  ...['quantize_bits', 'quantize_schedule', 'quantize_period', 'quantize_algo', 'q_type', 'max_iter', 'tol', 'layer_num'],
  // edge-moq's Quantizer options
  ...['groups', 'type', 'mixedFp16', 'changeRatio', 'scheduleOffset', 'seed', 'parameters', 'schedules'],
  // schedules and fakeQuantize options
  ...['startBits', 'targetBits', 'period', 'bits', 'groupSize', 'tensorId', 'step', 'blendRatio'],
];

const campaigns: Campaign[] = [];
function campaign(name: string): Campaign {
  const c = new Campaign(name);
  campaigns.push(c);
  return c;
}
afterAll(() => {
  for (const c of campaigns) console.log(c.summary());
});

/** Every rejection the campaign counted has one of the codes `allowed`: a typed error of another kind is a failure. */
function expectOnlyCodes(c: Campaign, allowed: readonly string[]): void {
  expect(
    [...c.rejected.keys()].filter((code) => !allowed.includes(code)),
    `${c.name}: rejections with unexpected codes`,
  ).toEqual([]);
}

/** Whether text is JSON: a config given as text that is not JSON is an INVALID_ARGUMENT, one that is, a CONFIG error. */
function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** JSON values, plus the non-JSON numbers an object config can hold. */
const configValue = fc.oneof({ weight: 5, arbitrary: jsonGarbage }, { weight: 1, arbitrary: fc.constantFrom<unknown>(NaN, Infinity, -Infinity) });
const mutatedConfig = fc
  .tuple(fc.constantFrom<unknown>(CURRENT, LEGACY, LEGACY_NESTED), fc.array(mutation(configValue, KNOWN_KEYS), { minLength: 1, maxLength: 4 }))
  .map(([base, mutations]) => applyMutations(base, mutations));

/** The state of a quantizer survives JSON: the fuzzed options must too (JSON has no -0, hence the comparison as JSON). */
function expectRestorable(q: Quantizer): void {
  const state = JSON.stringify(q.state());
  expect(JSON.stringify(Quantizer.restore(JSON.parse(state)).state())).toBe(state);
}

describe('DeepSpeed configs', () => {
  it('optionsFromDeepSpeed and Quantizer.fromDeepSpeed: mutated real configs (objects)', () => {
    const c = campaign('optionsFromDeepSpeed(mutated object)');
    fc.assert(
      fc.property(mutatedConfig, (config) => {
        const before = structuredClone(config);
        let options: unknown;
        const error = c.attempt(() => {
          options = optionsFromDeepSpeed(config);
        });
        expect(config, 'the config object is not modified').toEqual(before);
        if (error) {
          expect(error.code).toBe('CONFIG');
          return;
        }
        expect(options).toBeTypeOf('object');
        // What the reader accepted, the Quantizer takes (or rejects, by the same contract: a
        // module pattern is only compiled there).
        let q: Quantizer | undefined;
        try {
          q = Quantizer.fromDeepSpeed(config);
        } catch (e) {
          expect(contractViolation(e)).toBeNull();
        }
        if (q) expectRestorable(q);
      }),
      campaignParameters(fuzzRuns(3000)),
    );
    expect(c.accepted, 'some mutations keep a valid config').toBeGreaterThan(0);
  });

  it('Quantizer.fromDeepSpeed: JSON text, mutated and damaged', () => {
    const c = campaign('Quantizer.fromDeepSpeed(text)');
    const text = fc.oneof(
      mutatedConfig.map((config) => JSON.stringify(config) ?? 'undefined'),
      fc.constantFrom(JSON.stringify(CURRENT), JSON.stringify(LEGACY)).chain(damagedText),
      fc.string({ maxLength: 40 }),
    );
    fc.assert(
      fc.property(text, (config) => {
        let q: Quantizer | undefined;
        const error = c.attempt(() => {
          q = Quantizer.fromDeepSpeed(config);
        });
        if (error) expect(error.code, config).toBe(isJson(config) ? 'CONFIG' : 'INVALID_ARGUMENT');
        else expectRestorable(q!);
      }),
      campaignParameters(fuzzRuns(1500)),
    );
    expect(c.rejected.get('INVALID_ARGUMENT'), 'text that is not JSON is an InvalidInputError').toBeGreaterThan(0);
    expect(c.rejected.get('CONFIG'), 'JSON that is not a valid config is a ConfigError').toBeGreaterThan(0);
    expect(c.accepted, 'some mutations keep a valid config').toBeGreaterThan(0);
  });

  it('optionsFromDeepSpeed: random JSON and JavaScript values in place of the whole config', () => {
    const c = campaign('optionsFromDeepSpeed(random value)');
    const anyRoot = fc.oneof(
      fc.jsonValue(),
      hostileValue,
      // A plausible root whose MoQ section is garbage.
      fc.record({ compression_training: fc.record({ weight_quantization: hostileValue }) }),
      fc.record({ quantize_training: hostileValue, eigenvalue: hostileValue }, { requiredKeys: ['quantize_training'] }),
    );
    fc.assert(
      fc.property(anyRoot, (config) => {
        const error = c.attempt(() => optionsFromDeepSpeed(config));
        if (error) expect(error.code, 'the reader never parses text').toBe('CONFIG');
        const again = c.attempt(() => Quantizer.fromDeepSpeed(config));
        if (again) expect(again.code).toBe(typeof config === 'string' && !isJson(config) ? 'INVALID_ARGUMENT' : 'CONFIG');
      }),
      campaignParameters(fuzzRuns(1500)),
    );
    expect(c.rejected.get('CONFIG')).toBeGreaterThan(0);
    expectOnlyCodes(c, ['CONFIG', 'INVALID_ARGUMENT']);
  });
});

describe('Quantizer options and states', () => {
  it('resolveQuantizerOptions and new Quantizer: mutated options with JavaScript values', () => {
    const c = campaign('resolveQuantizerOptions');
    const options = fc.array(mutation(hostileValue, KNOWN_KEYS), { minLength: 1, maxLength: 3 }).map((mutations) => applyMutations(QUANTIZER_OPTIONS, mutations));
    fc.assert(
      fc.property(options, (o) => {
        const error = c.attempt(() => resolveQuantizerOptions(o as never));
        let q: Quantizer | undefined;
        const again = c.attempt(() => {
          q = new Quantizer(o as never);
        });
        // (The constructor defaults a missing argument to {}.)
        if (o !== undefined) expect(again?.code, 'the constructor validates as resolveQuantizerOptions does').toBe(error?.code);
        expect(error?.code ?? 'accepted', 'options are checked by the config reader alone').toBe(error ? 'CONFIG' : 'accepted');
        if (q) expectRestorable(q);
      }),
      campaignParameters(fuzzRuns(2000)),
    );
    expect(c.accepted).toBeGreaterThan(0);
    expect(c.rejected.get('CONFIG')).toBeGreaterThan(0);
  });

  it('Quantizer.restore: mutated saved states', async () => {
    const c = campaign('Quantizer.restore');
    const backend = await WasmBackend.create('simd');
    const q = new Quantizer(QUANTIZER_OPTIONS as never, { backend });
    const params: Parameter[] = [
      { name: 'layer.0.weight', shape: [4, 8], data: Float32Array.from({ length: 32 }, (_, i) => Math.sin(i)) },
      { name: 'layer.0.bias', shape: [8], data: new Float32Array(8) },
    ];
    for (let step = 0; step < 9; step++) await q.step([params]);
    const saved = JSON.parse(JSON.stringify(q.state()));
    const states = fc
      .array(mutation(hostileValue, [...KNOWN_KEYS, 'format', 'qsteps', 'ratio', 'offsetSteps', 'quantized']), { minLength: 1, maxLength: 3 })
      .map((mutations) => applyMutations(saved, mutations));
    await fc.assert(
      fc.asyncProperty(states, async (state) => {
        let restored: Quantizer | undefined;
        const error = c.attempt(() => {
          restored = Quantizer.restore(state as QuantizerState, { backend });
        });
        // The state's own fields are InvalidInputErrors; its options are read as configs are.
        if (error) expect(['INVALID_ARGUMENT', 'CONFIG']).toContain(error.code);
        // A state that restore() accepted can run: the steps that follow fail only for a reason in
        // the data (one that names the parameter), and every state on the way saves and restores.
        if (restored) {
          expectRestorable(restored);
          const copy = params.map((p) => ({ ...p, data: p.data.slice() }));
          for (let step = 0; step < 3; step++) {
            const error = await c.attemptAsync(() => restored!.step([copy], { eigenvalueEnabled: true, blockEigenvalue: { 'layer.0.weight': [1e308, 0] } }));
            if (error) expect(error.message, 'a failed step names the parameter').toMatch(/^parameter "layer\.0\.weight"/);
            expectRestorable(restored);
          }
        }
      }),
      campaignParameters(fuzzRuns(1000)),
    );
    expect(c.accepted, 'some mutations keep a state that restores').toBeGreaterThan(0);
    expect(c.rejected.get('INVALID_ARGUMENT')).toBeGreaterThan(0);
    expectOnlyCodes(c, ['INVALID_ARGUMENT', 'CONFIG', 'GROUPS_DO_NOT_DIVIDE', 'NON_FINITE']);
  });
});

/** Options for tensors of `length` elements (at 1 and 2 bits only some pass); mutations start from these. */
const validOptions = (length: number): fc.Arbitrary<FakeQuantizeOptions> =>
  fc.record(
    {
      bits: fc.integer({ min: 1, max: 16 }),
      groups: fc.constantFrom(...[1, 2, 3, 4, 6].filter((g) => length % g === 0)),
      type: fc.constantFrom('symmetric', 'asymmetric'),
      rounding: fc.constantFrom('nearest', 'stochastic'),
      seed: fc.nat(),
      step: fc.nat(),
      tensorId: fc.nat(),
      blendRatio: fc.double({ min: 0, max: 1, noNaN: true }),
    },
    { requiredKeys: ['bits'] },
  );

const FAKE_QUANTIZE_KEYS = ['bits', 'groups', 'groupSize', 'type', 'rounding', 'seed', 'step', 'tensorId', 'blendRatio'];

/** Float32Arrays in appearance only: a fresh one each time (detaching and revoking are for good). */
const IMPOSTORS: (() => unknown)[] = [
  () => new Proxy(new Float32Array(8), {}),
  () => {
    const { proxy, revoke } = Proxy.revocable(new Float32Array(8), {});
    revoke();
    return proxy;
  },
  () => Object.create(Float32Array.prototype),
  () =>
    new (class extends Float32Array {
      override get length() {
        return 64;
      }
    })(8),
  () => {
    const array = new Float32Array(8);
    structuredClone(array.buffer, { transfer: [array.buffer] });
    return array;
  },
];

/**
 * A call's data and options: valid ones, then mutated. Values stay below 1e30 in magnitude
 * (the asymmetric range overflow at ±FLT_MAX is pinned in edges.test.ts); NaN and ±Inf
 * appear so that NON_FINITE rejections are fuzzed too.
 */
const fakeQuantizeCall = fc.integer({ min: 1, max: 48 }).chain((length) =>
  fc.record({
    data: fc
      .oneof({ weight: 8, arbitrary: fc.float({ min: Math.fround(-1e30), max: Math.fround(1e30), noNaN: true }) }, { weight: 1, arbitrary: fc.constantFrom(NaN, Infinity, -Infinity, -0, 1e-45) })
      .chain((value) =>
        fc.array(fc.oneof({ weight: 20, arbitrary: fc.float({ min: -4, max: 4, noNaN: true }) }, { weight: 1, arbitrary: fc.constant(value) }), { minLength: length, maxLength: length }),
      ),
    options: fc.tuple(validOptions(length), fc.array(mutation(hostileValue, FAKE_QUANTIZE_KEYS), { maxLength: 2 })).map(([options, mutations]) => applyMutations(options, mutations)),
    // Now and then something else is passed as the data.
    notAnArray: fc.oneof(
      { weight: 14, arbitrary: fc.constant(null) },
      { weight: 1, arbitrary: fc.constantFrom<unknown>(null, undefined, [1, 2], new Float64Array(4), new Uint8Array(4), 'data', {}).map((value) => ({ value })) },
      { weight: 1, arbitrary: fc.constantFrom(...IMPOSTORS).map((make) => ({ value: make() })) },
    ),
  }),
);

/** What a fakeQuantize call may be refused with: the data or the options are wrong, nothing else. */
const FAKE_QUANTIZE_CODES = ['INVALID_ARGUMENT', 'WRONG_DTYPE', 'EMPTY_TENSOR', 'GROUPS_DO_NOT_DIVIDE', 'NON_FINITE'];

/** Runs one fuzzed call; checks the contract and that a rejected call left the data as it was. */
type FuzzedCall = { data: number[]; options: unknown; notAnArray: { value: unknown } | null };

async function fuzzFakeQuantize(c: Campaign, backend: Backend, call: FuzzedCall): Promise<void> {
  const data = Float32Array.from(call.data);
  const before = data.slice();
  const error = await c.attemptAsync(() => backend.fakeQuantize((call.notAnArray ? call.notAnArray.value : data) as Float32Array, call.options as FakeQuantizeOptions));
  if (error) {
    expect(new Uint8Array(data.buffer), `${error.code}: the data is untouched`).toEqual(new Uint8Array(before.buffer));
  } else {
    expect(data.every(Number.isFinite), 'finite input, finite output').toBe(true);
  }
}

describe.each(['simd', 'scalar'] as const)('fakeQuantize options and data (wasm %s)', (build) => {
  let backend: WasmBackend;
  beforeAll(async () => {
    backend = await WasmBackend.create(build);
  });

  it('one tensor: valid options, mutated', async () => {
    const c = campaign(`fakeQuantize(wasm ${build})`);
    await fc.assert(
      fc.asyncProperty(fakeQuantizeCall, (call) => fuzzFakeQuantize(c, backend, call)),
      campaignParameters(fuzzRuns(1500)),
    );
    expect(c.rejected.get('NON_FINITE')).toBeGreaterThan(0);
    expect(c.rejected.get('WRONG_DTYPE')).toBeGreaterThan(0);
    expect(c.accepted).toBeGreaterThan(0);
    expectOnlyCodes(c, FAKE_QUANTIZE_CODES);
  });

  it('fakeQuantizeMany: one bad job leaves every job untouched', async () => {
    const c = campaign(`fakeQuantizeMany(wasm ${build})`);
    await fc.assert(
      fc.asyncProperty(fc.array(fakeQuantizeCall, { minLength: 1, maxLength: 4 }), async (calls) => {
        const arrays = calls.map((call) => Float32Array.from(call.data));
        const before = arrays.map((a) => a.slice());
        const jobs = calls.map((call, i) => ({ data: (call.notAnArray ? call.notAnArray.value : arrays[i]) as Float32Array, options: call.options as FakeQuantizeOptions }));
        const error = await c.attemptAsync(() => backend.fakeQuantizeMany(jobs));
        if (error) arrays.forEach((a, i) => expect(new Uint8Array(a.buffer)).toEqual(new Uint8Array(before[i]!.buffer)));
      }),
      campaignParameters(fuzzRuns(800)),
    );
    expect(c.accepted).toBeGreaterThan(0);
    expect(c.rejected.get('NON_FINITE')).toBeGreaterThan(0);
    expectOnlyCodes(c, FAKE_QUANTIZE_CODES);
  });
});

describe.skipIf(!gpuAvailable)('fakeQuantize options and data (WebGPU)', () => {
  let backend: WebGpuBackend;
  beforeAll(async () => {
    backend = await WebGpuBackend.create({ gpu: testGpu() });
  });
  afterAll(() => backend?.dispose());

  // SwiftShader is slow: few runs, the validation itself is shared with WebAssembly.
  it('one tensor: valid options, mutated', async () => {
    const c = campaign('fakeQuantize(webgpu)');
    await fc.assert(
      fc.asyncProperty(fakeQuantizeCall, (call) => fuzzFakeQuantize(c, backend, call)),
      campaignParameters(fuzzRuns(40, 0.01)),
    );
    expect(backend.activeKind, 'no fuzzed call broke the device').toBe('webgpu');
    expect(c.accepted).toBeGreaterThan(0);
    expectOnlyCodes(c, FAKE_QUANTIZE_CODES);
  });
});

describe('Quantizer.step arguments', () => {
  it('hostile parameters and step options: typed errors, data and schedule untouched', async () => {
    const c = campaign('Quantizer.step');
    const backend = await WasmBackend.create('simd');
    const names = fc.oneof(fc.constantFrom('layer.0.weight', 'layer.1.weight', 'head.weight', ...PROTOTYPE_NAMES), fc.string({ maxLength: 6 }));
    const parameter = fc.record({
      name: names,
      rows: fc.integer({ min: 1, max: 4 }),
      cols: fc.constantFrom(4, 8),
      mutations: fc.array(mutation(hostileValue, ['name', 'shape', 'data']), { maxLength: 1 }),
    });
    const stepOptions = fc.oneof(
      fc.constant(undefined),
      fc.record(
        {
          overflow: fc.oneof(fc.boolean(), hostileValue),
          eigenvalueEnabled: fc.oneof(fc.boolean(), hostileValue),
          blockEigenvalue: fc.oneof(fc.dictionary(names, fc.oneof(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.nat(12)), fc.constant(null), hostileValue), { maxKeys: 3 }), hostileValue),
        },
        { requiredKeys: [] },
      ),
      hostileValue,
    );
    await fc.assert(
      fc.asyncProperty(fc.array(parameter, { minLength: 1, maxLength: 3 }), stepOptions, fc.integer({ min: 0, max: 12 }), async (specs, options, warmSteps) => {
        const q = new Quantizer(QUANTIZER_OPTIONS as never, { backend });
        const params = specs.map(({ name, rows, cols, mutations }, i) =>
          applyMutations({ name, shape: [rows, cols], data: Float32Array.from({ length: rows * cols }, (_, j) => Math.cos(i + j)) }, mutations),
        ) as Parameter[];
        const arrays = params.map((p) => (p?.data instanceof Float32Array ? p.data : null));
        // Mid-schedule: some steps first (they may fail too).
        for (let s = 0; s < warmSteps; s++) await q.step(params).catch(() => undefined);
        const before = { state: q.state(), data: arrays.map((a) => a?.slice()) };
        const error = await c.attemptAsync(() => q.step(params, options as never));
        if (error) {
          expect(q.state(), `${error.code}: the schedule is untouched`).toEqual(before.state);
          arrays.forEach((a, i) => {
            if (a) expect(new Uint8Array(a.buffer)).toEqual(new Uint8Array(before.data[i]!.buffer));
          });
        }
      }),
      campaignParameters(fuzzRuns(600)),
    );
    expect(c.accepted).toBeGreaterThan(0);
    expect(c.rejected.get('INVALID_ARGUMENT')).toBeGreaterThan(0);
    expectOnlyCodes(c, FAKE_QUANTIZE_CODES);
  });
});

describe('regressions found by these campaigns', () => {
  let backend: WasmBackend;
  beforeAll(async () => {
    backend = await WasmBackend.create('simd');
  });

  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  const matrix = (name: string): Parameter => ({ name, shape: [2, 4], data: Float32Array.from([1, -2, 3, -4, 0.5, 0.25, -0.125, 2]) });
  const quantizer = () => new Quantizer({ schedules: [{ startBits: 8, targetBits: 4, period: 1, modules: ['weight'] }] }, { backend });

  // Each of these threw a TypeError (or printed [object Object]) while building the message.
  it.each([
    ['bits: a null-prototype object', () => backend.fakeQuantize(new Float32Array(4), { bits: Object.create(null) }), /bits must be an integer from 1 to 16, got \{\}/],
    ['bits: a plain object', () => backend.fakeQuantize(new Float32Array(4), { bits: {} as never }), /got \{\}/],
    ['type: a BigInt', () => backend.fakeQuantize(new Float32Array(4), { bits: 8, type: 10n as never }), /type must be .* got 10/],
    ['options.type: a cyclic object', () => resolveQuantizerOptions({ type: cyclic as never }), /options.type: must be a string, got Object/],
    ['options.groups: a BigInt', () => resolveQuantizerOptions({ groups: 10n as never }), /options.groups: must be a finite number, got 10/],
    ['the whole config: null', () => optionsFromDeepSpeed(null), /^config: must be an object, got null/],
    ['the whole config: JSON text "[]"', () => Quantizer.fromDeepSpeed('[]'), /^config: must be an object, got array/],
  ] as const)('%s', async (name, call, message) => {
    const error = await (async () => {
      try {
        await call();
      } catch (e) {
        return e;
      }
    })();
    expect(contractViolation(error)).toBeNull();
    expect((error as InvalidInputError).code).toBe(name.startsWith('options.') || name.startsWith('the whole config') ? 'CONFIG' : 'INVALID_ARGUMENT');
    expect((error as Error).message).toMatch(message);
  });

  it.each([
    ['a blockEigenvalue entry that is not a pair', { blockEigenvalue: { 'layer.weight': 5 } }, /blockEigenvalue\["layer.weight"\] must be \[eigenvalue >= 0, blockId\] or null, got 5/],
    ['null step options', null, /step options must be an object/],
    ['overflow: "false" (a truthy string)', { overflow: 'false' }, /overflow must be true or false, got "false"/],
  ] as const)('step() rejects %s with a typed error', async (_name, options, message) => {
    const q = quantizer();
    const params = [matrix('layer.weight')];
    const before = params[0]!.data.slice();
    const error = await q.step(params, options as never).then(
      () => null,
      (e: unknown) => e,
    );
    expect(contractViolation(error)).toBeNull();
    expect((error as InvalidInputError).code).toBe('INVALID_ARGUMENT');
    expect((error as Error).message).toMatch(message);
    expect(params[0]!.data).toEqual(before);
    expect(q.qsteps).toBe(0);
  });

  it('parameters named after Object.prototype members get no schedule by inheritance', async () => {
    const q = quantizer();
    const params = PROTOTYPE_NAMES.map(matrix);
    const before = params.map((p) => p.data.slice());
    // "constructor" used to find Object.prototype.constructor in blockEigenvalue and throw.
    const report = await q.step(params, { blockEigenvalue: {} });
    expect(report.parameters).toEqual([]);
    params.forEach((p, i) => expect(p.data).toEqual(before[i]));
    expect(PROTOTYPE_NAMES.map((name) => q.scheduleFor(name))).toEqual(PROTOTYPE_NAMES.map(() => undefined));
  });

  it('a parameter named "__proto__" in JSON options stays a parameter, through state() and restore()', async () => {
    const options = JSON.parse('{"parameters": {"__proto__": {"startBits": 8, "targetBits": 6, "period": 1}}}');
    expect(Object.keys(resolveQuantizerOptions(options).parameters)).toEqual(['__proto__']);
    const q = new Quantizer(options, { backend });
    const params = [matrix('__proto__')];
    expect((await q.step(params)).switches.map((s) => s.bits)).toEqual([7]);
    const restored = Quantizer.restore(JSON.parse(JSON.stringify(q.state())), { backend });
    expect(restored.bitsOf('__proto__')).toBe(7);
    expect(restored.scheduleFor('__proto__')).toEqual({ startBits: 8, targetBits: 6, period: 1 });
  });

  it('a failed step registers none of its new parameters', async () => {
    const q = quantizer();
    const state = q.state();
    const bad = matrix('b.weight');
    bad.data[3] = NaN;
    const error = await q.step([matrix('a.weight'), bad]).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(InvalidInputError);
    expect((error as InvalidInputError).code).toBe('NON_FINITE');
    expect((error as Error).message).toMatch(/parameter "b.weight"\[3\] is NaN/);
    expect(q.state()).toEqual(state);
    await expect(q.step([matrix('a.weight'), { name: '', shape: [1], data: new Float32Array(1) }])).rejects.toThrow(
      expect.objectContaining({
        code: 'INVALID_ARGUMENT',
        message: 'each parameter must be { name: string, data: Float32Array, shape: number[] }.',
      }),
    );
    expect(q.state()).toEqual(state);
  });
});
