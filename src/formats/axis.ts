// Groups along any axis. A tensor of shape [d0, …, dn-1] packed with its groups along `axis`
// is read as the row-major matrix [A, B], A = d0·…·d_axis and B = d_axis+1·…·dn-1, transposed:
// stream position p = c·A + r holds element (r, c), the tensor's element r·B + c. Groups of G
// (G dividing A) run down the columns, so none crosses an index of the dimensions after `axis`:
// along K for each column of an ONNX MatMul B [K, N] (axis 0), per output channel of a Keras
// kernel [kh, kw, in, out] (axis 2). The last axis gives B = 1, the layout without an axis.
// Transposing with bounded memory means strided reads: a box of rows and columns is read a
// row piece at a time, close pieces coalesced into one read (read-ahead.ts reads sparse ones
// directly), so nothing holds more than the box and one window.

import { describeValue } from '../describe.js';
import { InvalidInputError } from '../errors.js';
import { COALESCE_GAP_BYTES } from './read-ahead.js';
import { decodeFloat32, DTYPE_BYTES, type ByteSource, type FloatDtype } from './safetensors.js';

/** A tensor as the matrix its groups run down: `rows` (A) per column, `columns` (B). */
export interface AxisView {
  rows: number;
  columns: number;
}

/** The [A, B] view of `shape` with groups along `axis`. */
export function axisView(shape: readonly number[], axis: number): AxisView {
  let rows = 1;
  let columns = 1;
  shape.forEach((d, i) => {
    if (i <= axis) rows *= d;
    else columns *= d;
  });
  return { rows, columns };
}

/**
 * Why groups of `groupSize` cannot run along `axis` of `shape`, or null when they can: the axis
 * must be an integer dimension index and `groupSize` must divide A (so no group crosses a column).
 */
export function axisProblem(shape: readonly number[], axis: unknown, groupSize: number): string | null {
  if (!Number.isInteger(axis) || (axis as number) < 0 || (axis as number) >= shape.length) {
    return `axis must be an integer in 0..${shape.length - 1} (a dimension of [${shape.join(', ')}]), got ${describeValue(axis)}`;
  }
  const { rows } = axisView(shape, axis as number);
  if (rows % groupSize !== 0) {
    return `groups of ${groupSize} along axis ${axis as number} of [${shape.join(', ')}] would cross columns: ` + `the group size must divide ${rows} (the product of dimensions 0..${axis as number})`;
  }
  return null;
}

/** The tensor index (row-major) of stream position `position`. */
export function tensorIndexOf(view: AxisView, position: number): number {
  const column = Math.floor(position / view.rows);
  return (position - column * view.rows) * view.columns + column;
}

/**
 * Reads byte ranges given in increasing order, each handed over in a window that holds it:
 * ranges less than COALESCE_GAP_BYTES apart share one read of up to a window's size.
 */
export class PieceReader {
  private window = new Uint8Array(0);

  /**
   * Reads pieces [startOf(i), startOf(i) + lengthOf(i)) for i < count (clamped to the source),
   * calling `visit(first, end, bytes, offset)` for pieces first..end-1 held in `bytes`, which
   * starts at byte `offset` of the source.
   */
  async forEach(
    source: ByteSource,
    count: number,
    startOf: (i: number) => number,
    lengthOf: (i: number) => number,
    visit: (first: number, end: number, bytes: Uint8Array, offset: number) => void,
  ): Promise<void> {
    for (let first = 0; first < count; ) {
      const offset = startOf(first);
      let stop = Math.min(source.size, offset + lengthOf(first));
      const size = Math.max(WINDOW_BYTES, stop - offset);
      let end = first + 1;
      for (; end < count; end++) {
        const next = startOf(end);
        const nextStop = Math.min(source.size, next + lengthOf(end));
        if (next - stop > COALESCE_GAP_BYTES || nextStop - offset > size) break;
        stop = Math.max(stop, nextStop);
      }
      // Grown to what a read needs, so that a file of many small tensors allocates little.
      if (this.window.length < stop - offset) this.window = new Uint8Array(stop - offset);
      const bytes = this.window.subarray(0, stop - offset);
      await source.read(offset, bytes);
      visit(first, end, bytes, offset);
      first = end;
    }
  }
}

/** Coalesced reads go up to this size (larger when one piece is larger). */
const WINDOW_BYTES = 4 << 20;

/** Reads and transposes boxes of a row-major float matrix, reusing its buffers. */
export class TransposedReader {
  private readonly pieces = new PieceReader();
  private floats = new Float32Array(0);

  constructor(
    private readonly source: ByteSource,
    private readonly byteOffset: number,
    private readonly dtype: FloatDtype,
    private readonly view: AxisView,
  ) {}

  /**
   * Stream positions [first, first + into.length) into `into`, as float32: the elements of
   * whole columns in one box, partial columns at either end in boxes of their own.
   */
  async read(first: number, into: Float32Array): Promise<void> {
    const { rows } = this.view;
    const end = first + into.length;
    for (let position = first; position < end; ) {
      const column = Math.floor(position / rows);
      const row = position - column * rows;
      if (row > 0 || end - position < rows) {
        const stop = Math.min(rows, row + end - position);
        await this.readBox(row, stop, column, column + 1, into.subarray(position - first, position - first + stop - row));
        position += stop - row;
      } else {
        const columns = Math.floor((end - position) / rows);
        await this.readBox(0, rows, column, column + columns, into.subarray(position - first, position - first + columns * rows));
        position += columns * rows;
      }
    }
  }

  /** Rows [r0, r1) of columns [c0, c1), column after column, into `into`. */
  private async readBox(r0: number, r1: number, c0: number, c1: number, into: Float32Array): Promise<void> {
    const width = DTYPE_BYTES[this.dtype];
    const { columns } = this.view;
    const height = r1 - r0;
    const across = c1 - c0;
    const rowBytes = columns * width;
    await this.pieces.forEach(
      this.source,
      height,
      (i) => this.byteOffset + (r0 + i) * rowBytes + c0 * width,
      () => across * width,
      (firstRow, endRow, bytes) => {
        // Only the wanted bytes of each row are decoded (a window holds the gaps too).
        if (this.floats.length < across) this.floats = new Float32Array(across);
        const values = this.floats.subarray(0, across);
        for (let i = firstRow; i < endRow; i++) {
          const at = (i - firstRow) * rowBytes;
          decodeFloat32(bytes.subarray(at, at + across * width), this.dtype, values);
          for (let j = 0; j < across; j++) into[j * height + i] = values[j]!;
        }
      },
    );
  }
}

/**
 * Copies `count` bits from bit `sourceBit` of `source` to bit `targetBit` of `target` (stream
 * bit j is bit j mod 8 of byte floor(j/8)), leaving the target's other bits as they were.
 */
export function copyBits(source: Uint8Array, sourceBit: number, target: Uint8Array, targetBit: number, count: number): void {
  if (sourceBit % 8 === 0 && targetBit % 8 === 0) {
    const whole = Math.floor(count / 8);
    target.set(source.subarray(sourceBit / 8, sourceBit / 8 + whole), targetBit / 8);
    if (whole * 8 === count) return;
    sourceBit += whole * 8;
    targetBit += whole * 8;
    count -= whole * 8;
  }
  for (let done = 0; done < count; ) {
    const n = Math.min(8, count - done);
    const mask = (1 << n) - 1;
    const from = sourceBit + done;
    const fromByte = Math.floor(from / 8);
    const bits = (((source[fromByte] ?? 0) | ((source[fromByte + 1] ?? 0) << 8)) >>> (from % 8)) & mask;
    const to = targetBit + done;
    const toByte = Math.floor(to / 8);
    const shift = to % 8;
    target[toByte] = (target[toByte]! & ~(mask << shift)) | (bits << shift);
    if (shift + n > 8) target[toByte + 1] = (target[toByte + 1]! & ~(mask >>> (8 - shift))) | (bits >>> (8 - shift));
    done += n;
  }
}

/** Throws INVALID_ARGUMENT when groups of `groupSize` cannot run along `axis` of `shape`. */
export function checkAxis(shape: readonly number[], axis: unknown, groupSize: number, label: string): void {
  const problem = axisProblem(shape, axis, groupSize);
  if (problem) throw new InvalidInputError('INVALID_ARGUMENT', `${label}: ${problem}.`);
}
