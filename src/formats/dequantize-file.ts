// `edge-moq.packed/1` safetensors in, plain safetensors out: every packed tensor is unpacked
// under its own name (in its original dtype, or float32), the rest copied unchanged. Streams
// like quantize-file.ts: codes are read a chunk of whole groups at a time.

import { InvalidInputError } from '../errors.js';
import type { PackedTensor } from '../packed/layout.js';
import type { Packer } from '../packed/packer.js';
import { readPackedLayout, type PackedParts } from './packed-metadata.js';
import { chunkElementsFor, DEFAULT_CHUNK_BYTES } from './quantize-file.js';
import {
  createSafetensorsWriter, encodeFloat32, openSafetensors, readByteChunks, readBytes,
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
  try {
    for (const [index, item] of items.entries()) {
      options.onProgress?.({ tensor: item.name, index, count: items.length });
      if ('entry' in item) await unpackTensor(file, item, dtypeOf(item), packer, writer, chunkBytes);
      else for await (const bytes of readByteChunks(file, item, { chunkBytes })) await writer.write(bytes);
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
  const floats = async (tensor: typeof parts.scales) => {
    const bytes = await readBytes(file, tensor);
    return new Float32Array(bytes.buffer, bytes.byteOffset, tensor.length);
  };
  const scales = await floats(parts.scales);
  const zeros = parts.zeros ? await floats(parts.zeros) : null;
  const chunkElements = chunkElementsFor({ groupSize, bits, length: parts.length }, chunkBytes);
  const codes = new Uint8Array(Math.ceil((chunkElements * bits) / 8));
  const values = new Float32Array(chunkElements);
  const encoded = new Uint8Array(chunkElements * 4);
  for (let first = 0; first < parts.length; first += chunkElements) {
    const length = Math.min(chunkElements, parts.length - first);
    const chunkCodes = codes.subarray(0, Math.ceil((length * bits) / 8));
    await file.source.read(parts.codes.byteOffset + (first * bits) / 8, chunkCodes);
    const firstGroup = first / groupSize;
    const groups = length / groupSize;
    const packed: PackedTensor = {
      bits, type, length, groupSize, codes: chunkCodes,
      scales: scales.subarray(firstGroup, firstGroup + groups),
      zeros: zeros ? zeros.subarray(firstGroup, firstGroup + groups) : null,
    };
    const out = await packer.unpack(packed, values.subarray(0, length));
    await writer.write(encodeFloat32(out, dtype, encoded));
  }
}
