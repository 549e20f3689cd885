// `edge-moq.packed/1` safetensors in, plain safetensors out: every packed tensor is unpacked
// under its own name (in its original dtype, or float32), the rest copied unchanged. Streams
// like quantize-file.ts, in the same chunks: whole groups, or pieces of a group larger than a
// chunk (unpacking is element by element given the group's scale, so a piece unpacks alone).
// Scales are read a chunk's worth at a time, so memory stays near the chunk size. Scales,
// zero points and codes are checked by the unpack kernels: a bad group is a MALFORMED_FILE
// naming the tensor and the group, and nothing non-finite is ever written. A tensor whose
// groups run along another axis than the last (axis.ts) is written back in its own order, a
// box of whole rows at a time (or pieces of one row), its codes and scales gathered column by
// column with strided reads.

import { EdgeMoqError, FormatError, InvalidInputError } from '../errors.js';
import { codeBytes, invalidPackedReason, type PackedTensor } from '../packed/layout.js';
import { axisView, copyBits, PieceReader, tensorIndexOf, type AxisView } from './axis.js';
import type { Packer } from '../packed/packer.js';
import { readCodeBits } from './code-stream.js';
import { readPackedLayout, type PackedParts } from './packed-metadata.js';
import { readAheadSource } from './read-ahead.js';
import { chunkingFor, DEFAULT_CHUNK_BYTES } from './chunking.js';
import {
  createSafetensorsWriter,
  encodeFloat32,
  openSafetensors,
  readByteChunks,
  type ByteSink,
  type ByteSource,
  type FloatDtype,
  type SafetensorsFile,
  type TensorInfo,
  type TensorSpec,
} from './safetensors.js';

/** How dequantizeSafetensors writes its output. */
export interface DequantizeFileOptions {
  /** 'original' (default): each tensor's dtype before packing; else this float dtype for all. */
  dtype?: 'original' | FloatDtype;
  chunkBytes?: number;
  /** Called before each tensor is written. */
  onProgress?: (progress: { tensor: string; index: number; count: number }) => void;
}

/** What dequantizeSafetensors did: tensors unpacked and copied, bytes read and written. */
export interface DequantizeReport {
  unpacked: number;
  copied: number;
  bytesIn: number;
  bytesOut: number;
}

/**
 * Unpacks an `edge-moq.packed/1` or `/2` safetensors file into a plain one, streaming. The sink
 * is finished only when every tensor was written; on any error it is aborted.
 * @param source - the packed file
 * @param sink - where the plain file goes
 * @param packer - unpacks the codes (WebAssembly or WebGPU)
 * @param options - the output dtype, the chunk size, and a progress callback
 * @returns how many tensors were unpacked and copied, and the bytes read and written
 * @throws FormatError (`MALFORMED_FILE`) naming the tensor (and group) that is wrong; InvalidInputError for bad options
 */
export async function dequantizeSafetensors(source: ByteSource, sink: ByteSink, packer: Packer, options: DequantizeFileOptions = {}): Promise<DequantizeReport> {
  let file: SafetensorsFile;
  let layout: ReturnType<typeof readPackedLayout>;
  try {
    const dtype = options.dtype ?? 'original';
    if (!['original', 'F32', 'F16', 'BF16'].includes(dtype)) {
      throw new InvalidInputError('INVALID_ARGUMENT', `dtype must be original, F32, F16 or BF16, got ${String(dtype)}.`);
    }
    if (options.chunkBytes !== undefined && !(Number.isSafeInteger(options.chunkBytes) && options.chunkBytes > 0)) {
      throw new InvalidInputError('INVALID_ARGUMENT', `chunkBytes must be a positive integer, got ${String(options.chunkBytes)}.`);
    }
    file = await openSafetensors(source);
    layout = readPackedLayout(file);
  } catch (error) {
    await sink.abort().catch(() => undefined);
    throw error;
  }
  const dtypeOf = (parts: PackedParts): FloatDtype => (options.dtype && options.dtype !== 'original' ? options.dtype : (parts.entry.dtype as FloatDtype));
  // Output order: the file's order, a packed tensor where its codes were.
  const byCodes = new Map(layout.packed.map((p) => [p.codes.name, p]));
  const plainNames = new Set(layout.plain.map((t) => t.name));
  const items = file.tensors.flatMap((t): (PackedParts | TensorInfo)[] => (byCodes.has(t.name) ? [byCodes.get(t.name)!] : plainNames.has(t.name) ? [t] : []));
  const specs: TensorSpec[] = items.map((item) => ('entry' in item ? { name: item.name, dtype: dtypeOf(item), shape: item.entry.shape } : { name: item.name, dtype: item.dtype, shape: item.shape }));
  const metadata = { ...file.metadata };
  delete metadata.format;
  delete metadata['edge-moq'];
  const writer = await createSafetensorsWriter(sink, { tensors: specs, metadata });
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  // Many small tensors are read a block at a time.
  const data: SafetensorsFile = { ...file, source: readAheadSource(file.source) };
  const pieces = new PieceReader();
  try {
    for (const [index, item] of items.entries()) {
      options.onProgress?.({ tensor: item.name, index, count: items.length });
      if ('entry' in item) await unpackTensor(data, item, dtypeOf(item), packer, writer, chunkBytes, pieces);
      else for await (const bytes of readByteChunks(data, item, { chunkBytes })) await writer.write(bytes);
    }
    await writer.close();
  } catch (error) {
    await writer.abort().catch(() => undefined);
    throw error;
  }
  return { unpacked: layout.packed.length, copied: layout.plain.length, bytesIn: source.size, bytesOut: writer.size };
}

type Writer = { write(bytes: Uint8Array): Promise<void> };

async function unpackTensor(file: SafetensorsFile, parts: PackedParts, dtype: FloatDtype, packer: Packer, writer: Writer, chunkBytes: number, pieces: PieceReader): Promise<void> {
  const { shape, axis } = parts.entry;
  const view = axisView(shape, axis ?? shape.length - 1);
  if (view.columns > 1) await unpackTransposed(file, parts, view, dtype, packer, writer, chunkBytes, pieces);
  else await unpackInOrder(file, parts, dtype, packer, writer, chunkBytes);
}

async function unpackInOrder(file: SafetensorsFile, parts: PackedParts, dtype: FloatDtype, packer: Packer, writer: Writer, chunkBytes: number): Promise<void> {
  const { bits, type, groupSize, grid } = parts.entry;
  const { groupsPerChunk, pieceElements } = chunkingFor({ groupSize, bits, length: parts.length }, chunkBytes);
  // A chunk: `groups` whole groups from `firstGroup`, or (pieces) `length` elements of one group.
  const maxElements = groupsPerChunk > 0 ? Math.min(parts.length, groupsPerChunk * groupSize) : pieceElements;
  const maxGroups = groupsPerChunk > 0 ? maxElements / groupSize : 1;
  const codes = new Uint8Array(Math.ceil((maxElements * bits) / 8) + 1);
  const scratch = new Uint8Array(codes.length + 1);
  const scales = new Float32Array(maxGroups);
  const zeros = parts.zeros ? new Float32Array(maxGroups) : null;
  const values = new Float32Array(maxElements);
  const encoded = new Uint8Array(maxElements * 4);
  const readGroups = async (tensor: TensorInfo, firstGroup: number, into: Float32Array) => {
    await file.source.read(tensor.byteOffset + firstGroup * 4, new Uint8Array(into.buffer, into.byteOffset, into.byteLength));
  };
  const unpackChunk = async (firstElement: number, length: number, firstGroup: number, groups: number) => {
    const chunkScales = scales.subarray(0, groups);
    const chunkZeros = zeros ? zeros.subarray(0, groups) : null;
    await readGroups(parts.scales, firstGroup, chunkScales);
    if (chunkZeros) await readGroups(parts.zeros!, firstGroup, chunkZeros);
    const chunkCodes = await readCodeBits(file.source, parts.codes.byteOffset, firstElement * bits, length * bits, codes, scratch);
    const packed: PackedTensor = {
      bits,
      type,
      length,
      groupSize: length / groups,
      codes: chunkCodes,
      scales: chunkScales,
      zeros: chunkZeros,
      ...(grid ? { grid } : {}),
    };
    let out: Float32Array;
    try {
      out = await packer.unpack(packed, values.subarray(0, length));
    } catch (error) {
      throw inTensor(error, parts, packed, firstElement, firstGroup);
    }
    await writer.write(encodeFloat32(out, dtype, encoded));
  };
  if (groupsPerChunk > 0) {
    for (let first = 0; first < parts.length; first += maxElements) {
      const length = Math.min(maxElements, parts.length - first);
      await unpackChunk(first, length, first / groupSize, length / groupSize);
    }
  } else {
    for (let group = 0; group < parts.length / groupSize; group++) {
      for (let offset = 0; offset < groupSize; offset += pieceElements) {
        await unpackChunk(group * groupSize + offset, Math.min(pieceElements, groupSize - offset), group, 1);
      }
    }
  }
}

/**
 * Rows [r0, r1) of columns [c0, c1) of the tensor's [A, B] view, in its own (row-major) order:
 * whole rows, as many groups deep as fit a chunk; when one group's rows don't fit, rows within
 * a group; when one row doesn't fit, pieces of a row. Each column's part of a box is then whole
 * groups or part of one group, so the box unpacks as one PackedTensor.
 */
function* boxesOf(view: AxisView, groupSize: number, chunkBytes: number): Generator<{ r0: number; r1: number; c0: number; c1: number }> {
  const { rows, columns } = view;
  const capacity = Math.max(1, Math.floor(chunkBytes / 4));
  if (groupSize * columns <= capacity) {
    const height = Math.min(rows, Math.floor(capacity / (groupSize * columns)) * groupSize);
    for (let r0 = 0; r0 < rows; r0 += height) yield { r0, r1: Math.min(rows, r0 + height), c0: 0, c1: columns };
  } else if (columns <= capacity) {
    const height = Math.floor(capacity / columns);
    for (let r0 = 0; r0 < rows; ) {
      const r1 = Math.min(r0 + height, (Math.floor(r0 / groupSize) + 1) * groupSize);
      yield { r0, r1, c0: 0, c1: columns };
      r0 = r1;
    }
  } else {
    for (let r0 = 0; r0 < rows; r0++) {
      for (let c0 = 0; c0 < columns; c0 += capacity) yield { r0, r1: r0 + 1, c0, c1: Math.min(columns, c0 + capacity) };
    }
  }
}

async function unpackTransposed(file: SafetensorsFile, parts: PackedParts, view: AxisView, dtype: FloatDtype, packer: Packer, writer: Writer, chunkBytes: number, pieces: PieceReader): Promise<void> {
  const { bits, type, groupSize, grid } = parts.entry;
  const { rows } = view;
  const source = file.source;
  let buffers: { codes: Uint8Array; scales: Float32Array; zeros: Float32Array | null; values: Float32Array; ordered: Float32Array; encoded: Uint8Array } | null = null;
  for (const { r0, r1, c0, c1 } of boxesOf(view, groupSize, chunkBytes)) {
    const height = r1 - r0;
    const across = c1 - c0;
    const length = height * across;
    // Whole groups down each column, or part of one group (one scale per column).
    const boxGroup = height % groupSize === 0 ? groupSize : height;
    const perColumn = height / boxGroup;
    if (!buffers || buffers.values.length < length || buffers.scales.length < length / boxGroup) {
      buffers = {
        codes: new Uint8Array(codeBytes(length, bits)),
        scales: new Float32Array(length / boxGroup),
        zeros: parts.zeros ? new Float32Array(length / boxGroup) : null,
        values: new Float32Array(length),
        ordered: new Float32Array(length),
        encoded: new Uint8Array(length * 4),
      };
    }
    const codes = buffers.codes.subarray(0, codeBytes(length, bits));
    const startBit = (j: number) => ((c0 + j) * rows + r0) * bits;
    await pieces.forEach(
      source,
      across,
      (j) => parts.codes.byteOffset + Math.floor(startBit(j) / 8),
      (j) => Math.ceil(((startBit(j) % 8) + height * bits) / 8),
      (first, end, bytes, offset) => {
        for (let j = first; j < end; j++) copyBits(bytes, startBit(j) - (offset - parts.codes.byteOffset) * 8, codes, j * height * bits, height * bits);
      },
    );
    const firstGroup = (j: number) => Math.floor(((c0 + j) * rows + r0) / groupSize);
    const gather = async (tensor: TensorInfo, into: Float32Array) => {
      const target = new Uint8Array(into.buffer, into.byteOffset, into.byteLength);
      await pieces.forEach(
        source,
        across,
        (j) => tensor.byteOffset + firstGroup(j) * 4,
        () => perColumn * 4,
        (first, end, bytes, offset) => {
          for (let j = first; j < end; j++) {
            const at = tensor.byteOffset + firstGroup(j) * 4 - offset;
            target.set(bytes.subarray(at, at + perColumn * 4), j * perColumn * 4);
          }
        },
      );
    };
    const scales = buffers.scales.subarray(0, length / boxGroup);
    const zeros = buffers.zeros ? buffers.zeros.subarray(0, length / boxGroup) : null;
    await gather(parts.scales, scales);
    if (zeros) await gather(parts.zeros!, zeros);
    const packed: PackedTensor = { bits, type, length, groupSize: boxGroup, codes, scales, zeros, ...(grid ? { grid } : {}) };
    let out: Float32Array;
    try {
      out = await packer.unpack(packed, buffers.values.subarray(0, length));
    } catch (error) {
      throw inTransposed(error, parts, view, packed, { r0, c0, height });
    }
    const ordered = buffers.ordered.subarray(0, length);
    for (let j = 0; j < across; j++) {
      for (let i = 0; i < height; i++) ordered[i * across + j] = out[j * height + i]!;
    }
    await writer.write(encodeFloat32(ordered, dtype, buffers.encoded.subarray(0, length * 4)));
  }
}

/** As inTensor, for a box of a transposed tensor: the group in stream order, the element by its index in the tensor. */
function inTransposed(error: unknown, parts: PackedParts, view: AxisView, packed: PackedTensor, box: { r0: number; c0: number; height: number }): unknown {
  const element = error instanceof EdgeMoqError ? error.location?.index : undefined;
  if (element === undefined) return error;
  const column = box.c0 + Math.floor(element / box.height);
  const position = column * view.rows + box.r0 + (element % box.height);
  const index = tensorIndexOf(view, position);
  const { what } = invalidPackedReason(packed, element, index - element);
  const { groupSize, axis } = parts.entry;
  const group = Math.floor(position / groupSize);
  const first = group * groupSize;
  return new FormatError(
    `packed tensor "${parts.name}" group ${group} (stream elements ${first}..${first + groupSize - 1}, along axis ${axis!} ` +
      `from tensor element ${tensorIndexOf(view, first)}): ${what}. The file is damaged or was not written by edge-moq; nothing was written.`,
    { cause: error, location: { group, index } },
  );
}

/**
 * A packer's refusal of a chunk's scales, zero points or codes, as a file error naming the
 * tensor, the group and the element in the whole tensor.
 */
function inTensor(error: unknown, parts: PackedParts, packed: PackedTensor, firstElement: number, firstGroup: number): unknown {
  const element = error instanceof EdgeMoqError ? error.location?.index : undefined;
  if (element === undefined) return error;
  const { group, what } = invalidPackedReason(packed, element, firstElement);
  const at = firstGroup + group;
  const size = parts.entry.groupSize;
  return new FormatError(
    `packed tensor "${parts.name}" group ${at} (elements ${at * size}..${(at + 1) * size - 1}): ${what}. The file is damaged or was not written by edge-moq; nothing was written.`,
    { cause: error, location: { group: at, index: firstElement + element } },
  );
}
