// DeepSpeed configs are accepted as they are (whole ds_config.json, current and legacy forms);
// an unknown or ill-typed key is an error naming the key. The configs and what they must give
// are data (test/cases/deepspeed-configs.json); the Quantizer options are checked here, each
// default and each bound by hand.

import { describe, expect, it } from 'vitest';
import { compileModulePattern, optionsFromDeepSpeed, type QuantizerOptions, resolveQuantizerOptions, resolveSavedOptions, validateSchedule } from '../src/config.js';
import { ConfigError } from '../src/errors.js';
import { Quantizer } from '../src/quantizer.js';
import { ACCEPTED, baseConfig, caseConfig, REJECTED } from './cases/deepspeed-configs.js';
import { thrown } from './support/thrown.js';

/** A ConfigError naming `key`, with the whole message `${key}: ${message}`. */
function expectConfigError(call: () => unknown, key: string, message: string): void {
  const error = thrown(call);
  expect(error).toBeInstanceOf(ConfigError);
  expect((error as ConfigError).code).toBe('CONFIG');
  expect((error as ConfigError).key).toBe(key);
  expect((error as Error).message).toBe(`${key}: ${message}`);
}

/** The linear-time matcher's refusal of "(a)\1", after the pattern. */
const BACKREFERENCE =
  'backreference "\\1" at position 3 is not supported (it needs backtracking); names are matched in linear time, without backtracking; ' +
  'supported: literals, . \\d \\w \\s \\D \\W \\S \\t \\n \\r \\xHH \\uHHHH, \\ before punctuation, [...] [^...] with ranges, ^ $, (...) (?:...), |, * + ? {m} {m,} {m,n} (lazy too), flag i.';

const DEFAULTS = {
  groups: 1,
  type: 'symmetric',
  rounding: 'nearest',
  mixedFp16: false,
  changeRatio: 0.001,
  scheduleOffset: 0,
  verbose: false,
  seed: 0,
  parameters: {},
  schedules: [],
  eigenvalue: { enabled: false, verbose: false, maxIter: 100, tol: 0.01, stability: 1e-6, gasBoundaryResolution: 1, layerName: 'bert.encoder.layer', layerNum: 0 },
};

describe('DeepSpeed configs (test/cases/deepspeed-configs.json)', () => {
  it.each(ACCEPTED.map((c) => [c.name, c] as const))('reads %s', (_name, c) => {
    const config = caseConfig(c);
    const before = structuredClone(config);
    expect(optionsFromDeepSpeed(config)).toEqual(c.options);
    expect(config, 'the config is only read').toEqual(before);
    // The Quantizer takes what the reader gives, defaults filled in.
    const resolved = new Quantizer(optionsFromDeepSpeed(config)).options;
    expect(resolved).toEqual({
      ...DEFAULTS,
      ...c.options,
      schedules: c.options.schedules!.map((s) => ({ ...s })),
      eigenvalue: { ...DEFAULTS.eigenvalue, ...c.options.eigenvalue },
    });
  });

  it.each(REJECTED.map((c) => [c.name, c] as const))('rejects %s, naming the key', (_name, c) => {
    const error = thrown(() => optionsFromDeepSpeed(caseConfig(c)));
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).code).toBe(c.code);
    expect((error as ConfigError).key).toBe(c.key);
    if (c.message !== undefined) expect((error as Error).message).toBe(c.message);
    else expect((error as Error).message.startsWith(c.messagePrefix!), (error as Error).message).toBe(true);
    // JSON text is parsed and read the same way.
    const again = thrown(() => Quantizer.fromDeepSpeed(JSON.stringify(caseConfig(c))));
    expect(again).toBeInstanceOf(ConfigError);
    expect((again as Error).message).toBe((error as Error).message);
  });

  it('matches parameters to groups by module regex, first group first', () => {
    const q = Quantizer.fromDeepSpeed(JSON.stringify(baseConfig('current')));
    const wq1 = { name: 'wq1', startBits: 12, targetBits: 8, period: 50, modules: ['attention.self', 'intermediate'] };
    expect(q.scheduleFor('bert.layer.0.attention.self.query.weight')).toEqual(wq1);
    expect(q.scheduleFor('bert.layer.0.intermediate.dense.weight')).toEqual(wq1);
    expect(q.scheduleFor('bert.layer.0.output.dense.weight')).toEqual({ name: 'wq2', startBits: 8, targetBits: 4, period: 1, modules: ['output'] });
    expect(q.scheduleFor('bert.embeddings.word_embeddings.weight')).toBeUndefined();
  });

  it('JSON text that is not JSON is an InvalidInputError, not a ConfigError', () => {
    const error = thrown(() => Quantizer.fromDeepSpeed('{"quantize_training": '));
    expect(error).not.toBeInstanceOf(ConfigError);
    expect((error as ConfigError).code).toBe('INVALID_ARGUMENT');
  });
});

describe('Quantizer options', () => {
  it('fills every default', () => {
    expect(resolveQuantizerOptions({})).toEqual(DEFAULTS);
  });

  it('keeps every option given, at its bounds', () => {
    const options: QuantizerOptions = {
      groups: 2 ** 53 - 1,
      type: 'asymmetric',
      rounding: 'stochastic',
      mixedFp16: true,
      changeRatio: 1,
      scheduleOffset: 2 ** 53 - 1,
      verbose: true,
      seed: 0xffffffff,
      parameters: { 'head.weight': { startBits: 16, targetBits: 3, period: 1 } },
      schedules: [
        { startBits: 8, targetBits: 4, period: 7, modules: ['layer\\.\\d+', 'embed'] },
        { name: 'rest', startBits: 16, targetBits: 16, period: 2 ** 53 - 1 },
      ],
      eigenvalue: { enabled: true, verbose: true, maxIter: 1, tol: 1e-300, stability: 0, gasBoundaryResolution: 1, layerName: 'h', layerNum: 0 },
    };
    expect(resolveQuantizerOptions(options)).toEqual({
      ...options,
      parameters: { 'head.weight': { startBits: 16, targetBits: 3, period: 1 } },
      schedules: [
        { name: 'group0', startBits: 8, targetBits: 4, period: 7, modules: ['layer\\.\\d+', 'embed'] },
        { name: 'rest', startBits: 16, targetBits: 16, period: 2 ** 53 - 1, modules: ['*'] },
      ],
    });
    expect(resolveQuantizerOptions({ changeRatio: 0, eigenvalue: { layerNum: 3 } })).toEqual({
      ...DEFAULTS,
      changeRatio: 0,
      eigenvalue: { ...DEFAULTS.eigenvalue, layerNum: 3 },
    });
  });

  it('binary and ternary schedules need symmetric nearest rounding; at 3 bits anything goes', () => {
    const schedule = { startBits: 8, targetBits: 3, period: 1 };
    expect(resolveQuantizerOptions({ type: 'asymmetric', rounding: 'stochastic', schedules: [schedule] }).schedules[0]!.targetBits).toBe(3);
    expect(resolveQuantizerOptions({ schedules: [{ ...schedule, targetBits: 1 }] }).schedules[0]!.targetBits).toBe(1);
    expectConfigError(
      () => resolveQuantizerOptions({ type: 'asymmetric', schedules: [{ ...schedule, targetBits: 2 }] }),
      'options.schedules[0].targetBits',
      '2 bits (ternary) are symmetric with nearest rounding only, and the options say asymmetric with nearest rounding; use targetBits >= 3.',
    );
    expectConfigError(
      () => resolveQuantizerOptions({ rounding: 'stochastic', parameters: { w: { ...schedule, targetBits: 1 } } }),
      'options.parameters.w.targetBits',
      '1 bits (binary) are symmetric with nearest rounding only, and the options say symmetric with stochastic rounding; use targetBits >= 3.',
    );
  });

  it.each([
    [{ groupz: 2 }, 'options.groupz', 'unknown key; known keys here: groups, type, rounding, mixedFp16, changeRatio, scheduleOffset, verbose, seed, parameters, schedules, eigenvalue.'],
    [{ groups: 0 }, 'options.groups', 'must be at least 1, got 0.'],
    [{ groups: 2 ** 53 }, 'options.groups', 'must be an integer (at most 2^53-1), got 9007199254740992.'],
    [{ groups: Infinity }, 'options.groups', 'must be a finite number, got Infinity.'],
    [{ changeRatio: '0.1' }, 'options.changeRatio', 'must be a finite number, got "0.1".'],
    [{ changeRatio: 1.0001 }, 'options.changeRatio', 'must be at most 1, got 1.0001.'],
    [{ changeRatio: -1e-9 }, 'options.changeRatio', 'must be at least 0, got -1e-9.'],
    [{ scheduleOffset: -1 }, 'options.scheduleOffset', 'must be at least 0, got -1.'],
    [{ seed: 2 ** 32 }, 'options.seed', 'must be at most 4294967295, got 4294967296.'],
    [{ seed: -1 }, 'options.seed', 'must be at least 0, got -1.'],
    [{ seed: 0.5 }, 'options.seed', 'must be an integer (at most 2^53-1), got 0.5.'],
    [{ verbose: 1 }, 'options.verbose', 'must be true or false, got 1.'],
    [{ mixedFp16: 'yes' }, 'options.mixedFp16', 'must be true or false, got "yes".'],
    [{ type: 'sym' }, 'options.type', 'must be one of "symmetric", "asymmetric", got "sym".'],
    [{ rounding: 'up' }, 'options.rounding', 'must be one of "nearest", "stochastic", got "up".'],
    [{ parameters: [] }, 'options.parameters', 'must be an object, got array.'],
    [{ parameters: { w: { startBits: 4, targetBits: 8, period: 1 } } }, 'options.parameters.w.targetBits', 'target bits (8) are above start bits (4): MoQ only steps precision down; swap them.'],
    [{ parameters: { w: { startBits: 8, targetBits: 4, period: -1 } } }, 'options.parameters.w.period', 'must be at least 1, got -1.'],
    [{ parameters: { w: { startBits: 17, targetBits: 4, period: 1 } } }, 'options.parameters.w.startBits', 'must be at most 16, got 17.'],
    [{ parameters: { w: { startBits: 8, targetBits: 0, period: 1 } } }, 'options.parameters.w.targetBits', 'must be at least 1, got 0.'],
    [{ parameters: { w: null } }, 'options.parameters.w', 'must be an object, got null.'],
    [{ schedules: {} }, 'options.schedules', 'must be a list of { startBits, targetBits, period, modules? }.'],
    [{ schedules: [{ startBits: 8, targetBits: 4, period: 1, modulez: [] }] }, 'options.schedules[0].modulez', 'unknown key; known keys here: name, startBits, targetBits, period, modules.'],
    [
      {
        schedules: [
          { startBits: 8, targetBits: 4, period: 1 },
          { startBits: 8, targetBits: 4, period: 0 },
        ],
      },
      'options.schedules[1].period',
      'must be at least 1, got 0.',
    ],
    [{ schedules: [{ startBits: 8, targetBits: 4, period: 1, modules: 'layer' }] }, 'options.schedules[0].modules', 'must be a list of strings, got "layer".'],
    [{ schedules: [{ startBits: 8, targetBits: 4, period: 1, name: 3 }] }, 'options.schedules[0].name', 'must be a string, got 3.'],
    [{ eigenvalue: { maxIter: 0 } }, 'options.eigenvalue.maxIter', 'must be at least 1, got 0.'],
    [{ eigenvalue: { tol: 0 } }, 'options.eigenvalue.tol', 'must be greater than 0, got 0.'],
    [{ eigenvalue: { stability: -1 } }, 'options.eigenvalue.stability', 'must be at least 0, got -1.'],
    [{ eigenvalue: { gasBoundaryResolution: 0 } }, 'options.eigenvalue.gasBoundaryResolution', 'must be at least 1, got 0.'],
    [{ eigenvalue: { layerNum: -1 } }, 'options.eigenvalue.layerNum', 'must be at least 0, got -1.'],
    [{ eigenvalue: { layerName: 1 } }, 'options.eigenvalue.layerName', 'must be a string, got 1.'],
    [{ eigenvalue: { enabled: 'no' } }, 'options.eigenvalue.enabled', 'must be true or false, got "no".'],
    [{ eigenvalue: { verbose: 0 } }, 'options.eigenvalue.verbose', 'must be true or false, got 0.'],
    [{ scheduleOffset: 0.5 }, 'options.scheduleOffset', 'must be an integer (at most 2^53-1), got 0.5.'],
    [{ groups: 1.5 }, 'options.groups', 'must be an integer (at most 2^53-1), got 1.5.'],
    [{ eigenvalue: { maxIter: 1.5 } }, 'options.eigenvalue.maxIter', 'must be an integer (at most 2^53-1), got 1.5.'],
    [{ eigenvalue: { gasBoundaryResolution: 2.5 } }, 'options.eigenvalue.gasBoundaryResolution', 'must be an integer (at most 2^53-1), got 2.5.'],
    [{ eigenvalue: { layerNum: 0.5 } }, 'options.eigenvalue.layerNum', 'must be an integer (at most 2^53-1), got 0.5.'],
    [{ parameters: { w: { startBits: 8.5, targetBits: 4, period: 1 } } }, 'options.parameters.w.startBits', 'must be an integer (at most 2^53-1), got 8.5.'],
    [{ parameters: { w: { startBits: 8, targetBits: 4.5, period: 1 } } }, 'options.parameters.w.targetBits', 'must be an integer (at most 2^53-1), got 4.5.'],
    [{ parameters: { w: { startBits: 8, targetBits: 4, period: 1.5 } } }, 'options.parameters.w.period', 'must be an integer (at most 2^53-1), got 1.5.'],
    [{ schedules: [{ startBits: 8, targetBits: 4, period: 1, modules: ['w', '(a)\\1'] }] }, 'options.schedules[0].modules[1]', `"(a)\\\\1": ${BACKREFERENCE}`],
    [{ eigenvalue: { max_iter: 3 } }, 'options.eigenvalue.max_iter', 'unknown key; known keys here: enabled, verbose, maxIter, tol, stability, gasBoundaryResolution, layerName, layerNum.'],
  ])('rejects %j naming %s', (options, key, message) => {
    expectConfigError(() => resolveQuantizerOptions(options as never), key, message);
    expectConfigError(() => new Quantizer(options as never), key, message);
  });

  it('names the path it is given', () => {
    expectConfigError(() => resolveQuantizerOptions({ groups: 0 }, 'state.options'), 'state.options.groups', 'must be at least 1, got 0.');
    expectConfigError(() => resolveQuantizerOptions(null as never), 'options', 'must be an object, got null.');
  });
});

describe('saved options', () => {
  const saved = () => JSON.parse(JSON.stringify(resolveQuantizerOptions({ seed: 9 })));

  it('take every key present, checked as usual', () => {
    expect(resolveSavedOptions(saved(), 'state.options')).toEqual({ ...DEFAULTS, seed: 9 });
    const bad = saved();
    bad.seed = -1;
    expectConfigError(() => resolveSavedOptions(bad, 'state.options'), 'state.options.seed', 'must be at least 0, got -1.');
  });

  it.each([
    ['seed', 'state.options.seed'],
    ['verbose', 'state.options.verbose'],
  ])('refuse a missing %s', (key, path) => {
    const options = saved();
    delete options[key];
    expectConfigError(() => resolveSavedOptions(options, 'state.options'), path, 'is missing: a saved state holds every option, as quantizer.state() writes them.');
  });

  it('refuse a missing eigenvalue key', () => {
    const options = saved();
    delete options.eigenvalue.layerNum;
    expectConfigError(() => resolveSavedOptions(options, 'state.options'), 'state.options.eigenvalue.layerNum', 'is missing: a saved state holds every option, as quantizer.state() writes them.');
  });

  it('refuse options or an eigenvalue section that are not objects', () => {
    expectConfigError(() => resolveSavedOptions(7, 's'), 's', 'must be an object, got number.');
    const options = saved();
    options.eigenvalue = [];
    expectConfigError(() => resolveSavedOptions(options, 's'), 's.eigenvalue', 'must be an object, got array.');
  });
});

describe('schedules and module patterns', () => {
  it('validateSchedule keeps the three fields and drops the rest', () => {
    expect(validateSchedule({ startBits: 16, targetBits: 1, period: 1, name: 'x' } as never, 'k')).toEqual({ startBits: 16, targetBits: 1, period: 1 });
    expect(validateSchedule({ startBits: 5, targetBits: 5, period: 3 }, 'k')).toEqual({ startBits: 5, targetBits: 5, period: 3 });
    expectConfigError(() => validateSchedule({ startBits: 5, targetBits: 6, period: 3 }, 'k'), 'k.targetBits', 'target bits (6) are above start bits (5): MoQ only steps precision down; swap them.');
    expectConfigError(() => validateSchedule({ startBits: 5, targetBits: 5 } as never, 'k'), 'k.period', 'must be a finite number, got undefined.');
  });

  it('"*" matches every name; other patterns are searched in the name', () => {
    const every = compileModulePattern('*');
    expect(['', 'a.weight', '*'].map((n) => every.test(n))).toEqual([true, true, true]);
    const layer = compileModulePattern('layer\\.\\d');
    expect(['x.layer.3.w', 'layer.x', 'LAYER.3'].map((n) => layer.test(n))).toEqual([true, false, false]);
    expectConfigError(() => compileModulePattern('(a)\\1', 'm'), 'm', `"(a)\\\\1": ${BACKREFERENCE}`);
    expect((thrown(() => compileModulePattern('(a)\\1')) as ConfigError).key).toBe('modules');
  });
});
