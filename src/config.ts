// Quantizer options and DeepSpeed configs. Everything a user hands us is checked here, before
// any data is touched; every error names the offending key. (One call's options are planned in
// kernel-plan.ts.)

import { describeValue, typeName } from './describe.js';
import { ConfigError } from './errors.js';
import { compileNamePattern, type NamePattern } from './name-pattern.js';
import { MAX_BITS, MIN_BITS, type QuantizationType, type Rounding } from './kernel-plan.js';

/** A parameter's precision schedule: start at `startBits`, drop one bit per period to `targetBits`. */
export interface ParameterSchedule {
  startBits: number;
  targetBits: number;
  /** Steps before the first switch; doubles (times the eigenvalue factor) after each switch. */
  period: number;
}

/** DeepSpeed's `different_groups` entry: a schedule for the parameters whose name matches. */
export interface ScheduleGroup extends ParameterSchedule {
  name?: string;
  /** Regular expressions searched in the parameter name; "*" (the default) matches every name. */
  modules?: string[];
}

/** DeepSpeed's eigenvalue settings, kept for the training integration. */
export interface EigenvalueOptions {
  enabled: boolean;
  verbose: boolean;
  maxIter: number;
  tol: number;
  stability: number;
  gasBoundaryResolution: number;
  layerName: string;
  layerNum: number;
}

/** The Quantizer's settings: DeepSpeed's MoQ options under their camelCase names (optionsFromDeepSpeed reads a DeepSpeed config into them). */
export interface QuantizerOptions {
  /** quantize_groups: equal groups per tensor (default 1). */
  groups?: number;
  type?: QuantizationType;
  rounding?: Rounding;
  /** fp16_mixed_quantize: blend the input back in with a ratio that decays by `changeRatio`. */
  mixedFp16?: boolean;
  changeRatio?: number;
  /** Non-overflow steps to wait before quantization starts. */
  scheduleOffset?: number;
  /** Log DeepSpeed's line at every precision switch. */
  verbose?: boolean;
  /** Seed for stochastic rounding. */
  seed?: number;
  /** Explicit per-parameter schedules, by exact name; take precedence over `schedules`. */
  parameters?: Record<string, ParameterSchedule>;
  /** Schedules by name pattern, first match wins (DeepSpeed's different_groups, in order). */
  schedules?: ScheduleGroup[];
  eigenvalue?: Partial<EigenvalueOptions>;
}

/** Quantizer options with every default filled in and every value checked. */
export interface ResolvedQuantizerOptions {
  groups: number;
  type: QuantizationType;
  rounding: Rounding;
  mixedFp16: boolean;
  changeRatio: number;
  scheduleOffset: number;
  verbose: boolean;
  seed: number;
  parameters: Record<string, ParameterSchedule>;
  schedules: ScheduleGroup[];
  eigenvalue: EigenvalueOptions;
}

export const EIGENVALUE_DEFAULTS: EigenvalueOptions = {
  enabled: false,
  verbose: false,
  maxIter: 100,
  tol: 1e-2,
  stability: 1e-6,
  gasBoundaryResolution: 1,
  layerName: 'bert.encoder.layer',
  layerNum: 0,
};

// A small reader that checks types and rejects unknown keys, naming the dotted path.
class Section {
  constructor(
    readonly value: Record<string, unknown>,
    readonly path: string,
  ) {}

  static of(value: unknown, path: string): Section {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      // The root has no dotted path: call it "config" so the message still names what is wrong.
      throw new ConfigError(path || 'config', `must be an object, got ${Array.isArray(value) ? 'array' : typeName(value)}.`);
    }
    return new Section(value as Record<string, unknown>, path);
  }

  key(name: string): string {
    return this.path ? `${this.path}.${name}` : name;
  }

  allow(known: readonly string[]): this {
    for (const k of Object.keys(this.value)) {
      if (!known.includes(k)) throw new ConfigError(this.key(k), `unknown key; known keys here: ${known.join(', ')}.`);
    }
    return this;
  }

  has(name: string): boolean {
    return this.value[name] !== undefined;
  }

  section(name: string): Section | undefined {
    return this.has(name) ? Section.of(this.value[name], this.key(name)) : undefined;
  }

  bool(name: string, fallback: boolean): boolean {
    const v = this.value[name];
    if (v === undefined) return fallback;
    if (typeof v !== 'boolean') throw new ConfigError(this.key(name), `must be true or false, got ${describeValue(v)}.`);
    return v;
  }

  number(name: string, fallback: number, check: { integer?: boolean; min?: number; max?: number; above?: number } = {}): number {
    const v = this.value[name];
    if (v === undefined) return fallback;
    return checkNumber(v, this.key(name), check);
  }

  string<T extends string>(name: string, fallback: T, allowed?: readonly T[]): T {
    const v = this.value[name];
    if (v === undefined) return fallback;
    if (typeof v !== 'string') throw new ConfigError(this.key(name), `must be a string, got ${describeValue(v)}.`);
    if (allowed && !allowed.includes(v as T)) {
      throw new ConfigError(this.key(name), `must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}, got ${describeValue(v)}.`);
    }
    return v as T;
  }

  strings(name: string, fallback: string[]): string[] {
    const v = this.value[name];
    if (v === undefined || v === null) return fallback;
    if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) {
      throw new ConfigError(this.key(name), `must be a list of strings, got ${describeValue(v)}.`);
    }
    return v as string[];
  }
}

function checkNumber(v: unknown, key: string, check: { integer?: boolean; min?: number; max?: number; above?: number }): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ConfigError(key, `must be a finite number, got ${describeValue(v)}.`);
  // Safe integers only: a larger one is not exact in JSON, and a period that large is never reached.
  if (check.integer && !Number.isSafeInteger(v)) throw new ConfigError(key, `must be an integer (at most 2^53-1), got ${v}.`);
  if (check.min !== undefined && v < check.min) throw new ConfigError(key, `must be at least ${check.min}, got ${v}.`);
  if (check.max !== undefined && v > check.max) throw new ConfigError(key, `must be at most ${check.max}, got ${v}.`);
  if (check.above !== undefined && !(v > check.above)) throw new ConfigError(key, `must be greater than ${check.above}, got ${v}.`);
  return v;
}

/** Checks one schedule; `key` names it in errors. */
export function validateSchedule(schedule: ParameterSchedule, key: string): ParameterSchedule {
  const s = Section.of(schedule, key);
  const startBits = checkNumber(s.value.startBits, s.key('startBits'), { integer: true, min: MIN_BITS, max: MAX_BITS });
  const targetBits = checkNumber(s.value.targetBits, s.key('targetBits'), { integer: true, min: MIN_BITS, max: MAX_BITS });
  const period = checkNumber(s.value.period, s.key('period'), { integer: true, min: 1 });
  if (targetBits > startBits) {
    throw new ConfigError(s.key('targetBits'), `target bits (${targetBits}) are above start bits (${startBits}): MoQ only steps precision down; swap them.`);
  }
  return { startBits, targetBits, period };
}

const QUANTIZER_KEYS = ['groups', 'type', 'rounding', 'mixedFp16', 'changeRatio', 'scheduleOffset', 'verbose', 'seed', 'parameters', 'schedules', 'eigenvalue'] as const;
const EIGENVALUE_KEYS = ['enabled', 'verbose', 'maxIter', 'tol', 'stability', 'gasBoundaryResolution', 'layerName', 'layerNum'] as const;

/** Fills defaults and checks every key; `path` names the options in errors ("options.groups"). */
export function resolveQuantizerOptions(options: QuantizerOptions, path = 'options'): ResolvedQuantizerOptions {
  const o = Section.of(options, path).allow(QUANTIZER_KEYS);
  const type = o.string<QuantizationType>('type', 'symmetric', ['symmetric', 'asymmetric']);
  const rounding = o.string<Rounding>('rounding', 'nearest', ['nearest', 'stochastic']);
  const p = o.section('parameters');
  // Binary and ternary grids are symmetric with nearest rounding: a schedule that would reach
  // them under other settings would fail every step from its switch on, so it is refused now.
  const grid = (schedule: ParameterSchedule, key: string): ParameterSchedule => {
    if (schedule.targetBits <= 2 && (type !== 'symmetric' || rounding !== 'nearest')) {
      throw new ConfigError(
        `${key}.targetBits`,
        `${schedule.targetBits} bits (${schedule.targetBits === 1 ? 'binary' : 'ternary'}) ` +
          `are symmetric with nearest rounding only, and the options say ${type} with ${rounding} rounding; use targetBits >= 3.`,
      );
    }
    return schedule;
  };
  // fromEntries defines own properties: a parameter named "__proto__" stays a parameter.
  const parameters: Record<string, ParameterSchedule> = Object.fromEntries(
    Object.entries(p?.value ?? {}).map(([name, schedule]) => [name, grid(validateSchedule(schedule as ParameterSchedule, p!.key(name)), p!.key(name))]),
  );
  const schedules: ScheduleGroup[] = [];
  const list = o.value.schedules;
  if (list !== undefined) {
    if (!Array.isArray(list)) throw new ConfigError(o.key('schedules'), 'must be a list of { startBits, targetBits, period, modules? }.');
    list.forEach((entry: ScheduleGroup, i) => {
      const key = `${o.key('schedules')}[${i}]`;
      const e = Section.of(entry, key).allow(['name', 'startBits', 'targetBits', 'period', 'modules']);
      const modules = e.strings('modules', ['*']);
      modules.forEach((m, j) => compileModulePattern(m, `${key}.modules[${j}]`));
      schedules.push({ ...grid(validateSchedule(entry, key), key), name: e.string('name', `group${i}`), modules });
    });
  }
  const ev = o.section('eigenvalue')?.allow(EIGENVALUE_KEYS);
  const d = EIGENVALUE_DEFAULTS;
  return {
    groups: o.number('groups', 1, { integer: true, min: 1 }),
    type,
    rounding,
    mixedFp16: o.bool('mixedFp16', false),
    changeRatio: o.number('changeRatio', 0.001, { min: 0, max: 1 }),
    scheduleOffset: o.number('scheduleOffset', 0, { integer: true, min: 0 }),
    verbose: o.bool('verbose', false),
    seed: o.number('seed', 0, { integer: true, min: 0, max: 0xffffffff }),
    parameters,
    schedules,
    eigenvalue: {
      enabled: ev?.bool('enabled', d.enabled) ?? d.enabled,
      verbose: ev?.bool('verbose', d.verbose) ?? d.verbose,
      maxIter: ev?.number('maxIter', d.maxIter, { integer: true, min: 1 }) ?? d.maxIter,
      tol: ev?.number('tol', d.tol, { above: 0 }) ?? d.tol,
      stability: ev?.number('stability', d.stability, { min: 0 }) ?? d.stability,
      gasBoundaryResolution: ev?.number('gasBoundaryResolution', d.gasBoundaryResolution, { integer: true, min: 1 }) ?? d.gasBoundaryResolution,
      layerName: ev?.string('layerName', d.layerName) ?? d.layerName,
      layerNum: ev?.number('layerNum', d.layerNum, { integer: true, min: 0 }) ?? d.layerNum,
    },
  };
}

/**
 * The options inside a saved quantizer state: resolved ones, so every key must be present (a
 * missing one would silently continue under its default), and each is checked as usual.
 */
export function resolveSavedOptions(options: unknown, path: string): ResolvedQuantizerOptions {
  const requireAll = (section: Section, keys: readonly string[]) => {
    for (const key of keys) {
      if (!Object.hasOwn(section.value, key)) {
        throw new ConfigError(section.key(key), 'is missing: a saved state holds every option, as quantizer.state() writes them.');
      }
    }
    return section;
  };
  const o = requireAll(Section.of(options, path), QUANTIZER_KEYS);
  requireAll(Section.of(o.value.eigenvalue, o.key('eigenvalue')), EIGENVALUE_KEYS);
  return resolveQuantizerOptions(options as QuantizerOptions, path);
}

const EVERY_NAME: NamePattern = { source: '*', flags: '', test: () => true };

/**
 * DeepSpeed searches module patterns in parameter names (re.search); "*" means every module.
 * Patterns run on the linear-time matcher (src/name-pattern.ts): a pattern it cannot run in
 * linear time is a ConfigError naming `key` and the position.
 */
export function compileModulePattern(pattern: string, key = 'modules'): NamePattern {
  if (pattern === '*') return EVERY_NAME;
  return compileNamePattern(pattern, key, (problem) => new ConfigError(key, problem));
}

// ---------------------------------------------------------------------------------------------
// DeepSpeed configs, accepted as they are: the whole ds_config.json may be given. Sections other
// than weight quantization and eigenvalue belong to DeepSpeed's engine and are not read.

const SHARED_KEYS = [
  'enabled',
  'quantizer_kernel',
  'schedule_offset',
  'quantize_groups',
  'quantize_verbose',
  'quantization_type',
  'rounding',
  'quantize_weight_in_forward',
  'fp16_mixed_quantize',
] as const;
const MIXED_KEYS = ['enabled', 'quantize_change_ratio'] as const;
const GROUP_KEYS = ['params', 'modules', 'related_modules'] as const;
const GROUP_PARAM_KEYS = ['start_bits', 'target_bits', 'quantization_period'] as const;
const LEGACY_KEYS = ['enabled', 'quantize_verbose', 'quantizer_kernel', 'quantize_bits', 'quantize_schedule', 'quantize_groups', 'fp16_mixed_quantize', 'quantize_algo', 'eigenvalue'] as const;
const DS_EIGENVALUE_KEYS = ['enabled', 'verbose', 'max_iter', 'tol', 'stability', 'gas_boundary_resolution', 'layer_name', 'layer_num'] as const;

/**
 * Reads a DeepSpeed config (current `compression_training` or legacy `quantize_training`).
 * @param config - the parsed DeepSpeed JSON, as a whole (the section is found inside it)
 * @returns the equivalent Quantizer options
 * @throws ConfigError naming the key that is unknown, missing or out of range
 */
export function optionsFromDeepSpeed(config: unknown): QuantizerOptions {
  const root = Section.of(config, '');
  const compression = root.section('compression_training');
  const weight = compression?.section('weight_quantization');
  const legacy = root.section('quantize_training');
  if (weight && legacy) {
    throw new ConfigError('quantize_training', 'both compression_training.weight_quantization and the legacy quantize_training are given; keep one.');
  }
  let options: QuantizerOptions;
  if (weight) options = fromCompressionTraining(weight.allow(['shared_parameters', 'different_groups']));
  else if (legacy) options = fromLegacy(legacy.allow(LEGACY_KEYS));
  else throw new ConfigError('compression_training', 'no MoQ section found: expected compression_training.weight_quantization or quantize_training.');
  const eigen = root.section('eigenvalue') ?? legacy?.section('eigenvalue');
  if (eigen) options.eigenvalue = eigenvalueFrom(eigen.allow(DS_EIGENVALUE_KEYS));
  return options;
}

function mixedFrom(s: Section | undefined): { mixedFp16: boolean; changeRatio: number } {
  const m = s?.allow(MIXED_KEYS);
  return {
    mixedFp16: m?.bool('enabled', false) ?? false,
    changeRatio: m?.number('quantize_change_ratio', 0.001, { min: 0, max: 1 }) ?? 0.001,
  };
}

function fromCompressionTraining(weight: Section): QuantizerOptions {
  const shared = weight.section('shared_parameters')?.allow(SHARED_KEYS) ?? Section.of({}, weight.key('shared_parameters'));
  if (!shared.bool('enabled', false)) {
    throw new ConfigError(shared.key('enabled'), 'weight quantization is not enabled; set it to true to run MoQ.');
  }
  // quantizer_kernel selects DeepSpeed's CUDA kernel; our backends compute the torch-path math either way.
  shared.bool('quantizer_kernel', false);
  shared.bool('quantize_weight_in_forward', false);
  const groups = weight.section('different_groups');
  if (!groups || Object.keys(groups.value).length === 0) {
    throw new ConfigError(weight.key('different_groups'), 'must list at least one group with params { start_bits, target_bits, quantization_period }.');
  }
  const schedules: ScheduleGroup[] = Object.keys(groups.value).map((name) => {
    const g = groups.section(name)!.allow(GROUP_KEYS);
    const params = g.section('params');
    if (!params) throw new ConfigError(g.key('params'), 'is required: { start_bits, target_bits, quantization_period }.');
    params.allow(GROUP_PARAM_KEYS);
    for (const required of ['start_bits', 'target_bits']) {
      if (!params.has(required)) throw new ConfigError(params.key(required), 'is required.');
    }
    g.strings('related_modules', []);
    const modules = g.strings('modules', ['*']);
    modules.forEach((m, j) => compileModulePattern(m, g.key(`modules[${j}]`)));
    return {
      name,
      startBits: params.number('start_bits', 0, { integer: true, min: MIN_BITS, max: MAX_BITS }),
      targetBits: params.number('target_bits', 0, { integer: true, min: MIN_BITS, max: MAX_BITS }),
      period: params.number('quantization_period', 1, { integer: true, min: 1 }),
      modules,
    };
  });
  schedules.forEach((s) => validateSchedule(s, groups.key(`${s.name}.params`)));
  return {
    groups: shared.number('quantize_groups', 1, { integer: true, min: 1 }),
    type: shared.string<QuantizationType>('quantization_type', 'symmetric', ['symmetric', 'asymmetric']),
    rounding: shared.string<Rounding>('rounding', 'nearest', ['nearest', 'stochastic']),
    scheduleOffset: shared.number('schedule_offset', 0, { integer: true, min: 0 }),
    verbose: shared.bool('quantize_verbose', false),
    ...mixedFrom(shared.section('fp16_mixed_quantize')),
    schedules,
  };
}

function fromLegacy(legacy: Section): QuantizerOptions {
  if (!legacy.bool('enabled', false)) {
    throw new ConfigError(legacy.key('enabled'), 'quantize_training is not enabled; set it to true to run MoQ.');
  }
  legacy.bool('quantizer_kernel', false);
  const bits = legacy.section('quantize_bits')?.allow(['start_bits', 'target_bits']);
  const schedule = legacy.section('quantize_schedule')?.allow(['quantize_period', 'schedule_offset']);
  const algo = legacy.section('quantize_algo')?.allow(['q_type', 'rounding']);
  const startBits = bits?.number('start_bits', 16, { integer: true, min: MIN_BITS, max: MAX_BITS }) ?? 16;
  const targetBits = bits?.number('target_bits', 8, { integer: true, min: MIN_BITS, max: MAX_BITS }) ?? 8;
  const period = schedule?.number('quantize_period', 1000, { integer: true, min: 1 }) ?? 1000;
  validateSchedule({ startBits, targetBits, period }, legacy.key('quantize_bits'));
  return {
    groups: legacy.number('quantize_groups', 1, { integer: true, min: 1 }),
    type: algo?.string<QuantizationType>('q_type', 'symmetric', ['symmetric', 'asymmetric']) ?? 'symmetric',
    rounding: algo?.string<Rounding>('rounding', 'nearest', ['nearest', 'stochastic']) ?? 'nearest',
    scheduleOffset: schedule?.number('schedule_offset', 1000, { integer: true, min: 0 }) ?? 1000,
    verbose: legacy.bool('quantize_verbose', false),
    ...mixedFrom(legacy.section('fp16_mixed_quantize')),
    schedules: [{ name: 'all', startBits, targetBits, period, modules: ['*'] }],
  };
}

function eigenvalueFrom(e: Section): EigenvalueOptions {
  const d = EIGENVALUE_DEFAULTS;
  return {
    enabled: e.bool('enabled', d.enabled),
    verbose: e.bool('verbose', d.verbose),
    maxIter: e.number('max_iter', d.maxIter, { integer: true, min: 1 }),
    tol: e.number('tol', d.tol, { above: 0 }),
    stability: e.number('stability', d.stability, { min: 0 }),
    gasBoundaryResolution: e.number('gas_boundary_resolution', d.gasBoundaryResolution, { integer: true, min: 1 }),
    layerName: e.string('layer_name', d.layerName),
    layerNum: e.number('layer_num', d.layerNum, { integer: true, min: 0 }),
  };
}
