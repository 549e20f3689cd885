// A tfjs model's weights seen as a safetensors file, without copying them: a header built from
// the manifest, followed by the shards themselves. tfjs lays a manifest's weights back to back
// across each group's shards, so the shards, in manifest order, are exactly the data area of a
// safetensors file listing the weights in that order; everything that reads, packs and carries
// safetensors (quantize-file.ts, dequantize-file.ts) then works on tfjs models unchanged.

import { FormatError } from '../../errors.js';
import { layoutSafetensors, memorySource, type ByteSource, type Dtype, type TensorSpec } from '../safetensors.js';
import type { TfjsWeightSpec } from './model-json.js';

/** How a tfjs weight is held as a safetensors tensor: floats as floats (so they can be packed), the rest as they are. */
export function storedAs(spec: TfjsWeightSpec, byteLength: number): { dtype: Dtype; shape: number[] } {
  const q = spec.quantization?.dtype;
  if (q === 'float16') return { dtype: 'F16', shape: spec.shape };
  if (q === 'uint8') return { dtype: 'U8', shape: spec.shape };
  if (q === 'uint16') return { dtype: 'U16', shape: spec.shape };
  switch (spec.dtype) {
    case 'float32':
      return { dtype: 'F32', shape: spec.shape };
    case 'int32':
      return { dtype: 'I32', shape: spec.shape };
    case 'bool':
      return { dtype: 'BOOL', shape: spec.shape };
    // Length-prefixed strings and interleaved complex pairs are kept byte for byte.
    default:
      return { dtype: 'U8', shape: [byteLength] };
  }
}

/** What a weight's dtype is called in reports: tfjs's name, with its tfjs quantization. */
export function dtypeLabel(spec: TfjsWeightSpec): string {
  return spec.quantization ? `${spec.dtype} (tfjs ${spec.quantization.dtype})` : spec.dtype;
}

const BYTES: Readonly<Record<string, number>> = { float32: 4, int32: 4, bool: 1, complex64: 8, uint8: 1, uint16: 2, float16: 2 };

/** String length prefixes are read through a window of this many bytes, not one read per string. */
const STRING_WINDOW_BYTES = 64 * 1024;

/**
 * Bytes one weight takes in its group's shards, starting at `offset` (before `end`). Strings
 * are read: each is a uint32 length, then its bytes. A count of strings whose prefixes alone
 * could not fit is refused before anything is read, so a hostile shape costs nothing.
 */
export async function weightByteLength(spec: TfjsWeightSpec, data: ByteSource, offset: number, end: number): Promise<number> {
  const size = spec.shape.reduce((a, b) => a * b, 1);
  if (spec.dtype !== 'string' || spec.quantization) return size * BYTES[spec.quantization?.dtype ?? spec.dtype]!;
  if (size * 4 > end - offset) throw short(spec, end - offset, size * 4);
  const window = new Uint8Array(Math.min(STRING_WINDOW_BYTES, end - offset));
  const view = new DataView(window.buffer);
  let windowStart = offset;
  let windowEnd = offset;
  let at = offset;
  for (let i = 0; i < size; i++) {
    if (at + 4 > end) throw short(spec, end - offset, at + 4 - offset);
    // `at` only moves forward from where the window starts: it leaves the window only at its end.
    if (at + 4 > windowEnd) {
      windowStart = at;
      windowEnd = Math.min(end, at + window.length);
      await data.read(windowStart, window.subarray(0, windowEnd - windowStart));
    }
    at += 4 + view.getUint32(at - windowStart, true);
  }
  if (at > end) throw short(spec, end - offset, at - offset);
  return at - offset;
}

const short = (spec: TfjsWeightSpec, have: number, need: number) =>
  new FormatError(`weight "${spec.name}" needs ${need} bytes but its group's shards hold only ${have} from where it starts: a shard is short or missing.`);

export interface ShardGroup {
  specs: readonly TfjsWeightSpec[];
  /** The group's shards, in its paths' order. */
  shards: readonly ByteSource[];
  /** Names the group's shard files in errors. */
  paths: readonly string[];
}

export interface WeightsView {
  /** A safetensors file: the header, then the shards. */
  source: ByteSource;
  /** Each weight's tensor, in manifest order. */
  tensors: readonly TensorSpec[];
  /** Each weight's bytes in the shards, in manifest order. */
  byteLengths: readonly number[];
}

/**
 * The safetensors view of a model's weights. Each group's shards must hold its weights exactly:
 * fewer bytes (a short or missing shard) or more (shards of another model) is a FormatError.
 */
export async function weightsView(groups: readonly ShardGroup[]): Promise<WeightsView> {
  const tensors: TensorSpec[] = [];
  const byteLengths: number[] = [];
  const shards: ByteSource[] = [];
  for (const group of groups) {
    const data = concatSources(group.shards);
    let offset = 0;
    for (const spec of group.specs) {
      const length = await weightByteLength(spec, data, offset, data.size);
      if (offset + length > data.size) throw short(spec, data.size - offset, length);
      tensors.push({ name: spec.name, ...storedAs(spec, length) });
      byteLengths.push(length);
      offset += length;
    }
    if (offset !== data.size) {
      throw new FormatError(
        `the shards ${group.paths.map((p) => `"${p}"`).join(', ')} hold ${data.size} bytes but their weights in the manifest take ${offset}: ` +
          'the shards belong to another model or were changed; convert the model again.',
      );
    }
    shards.push(...group.shards);
  }
  const layout = layoutSafetensors(tensors);
  return { source: concatSources([memorySource(layout.header), ...shards]), tensors, byteLengths };
}

/** Sources read as one, end to end. */
export function concatSources(sources: readonly ByteSource[]): ByteSource {
  const starts: number[] = [];
  let size = 0;
  for (const source of sources) {
    starts.push(size);
    size += source.size;
  }
  return {
    size,
    async read(offset, into) {
      if (offset < 0 || offset + into.length > size) throw new RangeError(`read of ${into.length} bytes at ${offset} is outside the ${size} bytes`);
      let done = 0;
      // The last source starting at or before the offset (zero-length sources are passed over).
      let index = 0;
      while (index + 1 < sources.length && starts[index + 1]! <= offset) index++;
      while (done < into.length) {
        const source = sources[index]!;
        const at = offset + done - starts[index]!;
        const take = Math.min(source.size - at, into.length - done);
        if (take > 0) await source.read(at, into.subarray(done, done + take));
        done += Math.max(take, 0);
        index++;
      }
    },
  };
}
