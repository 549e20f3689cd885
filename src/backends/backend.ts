// The one interface every backend implements. Async throughout so a GPU backend fits unchanged.

import type { FakeQuantizeOptions } from '../kernel-plan.js';

export type BackendKind = 'wasm-simd' | 'wasm' | 'webgpu';
export type BackendRequest = BackendKind | 'auto';

export interface QuantizeJob {
  data: Float32Array;
  options: FakeQuantizeOptions;
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

export interface Backend {
  readonly kind: BackendKind;
  readonly selection: SelectionReport;
  /**
   * Quantizes `data` in place (fake quantization: the values stay float32) and resolves to it.
   * With `{ into }`, `data` is only read: the result is written to `into` (same length as
   * `data`, not overlapping it, else an InvalidInputError) and the promise resolves to `into`.
   * One pass: `data` is never modified, but on a NaN/Inf in `data` (an InvalidInputError)
   * `into` may already hold the results of the groups before it. In place, an error leaves
   * `data` as it was.
   */
  fakeQuantize(data: Float32Array, options: FakeQuantizeOptions, target?: FakeQuantizeTarget): Promise<Float32Array>;
  /**
   * Quantizes several tensors as one operation (a parameter group in one submission).
   * All inputs are validated before any is touched: on error, none is modified.
   */
  fakeQuantizeMany(jobs: readonly QuantizeJob[]): Promise<void>;
  groupStats(data: Float32Array, options: { groups?: number; groupSize?: number }): Promise<GroupStats>;
  /** A readable account of the selection. */
  explain(): string;
  dispose(): void;
}

export function explainSelection(report: SelectionReport): string {
  const lines = [`backend: ${report.picked} (requested: ${report.requested})`];
  for (const c of report.candidates) {
    lines.push(`  ${c.picked ? '*' : ' '} ${c.kind.padEnd(9)} ${c.available ? 'available' : 'unavailable'}: ${c.reason}`);
  }
  for (const note of report.notes ?? []) lines.push(`  ${note}`);
  return lines.join('\n');
}
