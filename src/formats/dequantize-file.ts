// `edge-moq.packed/1` safetensors in, plain safetensors out: every packed tensor is unpacked
// under its own name (in its original dtype, or float32), the rest copied unchanged. Streams
// like quantize-file.ts, in the same chunks: whole groups, or pieces of a group larger than a
// chunk (unpacking is element by element given the group's scale, so a piece unpacks alone).
// Scales are read a chunk's worth at a time, so memory stays near the chunk size. Scales,
// zero points and codes are checked by the unpack kernels: a bad group is a MALFORMED_FILE
// naming the tensor and the group, and nothing non-finite is ever written.

import { EdgeMoqError, FormatError, InvalidInputError } from '../errors.js';
import { invalidPackedReason, type PackedTensor } from '../packed/layout.js';
import type { Packer } from '../packed/packer.js';
import { readCodeBits } from './code-stream.js';
import { readPackedLayout, type PackedParts } from './packed-metadata.js';
import { readAheadSource } from './read-ahead.js';
import { chunkingFor, DEFAULT_CHUNK_BYTES } from './chunking.js';
import {
  createSafetensorsWriter, encodeFloat32, openSafetensors, readByteChunks,
  type ByteSink, type ByteSource, type FloatDtype, type SafetensorsFile, type TensorInfo, type TensorSpec,
} from './safetensors.js';

export interface DequantizeFileOptions {
  /** 'original' (default): each tensor's dtype before packing; else this float dtype for all. */
  dtype?: 'original' | FloatDtype;
  chunkBytes?: number;
  onProgress?: (progress: { tensor: string; index: number; count: number }) => void;
}

export interface DequantizeReport {
  unpacked: number;
  copied: number;
  bytesIn: number;
  bytesOut: number;
}

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
  const dtypeOf = (parts: PackedParts): FloatDtype => (options.dtype && options.dtype !== 'original' ? options.dtype : parts.entry.dtype as FloatDtype);
  // Output order: the file's order, a packed tensor where its codes were.
  const byCodes = new Map(layout.packed.map((p) => [p.codes.name, p]));
  const plainNames = new Set(layout.plain.map((t) => t.name));
  const items = file.tensors.flatMap((t): (PackedParts | TensorInfo)[] => (byCodes.has(t.name) ? [byCodes.get(t.name)!] : plainNames.has(t.name) ? [t] : []));
  const specs: TensorSpec[] = items.map((item) => ('entry' in item
    ? { name: item.name, dtype: dtypeOf(item), shape: item.entry.shape }
    : { name: item.name, dtype: item.dtype, shape: item.shape }));
  const metadata = { ...file.metadata };
  delete metadata.format;
  delete metadata['edge-moq'];
  const writer = await createSafetensorsWriter(sink, { tensors: specs, metadata });
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  // Many small tensors are read a block at a time.
  const data: SafetensorsFile = { ...file, source: readAheadSource(file.source) };
  try {
    for (const [index, item] of items.entries()) {
      options.onProgress?.({ tensor: item.name, index, count: items.length });
      if ('entry' in item) await unpackTensor(data, item, dtypeOf(item), packer, writer, chunkBytes);
      else for await (const bytes of readByteChunks(data, item, { chunkBytes })) await writer.write(bytes);
    }
    await writer.close();
  } catch (error) {
    await writer.abort().catch(() => undefined);
    throw error;
  }
  return { unpacked: layout.packed.length, copied: layout.plain.length, bytesIn: source.size, bytesOut: writer.size };
}

async function unpackTensor(
  file: SafetensorsFile, parts: PackedParts, dtype: FloatDtype, packer: Packer,
  writer: { write(bytes: Uint8Array): Promise<void> }, chunkBytes: number,
): Promise<void> {
  const { bits, type, groupSize } = parts.entry;
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
    const packed: PackedTensor = { bits, type, length, groupSize: length / groups, codes: chunkCodes, scales: chunkScales, zeros: chunkZeros };
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
 * A packer's refusal of a chunk's scales, zero points or codes, as a file error naming the
 * tensor, the group and the element in the whole tensor.
 */
function inTensor(error: unknown, parts: PackedParts, packed: PackedTensor, firstElement: number, firstGroup: number): unknown {
  const element = error instanceof EdgeMoqError ? error.location?.index : undefined;
  if (element === undefined) return error;
  const { group, what } = invalidPackedReason(packed, element, firstElement);
  const at = firstGroup + group;
  const size = parts.entry.groupSize;
  return new FormatError(`packed tensor "${parts.name}" group ${at} (elements ${at * size}..${(at + 1) * size - 1}): ${what}. ` +
    'The file is damaged or was not written by edge-moq; nothing was written.', { cause: error, location: { group: at, index: firstElement + element } });
}
