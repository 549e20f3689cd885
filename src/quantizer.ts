// DeepSpeed's MoQ schedule (deepspeed/runtime/quantize.py, driven as its engine drives it):
// per-parameter precision that steps down one bit per period, the period doubling (times an
// eigenvalue factor) at each switch, the mixed-fp16 blend ratio, overflow steps skipped and a
// schedule offset. The arithmetic runs on a Backend; this file only decides what to run.

import type { Backend, QuantizeJob } from './backends/backend.js';
import { createBackend } from './backends/select.js';
import { compileModulePattern, optionsFromDeepSpeed, resolveQuantizerOptions, resolveSavedOptions, type ParameterSchedule, type QuantizerOptions, type ResolvedQuantizerOptions } from './config.js';
import { describeValue } from './describe.js';
import { float32Length, MAX_BITS, MIN_BITS } from './kernel-plan.js';
import { InvalidInputError } from './errors.js';
import type { NamePattern } from './name-pattern.js';
import { tensorIdOf } from './noise.js';

/** A tensor the quantizer drives: its data is quantized in place, or into `into`. */
export interface Parameter {
  name: string;
  data: Float32Array;
  shape: readonly number[];
  /**
   * Where a step writes the quantized values, in one pass, leaving `data` (a master copy) as it
   * was: a Float32Array of data's length that shares none of its memory. Untouched by a step
   * that does not quantize this parameter.
   */
  into?: Float32Array;
}

/** [normalised eigenvalue, block id] per parameter name; null or absent: none given. */
export type BlockEigenvalues = ReadonlyMap<string, readonly [number, number] | null> | Readonly<Record<string, readonly [number, number] | null>>;

/** What step() is told about the optimizer step. */
export interface StepOptions {
  /** The optimizer step overflowed: skipped (not counted) unless eigenvalues are enabled. */
  overflow?: boolean;
  eigenvalueEnabled?: boolean;
  blockEigenvalue?: BlockEigenvalues;
}

/** One precision switch: DeepSpeed's verbose line, as data. */
export interface PrecisionSwitch {
  name: string;
  bits: number;
  step: number;
  period: number;
  /** The block (layer) id the eigenvalue came from, 0 without one. */
  index: number;
}

/** What step() did. */
export interface StepReport {
  /** False when the step was skipped (overflow, or still inside the schedule offset). */
  quantized: boolean;
  qsteps: number;
  ratio: number;
  switches: PrecisionSwitch[];
  /** Names of the parameters quantized this step. */
  parameters: string[];
}

/** One parameter's schedule position, as state() saves it. */
export interface ParameterState {
  bits: number;
  targetBits: number;
  period: number;
  /** False for 1-D tensors (biases, norms): scheduled but never quantized, as in MoQ. */
  quantized: boolean;
}

const STATE_FORMAT = 'edge-moq.quantizer/1';
const STATE_KEYS = ['format', 'options', 'qsteps', 'ratio', 'offsetSteps', 'parameters'] as const;
const PARAMETER_STATE_KEYS = ['bits', 'targetBits', 'period', 'quantized'] as const;

/** What state() returns and restore() takes (`format` names its version). */
export interface QuantizerState {
  format: typeof STATE_FORMAT;
  options: ResolvedQuantizerOptions;
  qsteps: number;
  ratio: number;
  /** Non-overflow steps seen while waiting for the schedule offset. */
  offsetSteps: number;
  parameters: Record<string, ParameterState>;
}

/** Where a Quantizer runs and logs. */
export interface QuantizerRuntime {
  /** Where the arithmetic runs (default: createBackend({ kind: 'auto' }) on first use). */
  backend?: Backend;
  /** Receives DeepSpeed's verbose line at each switch when `verbose` is on (default console.log). */
  logger?: (line: string) => void;
}

/** Hears each precision switch after the step that made it. */
export type SwitchListener = (event: PrecisionSwitch) => void;

/**
 * DeepSpeed's MoQ quantizer: each step fake-quantizes the scheduled parameters at their current
 * bits, lowering them on schedule (and by eigenvalue, when given).
 */
export class Quantizer {
  readonly options: ResolvedQuantizerOptions;
  private backend: Backend | Promise<Backend> | undefined;
  private readonly logger: (line: string) => void;
  private readonly patterns: NamePattern[][];
  private readonly listeners = new Set<SwitchListener>();
  private params = new Map<string, ParameterState>();
  private _qsteps = 0;
  private _ratio = 1.0;
  private offsetSteps = 0;
  private busy = false;

  /**
   * @param options - MoQ's settings (bits schedules, groups, rounding, ...); checked here.
   * @param runtime - Where the arithmetic runs (`backend`) and where verbose lines go (`logger`).
   * @throws ConfigError or InvalidInputError naming the first option that is wrong.
   */
  constructor(options: QuantizerOptions = {}, runtime: QuantizerRuntime = {}) {
    this.options = resolveQuantizerOptions(options);
    this.patterns = this.options.schedules.map((s, i) => (s.modules ?? ['*']).map((m, j) => compileModulePattern(m, `options.schedules[${i}].modules[${j}]`)));
    this.backend = runtime.backend;
    this.logger = runtime.logger ?? ((line) => console.log(line));
  }

  /**
   * From a DeepSpeed config object (or its JSON text), current or legacy form.
   *
   * @param config - The whole DeepSpeed config, or its JSON text.
   * @param runtime - As for the constructor.
   * @returns A quantizer with the config's `compression_training` (or legacy `quantize_training`) settings.
   * @throws ConfigError naming the key that is unknown, ill-typed or out of range.
   */
  static fromDeepSpeed(config: unknown, runtime: QuantizerRuntime = {}): Quantizer {
    const parsed = typeof config === 'string' ? parseJson(config) : config;
    return new Quantizer(optionsFromDeepSpeed(parsed), runtime);
  }

  /**
   * Continues from `state()` (the object or its JSON text) exactly where it was taken. Everything
   * a step needs is checked here, each error naming the field: a state restores whole or not at all.
   *
   * @param state - What `state()` returned, or its JSON text.
   * @param runtime - As for the constructor.
   * @returns A quantizer whose next step is the one the saved quantizer would have taken.
   * @throws InvalidInputError naming the first field that is not what `state()` writes.
   */
  static restore(state: QuantizerState | string, runtime: QuantizerRuntime = {}): Quantizer {
    const parsed: unknown = typeof state === 'string' ? parseJson(state) : state;
    if (!isRecord(parsed) || parsed.format !== STATE_FORMAT) {
      throw new InvalidInputError('INVALID_ARGUMENT', `not a quantizer state: expected the object returned by quantizer.state() (format "${STATE_FORMAT}").`);
    }
    allowKeys(parsed, STATE_KEYS, 'state');
    if (parsed.options === undefined) {
      throw new InvalidInputError(
        'INVALID_ARGUMENT',
        'state.options is missing: a state restores with the options it was taken with (quantizer.state() writes them); without them it would continue under other defaults.',
      );
    }
    const q = new Quantizer(resolveSavedOptions(parsed.options, 'state.options'), runtime);
    for (const key of ['qsteps', 'offsetSteps'] as const) {
      if (!isCount(parsed[key], 0)) throw invalidState(`state.${key}`, 'an integer from 0 to 2^53-1', parsed[key]);
    }
    if (typeof parsed.ratio !== 'number' || !(parsed.ratio >= 0 && parsed.ratio <= 1)) throw invalidState('state.ratio', 'a number from 0 to 1', parsed.ratio);
    if (!isRecord(parsed.parameters)) throw invalidState('state.parameters', 'an object mapping parameter names to their schedule state', parsed.parameters);
    const { type, rounding } = q.options;
    for (const [name, p] of Object.entries(parsed.parameters)) {
      const key = `state.parameters[${JSON.stringify(name)}]`;
      if (!isRecord(p)) throw invalidState(key, '{ bits, targetBits, period, quantized }', p);
      allowKeys(p, PARAMETER_STATE_KEYS, key);
      for (const bitsKey of ['bits', 'targetBits'] as const) {
        const bits = p[bitsKey];
        if (typeof bits !== 'number' || !Number.isInteger(bits) || bits < MIN_BITS || bits > MAX_BITS) {
          throw invalidState(`${key}.${bitsKey}`, `an integer from ${MIN_BITS} to ${MAX_BITS}`, bits);
        }
      }
      if ((p.bits as number) < (p.targetBits as number)) throw invalidState(`${key}.bits`, `at least targetBits (${p.targetBits as number}): precision only steps down`, p.bits);
      if ((p.targetBits as number) <= 2 && (type !== 'symmetric' || rounding !== 'nearest')) {
        throw invalidState(`${key}.targetBits`, `at least 3 under ${type} grids with ${rounding} rounding (1 and 2 bits are symmetric nearest only)`, p.targetBits);
      }
      if (!isCount(p.period, 1)) throw invalidState(`${key}.period`, 'an integer from 1 to 2^53-1', p.period);
      if (typeof p.quantized !== 'boolean') throw invalidState(`${key}.quantized`, 'true or false', p.quantized);
      q.params.set(name, { bits: p.bits as number, targetBits: p.targetBits as number, period: p.period as number, quantized: p.quantized });
    }
    q._qsteps = parsed.qsteps as number;
    q._ratio = parsed.ratio;
    q.offsetSteps = parsed.offsetSteps as number;
    return q;
  }

  /** Quantize steps taken (DeepSpeed's qsteps). */
  get qsteps(): number {
    return this._qsteps;
  }
  /** The mixed-fp16 blend ratio (a double, as in DeepSpeed). */
  get ratio(): number {
    return this._ratio;
  }

  /** Current bits of a parameter the quantizer has seen, or undefined. */
  bitsOf(name: string): number | undefined {
    return this.params.get(name)?.bits;
  }
  /** Current switch period of a parameter the quantizer has seen, or undefined. */
  periodOf(name: string): number | undefined {
    return this.params.get(name)?.period;
  }

  /**
   * The schedule a parameter name falls under: exact `parameters` entry, else the first matching group.
   *
   * @param name - A parameter name.
   * @returns Its schedule, or undefined when no entry or group takes it (it is not quantized).
   */
  scheduleFor(name: string): ParameterSchedule | undefined {
    // Own entries only: a parameter named "constructor" or "toString" has no schedule by inheritance.
    if (Object.hasOwn(this.options.parameters, name)) return this.options.parameters[name];
    const i = this.patterns.findIndex((patterns) => patterns.some((p) => p.test(name)));
    return i < 0 ? undefined : this.options.schedules[i];
  }

  /**
   * Registers parameters ahead of the first step (step() does it on first sight too).
   *
   * @param params - The parameters, as step() takes them.
   */
  register(params: readonly Parameter[]): void {
    const fresh = new Map<string, ParameterState>();
    for (const p of params) this.stateOf(p, fresh);
    for (const [name, s] of fresh) this.params.set(name, s);
  }

  /**
   * Listens to precision switches.
   *
   * @param listener - Called after each step with every switch it made.
   * @returns A function that stops listening.
   */
  onSwitch(listener: SwitchListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Whether a precision switch is due within the next `lookahead` quantize steps: the moment to
   * refresh eigenvalues (DeepSpeed's any_precision_switch, working from per-parameter state).
   *
   * @param lookahead - How many quantize steps ahead to look (default 1).
   * @returns Whether any registered parameter changes precision within them.
   */
  anyPrecisionSwitch(lookahead = 1): boolean {
    const waiting = Math.max(0, this.options.scheduleOffset - this.offsetSteps);
    const next = this._qsteps + Math.max(0, lookahead - waiting);
    const states: ParameterState[] =
      this.params.size > 0
        ? [...this.params.values()]
        : [...Object.values(this.options.parameters), ...this.options.schedules].map((s) => ({ bits: s.startBits, targetBits: s.targetBits, period: s.period, quantized: true }));
    return states.some((s) => s.quantized && s.bits !== s.targetBits && next >= s.period);
  }

  /**
   * One optimizer step's quantization, after the optimizer updated the parameters.
   * `parameterGroups` are DeepSpeed's parameter groups in order (or one flat list).
   * On any error nothing is modified: neither the data nor the schedule.
   *
   * @param parameterGroups - DeepSpeed's parameter groups in order, or one flat list of parameters.
   * @param options - `overflow` (the step overflowed: skipped), `eigenvalueEnabled`, `blockEigenvalue`.
   * @returns What the step did: whether it quantized, the counters, the switches, the parameters quantized.
   * @throws InvalidInputError for malformed parameters or options; a backend's NON_FINITE error
   *   names the parameter (`parameter "name"[i] is NaN`) and `location` gives `{ job, index, group }`,
   *   `job` counting the quantized parameters of the step in order.
   */
  async step(parameterGroups: readonly (readonly Parameter[])[] | readonly Parameter[], options: StepOptions = {}): Promise<StepReport> {
    if (this.busy) {
      throw new InvalidInputError('INVALID_ARGUMENT', 'a step is already running on this quantizer; await it before the next one.');
    }
    const groups = normaliseGroups(parameterGroups);
    const { overflow = false, eigenvalueEnabled = false, blockEigenvalue } = validateStepOptions(options);
    // Parameters seen for the first time join the schedule only if the step succeeds.
    const fresh = new Map<string, ParameterState>();
    for (const group of groups) for (const param of group) this.stateOf(param, fresh);
    const skipped = (): StepReport => {
      for (const [name, s] of fresh) this.params.set(name, s);
      return { quantized: false, qsteps: this._qsteps, ratio: this._ratio, switches: [], parameters: [] };
    };
    if (overflow && !eigenvalueEnabled) return skipped();
    if (this.offsetSteps < this.options.scheduleOffset) {
      if (!overflow) this.offsetSteps++;
      return skipped();
    }

    // Work on copies: the schedule commits only once the backend has succeeded.
    const qsteps = this._qsteps + 1;
    let ratio = this.options.mixedFp16 ? Math.max(0, this._ratio - this.options.changeRatio) : this._ratio;
    const next = new Map<string, ParameterState>();
    const switches: PrecisionSwitch[] = [];
    const jobs: QuantizeJob[] = [];
    const names: string[] = [];
    for (const group of groups) {
      for (const param of group) {
        const current = this.stateOf(param, fresh);
        if (!current?.quantized) continue;
        const s = { ...(next.get(param.name) ?? current) };
        const eigen = lookupEigenvalue(blockEigenvalue, param.name);
        if (s.bits !== s.targetBits && qsteps >= s.period) {
          ratio = 1.0;
          // Capped at 2^53-1, which no step count reaches: a larger eigenvalue factor (or an
          // Infinity from 1e308) would leave a period that is not an exact integer in JSON.
          s.period = Math.min(s.period * 2 * (eigen ? 1 + Math.floor(4 * eigen[0]) : 1), Number.MAX_SAFE_INTEGER);
          s.bits -= 1;
          switches.push({ name: param.name, bits: s.bits, step: qsteps, period: s.period, index: eigen ? eigen[1] : 0 });
        }
        next.set(param.name, s);
        names.push(param.name);
        jobs.push({
          data: param.data,
          into: param.into,
          label: `parameter "${param.name}"`,
          options: {
            bits: s.bits,
            groups: this.options.groups,
            type: this.options.type,
            rounding: this.options.rounding,
            seed: this.options.seed,
            step: qsteps >>> 0,
            tensorId: tensorIdOf(param.name),
            ...(this.options.mixedFp16 ? { blendRatio: ratio } : {}),
          },
        });
      }
    }

    this.busy = true;
    try {
      if (jobs.length > 0) await (await this.resolveBackend()).fakeQuantizeMany(jobs);
    } finally {
      this.busy = false;
    }

    this._qsteps = qsteps;
    this._ratio = ratio;
    for (const [name, s] of fresh) this.params.set(name, s);
    for (const [name, s] of next) this.params.set(name, s);
    for (const event of switches) {
      if (this.options.verbose) {
        this.logger(`Quantization settings: current bit-precision = ${event.bits}, step = ${event.step}, quantization period = ${event.period}, index = ${event.index}`);
      }
      for (const listener of this.listeners) listener(event);
    }
    return { quantized: true, qsteps, ratio, switches, parameters: names };
  }

  /**
   * A JSON-serialisable snapshot.
   *
   * @returns The state Quantizer.restore(state) continues the same trajectory from.
   */
  state(): QuantizerState {
    return {
      format: STATE_FORMAT,
      options: structuredClone(this.options),
      qsteps: this._qsteps,
      ratio: this._ratio,
      offsetSteps: this.offsetSteps,
      parameters: Object.fromEntries([...this.params].map(([name, s]) => [name, { ...s }])),
    };
  }

  /** @returns state(), so JSON.stringify(quantizer) saves it. */
  toJSON(): QuantizerState {
    return this.state();
  }

  /**
   * The backend in use (created on first use when none was given).
   *
   * @returns The runtime's backend, or the one createBackend({ kind: 'auto' }) gave.
   */
  async resolveBackend(): Promise<Backend> {
    this.backend ??= createBackend({ kind: 'auto' });
    // biome-ignore lint/suspicious/noAssignInExpressions: the assignment inside the expression keeps the main bundles, at their 75 KB budget, from growing
    return (this.backend = await this.backend);
  }

  /** A parameter's state; one seen for the first time is put in `fresh` (the caller commits it). */
  private stateOf(param: Parameter, fresh: Map<string, ParameterState>): ParameterState | undefined {
    validateParameter(param);
    const known = this.params.get(param.name) ?? fresh.get(param.name);
    if (known) return known;
    const schedule = this.scheduleFor(param.name);
    if (!schedule) return undefined;
    const s = { bits: schedule.startBits, targetBits: schedule.targetBits, period: schedule.period, quantized: param.shape.length > 1 };
    fresh.set(param.name, s);
    return s;
  }
}

function normaliseGroups(groups: readonly (readonly Parameter[])[] | readonly Parameter[]): readonly (readonly Parameter[])[] {
  if (!Array.isArray(groups)) {
    throw new InvalidInputError('INVALID_ARGUMENT', 'parameterGroups must be an array of parameters, or an array of arrays of parameters.');
  }
  return groups.every((g) => Array.isArray(g)) ? (groups as readonly (readonly Parameter[])[]) : [groups as readonly Parameter[]];
}

function validateStepOptions(options: StepOptions): StepOptions {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidInputError('INVALID_ARGUMENT', `step options must be an object such as { overflow: false }, got ${describeValue(options)}.`);
  }
  // A truthy string such as "false" must not skip a step.
  for (const key of ['overflow', 'eigenvalueEnabled'] as const) {
    if (options[key] !== undefined && typeof options[key] !== 'boolean') {
      throw new InvalidInputError('INVALID_ARGUMENT', `step option ${key} must be true or false, got ${describeValue(options[key])}.`);
    }
  }
  return options;
}

function validateParameter(param: Parameter): void {
  if (typeof param !== 'object' || param === null || typeof param.name !== 'string' || param.name === '') {
    throw new InvalidInputError('INVALID_ARGUMENT', 'each parameter must be { name: string, data: Float32Array, shape: number[] }.');
  }
  if (!Array.isArray(param.shape) || param.shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new InvalidInputError('INVALID_ARGUMENT', `parameter "${param.name}": shape must be a list of non-negative integers.`);
  }
  const length = float32Length(param.data, `parameter "${param.name}": data`);
  const size = param.shape.reduce((a, b) => a * b, 1);
  if (size !== length) {
    throw new InvalidInputError('INVALID_ARGUMENT', `parameter "${param.name}": shape [${param.shape.join(', ')}] holds ${size} elements but data has ${length}.`);
  }
}

function lookupEigenvalue(map: BlockEigenvalues | undefined, name: string): readonly [number, number] | null {
  if (!map) return null;
  // Own entries only: "constructor" or "toString" must not find Object.prototype's.
  const entry: unknown = map instanceof Map ? map.get(name) : Object.hasOwn(map, name) ? (map as Record<string, unknown>)[name] : undefined;
  if (entry === undefined || entry === null) return null;
  const [eigenvalue, block] = Array.isArray(entry) ? entry : [];
  if (typeof eigenvalue !== 'number' || !(eigenvalue >= 0) || !Number.isFinite(eigenvalue) || !Number.isInteger(block)) {
    throw new InvalidInputError('INVALID_ARGUMENT', `blockEigenvalue["${name}"] must be [eigenvalue >= 0, blockId] or null, got ${describeValue(entry)}.`);
  }
  return [eigenvalue, block as number];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isCount(value: unknown, min: number): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= min;
}

function allowKeys(value: Record<string, unknown>, known: readonly string[], key: string): void {
  for (const k of Object.keys(value)) {
    if (!known.includes(k)) throw new InvalidInputError('INVALID_ARGUMENT', `${key}.${k} is not part of a quantizer state; known keys: ${known.join(', ')}.`);
  }
}

function invalidState(key: string, expected: string, got: unknown): InvalidInputError {
  return new InvalidInputError('INVALID_ARGUMENT', `${key} must be ${expected}, got ${describeValue(got)}; restore takes the state quantizer.state() wrote.`);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new InvalidInputError('INVALID_ARGUMENT', `not valid JSON: ${(e as Error).message}`);
  }
}
