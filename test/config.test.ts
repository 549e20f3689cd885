// DeepSpeed configs are accepted as they are (whole ds_config.json, current and legacy forms);
// an unknown or ill-typed key is an error naming the key.

import { describe, expect, it } from 'vitest';
import { optionsFromDeepSpeed, resolveQuantizerOptions } from '../src/config.js';
import { ConfigError } from '../src/errors.js';
import { Quantizer } from '../src/quantizer.js';

const CURRENT = {
  train_batch_size: 32,
  fp16: { enabled: true },
  optimizer: { type: 'AdamW', params: { lr: 2e-5 } },
  compression_training: {
    weight_quantization: {
      shared_parameters: {
        enabled: true, quantizer_kernel: false, schedule_offset: 10, quantize_groups: 8, quantize_verbose: true,
        quantization_type: 'asymmetric', quantize_weight_in_forward: false, rounding: 'stochastic',
        fp16_mixed_quantize: { enabled: true, quantize_change_ratio: 0.05 },
      },
      different_groups: {
        wq1: { params: { start_bits: 12, target_bits: 8, quantization_period: 50 }, modules: ['attention.self', 'intermediate'] },
        wq2: { params: { start_bits: 8, target_bits: 4 }, modules: ['output'] },
      },
    },
    sparse_pruning: { shared_parameters: { enabled: false } },
  },
};

const LEGACY = {
  train_batch_size: 16,
  quantize_training: {
    enabled: true, quantize_verbose: true, quantizer_kernel: true,
    quantize_algo: { q_type: 'symmetric', rounding: 'nearest' },
    quantize_bits: { start_bits: 16, target_bits: 8 },
    quantize_schedule: { quantize_period: 400, schedule_offset: 100 },
    quantize_groups: 8,
    fp16_mixed_quantize: { enabled: false, quantize_change_ratio: 0.001 },
  },
  eigenvalue: { enabled: true, max_iter: 50, tol: 1e-2, stability: 0, gas_boundary_resolution: 1, layer_name: 'bert.encoder.layer', layer_num: 12 },
};

describe('DeepSpeed configs', () => {
  it('reads the compression_training form', () => {
    expect(optionsFromDeepSpeed(CURRENT)).toEqual({
      groups: 8, type: 'asymmetric', rounding: 'stochastic', scheduleOffset: 10, verbose: true, mixedFp16: true, changeRatio: 0.05,
      schedules: [
        { name: 'wq1', startBits: 12, targetBits: 8, period: 50, modules: ['attention.self', 'intermediate'] },
        { name: 'wq2', startBits: 8, targetBits: 4, period: 1, modules: ['output'] },
      ],
    });
  });

  it('reads the legacy quantize_training form with eigenvalue settings', () => {
    const options = optionsFromDeepSpeed(LEGACY);
    expect(options).toMatchObject({
      groups: 8, type: 'symmetric', rounding: 'nearest', scheduleOffset: 100, verbose: true, mixedFp16: false,
      schedules: [{ startBits: 16, targetBits: 8, period: 400, modules: ['*'] }],
      eigenvalue: { enabled: true, maxIter: 50, layerNum: 12 },
    });
  });

  it('matches parameters to groups by module regex, first group first', () => {
    const q = Quantizer.fromDeepSpeed(JSON.stringify(CURRENT));
    expect(q.scheduleFor('bert.layer.0.attention.self.query.weight')).toMatchObject({ startBits: 12, targetBits: 8 });
    expect(q.scheduleFor('bert.layer.0.output.dense.weight')).toMatchObject({ startBits: 8, targetBits: 4 });
    expect(q.scheduleFor('bert.embeddings.word_embeddings.weight')).toBeUndefined();
  });

  it.each([
    ['an unknown key in shared_parameters', (c: any) => { c.compression_training.weight_quantization.shared_parameters.quantize_bitz = 8; }, 'compression_training.weight_quantization.shared_parameters.quantize_bitz', /unknown key/],
    ['an ill-typed group count', (c: any) => { c.compression_training.weight_quantization.shared_parameters.quantize_groups = '8'; }, 'compression_training.weight_quantization.shared_parameters.quantize_groups', /must be a finite number/],
    ['a bad quantization type', (c: any) => { c.compression_training.weight_quantization.shared_parameters.quantization_type = 'sym'; }, 'compression_training.weight_quantization.shared_parameters.quantization_type', /must be one of "symmetric", "asymmetric"/],
    ['target bits above start bits', (c: any) => { c.compression_training.weight_quantization.different_groups.wq2.params.target_bits = 9; }, 'compression_training.weight_quantization.different_groups.wq2.params.targetBits', /above start bits/],
    ['a zero period', (c: any) => { c.compression_training.weight_quantization.different_groups.wq1.params.quantization_period = 0; }, 'compression_training.weight_quantization.different_groups.wq1.params.quantization_period', /at least 1/],
    ['bits out of range', (c: any) => { c.compression_training.weight_quantization.different_groups.wq1.params.start_bits = 32; }, 'compression_training.weight_quantization.different_groups.wq1.params.start_bits', /at most 16/],
    ['a missing start_bits', (c: any) => { delete c.compression_training.weight_quantization.different_groups.wq1.params.start_bits; }, 'compression_training.weight_quantization.different_groups.wq1.params.start_bits', /required/],
    ['an unknown key in a group', (c: any) => { c.compression_training.weight_quantization.different_groups.wq1.moduls = []; }, 'compression_training.weight_quantization.different_groups.wq1.moduls', /unknown key/],
    ['a bad module regex', (c: any) => { c.compression_training.weight_quantization.different_groups.wq1.modules = ['(']; }, 'compression_training.weight_quantization.different_groups.wq1.modules[0]', /not a valid regular expression/],
    ['a module regex that needs backtracking', (c: any) => { c.compression_training.weight_quantization.different_groups.wq2.modules = ['x', '(a)\\1']; }, 'compression_training.weight_quantization.different_groups.wq2.modules[1]', /backreference "\\1" at position 3 is not supported/],
    ['quantization disabled', (c: any) => { c.compression_training.weight_quantization.shared_parameters.enabled = false; }, 'compression_training.weight_quantization.shared_parameters.enabled', /not enabled/],
  ])('rejects %s, naming the key', (_name, mutate, key, message) => {
    const config = structuredClone(CURRENT);
    mutate(config);
    const error = (() => { try { Quantizer.fromDeepSpeed(config); } catch (e) { return e; } })();
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).key).toBe(key);
    expect((error as Error).message).toMatch(message);
  });

  it.each([
    ['legacy unknown key', { quantize_training: { enabled: true, quantize_bitz: {} } }, 'quantize_training.quantize_bitz'],
    ['legacy ill-typed rounding', { quantize_training: { enabled: true, quantize_algo: { rounding: 1 } } }, 'quantize_training.quantize_algo.rounding'],
    ['an eigenvalue key typo', { ...LEGACY, eigenvalue: { enabled: true, max_iters: 3 } }, 'eigenvalue.max_iters'],
    ['no MoQ section', { train_batch_size: 8 }, 'compression_training'],
    ['both forms', { ...LEGACY, compression_training: CURRENT.compression_training }, 'quantize_training'],
  ])('rejects %s', (_name, config, key) => {
    expect(() => optionsFromDeepSpeed(config)).toThrow(expect.objectContaining({ key }));
  });
});

describe('Quantizer options', () => {
  it('applies DeepSpeed defaults', () => {
    expect(resolveQuantizerOptions({})).toMatchObject({
      groups: 1, type: 'symmetric', rounding: 'nearest', mixedFp16: false, changeRatio: 0.001, scheduleOffset: 0, verbose: false,
    });
  });

  it.each([
    [{ groupz: 2 }, 'options.groupz'],
    [{ groups: 0 }, 'options.groups'],
    [{ changeRatio: '0.1' }, 'options.changeRatio'],
    [{ parameters: { w: { startBits: 4, targetBits: 8, period: 1 } } }, 'options.parameters.w.targetBits'],
    [{ parameters: { w: { startBits: 8, targetBits: 4, period: -1 } } }, 'options.parameters.w.period'],
    [{ schedules: [{ startBits: 8, targetBits: 4, period: 1, modulez: [] }] }, 'options.schedules[0].modulez'],
  ])('rejects %j naming %s', (options, key) => {
    expect(() => new Quantizer(options as never)).toThrow(expect.objectContaining({ key }));
  });
});
