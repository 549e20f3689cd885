// Packing on the WebAssembly backends (assembly/pack.ts). Host arrays are staged in one
// reusable scratch region of the module's memory; arrays already there are read in place.
// Results reach the caller's arrays only after the kernel succeeded (unpacking into an array
// already in memory: the kernel checks everything before writing), so bad input leaves
// everything untouched.

import type { BackendKind } from '../backend.js';
import type { WasmBackend } from './backend.js';
import { float32Length, type Grid } from '../../kernel-plan.js';
import { InvalidInputError, nonFiniteError } from '../../errors.js';
import { allocatePacked, invalidPackedError, planPackData, validateInto, validatePacked, type PackedTensor, type PackedType, type PackOptions } from '../../packed/layout.js';
import { checkMeasure, type ErrorTotals } from '../../packed/errors.js';
import type { Packer } from '../../packed/packer.js';
import { PACK_TYPE_NUMBERS } from './interface.js';

const typeNumber = (packed: { type: PackedType; grid?: Grid }) => (packed.grid === 'full' ? PACK_TYPE_NUMBERS.FULL : PACK_TYPE_NUMBERS[packed.type.toUpperCase() as Uppercase<PackedType>]);
// Codes are read 4 bytes at a time, so the codes region keeps 3 readable bytes past its end.
const CODE_PADDING = 4;
// measure()'s five float64 totals, first in its scratch region (aligned for v128 loads).
const TOTALS_BYTES = 48;

const align16 = (bytes: number) => Math.ceil(bytes / 16) * 16;
/** The scratch bytes a packed tensor takes staged for unpacking: its codes (padded), scales and zero points. */
const stagedBytes = (packed: PackedTensor) => align16(packed.codes.length + CODE_PADDING) + 2 * align16((packed.length / packed.groupSize) * 4);

export class WasmPacker implements Packer {
  readonly kind: BackendKind;
  private scratch = { offset: 0, bytes: 0 };

  constructor(private readonly backend: WasmBackend) {
    this.kind = backend.kind;
  }

  async pack(data: Float32Array, options: PackOptions, into?: PackedTensor): Promise<PackedTensor> {
    return this.packSync(data, options, into);
  }

  async unpack(packed: PackedTensor, out?: Float32Array): Promise<Float32Array> {
    return this.unpackSync(packed, out);
  }

  /**
   * pack() without the promise: WebAssembly runs synchronously.
   * @param data The values to pack (a host array or a WasmTensor's view).
   * @param options Width, group size and grid, as for fakeQuantize but without a blend.
   * @param into A packed tensor to fill instead of a new one (its plan must match).
   * @returns The packed tensor (`into` when given).
   */
  packSync(data: Float32Array, options: PackOptions, into?: PackedTensor): PackedTensor {
    const plan = planPackData(data, options);
    if (into !== undefined) validateInto(into, plan);
    const { kernels } = this.backend.internals;
    const memory = kernels.memory;
    const inMemory = data.buffer === memory.buffer;
    if (inMemory) this.backend.internals.heap.assertLiveView(data, 'data');
    const dataPointer = inMemory ? data.byteOffset : -1;
    const dataBytes = inMemory ? 0 : align16(plan.length * 4);
    const codesBytes = align16(plan.codeBytes + CODE_PADDING);
    const groupBytes = align16(plan.groupCount * 4);
    const base = this.reserve(dataBytes + codesBytes + 2 * groupBytes);
    const src = inMemory ? dataPointer : base;
    const codes = base + dataBytes;
    const scales = codes + codesBytes;
    const zeros = scales + groupBytes;
    if (!inMemory) new Float32Array(memory.buffer, src, plan.length).set(data);
    const badGroup = kernels.packCodes(src, codes, scales, zeros, plan.groupCount, plan.groupSize, plan.bits, typeNumber(plan), plan.stochastic ? 1 : 0, plan.key | 0, plan.firstIndex | 0);
    if (badGroup >= 0) {
      const group = new Float32Array(memory.buffer, src + badGroup * plan.groupSize * 4, plan.groupSize);
      const at = group.findIndex((x) => !Number.isFinite(x));
      throw nonFiniteError('data', group[at], { job: 0, index: badGroup * plan.groupSize + at, group: badGroup }, true);
    }
    const result = into ?? allocatePacked(plan);
    const buffer = memory.buffer;
    result.codes.set(new Uint8Array(buffer, codes, plan.codeBytes));
    result.scales.set(new Float32Array(buffer, scales, plan.groupCount));
    result.zeros?.set(new Float32Array(buffer, zeros, plan.groupCount));
    return result;
  }

  /**
   * unpack() without the promise: checks `packed` whole before writing anything.
   * @param packed The packed tensor to decode.
   * @param out An array of packed.length values to write into instead of a new one.
   * @returns The decoded values (`out` when given).
   */
  unpackSync(packed: PackedTensor, out?: Float32Array): Float32Array {
    validatePacked(packed);
    const { length } = packed;
    if (out !== undefined && float32Length(out, 'out') !== length) {
      throw new InvalidInputError('INVALID_ARGUMENT', `out must be a Float32Array of ${length} values (packed.length).`);
    }
    const { kernels, heap } = this.backend.internals;
    const memory = kernels.memory;
    const outInMemory = out !== undefined && out.buffer === memory.buffer;
    // A view kept from a freed WasmTensor would write over whatever now lives there.
    if (outInMemory) heap.assertLiveView(out!, 'out');
    // Fixed before the scratch region may grow the memory (which detaches views into it).
    const outPointer = outInMemory ? out!.byteOffset : -1;
    const staged = stagedBytes(packed);
    const base = this.reserve(staged + (outInMemory ? 0 : align16(length * 4)));
    const dst = outInMemory ? outPointer : base + staged;
    this.unpackStaged(packed, base, dst);
    if (outInMemory) return out!;
    const result = out ?? new Float32Array(length);
    result.set(new Float32Array(memory.buffer, dst, length));
    return result;
  }

  async measure(original: Float32Array, packed: PackedTensor, totals: ErrorTotals, first = 0): Promise<void> {
    this.measureSync(original, packed, totals, first);
  }

  /**
   * measure() without the promise: the original and the unpacked values meet in WebAssembly
   * memory (errorSums), and only the five totals come back.
   */
  measureSync(original: Float32Array, packed: PackedTensor, totals: ErrorTotals, first = 0): void {
    validatePacked(packed);
    checkMeasure(original, packed.length, totals, first);
    const { length } = packed;
    const { kernels, heap } = this.backend.internals;
    const inMemory = original.buffer === kernels.memory.buffer;
    if (inMemory) heap.assertLiveView(original, 'original');
    const originalPointer = inMemory ? original.byteOffset : -1;
    const staged = stagedBytes(packed);
    const valuesBytes = align16(length * 4);
    const sums = this.reserve(TOTALS_BYTES + staged + valuesBytes * (inMemory ? 1 : 2));
    const dst = sums + TOTALS_BYTES + staged;
    const src = inMemory ? originalPointer : dst + valuesBytes;
    this.unpackStaged(packed, sums + TOTALS_BYTES, dst);
    const buffer = kernels.memory.buffer;
    if (!inMemory) new Float32Array(buffer, src, length).set(original);
    const at = new Float64Array(buffer, sums, 5);
    at.set(totals);
    kernels.errorSums(src, dst, length, first % 4, sums);
    totals.set(at);
  }

  /** Stages `packed` at `at` (stagedBytes: codes, scales, zero points) and unpacks it into `dst`, or throws as unpack does. */
  private unpackStaged(packed: PackedTensor, at: number, dst: number): void {
    const { kernels } = this.backend.internals;
    const groupCount = packed.length / packed.groupSize;
    const scales = at + align16(packed.codes.length + CODE_PADDING);
    const zeros = scales + align16(groupCount * 4);
    const buffer = kernels.memory.buffer;
    new Uint8Array(buffer, at, packed.codes.length).set(packed.codes);
    new Float32Array(buffer, scales, groupCount).set(packed.scales);
    if (packed.zeros) new Float32Array(buffer, zeros, groupCount).set(packed.zeros);
    const invalid = kernels.unpackCodes(at, scales, zeros, dst, groupCount, packed.groupSize, packed.bits, typeNumber(packed));
    if (invalid >= 0) throw invalidPackedError(packed, invalid);
  }

  dispose(): void {
    if (this.scratch.bytes) this.backend.internals.heap.release(this.scratch.offset, this.scratch.bytes);
    this.scratch = { offset: 0, bytes: 0 };
  }

  /** The scratch region, grown to at least `bytes` (it only grows, so warm calls allocate nothing). */
  private reserve(bytes: number): number {
    if (bytes > this.scratch.bytes) {
      const { heap } = this.backend.internals;
      if (this.scratch.bytes) heap.release(this.scratch.offset, this.scratch.bytes);
      this.scratch = { offset: heap.allocate(bytes), bytes };
    }
    return this.scratch.offset;
  }
}
