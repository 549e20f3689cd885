// safetensors in, `edge-moq.packed/1` safetensors out, streaming: tensor by tensor and chunk by
// chunk, so a file larger than memory is processed with a bounded footprint. A chunk holds
// whole groups, and enough of them that it starts on a byte of the code stream, so chunks pack
// exactly as the whole tensor would (the stochastic noise is indexed from firstIndex).

import { InvalidInputError } from '../errors.js';
import { tensorIdOf } from '../noise.js';
import { allocatePacked, planPack, type PackedTensor, type PackOptions, type PackPlan } from '../packed/layout.js';
import type { Packer } from '../packed/packer.js';
import { packedMetadata, packedNames, type PackedEntry } from './packed-metadata.js';
import {
  createSafetensorsWriter, isFloatDtype, openSafetensors, readByteChunks, readFloat32Chunks,
  type ByteSink, type ByteSource, type TensorInfo, type TensorSpec,
} from './safetensors.js';

export const DEFAULT_CHUNK_BYTES = 16 << 20;

export interface QuantizeFileOptions {
  bits: number;
  /** Elements per group. Default: the last dimension (one group per row). */
  groupSize?: number;
  /** Groups per tensor, instead of groupSize. */
  groups?: number;
  type?: 'symmetric' | 'asymmetric';
  rounding?: 'nearest' | 'stochastic';
  /** Stochastic rounding: each tensor's noise stream is (seed, 0, tensorIdOf(name)). */
  seed?: number;
  /** Only tensors whose name matches are packed. */
  include?: RegExp;
  /** Tensors whose name matches are stored unchanged. */
  exclude?: RegExp;
  /** Pack 1-D tensors too (MoQ leaves biases and norms alone; so does this, by default). */
  includeVectors?: boolean;
  /** Float32 bytes read per chunk (default 16 MiB; a chunk always holds whole groups). */
  chunkBytes?: number;
  onProgress?: (progress: QuantizeProgress) => void;
}

export interface QuantizeProgress {
  tensor: string;
  /** 0-based index of the tensor, and how many there are. */
  index: number;
  count: number;
  /** Input bytes processed so far, of all. */
  bytesDone: number;
  bytesTotal: number;
}

export interface TensorReport {
  name: string;
  dtype: string;
  shape: readonly number[];
  packed: boolean;
  /** Why a tensor was stored unchanged. */
  reason?: string;
  bits?: number;
  type?: string;
  groupSize?: number;
  bytesIn: number;
  bytesOut: number;
  /** Packed tensors: the largest |x − dequantized x| and the root-mean-square error. */
  maxAbsError?: number;
  rmsError?: number;
}

export interface QuantizeReport {
  tensors: TensorReport[];
  packed: number;
  skipped: number;
  bytesIn: number;
  bytesOut: number;
  /** bytesIn / bytesOut of the whole file. */
  ratio: number;
}

interface Decision {
  tensor: TensorInfo;
  /** Null: stored unchanged, for `reason`. */
  plan: PackPlan | null;
  options?: PackOptions;
  reason?: string;
}

/**
 * Quantizes the safetensors file in `source` into `sink`. The sink is aborted on any error, so
 * no partial output survives (use atomicFileSink from node-file.ts for files).
 */
export async function quantizeSafetensors(source: ByteSource, sink: ByteSink, packer: Packer, options: QuantizeFileOptions): Promise<QuantizeReport> {
  let decisions: Decision[];
  let file;
  try {
    checkOptions(options);
    file = await openSafetensors(source);
    decisions = file.tensors.map((tensor) => decide(tensor, options));
  } catch (error) {
    await sink.abort().catch(() => undefined);
    throw error;
  }
  const specs: TensorSpec[] = [];
  const entries = new Map<string, PackedEntry>();
  for (const { tensor, plan } of decisions) {
    if (!plan) {
      specs.push({ name: tensor.name, dtype: tensor.dtype, shape: tensor.shape });
      continue;
    }
    const names = packedNames(tensor.name);
    specs.push({ name: names.codes, dtype: 'U8', shape: [plan.codeBytes] }, { name: names.scales, dtype: 'F32', shape: [plan.groupCount] });
    if (plan.type === 'asymmetric') specs.push({ name: names.zeros, dtype: 'F32', shape: [plan.groupCount] });
    entries.set(tensor.name, { bits: plan.bits, type: plan.type, groupSize: plan.groupSize, shape: [...tensor.shape], dtype: tensor.dtype as PackedEntry['dtype'] });
  }
  const clash = specs.find((spec, i) => specs.findIndex((s) => s.name === spec.name) !== i);
  if (clash) {
    await sink.abort().catch(() => undefined);
    throw new InvalidInputError('INVALID_ARGUMENT',
      `the packed tensor "${clash.name}" would replace a tensor of that name already in the file; exclude one of them (--exclude).`);
  }
  const metadata = { ...file.metadata };
  delete metadata.format;
  delete metadata['edge-moq'];
  const writer = await createSafetensorsWriter(sink, { tensors: specs, metadata: packedMetadata(entries, metadata) });
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  const bytesTotal = file.tensors.reduce((sum, t) => sum + t.byteLength, 0);
  let bytesDone = 0;
  const reports: TensorReport[] = [];
  try {
    for (const [index, { tensor, plan, options: packOptions, reason }] of decisions.entries()) {
      options.onProgress?.({ tensor: tensor.name, index, count: decisions.length, bytesDone, bytesTotal });
      const base = { name: tensor.name, dtype: tensor.dtype, shape: tensor.shape, bytesIn: tensor.byteLength };
      if (!plan) {
        for await (const bytes of readByteChunks(file, tensor, { chunkBytes })) await writer.write(bytes);
        reports.push({ ...base, packed: false, reason: reason!, bytesOut: tensor.byteLength });
      } else {
        const errors = await packTensor(file, tensor, plan, packOptions!, packer, writer, chunkBytes, (done) =>
          options.onProgress?.({ tensor: tensor.name, index, count: decisions.length, bytesDone: bytesDone + done, bytesTotal }));
        reports.push({
          ...base, packed: true, bits: plan.bits, type: plan.type, groupSize: plan.groupSize,
          bytesOut: plan.codeBytes + plan.groupCount * 4 * (plan.type === 'asymmetric' ? 2 : 1), ...errors,
        });
      }
      bytesDone += tensor.byteLength;
    }
    options.onProgress?.({ tensor: '', index: decisions.length, count: decisions.length, bytesDone, bytesTotal });
    await writer.close();
  } catch (error) {
    await writer.abort().catch(() => undefined);
    throw error;
  }
  const packed = reports.filter((r) => r.packed).length;
  return { tensors: reports, packed, skipped: reports.length - packed, bytesIn: source.size, bytesOut: writer.size, ratio: source.size / writer.size };
}

/** Whole groups per chunk, a multiple of the groups that fill whole bytes of the code stream. */
export function chunkElementsFor(plan: { groupSize: number; bits: number; length: number }, chunkBytes: number): number {
  const gcd = (a: number, b: number): number => (b ? gcd(b, a % b) : a);
  const groupsPerByteStep = 8 / gcd(8, (plan.groupSize * plan.bits) % 8 || 8);
  const step = groupsPerByteStep * plan.groupSize;
  return Math.min(plan.length, Math.max(step, Math.floor(chunkBytes / 4 / step) * step));
}

async function packTensor(
  file: Awaited<ReturnType<typeof openSafetensors>>, tensor: TensorInfo, plan: PackPlan, options: PackOptions, packer: Packer,
  writer: { write(bytes: Uint8Array): Promise<void> }, chunkBytes: number, progress: (bytesDone: number) => void,
): Promise<{ maxAbsError: number; rmsError: number }> {
  const chunkElements = chunkElementsFor(plan, chunkBytes);
  const scales = new Float32Array(plan.groupCount);
  const zeros = plan.type === 'asymmetric' ? new Float32Array(plan.groupCount) : null;
  // One PackedTensor and one dequantized buffer per chunk shape (the last chunk may be shorter).
  const buffers = new Map<number, { packed: PackedTensor; unpacked: Float32Array }>();
  let first = 0;
  let maxAbsError = 0;
  let squares = 0;
  for await (const chunk of readFloat32Chunks(file, tensor, { chunkElements })) {
    let buffer = buffers.get(chunk.length);
    if (!buffer) {
      buffer = { packed: allocatePacked(planPack(chunk.length, options)), unpacked: new Float32Array(chunk.length) };
      buffers.set(chunk.length, buffer);
    }
    try {
      await packer.pack(chunk, { ...options, firstIndex: first }, buffer.packed);
    } catch (error) {
      throw withTensor(error, tensor.name, first);
    }
    await packer.unpack(buffer.packed, buffer.unpacked);
    for (let i = 0; i < chunk.length; i++) {
      const e = Math.abs(chunk[i]! - buffer.unpacked[i]!);
      if (e > maxAbsError) maxAbsError = e;
      squares += e * e;
    }
    const group = first / plan.groupSize;
    scales.set(buffer.packed.scales, group);
    zeros?.set(buffer.packed.zeros!, group);
    await writer.write(buffer.packed.codes);
    first += chunk.length;
    progress(first * (tensor.byteLength / tensor.length));
  }
  await writer.write(new Uint8Array(scales.buffer));
  if (zeros) await writer.write(new Uint8Array(zeros.buffer));
  return { maxAbsError, rmsError: Math.sqrt(squares / plan.length) };
}

function withTensor(error: unknown, name: string, first: number): unknown {
  if (error instanceof InvalidInputError && error.code === 'NON_FINITE') {
    const index = /data\[(\d+)\]/.exec(error.message);
    const at = index ? first + Number(index[1]) : first;
    return new InvalidInputError('NON_FINITE',
      `tensor "${name}" element ${at}: ${error.message.replace(/^data\[\d+\] /, '')} Exclude the tensor (--exclude) or fix the checkpoint; no output was written.`);
  }
  return error;
}

function decide(tensor: TensorInfo, options: QuantizeFileOptions): Decision {
  const skip = (reason: string): Decision => ({ tensor, plan: null, reason });
  if (!isFloatDtype(tensor.dtype)) return skip(`${tensor.dtype} is not a float dtype`);
  if (options.include && !options.include.test(tensor.name)) return skip('not matched by --include');
  if (options.exclude?.test(tensor.name)) return skip('matched by --exclude');
  if (tensor.length === 0) return skip('empty');
  if (tensor.shape.length < 2 && !options.includeVectors) return skip(`${tensor.shape.length}-D (pass --include-vectors to pack it)`);
  const groupSize = options.groups === undefined ? options.groupSize ?? tensor.shape.at(-1) ?? 1 : undefined;
  if (groupSize !== undefined && tensor.length % groupSize !== 0) return skip(`group size ${groupSize} does not divide ${tensor.length} elements`);
  if (options.groups !== undefined && tensor.length % options.groups !== 0) return skip(`${options.groups} groups do not divide ${tensor.length} elements`);
  const stochastic = options.rounding === 'stochastic';
  // Chunks are packed with the tensor's group size, whichever way the groups were given.
  const packOptions: PackOptions = {
    bits: options.bits,
    groupSize: groupSize ?? tensor.length / options.groups!,
    ...(options.type ? { type: options.type } : {}),
    ...(options.rounding ? { rounding: options.rounding } : {}),
    ...(stochastic ? { seed: options.seed ?? 0, tensorId: tensorIdOf(tensor.name) } : {}),
  };
  return { tensor, plan: planPack(tensor.length, packOptions, `tensor "${tensor.name}"`), options: packOptions };
}

function checkOptions(options: QuantizeFileOptions): void {
  if (options === null || typeof options !== 'object') {
    throw new InvalidInputError('INVALID_ARGUMENT', 'options must be an object such as { bits: 4, groupSize: 32 }.');
  }
  // Validates bits, type, rounding, seed and the group options once, before any file is read.
  const { bits, type, rounding, seed, groups, groupSize } = options;
  planPack(groups ?? groupSize ?? 1, {
    bits, ...(type ? { type } : {}), ...(rounding ? { rounding } : {}), ...(seed !== undefined ? { seed } : {}),
    ...(groups !== undefined ? { groups } : {}), ...(groupSize !== undefined ? { groupSize } : {}),
  }, 'options');
  if (options.chunkBytes !== undefined && !(Number.isInteger(options.chunkBytes) && options.chunkBytes > 0)) {
    throw new InvalidInputError('INVALID_ARGUMENT', `chunkBytes must be a positive integer, got ${String(options.chunkBytes)}.`);
  }
}
