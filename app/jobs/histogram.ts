// Before/after histograms of one tensor of the last quantize job. Nothing of the job is kept in
// memory: the tensor is quantized again, alone (include = its exact name; the job's exclude and
// recipe as they were, so the same rule decides), into a sink that keeps nothing, through a
// packer that samples what it is given and what its codes unpack to. The values are the
// packer's own pack → unpack, which is what the file's codes dequantize to.

import { InvalidInputError } from '../../src/errors.js';
import { quantizeOnnx } from '../../src/formats/onnx/quantize.js';
import { externalLocations, readModel } from '../../src/formats/onnx/model.js';
import { quantizeSafetensors } from '../../src/formats/quantize-file.js';
import { quantizeTfjsModel } from '../../src/formats/tfjs/quantize.js';
import type { PackedTensor, PackOptions } from '../../src/packed/layout.js';
import type { Packer } from '../../src/packed/packer.js';
import type { AppOptions, ResultRow } from '../protocol.js';
import { CancelToken } from './cancel.js';
import { blobSource, discardSink } from './io.js';
import { companionOpener, locateModel, type NamedBlob } from './model.js';
import { fileOptions, onnxOptions } from './quantize.js';

/** At most this many values of a tensor are histogrammed, taken evenly across it. */
export const MAX_SAMPLES = 1_000_000;

export interface Histogram {
  edges: number[];
  before: number[];
  after: number[];
}

/** A name pattern that matches exactly `name` (every punctuation character escaped). */
export function exactPattern(name: string): string {
  return `^${name.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&')}$`;
}

/** A packer that passes everything on and samples every `stride`-th value packed, and its unpacked value. */
class SamplingPacker implements Packer {
  readonly before: number[] = [];
  readonly after: number[] = [];
  min = Infinity;
  max = -Infinity;
  private seen = 0;
  private calls = 0;

  constructor(
    private readonly inner: Packer,
    private readonly stride: number,
    private readonly firstCallOnly: boolean,
    /** Which values of a pack call are the tensor's (ONNX pads K with zeros). */
    private readonly keep: (index: number, length: number) => boolean,
  ) {}

  get kind() {
    return this.inner.kind;
  }

  async pack(data: Float32Array, options: PackOptions, into?: PackedTensor): Promise<PackedTensor> {
    const packed = await this.inner.pack(data, options, into);
    if (this.firstCallOnly && this.calls++ > 0) return packed;
    const restored = await this.inner.unpack(packed);
    for (let i = 0; i < data.length; i++) {
      if (!this.keep(i, data.length)) continue;
      const x = data[i]!;
      if (x < this.min) this.min = x;
      if (x > this.max) this.max = x;
      if (this.seen++ % this.stride === 0) {
        this.before.push(x);
        this.after.push(restored[i]!);
      }
    }
    return packed;
  }

  unpack(packed: PackedTensor, out?: Float32Array): Promise<Float32Array> {
    return this.inner.unpack(packed, out);
  }

  measure(original: Float32Array, packed: PackedTensor, totals: Float64Array, first?: number): Promise<void> {
    return this.inner.measure(original, packed, totals, first);
  }

  dispose(): void {
    // The inner packer belongs to the worker.
  }
}

function bin(values: readonly number[], edges: number[], bins: number): number[] {
  const counts = new Array<number>(bins).fill(0);
  const lo = edges[0]!;
  const width = (edges[bins]! - lo) / bins;
  for (const v of values) {
    // Values outside the input's range (rounding can step past its ends) go to the end bins.
    const at = width > 0 ? Math.floor((v - lo) / width) : 0;
    counts[Math.min(bins - 1, Math.max(0, at))]!++;
  }
  return counts;
}

/** The before/after histogram of `tensor` from the last job (its files, options and rows); `token` stops it. */
export async function tensorHistogram(
  files: readonly NamedBlob[],
  options: AppOptions,
  rows: readonly ResultRow[],
  tensor: string,
  bins: number,
  packer: Packer,
  onnxOps?: ReadonlyMap<string, string>,
  token: CancelToken = new CancelToken(),
): Promise<Histogram> {
  if (!Number.isInteger(bins) || bins < 1 || bins > 10_000) throw new InvalidInputError('INVALID_ARGUMENT', `bins must be an integer from 1 to 10000, got ${bins}.`);
  const row = rows.find((r) => r.name === tensor);
  if (!row) throw new InvalidInputError('INVALID_ARGUMENT', `the last job has no tensor "${tensor}".`);
  if (!row.packed) throw new InvalidInputError('INVALID_ARGUMENT', `"${tensor}" was ${row.packedAs}: it is written as it was read, so before and after are the same.`);
  const model = await locateModel(files, token);
  const elements = row.shape.reduce((a, b) => a * b, 1);
  const stride = Math.max(1, Math.ceil(elements / MAX_SAMPLES));
  const only = { ...options, include: exactPattern(tensor) };
  let sampler: SamplingPacker;
  if (model.format === 'onnx') {
    // Columns of K padded to whole blocks: B [K, N] (MatMul, Gemm) or a table [V, D] read as N = V columns of K = D.
    const [a, b] = row.shape as [number, number];
    const k = onnxOps?.get(tensor) === 'Gather' ? b : a;
    const n = onnxOps?.get(tensor) === 'Gather' ? a : b;
    sampler = new SamplingPacker(packer, stride, true, (i, length) => i % (length / n) < k);
    const locations = externalLocations(readModel(model.onnx!));
    const open = companionOpener(model, token);
    await quantizeOnnx(model.onnx!, onnxOptions(only), {
      packer: sampler,
      externalData: (location) => open(location),
      ...(locations.length > 0 ? { externalDataOut: { location: 'histogram.data', sink: discardSink } } : {}),
    });
  } else {
    sampler = new SamplingPacker(packer, stride, false, () => true);
    const settings = fileOptions(only);
    if (model.format === 'safetensors') {
      await quantizeSafetensors(blobSource(model.entry, token), discardSink, sampler, settings);
    } else if (model.format === 'tfjs') {
      await quantizeTfjsModel(model.tfjs!, companionOpener(model, token), discardSink, sampler, settings, 'histogram.safetensors');
    } else {
      const shard = model.index!.weightMap.get(tensor);
      if (shard === undefined) throw new InvalidInputError('INVALID_ARGUMENT', `${model.entry.name} maps no shard to "${tensor}".`);
      await quantizeSafetensors(await companionOpener(model, token)(shard), discardSink, sampler, settings);
    }
  }
  if (sampler.before.length === 0) throw new InvalidInputError('INVALID_ARGUMENT', `"${tensor}" was not packed again: was the model changed since it was quantized?`);
  const edges = Array.from({ length: bins + 1 }, (_, i) => sampler.min + ((sampler.max - sampler.min) * i) / bins);
  return { edges, before: bin(sampler.before, edges, bins), after: bin(sampler.after, edges, bins) };
}
