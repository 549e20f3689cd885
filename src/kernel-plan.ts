// What one fake-quantization call asks for, checked and resolved into what a kernel needs
// (KernelPlan). Every backend and the packers plan through here, before any data is touched;
// every error names the offending option.

import { describeValue, typeName } from './describe.js';
import { InvalidInputError } from './errors.js';
import { noiseKey } from './noise.js';

/** Symmetric grids are centred on 0; asymmetric grids span each group's [min, max]. */
export type QuantizationType = 'symmetric' | 'asymmetric';
/** Round to the nearest grid point, or up or down with probability given by the distance (seeded noise). */
export type Rounding = 'nearest' | 'stochastic';
/**
 * The symmetric integer grid. 'deepspeed': s = 2 * absmax / 2^b (DeepSpeed's MoQ; +absmax lands
 * one step low and the top level is never used). 'full': s = m / -2^(b-1), m the group's value of
 * largest magnitude with its sign, so m is exact and the codes span all 2^b levels (onnxruntime's
 * MatMulNBits quantizer, ggml).
 */
export type Grid = 'deepspeed' | 'full';
export const GRIDS: readonly Grid[] = ['deepspeed', 'full'];

export const MIN_BITS = 1;
export const MAX_BITS = 16;

/** One fake-quantization call: quantize and dequantize in place. */
export interface FakeQuantizeOptions {
  /** 1 (binary), 2 (ternary) or 3..16 (integer grid). */
  bits: number;
  /** Number of equal contiguous groups (default 1). Give this or `groupSize`. */
  groups?: number;
  /** Elements per group. Give this or `groups`. */
  groupSize?: number;
  type?: QuantizationType;
  /**
   * Symmetric grid at 3..16 bits (default 'deepspeed'). 'full' with type 'asymmetric' is an
   * error (the asymmetric grid already spans all levels); ternary and binary ignore it.
   */
  grid?: Grid;
  rounding?: Rounding;
  /** Stochastic rounding: the noise is a pure function of (seed, step, tensorId, index). */
  seed?: number;
  step?: number;
  tensorId?: number;
  /** Mixed-fp16 blend: y = ratio * x + (1 - ratio) * Q(x). Omit for plain quantization. */
  blendRatio?: number;
}

/** What a kernel needs, resolved and validated. `ratio`/`rest` are already float32. */
export interface KernelPlan {
  length: number;
  bits: number;
  groupCount: number;
  groupSize: number;
  asymmetric: boolean;
  /** The full symmetric grid (only ever true for symmetric 3..16 bits). */
  full: boolean;
  stochastic: boolean;
  key: number;
  blend: boolean;
  ratio: number;
  rest: number;
}

const FAKE_QUANTIZE_KEYS = new Set(['bits', 'groups', 'groupSize', 'type', 'grid', 'rounding', 'seed', 'step', 'tensorId', 'blendRatio']);

function isUint32(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 0xffffffff;
}

/**
 * Validates one call's data and options; throws before anything is touched.
 * @param data - the values to quantize: a Float32Array
 * @param options - the fakeQuantize options
 * @param label - names `data` in error messages
 * @returns the kernel's settings, resolved (groups and group size, grid, rounding key, blend ratio)
 * @throws InvalidInputError `WRONG_DTYPE`, `EMPTY_TENSOR`, `GROUPS_DO_NOT_DIVIDE` or `INVALID_ARGUMENT`, naming what is wrong
 */
export function planFakeQuantize(data: unknown, options: FakeQuantizeOptions, label = 'data'): KernelPlan {
  return planFakeQuantizeLength(float32Length(data, label), options, label);
}

const TYPED_ARRAY_PROTOTYPE = Object.getPrototypeOf(Int8Array.prototype) as object;
const typedArrayGetter = (key: PropertyKey) => Object.getOwnPropertyDescriptor(TYPED_ARRAY_PROTOTYPE, key)!.get!;
// The intrinsic getters read a typed array's internal slots: a Proxy or a subclass cannot lie to
// them, and the tag getter answers undefined (never throws) for anything that is not a typed array.
const TYPED_ARRAY_TAG = typedArrayGetter(Symbol.toStringTag);
const TYPED_ARRAY_LENGTH = typedArrayGetter('length');
const TYPED_ARRAY_BUFFER = typedArrayGetter('buffer');
const BUFFER_DETACHED = Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, 'detached')?.get;

/**
 * The number of float32 values `data` holds, after checking that it is a genuine Float32Array
 * (not a Proxy of one, nor a look-alike), that it is not detached, and that its `length` tells
 * the truth (a subclass may override it, and the kernels size their work by it).
 */
export function float32Length(data: unknown, label = 'data'): number {
  if (TYPED_ARRAY_TAG.call(data) !== 'Float32Array') {
    throw new InvalidInputError(
      'WRONG_DTYPE',
      claimsFloat32(data)
        ? `${label} passes instanceof Float32Array but is not one (a Proxy, or an object made from Float32Array.prototype); pass the Float32Array itself.`
        : `${label} must be a Float32Array, got ${typeName(data)}; convert it first (e.g. Float32Array.from(values)).`,
    );
  }
  const length = TYPED_ARRAY_LENGTH.call(data) as number;
  if (length === 0 && isDetached(TYPED_ARRAY_BUFFER.call(data) as ArrayBufferLike)) {
    throw new InvalidInputError(
      'INVALID_ARGUMENT',
      `${label} is detached: its ArrayBuffer was transferred (postMessage, structuredClone with transfer, ArrayBuffer.transfer) ` +
        'or it viewed WebAssembly memory that has grown since; pass a live array (for a WasmTensor, read tensor.array again).',
    );
  }
  let reported: unknown;
  try {
    reported = (data as Float32Array).length;
  } catch (e) {
    reported = e;
  }
  if (reported !== length) {
    throw new InvalidInputError(
      'INVALID_ARGUMENT',
      `${label} reports length ${describeValue(reported)} but holds ${length} float32 values (a subclass overriding length?); ` +
        'pass a plain Float32Array over the same memory: new Float32Array(data.buffer, data.byteOffset, n).',
    );
  }
  return length;
}

function claimsFloat32(data: unknown): boolean {
  try {
    return data instanceof Float32Array;
  } catch {
    return false; // a revoked Proxy
  }
}

function isDetached(buffer: ArrayBufferLike): boolean {
  if (BUFFER_DETACHED) return BUFFER_DETACHED.call(buffer) as boolean;
  try {
    // Without ArrayBuffer.prototype.detached (before Node 22), only a detached buffer refuses a view.
    new Uint8Array(buffer, 0, 0);
    return false;
  } catch {
    return true;
  }
}

/** The same validation for `length` float32 values held elsewhere (a GPU buffer). */
export function planFakeQuantizeLength(length: number, options: FakeQuantizeOptions, label = 'data'): KernelPlan {
  if (length === 0) {
    throw new InvalidInputError('EMPTY_TENSOR', `${label} is empty: there is nothing to quantize; skip empty tensors.`);
  }
  if (typeof options !== 'object' || options === null) {
    throw new InvalidInputError('INVALID_ARGUMENT', `options must be an object such as { bits: 8 }, got ${typeName(options)}.`);
  }
  for (const key of Object.keys(options)) {
    if (!FAKE_QUANTIZE_KEYS.has(key)) {
      throw new InvalidInputError('INVALID_ARGUMENT', `unknown option "${key}"; known options: ${[...FAKE_QUANTIZE_KEYS].join(', ')}.`);
    }
  }
  const { bits, type = 'symmetric', grid = 'deepspeed', rounding = 'nearest' } = options;
  if (typeof bits !== 'number' || !Number.isInteger(bits) || bits < MIN_BITS || bits > MAX_BITS) {
    throw new InvalidInputError('INVALID_ARGUMENT', `bits must be an integer from ${MIN_BITS} to ${MAX_BITS}, got ${describeValue(bits)}.`);
  }
  if (type !== 'symmetric' && type !== 'asymmetric') {
    throw new InvalidInputError('INVALID_ARGUMENT', `type must be "symmetric" or "asymmetric", got ${describeValue(type)}.`);
  }
  if (grid !== 'deepspeed' && grid !== 'full') {
    throw new InvalidInputError('INVALID_ARGUMENT', `grid must be "deepspeed" or "full", got ${describeValue(grid)}.`);
  }
  if (grid === 'full' && type === 'asymmetric') {
    throw new InvalidInputError('INVALID_ARGUMENT', 'grid "full" is a symmetric grid; the asymmetric grid already spans all 2^bits levels: drop grid, or use type "symmetric".');
  }
  if (rounding !== 'nearest' && rounding !== 'stochastic') {
    throw new InvalidInputError('INVALID_ARGUMENT', `rounding must be "nearest" or "stochastic", got ${describeValue(rounding)}.`);
  }
  if (bits <= 2 && (type !== 'symmetric' || rounding !== 'nearest')) {
    throw new InvalidInputError(
      'INVALID_ARGUMENT',
      `${bits === 1 ? 'binary' : 'ternary'} quantization (bits ${bits}) is symmetric with nearest rounding only ` +
        `(as in DeepSpeed), got ${type} with ${rounding} rounding; use bits >= 3 for ${type === 'asymmetric' ? 'asymmetric grids' : 'stochastic rounding'}.`,
    );
  }
  const groupCount = resolveGroupCount(length, options, label);
  for (const key of ['seed', 'step', 'tensorId'] as const) {
    if (options[key] !== undefined && !isUint32(options[key])) {
      throw new InvalidInputError('INVALID_ARGUMENT', `${key} must be an integer from 0 to 2^32-1, got ${describeValue(options[key])}.`);
    }
  }
  const blendRatio = options.blendRatio;
  if (blendRatio !== undefined && (typeof blendRatio !== 'number' || !(blendRatio >= 0 && blendRatio <= 1))) {
    throw new InvalidInputError('INVALID_ARGUMENT', `blendRatio must be a number from 0 to 1, got ${describeValue(blendRatio)}.`);
  }
  const stochastic = rounding === 'stochastic';
  return {
    length,
    bits,
    groupCount,
    groupSize: length / groupCount,
    asymmetric: type === 'asymmetric',
    full: grid === 'full' && bits >= 3,
    stochastic,
    key: stochastic ? noiseKey(options.seed ?? 0, options.step ?? 0, options.tensorId ?? 0) : 0,
    blend: blendRatio !== undefined,
    // DeepSpeed multiplies float32 tensors by the Python double ratio and (1 - ratio):
    // each factor rounds to float32 first.
    ratio: Math.fround(blendRatio ?? 1),
    rest: Math.fround(1 - (blendRatio ?? 1)),
  };
}

function resolveGroupCount(length: number, options: { groups?: number; groupSize?: number }, label: string): number {
  const { groups, groupSize } = options;
  const positiveInteger = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v > 0;
  if (groups !== undefined && !positiveInteger(groups)) {
    throw new InvalidInputError('INVALID_ARGUMENT', `groups must be a positive integer, got ${describeValue(groups)}.`);
  }
  if (groupSize !== undefined && !positiveInteger(groupSize)) {
    throw new InvalidInputError('INVALID_ARGUMENT', `groupSize must be a positive integer, got ${describeValue(groupSize)}.`);
  }
  if (groups !== undefined && groupSize !== undefined && groups * groupSize !== length) {
    throw new InvalidInputError('GROUPS_DO_NOT_DIVIDE', `groups (${groups}) x groupSize (${groupSize}) must equal the ${label} length ${length}; give only one of them.`);
  }
  const count = groups ?? (groupSize !== undefined ? length / groupSize : 1);
  if (!Number.isInteger(count) || length % count !== 0) {
    const asked = groups !== undefined ? `${groups} groups` : `groups of ${groupSize}`;
    throw new InvalidInputError(
      'GROUPS_DO_NOT_DIVIDE',
      `${label} has ${length} elements, which ${asked} do not divide evenly; ` + `choose a group count that divides ${length} (for example ${divisorsHint(length)}).`,
    );
  }
  return count;
}

function divisorsHint(n: number): string {
  const found: number[] = [];
  for (let d = 1; d <= n && found.length < 6; d++) if (n % d === 0) found.push(d);
  return found.join(', ');
}
