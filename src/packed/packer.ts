// Packing on a backend: float32 data to `edge-moq.packed/1` codes and back. Every backend
// packs exactly what it fake-quantizes: unpack(pack(x)) equals fakeQuantize(x) value for value,
// for every finite x, subnormals included. The exceptions: a zero keeps no sign (-0 comes back
// as +0), and binary, whose codes have no 0, packs as +1 (+mean) what fakeQuantize writes as 0:
// an exact 0 and, on a GPU that flushes subnormals to zero (WGSL allows it; SwiftShader does),
// a subnormal. Such a GPU also quantizes a group whose scale would be subnormal as one of
// scale 0: it takes its zero point (shaders/grid.wgsl), in fakeQuantize and packing alike.

import type { BackendKind } from '../backends/backend.js';
import type { ErrorTotals } from './errors.js';
import type { PackedTensor, PackOptions } from './layout.js';

/** Packs float32 data into codes and back, on a backend (from createPacker). */
export interface Packer {
  /** The backend that packs (after a WebGPU device loss, the WebAssembly one that took over). */
  readonly kind: BackendKind;
  /**
   * Packs `data` (left untouched). With `into` (arrays of the right sizes, e.g. from
   * allocatePacked) nothing is allocated; on error `into` is untouched too.
   *
   * @param data - The float32 values.
   * @param options - Bits, groups, type, rounding, grid (PackOptions).
   * @param into - Arrays to write the codes, scales and zeros into.
   * @returns The packed tensor (`into` when given).
   * @throws InvalidInputError: bad options, or NON_FINITE with `location: { job: 0, index, group }`.
   */
  pack(data: Float32Array, options: PackOptions, into?: PackedTensor): Promise<PackedTensor>;
  /**
   * Dequantizes into `out` (length `packed.length`), or a new array. Packed data from elsewhere
   * is checked in the same pass: a scale that is NaN, infinite or negative (negative is valid for
   * codes on the full grid, `grid: 'full'`), a zero point that is
   * not finite, a ternary code 3 or a code whose value overflows float32 throws INVALID_ARGUMENT
   * naming the first such group (`location.group`), and `out` is left untouched. Only finite
   * values are written.
   *
   * @param packed - A packed tensor (from pack, or read from a file).
   * @param out - Where to write the values.
   * @returns The dequantized values (`out` when given).
   */
  unpack(packed: PackedTensor, out?: Float32Array): Promise<Float32Array>;
  /**
   * Adds how far unpack(packed) lies from `original` (the values it was packed from) to
   * `totals` (errorTotals(): the largest difference and the squares' sums, packed/errors.ts),
   * without handing out the unpacked values: what a file quantization reports per tensor. Every
   * packer adds in the same order, so the totals have the same bits on each.
   *
   * @param original - The packed.length values `packed` was made from.
   * @param packed - The packed tensor (checked as unpack checks it).
   * @param totals - Five float64 to add to; a chunk's totals carry over to the next.
   * @param first - Which element of the whole `original[0]` is (default 0): the sums are by element index.
   * @throws InvalidInputError: what unpack throws, or bad arguments; `totals` is then untouched.
   */
  measure(original: Float32Array, packed: PackedTensor, totals: ErrorTotals, first?: number): Promise<void>;
  /** Frees the packer's scratch memory (and a backend it created from a kind); a backend you passed stays yours. */
  dispose(): void;
}
