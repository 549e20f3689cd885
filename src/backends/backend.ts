// The one interface every backend implements. Async throughout so a GPU backend fits unchanged.

import { float32Length, type FakeQuantizeOptions } from '../kernel-plan.js';
import { describeValue } from '../describe.js';
import { InvalidInputError } from '../errors.js';

/** A backend: WebAssembly with SIMD, scalar WebAssembly, or WebGPU. */
export type BackendKind = 'wasm-simd' | 'wasm' | 'webgpu';
/** What createBackend takes: a kind, or 'auto' for the best this runtime offers. */
export type BackendRequest = BackendKind | 'auto';

/** One tensor of a fakeQuantizeMany call. */
export interface QuantizeJob {
  data: Float32Array;
  options: FakeQuantizeOptions;
  /**
   * How error messages name this tensor (default `data`, or `jobs[i].data` in a list of
   * several); Quantizer passes `parameter "name"`. Errors also carry `location.job`, `i`.
   */
  label?: string;
  /**
   * Where the result goes, out of place: `data` is only read. Checked as fakeQuantize's
   * `{ into }` (same length, no memory shared with `data`), and like every job's data it is
   * written only after all jobs passed validation.
   */
  into?: Float32Array | undefined;
}

/** Why a backend was picked, and why each other candidate was not. */
export interface SelectionReport {
  requested: BackendRequest;
  picked: BackendKind;
  candidates: { kind: BackendKind; available: boolean; picked: boolean; reason: string }[];
  /** Further lines for explain(): how calls are routed, the adapter in use. */
  notes?: string[];
}

/** Where an out-of-place fakeQuantize writes its result. */
export interface FakeQuantizeTarget {
  /** Receives the quantized values: a Float32Array of the source's length that shares none of its memory. */
  into: Float32Array;
}

/** min, max, abs-max and mean |x| per group. */
export interface GroupStats {
  min: Float32Array;
  max: Float32Array;
  absMax: Float32Array;
  meanAbs: Float32Array;
}

/** Where fake quantization runs: from createBackend(), or WasmBackend/WebGpuBackend.create(). */
export interface Backend {
  /** The backend that runs calls (AutoBackend: the one that ran the most recent call). */
  readonly kind: BackendKind;
  /** Why createBackend picked this backend (for one created directly: requested explicitly). */
  readonly selection: SelectionReport;
  /**
   * Quantizes `data` in place (fake quantization: the values stay float32) and resolves to it.
   * With `{ into }`, `data` is only read: the result is written to `into` (same length as
   * `data`, not overlapping it, else an InvalidInputError) and the promise resolves to `into`.
   * One pass: `data` is never modified, but on a NaN/Inf in `data` (an InvalidInputError)
   * `into` may already hold the results of the groups before it. In place, an error leaves
   * `data` as it was.
   */
  /**
   * @param data - The float32 values.
   * @param options - Bits, groups, type, rounding... (FakeQuantizeOptions).
   * @param target - `{ into }` to write the result there instead of over `data`.
   * @returns `data` (in place) or `into`.
   * @throws InvalidInputError: bad options or data, NON_FINITE with `location: { job: 0, index, group }`.
   */
  fakeQuantize(data: Float32Array, options: FakeQuantizeOptions, target?: FakeQuantizeTarget): Promise<Float32Array>;
  /**
   * Quantizes several tensors as one operation (a parameter group in one submission).
   * All inputs are validated before any is touched: on error, none is modified.
   *
   * @param jobs - The tensors, each with its options and optional label.
   * @throws InvalidInputError naming the job by its label; NON_FINITE's `location.job` is its position.
   */
  fakeQuantizeMany(jobs: readonly QuantizeJob[]): Promise<void>;
  /**
   * @param data - The float32 values (left untouched).
   * @param options - How they are grouped: `groups` or `groupSize`.
   * @returns min, max, abs-max and mean |x| of each group.
   */
  groupStats(data: Float32Array, options: { groups?: number; groupSize?: number }): Promise<GroupStats>;
  /** @returns A readable account of the selection: every candidate, and why it was or was not picked. */
  explain(): string;
  /** Frees what the backend holds (its memory, buffers, device if it opened one); later calls throw. */
  dispose(): void;
}

/** The name a job's errors give its tensor: its label, else `data` or `jobs[i].data`. */
export function jobLabel(jobs: readonly QuantizeJob[], i: number): string {
  const label = jobs[i]?.label;
  if (label === undefined) return jobs.length === 1 ? 'data' : `jobs[${i}].data`;
  if (typeof label !== 'string') {
    throw new InvalidInputError('INVALID_ARGUMENT', `jobs[${i}].label must be a string, got ${describeValue(label)}.`);
  }
  return label;
}

/** The array `{ into }` names, checked: a Float32Array of `length` values sharing no memory with `data`. */
export function targetArray(data: Float32Array, target: FakeQuantizeTarget, length: number, name = 'into', dataName = 'data'): Float32Array {
  const into = (target as Partial<FakeQuantizeTarget> | null)?.into as Float32Array;
  const intoLength = float32Length(into, name);
  if (intoLength !== length) {
    throw new InvalidInputError('INVALID_ARGUMENT', `${name} holds ${intoLength} float32 values but ${dataName} holds ${length}; pass an output of the same length.`);
  }
  if (into.buffer === data.buffer && into.byteOffset < data.byteOffset + data.byteLength && data.byteOffset < into.byteOffset + into.byteLength) {
    throw new InvalidInputError('INVALID_ARGUMENT', `${name} overlaps ${dataName}; pass separate memory, or quantize in place without into.`);
  }
  return into;
}

/** Job i's `into`, checked (targetArray), or undefined for a job quantized in place. */
export function jobTarget(jobs: readonly QuantizeJob[], i: number, length: number, label: string): Float32Array | undefined {
  const job = jobs[i]!;
  if (job.into === undefined) return undefined;
  const name = job.label !== undefined ? `the into of ${label}` : jobs.length === 1 ? 'into' : `jobs[${i}].into`;
  return targetArray(job.data, job as FakeQuantizeTarget, length, name, label);
}

// createBackend's reports, kept beside the backends it made rather than written into them.
const reports = new WeakMap<Backend, SelectionReport>();

/** Records why createBackend picked `backend`. */
export function recordSelection<B extends Backend>(backend: B, report: SelectionReport): B {
  reports.set(backend, report);
  return backend;
}

/** What createBackend recorded for `backend`, else a report that it was requested explicitly. */
export function selectionOf(backend: Backend): SelectionReport {
  const { kind } = backend;
  return reports.get(backend) ?? { requested: kind, picked: kind, candidates: [{ kind, available: true, picked: true, reason: 'requested explicitly' }] };
}

/**
 * @param report - A backend's `selection`.
 * @returns One line for the pick, one per candidate, one per note.
 */
export function explainSelection(report: SelectionReport): string {
  const lines = [`backend: ${report.picked} (requested: ${report.requested})`];
  for (const c of report.candidates) {
    lines.push(`  ${c.picked ? '*' : ' '} ${c.kind.padEnd(9)} ${c.available ? 'available' : 'unavailable'}: ${c.reason}`);
  }
  for (const note of report.notes ?? []) lines.push(`  ${note}`);
  return lines.join('\n');
}
