// One tensor of a safetensors file packed chunk by chunk into a SafetensorsWriter
// (quantize-file.ts decides what to pack; this writes it):
// - whole groups per chunk where groups are small (packWholeGroups);
// - a group larger than a chunk read twice, once for its range and once to pack it in pieces
//   (packGroupInPieces);
// - groups along an axis other than the last read in stream order (axis.ts): whole columns per
//   chunk, transposed from strided reads;
// - codes that don't end on a byte joined by a CodeStreamWriter;
// - scales written in place as they are made when the sink can write at a position (files),
//   else held until the tensor's codes are written (streams).
// Buffers live in a PackScratch shared by all the tensors of a file, so a checkpoint of many
// small tensors allocates next to nothing per tensor.

import { EdgeMoqError, InvalidInputError } from '../errors.js';
import { allocatePacked, planPack, type PackedTensor, type PackOptions, type PackPlan } from '../packed/layout.js';
import { addErrors, errorSummary, errorTotals, type ErrorTotals } from '../packed/errors.js';
import type { Packer } from '../packed/packer.js';
import { checkAxis, tensorIndexOf, TransposedReader, type AxisView, axisView } from './axis.js';
import { chunkingFor } from './chunking.js';
import { CodeStreamWriter } from './code-stream.js';
import type { PositionalByteSink } from './node-file.js';
import { decodeFloat32, DTYPE_BYTES, type FloatDtype, type SafetensorsFile, type SafetensorsWriter, type TensorInfo } from './safetensors.js';

/** Where a tensor's scales (and zero points) go in a positional sink. */
export interface ScaleTarget {
  sink: PositionalByteSink;
  scales: TensorInfo;
  zeros: TensorInfo | null;
}

/** Buffers reused from tensor to tensor: grown to the largest chunk, never shrunk. */
export class PackScratch {
  private floats = new Float32Array(0);
  private unpackedFloats = new Float32Array(0);
  // Two, so that the next chunk is read into one while the other is decoded (readFloat32Range).
  private raw = [new Uint8Array(0), new Uint8Array(0)];
  private zeroBytes = new Uint8Array(0);
  // PackedTensors by shape; a file holds few distinct chunk shapes, but the map is bounded anyway.
  private packedByShape = new Map<string, PackedTensor>();

  /** `count` float32 values to read into, and as many to unpack into. */
  values(count: number): { values: Float32Array; unpacked: Float32Array } {
    if (this.floats.length < count) {
      this.floats = new Float32Array(count);
      this.unpackedFloats = new Float32Array(count);
    }
    return { values: this.floats.subarray(0, count), unpacked: this.unpackedFloats.subarray(0, count) };
  }

  /** `count` bytes to read a chunk into: buffer `which` (0 or 1) of the two. */
  rawBytes(count: number, which: 0 | 1): Uint8Array {
    if (this.raw[which]!.length < count) this.raw[which] = new Uint8Array(count);
    return this.raw[which]!.subarray(0, count);
  }

  /** Zero bytes that reserve the scales' place in the output, at most `count` of them at a time. */
  zeros(count: number): Uint8Array {
    if (this.zeroBytes.length === 0) this.zeroBytes = new Uint8Array(1 << 20);
    return this.zeroBytes.subarray(0, Math.min(count, this.zeroBytes.length));
  }

  /** Arrays for `length` values packed with `options` (whose groupSize is always set here). */
  packed(length: number, options: PackOptions): PackedTensor {
    // Keyed by what sets the arrays' sizes, so that a hit costs no planning.
    const key = `${length}/${options.groupSize}/${options.bits}/${options.type ?? ''}/${options.grid ?? ''}`;
    let packed = this.packedByShape.get(key);
    if (!packed) {
      if (this.packedByShape.size >= 64) this.packedByShape.clear();
      packed = allocatePacked(planPack(length, options));
      this.packedByShape.set(key, packed);
    }
    return packed;
  }
}

type PutGroups = (firstGroup: number, scales: Float32Array, zeros: Float32Array | null) => Promise<void>;

interface TensorJob {
  file: SafetensorsFile;
  tensor: TensorInfo;
  plan: PackPlan;
  options: PackOptions;
  packer: Packer;
  scratch: PackScratch;
  codes: CodeStreamWriter;
  putGroups: PutGroups;
  totals: ErrorTotals;
  progress: (elementsDone: number) => void;
  /** The tensor as the matrix its groups run down, and its reader when that is transposed. */
  view: AxisView;
  transposed: TransposedReader | null;
}

/**
 * Writes one tensor's parts, in the order the specs put them; returns its error summary. Groups
 * run along `axis` (default: the last dimension), which `plan.groupSize` must fit (axis.ts).
 */
export async function packTensor(
  file: SafetensorsFile,
  tensor: TensorInfo,
  plan: PackPlan,
  options: PackOptions,
  packer: Packer,
  scratch: PackScratch,
  writer: SafetensorsWriter,
  target: ScaleTarget | null,
  chunkBytes: number,
  progress: (bytesDone: number) => void,
  axis?: number,
): Promise<{ maxAbsError: number; rmsError: number }> {
  const asymmetric = plan.type === 'asymmetric';
  // A 0-D tensor is one value: a [1] for the purpose of its groups.
  const shape = tensor.shape.length === 0 ? [1] : tensor.shape;
  const groupAxis = axis ?? shape.length - 1;
  checkAxis(shape, groupAxis, plan.groupSize, `tensor "${tensor.name}"`);
  const view = axisView(shape, groupAxis);
  if (target) {
    // Zero bytes reserve the scales' place; the scales overwrite them as they are made (writeAt
    // may only revisit bytes already written).
    for (let left = plan.groupCount * 4 * (asymmetric ? 2 : 1); left > 0; ) {
      const zeros = scratch.zeros(left);
      await writer.write(zeros);
      left -= zeros.length;
    }
  }
  // Without a positional sink the scales wait here for the codes to be written.
  const held = target ? null : { scales: new Float32Array(plan.groupCount), zeros: asymmetric ? new Float32Array(plan.groupCount) : null };
  const putGroups: PutGroups = async (firstGroup, scales, zeros) => {
    if (held) {
      held.scales.set(scales, firstGroup);
      held.zeros?.set(zeros!, firstGroup);
      return;
    }
    const bytes = (values: Float32Array) => new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    await target!.sink.writeAt(target!.scales.byteOffset + firstGroup * 4, bytes(scales));
    if (zeros) await target!.sink.writeAt(target!.zeros!.byteOffset + firstGroup * 4, bytes(zeros));
  };
  const bytesPerElement = tensor.byteLength / tensor.length;
  const job: TensorJob = {
    file,
    tensor,
    plan,
    options,
    packer,
    scratch,
    putGroups,
    codes: new CodeStreamWriter((bytes) => writer.write(bytes)),
    totals: errorTotals(),
    progress: (done) => progress(done * bytesPerElement),
    view,
    transposed: view.columns > 1 ? new TransposedReader(file.source, tensor.byteOffset, tensor.dtype as FloatDtype, view) : null,
  };
  const chunking = chunkingFor(plan, chunkBytes, view.rows);
  const meanScaled = plan.type === 'ternary' || plan.type === 'binary';
  if (chunking.groupsPerChunk > 0 || meanScaled) await packWholeGroups(job, Math.max(1, chunking.groupsPerChunk));
  else await packGroupsInPieces(job, chunking.pieceElements);
  await job.codes.finish();
  if (held) {
    await writer.write(new Uint8Array(held.scales.buffer));
    if (held.zeros) await writer.write(new Uint8Array(held.zeros.buffer));
  }
  const { maxAbsError, rmsError } = errorSummary(job.totals, plan.length);
  if (!Number.isFinite(maxAbsError) || !Number.isFinite(rmsError)) {
    // unpack(pack(x)) of finite input is finite: a NaN here is a bug, and its output is refused.
    throw new EdgeMoqError(
      'NON_FINITE',
      `tensor "${tensor.name}": the packed values differ from the input by ${maxAbsError} (rms ${rmsError}), which finite input cannot give; ` +
        'this is a bug in edge-moq (please report it with the file); no output was written.',
    );
  }
  return { maxAbsError, rmsError };
}

async function packWholeGroups(job: TensorJob, groupsPerChunk: number): Promise<void> {
  const { plan, options, packer, scratch, totals } = job;
  const chunkElements = Math.min(plan.length, groupsPerChunk * plan.groupSize);
  for await (const { piece: chunk, start } of readFloat32Range(job, 0, plan.length, chunkElements)) {
    const packed = scratch.packed(chunk.length, options);
    try {
      await packer.pack(chunk, { ...options, firstIndex: plan.stochastic ? start : 0 }, packed);
    } catch (error) {
      throw withTensor(error, job, start, chunk);
    }
    await packer.measure(chunk, packed, totals, start);
    await job.putGroups(start / plan.groupSize, packed.scales, packed.zeros);
    await job.codes.append(packed.codes, chunk.length * plan.bits);
    job.progress(start + chunk.length);
  }
}

/**
 * Groups larger than a chunk. Pass 1 finds the group's range (exact in any order); pass 2 packs
 * each piece as a group of its own with the range's ends appended (the absolute maximum, or min
 * and max where the sign matters: asymmetric, and the full grid, whose scale is the value of
 * largest magnitude with its sign, the minimum on a tie), so that the kernel derives the whole
 * group's scale and zero point and the piece's
 * codes are those of the whole group. The appended values' codes are dropped. Ternary and
 * binary scales are means (sums in the kernel's order), which pieces cannot reproduce: their
 * groups are packed whole (packWholeGroups; decide() bounds their size).
 */
async function packGroupsInPieces(job: TensorJob, pieceElements: number): Promise<void> {
  const { tensor, plan, options, packer, scratch, totals } = job;
  const asymmetric = plan.type === 'asymmetric';
  const bothEnds = asymmetric || plan.grid === 'full';
  const extra = bothEnds ? 2 : 1;
  const scale = new Float32Array(1);
  const zero = asymmetric ? new Float32Array(1) : null;
  for (let group = 0; group < plan.groupCount; group++) {
    const groupStart = group * plan.groupSize;
    let min = Infinity;
    let max = -Infinity;
    for await (const { piece, start } of readFloat32Range(job, groupStart, plan.groupSize, pieceElements)) {
      for (let i = 0; i < piece.length; i++) {
        const x = piece[i]!;
        if (!Number.isFinite(x)) {
          const index = tensorIndexOf(job.view, start + i);
          throw new InvalidInputError(
            'NON_FINITE',
            `tensor "${tensor.name}" element ${index}: is ${x}; packing needs finite values. Exclude the tensor (--exclude) or fix the checkpoint; no output was written.`,
            { location: { index, group } },
          );
        }
        if (x < min) min = x;
        if (x > max) max = x;
      }
    }
    // Pieces are read into the first pieceElements values; the range's ends go right after.
    for await (const { piece, start } of readFloat32Range(job, groupStart, plan.groupSize, pieceElements, extra)) {
      const count = piece.length;
      const { values, unpacked } = scratch.values(count + extra);
      if (bothEnds) {
        values[count] = min;
        values[count + 1] = max;
      } else {
        values[count] = Math.max(-min, max);
      }
      const pieceOptions = { ...options, groupSize: count + extra };
      const packed = scratch.packed(count + extra, pieceOptions);
      try {
        await packer.pack(values, { ...pieceOptions, firstIndex: plan.stochastic ? start : 0 }, packed);
      } catch (error) {
        throw withTensor(error, job, start, values);
      }
      // The range's ends appended to the piece are no elements of the tensor: only the piece's
      // own values count (in the order Packer.measure adds in).
      await packer.unpack(packed, unpacked);
      addErrors(piece, unpacked.subarray(0, count), totals, start);
      await job.codes.append(packed.codes, count * plan.bits);
      scale[0] = packed.scales[0]!;
      if (zero) zero[0] = packed.zeros![0]!;
      job.progress(start + count);
    }
    await job.putGroups(group, scale, zero);
  }
}

/**
 * Stream positions [first, first + length) of the tensor as float32, `pieceElements` at a time,
 * each piece at the start of the scratch values (which hold `spare` more after it).
 *
 * In stream order the next piece is read while this one is packed: a read waits on the
 * file system (another thread, on Node), which would otherwise leave this thread idle for
 * about a quarter of a run (bench/files.mjs). One read is in flight at a time, issued after the
 * one before it completed, so a forward-only source (streams.ts) still sees increasing offsets.
 */
async function* readFloat32Range(job: TensorJob, first: number, length: number, pieceElements: number, spare = 0): AsyncGenerator<{ piece: Float32Array; start: number }> {
  const { file, tensor, scratch, transposed } = job;
  const dtype = tensor.dtype as FloatDtype;
  const width = DTYPE_BYTES[dtype];
  if (transposed) {
    for (let done = 0; done < length; done += pieceElements) {
      const count = Math.min(pieceElements, length - done);
      const piece = scratch.values(count + spare).values.subarray(0, count);
      await transposed.read(first + done, piece);
      yield { piece, start: first + done };
    }
    return;
  }
  const readPiece = (done: number, which: 0 | 1) => {
    const bytes = scratch.rawBytes(Math.min(pieceElements, length - done) * width, which);
    return { bytes, read: file.source.read(tensor.byteOffset + (first + done) * width, bytes) };
  };
  let ahead: { bytes: Uint8Array; read: Promise<void> } | null = readPiece(0, 0);
  try {
    for (let done = 0, which: 0 | 1 = 0; ahead; done += pieceElements, which ^= 1) {
      const { bytes, read } = ahead;
      await read;
      ahead = null;
      if (done + pieceElements < length) ahead = readPiece(done + pieceElements, (which ^ 1) as 0 | 1);
      const piece = scratch.values(bytes.length / width + spare).values.subarray(0, bytes.length / width);
      decodeFloat32(bytes, dtype, piece);
      yield { piece, start: first + done };
    }
  } finally {
    // The consumer stopped early (an error): the read ahead is not wanted, and its failure
    // must not surface as an unhandled rejection; it completes before the buffer is reused.
    await ahead?.read.catch(() => undefined);
  }
}

/**
 * A packer's NON_FINITE error about `data[index]` of the piece packed (from element `first` of
 * the tensor, in packing order), told again of the tensor: its name, and its own index (whatever the axis).
 */
function withTensor(error: unknown, job: TensorJob, first: number, data: Float32Array): unknown {
  const index = error instanceof InvalidInputError && error.code === 'NON_FINITE' ? error.location?.index : undefined;
  if (index === undefined) return error;
  const at = tensorIndexOf(job.view, first + index);
  return new InvalidInputError(
    'NON_FINITE',
    `tensor "${job.tensor.name}" element ${at}: is ${data[index]}; packing needs finite values. Exclude the tensor (--exclude) or fix the checkpoint; no output was written.`,
    { cause: error, location: { index: at, group: Math.floor((first + index) / job.plan.groupSize) } },
  );
}
