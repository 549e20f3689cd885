// Typed errors. Every error says what was wrong and what to do; none is thrown after the
// caller's data has been touched.

/** What kind of error: every EdgeMoqError has one. */
export type ErrorCode =
  | 'INVALID_ARGUMENT' // bad option: bits, groups, type, rounding, seed...
  | 'WRONG_DTYPE' // data is not a Float32Array
  | 'EMPTY_TENSOR'
  | 'GROUPS_DO_NOT_DIVIDE'
  | 'NON_FINITE' // NaN or ±Inf in the data
  | 'INVALID_SCHEDULE' // target above start, non-positive period...
  | 'CONFIG' // a DeepSpeed/options key that is unknown or ill-typed
  | 'BACKEND_UNAVAILABLE'
  | 'DEVICE_LOST'
  | 'CONFORMANCE_FILE'
  | 'MALFORMED_FILE' // a safetensors file (or packed metadata) that does not follow its format
  | 'IO'; // reading or writing a file failed

/** Where in the data an error was found, for callers that add their own context (a tensor name). */
export interface ErrorLocation {
  /** The job (position in the list fakeQuantizeMany was given; 0 for single-tensor calls). */
  job?: number;
  /** The element index within the data or tensor the call was given. */
  index?: number;
  /** The group index within it. */
  group?: number;
}

/** Every error edge-moq throws: `code` says what kind, `location` (where known) where in the data. */
export class EdgeMoqError extends Error {
  readonly code: ErrorCode;
  readonly location: ErrorLocation | undefined;
  /**
   * @param code - What kind of error.
   * @param message - What was wrong and what to do.
   * @param options - The `cause`, and where in the data (`location`).
   */
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; location?: ErrorLocation }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.location = options?.location;
  }
}

/** The data or the per-call options are not acceptable. */
export class InvalidInputError extends EdgeMoqError {}

/** A configuration key is unknown, ill-typed or out of range; `key` is its dotted path. */
export class ConfigError extends EdgeMoqError {
  readonly key: string;
  /**
   * @param key - The dotted path of the key, e.g. `compression_training.weight_quantization`.
   * @param message - What is wrong with it.
   */
  constructor(key: string, message: string) {
    super('CONFIG', `${key}: ${message}`);
    this.key = key;
  }
}

/** The requested backend cannot run in this runtime, or failed while running. */
export class BackendError extends EdgeMoqError {}

/** A file is not what its format says it must be: the message names the field and the offset. */
export class FormatError extends EdgeMoqError {
  /**
   * @param message - The field and offset, and what was found there.
   * @param options - The `cause`, and where (`location`).
   */
  constructor(message: string, options?: { cause?: unknown; location?: ErrorLocation }) {
    super('MALFORMED_FILE', message, options);
  }
}

/**
 * A NaN or ±Inf found by a backend or packer: `label` names the tensor as the caller did
 * (`data`, `jobs[2].data`, a QuantizeJob's label), `value` is what was found there.
 *
 * @param label - The tensor's name in the message.
 * @param value - What was found.
 * @param location - The job, element and group.
 * @param packing - Whether the call packs (the message says what needs finite values).
 * @param outcome - What the call left as it was (default: nothing was modified).
 * @returns The InvalidInputError (NON_FINITE) to throw.
 */
export function nonFiniteError(label: string, value: unknown, location: { job: number; index: number; group: number }, packing = false, outcome = 'Nothing was modified.'): InvalidInputError {
  const need = packing ? 'packing needs finite values.' : 'quantization needs finite values (a NaN/Inf usually means an overflowed step; skip it with overflow: true).';
  return new InvalidInputError('NON_FINITE', `${label}[${location.index}] is ${value}: ${need} ${outcome}`, { location });
}
