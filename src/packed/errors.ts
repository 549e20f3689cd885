// How far packed values lie from the data they were packed from: the error summary a file
// quantization reports per tensor. Packer.measure adds to ErrorTotals; this is the order every
// packer adds in (the WebAssembly kernel errorSums in assembly/stats.ts, and addErrors below for
// the others), so a summary has the same bits whichever packer made it and however its tensor
// was split into chunks.

import { InvalidInputError } from '../errors.js';
import { describeValue } from '../describe.js';

/**
 * Five float64: [0] the largest |original - unpacked| so far (NaN once one is NaN); [1 + k] the
 * sum of the squared differences of the elements whose index is k modulo 4, each lane in order.
 */
export type ErrorTotals = Float64Array;

/** Totals of nothing yet: zeros. */
export const errorTotals = (): ErrorTotals => new Float64Array(5);

/**
 * Adds the differences between `original` and `unpacked`, whose element 0 is element `first` of
 * the whole, to `totals` (the order Packer.measure adds in).
 */
export function addErrors(original: Float32Array, unpacked: Float32Array, totals: ErrorTotals, first: number): void {
  let max = totals[0]!;
  for (let i = 0; i < original.length; i++) {
    const e = Math.abs(original[i]! - unpacked[i]!);
    const lane = 1 + ((first + i) % 4);
    totals[lane] = totals[lane]! + e * e;
    max = Math.max(max, e);
  }
  totals[0] = max;
}

/** The largest and the root-mean-square difference over `length` elements. */
export function errorSummary(totals: ErrorTotals, length: number): { maxAbsError: number; rmsError: number } {
  return { maxAbsError: totals[0]!, rmsError: Math.sqrt((totals[1]! + totals[2]! + (totals[3]! + totals[4]!)) / length) };
}

/** Packer.measure's arguments checked alike on every packer. */
export function checkMeasure(original: unknown, length: number, totals: unknown, first: unknown): void {
  if (!(original instanceof Float32Array) || original.length !== length) {
    throw new InvalidInputError('INVALID_ARGUMENT', `original must be a Float32Array of ${length} values (packed.length), got ${describeValue(original)}.`);
  }
  if (!(totals instanceof Float64Array) || totals.length !== 5) {
    throw new InvalidInputError('INVALID_ARGUMENT', `totals must be a Float64Array of 5 values (errorTotals()), got ${describeValue(totals)}.`);
  }
  if (!(Number.isSafeInteger(first) && (first as number) >= 0)) {
    throw new InvalidInputError('INVALID_ARGUMENT', `first must be the index of original[0] in the whole (a safe integer >= 0), got ${describeValue(first)}.`);
  }
}
