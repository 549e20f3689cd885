// Groups along any axis (src/formats/axis.ts), through the streaming file pipeline: a tensor
// packed with its groups along `axis` dequantizes to fakeQuantize of its [A, B] view transposed
// (then transposed back), chunked exactly as whole, into positional and sequential sinks, for
// F32/F16/BF16, every group type and stochastic rounding, on every packer present; the
// independent decoder reads the files from the layout text; tampered records are MALFORMED_FILE.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { axisView, copyBits, tensorIndexOf } from '../src/formats/axis.js';
import { dequantizeSafetensors } from '../src/formats/dequantize-file.js';
import { packTensor, PackScratch } from '../src/formats/pack-tensor.js';
import { packedEntry, packedMetadata, packedNames, readPackedLayout } from '../src/formats/packed-metadata.js';
import { readAheadSource } from '../src/formats/read-ahead.js';
import { readableSource } from '../src/formats/streams.js';
import {
  createSafetensorsWriter,
  decodeFloat32,
  encodeFloat32,
  encodeSafetensors,
  memorySource,
  openSafetensors,
  readBytes,
  type ByteSink,
  type ByteSource,
  type FloatDtype,
  type TensorSpec,
} from '../src/formats/safetensors.js';
import { planPack, type PackOptions } from '../src/packed/layout.js';
import type { Packer } from '../src/packed/packer.js';
import { tensorIdOf } from '../src/noise.js';
import { randomTensor, uniforms } from './support/fixtures.js';
import { decodePackedFile } from './support/independent-decoder.mjs';
import { FUZZ_SEED, FUZZ_TIMEOUT_MS, fuzzRuns } from './support/fuzz.js';
import { memorySink } from './support/memory-sink.js';
import { usePackers } from './support/packers.js';

const packers = usePackers();

/** A memory sink that also writes at a position (as atomicFileSink does). */
function positionalSink(): ByteSink & { writeAt(offset: number, bytes: Uint8Array): Promise<void>; bytes(): Uint8Array; state: string } {
  let buffer = new Uint8Array(1024);
  let size = 0;
  const sink = {
    state: 'open',
    async write(bytes: Uint8Array) {
      if (size + bytes.length > buffer.length) {
        const grown = new Uint8Array(Math.max(buffer.length * 2, size + bytes.length));
        grown.set(buffer.subarray(0, size));
        buffer = grown;
      }
      buffer.set(bytes, size);
      size += bytes.length;
    },
    async writeAt(offset: number, bytes: Uint8Array) {
      if (offset + bytes.length > size) throw new Error('writeAt past the bytes written');
      buffer.set(bytes, offset);
    },
    async close() {
      sink.state = 'closed';
    },
    async abort() {
      sink.state = 'aborted';
    },
    bytes: () => buffer.slice(0, size),
  };
  return sink;
}

interface Case {
  label: string;
  dtype: FloatDtype;
  shape: number[];
  axis: number;
  options: PackOptions;
}

/** Packs one tensor into a packed file the way quantize-file.ts lays one out. */
async function packFile(values: Float32Array, c: Case, packer: Packer, chunkBytes: number, positional: boolean, wrap = (source: ByteSource) => source) {
  const model = encodeSafetensors([{ name: 'w', dtype: c.dtype, shape: c.shape, data: encodeFloat32(values, c.dtype) }]);
  const file = await openSafetensors(wrap(memorySource(model)));
  const tensor = file.tensors[0]!;
  const plan = planPack(tensor.length, c.options);
  const names = packedNames('w');
  const asymmetric = plan.type === 'asymmetric';
  const groups: TensorSpec[] = [{ name: names.scales, dtype: 'F32', shape: [plan.groupCount] }];
  if (asymmetric) groups.push({ name: names.zeros, dtype: 'F32', shape: [plan.groupCount] });
  const codes: TensorSpec = { name: names.codes, dtype: 'U8', shape: [plan.codeBytes] };
  const sink = positional ? positionalSink() : memorySink();
  const metadata = packedMetadata(new Map([['w', packedEntry(plan, c.shape, c.dtype, c.axis)]]));
  const writer = await createSafetensorsWriter(sink, { tensors: positional ? [...groups, codes] : [codes, ...groups], metadata });
  const target = positional ? { sink: sink as ReturnType<typeof positionalSink>, scales: writer.tensors[0]!, zeros: asymmetric ? writer.tensors[1]! : null } : null;
  const errors = await packTensor({ ...file, source: readAheadSource(file.source) }, tensor, plan, c.options, packer, new PackScratch(), writer, target, chunkBytes, () => undefined, c.axis);
  await writer.close();
  return { bytes: sink.bytes(), errors };
}

async function dequantized(bytes: Uint8Array, packer: Packer, chunkBytes?: number): Promise<Float32Array> {
  const sink = memorySink();
  await dequantizeSafetensors(memorySource(bytes), sink, packer, { dtype: 'F32', ...(chunkBytes ? { chunkBytes } : {}) });
  const file = await openSafetensors(memorySource(sink.bytes()));
  return decodeFloat32(await readBytes(file, file.tensors[0]!), 'F32');
}

/** `values` (the tensor, row-major) in stream order for groups along `axis`, and back. */
function toStream(values: Float32Array, shape: number[], axis: number): Float32Array {
  const view = axisView(shape, axis);
  return Float32Array.from({ length: values.length }, (_, p) => values[tensorIndexOf(view, p)]!);
}
function fromStream(stream: Float32Array, shape: number[], axis: number): Float32Array {
  const view = axisView(shape, axis);
  const out = new Float32Array(stream.length);
  stream.forEach((v, p) => {
    out[tensorIndexOf(view, p)] = v;
  });
  return out;
}

const stochastic = (seed: number): PackOptions => ({ rounding: 'stochastic', seed, tensorId: tensorIdOf('w'), bits: 6 });

const CASES: Case[] = [
  { label: '2-D [in, out] axis 0, per output column', dtype: 'F32', shape: [48, 10], axis: 0, options: { bits: 4, groupSize: 16 } },
  { label: '2-D axis 1 (the last: the layout before axes)', dtype: 'F32', shape: [10, 48], axis: 1, options: { bits: 4, groupSize: 16 } },
  { label: 'ONNX MatMul B [K, N] axis 0, one group per column', dtype: 'F16', shape: [64, 7], axis: 0, options: { bits: 8, groupSize: 64 } },
  { label: 'Keras conv [kh, kw, in, out] axis 2, per output channel', dtype: 'F32', shape: [3, 3, 4, 6], axis: 2, options: { bits: 5, groupSize: 36 } },
  { label: 'Keras conv axis 2, groups within the input channels', dtype: 'BF16', shape: [3, 3, 4, 6], axis: 2, options: { bits: 3, groupSize: 4, type: 'asymmetric' } },
  { label: 'depthwise [3, 3, C, 1] axis 1, per channel', dtype: 'F32', shape: [3, 3, 8, 1], axis: 1, options: { bits: 8, groupSize: 9 } },
  { label: '4-D axis 0', dtype: 'F16', shape: [6, 2, 3, 5], axis: 0, options: { bits: 7, groupSize: 3, type: 'asymmetric' } },
  { label: 'ternary, axis 0', dtype: 'F32', shape: [40, 6], axis: 0, options: { bits: 2, groupSize: 20 } },
  { label: 'binary, axis 0', dtype: 'F32', shape: [40, 6], axis: 0, options: { bits: 1, groupSize: 8 } },
  { label: 'stochastic, axis 0', dtype: 'F32', shape: [30, 9], axis: 0, options: { ...stochastic(3), groupSize: 15 } },
  { label: '11-bit asymmetric, codes that end mid-byte per column', dtype: 'F32', shape: [3, 3, 3, 5], axis: 1, options: { bits: 11, groupSize: 9, type: 'asymmetric' } },
  { label: 'groups larger than a chunk, axis 0', dtype: 'F32', shape: [120, 3], axis: 0, options: { bits: 6, groupSize: 120 } },
  { label: 'full grid, axis 0', dtype: 'F32', shape: [48, 10], axis: 0, options: { bits: 4, groupSize: 16, grid: 'full' } },
  { label: 'full grid, Keras conv per output channel, F16', dtype: 'F16', shape: [3, 3, 4, 6], axis: 2, options: { bits: 8, groupSize: 36, grid: 'full' } },
  { label: 'full grid, groups larger than a chunk', dtype: 'F32', shape: [120, 3], axis: 0, options: { bits: 5, groupSize: 120, grid: 'full' } },
  { label: 'full grid, stochastic', dtype: 'BF16', shape: [30, 9], axis: 0, options: { ...stochastic(5), groupSize: 15, grid: 'full' } },
  { label: 'full grid, last axis, groups larger than a chunk', dtype: 'F32', shape: [3, 120], axis: 1, options: { bits: 3, groupSize: 120, grid: 'full' } },
];

describe('groups along an axis, on every packer', () => {
  it.each(CASES)('$label: dequantizes to fakeQuantize of the transposed view, chunked as whole', async (c) => {
    const length = c.shape.reduce((a, b) => a * b, 1);
    const raw = randomTensor(length, length, 3);
    const values = decodeFloat32(encodeFloat32(raw, c.dtype), c.dtype);
    for (const { name, backend, packer } of packers) {
      const whole = await packFile(values, c, packer, 1 << 20, true);
      const expected = fromStream(await backend.fakeQuantize(toStream(values, c.shape, c.axis), c.options), c.shape, c.axis);
      const restored = await dequantized(whole.bytes, packer);
      const differs = restored.findIndex((v, i) => {
        const want = expected[i]! + 0;
        // Binary has no code for 0 (src/packed/packer.ts): +mean where fakeQuantize writes 0.
        return c.options.bits === 1 && want === 0 ? !(v > 0) : v + 0 !== want;
      });
      expect(differs, `${name}: element ${differs}`).toBe(-1);
      // Small chunks (boxes of a few columns, pieces of a column, rows in pieces) give the same bytes.
      for (const chunkBytes of [16, 52, 4 * 97]) {
        for (const positional of [true, false]) {
          const chunked = await packFile(values, c, packer, chunkBytes, positional);
          const a = decodePackedFile(chunked.bytes).get('w')!;
          const b = decodePackedFile(whole.bytes).get('w')!;
          expect(a.values, `${name} chunkBytes ${chunkBytes}`).toEqual(b.values);
          expect(chunked.errors).toEqual(whole.errors);
        }
        expect(await dequantized(whole.bytes, packer, chunkBytes), `${name} dequantized in chunks of ${chunkBytes}`).toEqual(restored);
      }
      // The independent decoder (written from the README's layout text) reads the same values.
      const outside = decodePackedFile(whole.bytes).get('w')!;
      expect(outside.shape).toEqual(c.shape);
      expect(outside.values).toEqual(restored);
    }
  });

  it('records grid "full", and omits grid "deepspeed"', async () => {
    const { packer } = packers[0]!;
    for (const [grid, recorded] of [
      ['full', 'full'],
      ['deepspeed', undefined],
    ] as const) {
      const c: Case = { label: '', dtype: 'F32', shape: [8, 4], axis: 0, options: { bits: 4, groupSize: 4, grid } };
      const { bytes } = await packFile(randomTensor(32, 1), c, packer, 1 << 20, false);
      expect(readPackedLayout(await openSafetensors(memorySource(bytes))).packed[0]!.entry.grid).toBe(recorded);
      expect(decodePackedFile(bytes).get('w')!.packed!.grid).toBe(recorded);
    }
  });

  it('omits axis when it is the last, and records it otherwise', async () => {
    const { packer } = packers[0]!;
    for (const [axis, recorded] of [
      [1, undefined],
      [0, 0],
    ] as const) {
      const c: Case = { label: '', dtype: 'F32', shape: [8, 4], axis, options: { bits: 4, groupSize: 4 } };
      const { bytes } = await packFile(randomTensor(32, 1), c, packer, 1 << 20, false);
      const layout = readPackedLayout(await openSafetensors(memorySource(bytes)));
      expect(layout.packed[0]!.entry.axis).toBe(recorded);
      expect(JSON.parse((await openSafetensors(memorySource(bytes))).metadata['edge-moq']!).w).not.toHaveProperty('grid');
    }
  });

  it('refuses groups that would cross columns before reading', async () => {
    const c: Case = { label: '', dtype: 'F32', shape: [6, 4], axis: 0, options: { bits: 4, groupSize: 4 } };
    await expect(packFile(randomTensor(24, 1), c, packers[0]!.packer, 1 << 20, false)).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringMatching(/tensor "w": groups of 4 along axis 0 of \[6, 4\] would cross columns: the group size must divide 6/),
    });
  });
});

describe('bounded memory', () => {
  /** A source that records its largest read and the bytes it served. */
  function counted(source: ByteSource) {
    const stats = { largest: 0, bytes: 0 };
    return {
      stats,
      source: {
        size: source.size,
        async read(offset: number, into: Uint8Array) {
          stats.largest = Math.max(stats.largest, into.length);
          stats.bytes += into.length;
          await source.read(offset, into);
        },
      },
    };
  }

  it('a transposed tensor larger than the chunk is read in boxes of strided windows, never whole', async () => {
    // [4096, 512] F32 (8 MiB), groups down the columns: boxes of 16 columns at 256 KiB chunks.
    const c: Case = { label: '', dtype: 'F32', shape: [4096, 512], axis: 0, options: { bits: 4, groupSize: 64 } };
    const values = randomTensor(4096 * 512, 4);
    let stats = { largest: 0, bytes: 0 };
    const small = await packFile(values, c, packers[0]!.packer, 256 << 10, false, (source) => {
      const wrapped = counted(source);
      stats = wrapped.stats;
      return wrapped.source;
    });
    // Rows of 2 KiB, 64 bytes of each wanted: close enough that windows of 4 MiB are read (fewer
    // calls for more bytes), never the whole tensor at once.
    expect(stats.largest).toBeLessThanOrEqual(4 << 20);
    expect(stats.bytes).toBeLessThanOrEqual(33 * values.byteLength);
    const whole = await packFile(values, c, packers[0]!.packer, 16 << 20, false);
    expect(Buffer.compare(small.bytes, whole.bytes)).toBe(0);
  });
});

describe('forward-only sources', () => {
  const streamOf = (source: ByteSource) => {
    const bytes = new Uint8Array(source.size);
    return readableSource(
      new ReadableStream<Uint8Array>({
        async start(controller) {
          await source.read(0, bytes);
          for (let at = 0; at < bytes.length; at += 1000) controller.enqueue(bytes.slice(at, at + 1000));
          controller.close();
        },
      }),
      bytes.length,
    );
  };
  const c: Case = { label: '', dtype: 'F32', shape: [64, 32], axis: 0, options: { bits: 4, groupSize: 32 } };
  const values = randomTensor(64 * 32, 6);

  it('pack a transposed tensor that fits a chunk: it is read front to back', async () => {
    const streamed = await packFile(values, c, packers[0]!.packer, 1 << 20, false, streamOf);
    const seekable = await packFile(values, c, packers[0]!.packer, 1 << 20, false);
    expect(Buffer.compare(streamed.bytes, seekable.bytes)).toBe(0);
  });

  it('refuse one larger than a chunk and the read-ahead block with an IO error (its columns need reads back)', async () => {
    const large: Case = { ...c, shape: [1024, 512] };
    await expect(packFile(randomTensor(1024 * 512, 6), large, packers[0]!.packer, 64 << 10, false, streamOf)).rejects.toMatchObject({
      code: 'IO',
      message: expect.stringMatching(/reads forward only/),
    });
  });
});

describe('tampered axis and grid records', () => {
  /** A packed [8, 6] tensor with groups of 4 along axis 0, its record edited. */
  async function withRecord(edit: (entry: Record<string, unknown>) => void, options: PackOptions = { bits: 4, groupSize: 4 }): Promise<Uint8Array> {
    const c: Case = { label: '', dtype: 'F32', shape: [8, 6], axis: 0, options };
    const { bytes } = await packFile(randomTensor(48, 2), c, packers[0]!.packer, 1 << 20, false);
    const file = await openSafetensors(memorySource(bytes));
    const records = JSON.parse(file.metadata['edge-moq']!);
    edit(records.w);
    const tensors = await Promise.all(file.tensors.map(async (t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: await readBytes(file, t) })));
    return encodeSafetensors(tensors, { ...file.metadata, 'edge-moq': JSON.stringify(records) });
  }

  it.each([
    [
      'an axis out of range',
      (e: Record<string, unknown>) => {
        e.axis = 2;
      },
      /axis must be an integer in 0\.\.1/,
    ],
    [
      'a negative axis',
      (e: Record<string, unknown>) => {
        e.axis = -1;
      },
      /axis must be an integer in 0\.\.1/,
    ],
    [
      'a fractional axis',
      (e: Record<string, unknown>) => {
        e.axis = 0.5;
      },
      /axis must be an integer/,
    ],
    [
      'a string axis',
      (e: Record<string, unknown>) => {
        e.axis = '0';
      },
      /axis must be an integer/,
    ],
    [
      'groups that cross columns',
      (e: Record<string, unknown>) => {
        e.groupSize = 16;
        e.shape = [4, 12];
      },
      /would cross columns/,
    ],
    [
      'an unknown grid',
      (e: Record<string, unknown>) => {
        e.grid = 'ggml';
      },
      /grid must be "deepspeed" or "full"/,
    ],
    [
      'a full grid on asymmetric codes',
      (e: Record<string, unknown>) => {
        e.grid = 'full';
        e.type = 'asymmetric';
        e.bits = 4;
      },
      /grid "full" is a symmetric grid|type/,
    ],
  ])('%s is MALFORMED_FILE, nothing written', async (_, edit, message) => {
    const bad = await withRecord(edit);
    const sink = memorySink();
    await expect(dequantizeSafetensors(memorySource(bad), sink, packers[0]!.packer)).rejects.toMatchObject({ code: 'MALFORMED_FILE', message: expect.stringMatching(message) });
    expect(sink.state).toBe('aborted');
  });

  it("a full-grid file whose grid record is dropped is refused: its negative scales are not on DeepSpeed's grid", async () => {
    const bad = await withRecord(
      (e) => {
        delete e.grid;
      },
      { bits: 4, groupSize: 4, grid: 'full' },
    );
    for (const { packer } of packers) {
      const sink = memorySink();
      await expect(dequantizeSafetensors(memorySource(bad), sink, packer)).rejects.toMatchObject({ code: 'MALFORMED_FILE', message: expect.stringMatching(/its scale is -/) });
      expect(sink.state).toBe('aborted');
    }
  });

  it('a bad scale in a transposed tensor names the group in stream order and the element in the tensor', async () => {
    const c: Case = { label: '', dtype: 'F32', shape: [8, 6], axis: 0, options: { bits: 4, groupSize: 4 } };
    const { bytes } = await packFile(randomTensor(48, 2), c, packers[0]!.packer, 1 << 20, false);
    const file = await openSafetensors(memorySource(bytes));
    const scales = file.tensors.find((t) => t.name === 'w.scale')!;
    const bad = bytes.slice();
    // Group 5: column 2, rows 4..7 (tensor elements 26, 32, 38, 44).
    new DataView(bad.buffer).setFloat32(scales.byteOffset + 5 * 4, Number.NaN, true);
    for (const { packer } of packers) {
      for (const chunkBytes of [undefined, 16]) {
        const sink = memorySink();
        await expect(dequantizeSafetensors(memorySource(bad), sink, packer, chunkBytes ? { chunkBytes } : {})).rejects.toMatchObject({
          code: 'MALFORMED_FILE',
          location: { group: 5, index: 26 },
          message: expect.stringMatching(/packed tensor "w" group 5 \(stream elements 20\.\.23, along axis 0 from tensor element 26\): its scale is NaN/),
        });
        expect(sink.state).toBe('aborted');
      }
    }
  });
});

describe('random byte edits of transposed files', () => {
  it(
    'are MALFORMED_FILE or dequantize to finite values, whole and in chunks',
    async () => {
      const kinds: Case[] = [
        { label: '', dtype: 'F32', shape: [3, 4, 5], axis: 1, options: { bits: 4, groupSize: 6 } },
        { label: '', dtype: 'F32', shape: [12, 5], axis: 0, options: { bits: 5, groupSize: 4, type: 'asymmetric' } },
        { label: '', dtype: 'F32', shape: [12, 5], axis: 0, options: { bits: 6, groupSize: 12, grid: 'full' } },
        { label: '', dtype: 'F32', shape: [12, 5], axis: 0, options: { bits: 2, groupSize: 6 } },
      ];
      const { packer } = packers[0]!;
      const files = await Promise.all(kinds.map(async (c) => (await packFile(randomTensor(60, 7, 5), c, packer, 1 << 20, false)).bytes));
      await fc.assert(
        fc.asyncProperty(
          fc.nat(files.length - 1),
          fc.constantFrom('w.q', 'w.scale', 'w.zero'),
          fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 6 }),
          fc.constantFrom(undefined, 16, 40),
          async (which, part, edits, chunkBytes) => {
            const original = files[which]!;
            const file = await openSafetensors(memorySource(original));
            const tensor = file.tensors.find((t) => t.name === part);
            if (!tensor) return;
            const bad = original.slice();
            for (const [at, value] of edits) bad[tensor.byteOffset + (at % tensor.byteLength)] = value;
            const sink = memorySink();
            try {
              await dequantizeSafetensors(memorySource(bad), sink, packer, { dtype: 'F32', ...(chunkBytes ? { chunkBytes } : {}) });
            } catch (error) {
              expect(error).toMatchObject({ code: 'MALFORMED_FILE' });
              expect(sink.state).toBe('aborted');
              return;
            }
            const out = await openSafetensors(memorySource(sink.bytes()));
            expect(decodeFloat32(await readBytes(out, out.tensors[0]!), 'F32').every(Number.isFinite)).toBe(true);
          },
        ),
        { seed: FUZZ_SEED, numRuns: fuzzRuns(150) },
      );
    },
    FUZZ_TIMEOUT_MS,
  );
});

describe('axis helpers', () => {
  it('tensorIndexOf is the transpose of the [A, B] view', () => {
    const view = axisView([2, 3, 4], 1);
    expect(view).toEqual({ rows: 6, columns: 4 });
    expect(Array.from({ length: 24 }, (_, p) => tensorIndexOf(view, p)).slice(0, 8)).toEqual([0, 4, 8, 12, 16, 20, 1, 5]);
  });

  it('copyBits copies any run between any bit offsets, leaving other bits alone', () => {
    const next = uniforms(9);
    for (let run = 0; run < 300; run++) {
      const source = Uint8Array.from({ length: 12 }, () => Math.floor(next() * 256));
      const target = Uint8Array.from({ length: 12 }, () => Math.floor(next() * 256));
      const from = Math.floor(next() * 40);
      const to = Math.floor(next() * 40);
      const count = Math.floor(next() * 50);
      const bit = (bytes: Uint8Array, j: number) => (bytes[j >> 3]! >> (j & 7)) & 1;
      const expected = Array.from({ length: 96 }, (_, j) => (j >= to && j < to + count ? bit(source, from + j - to) : bit(target, j)));
      copyBits(source, from, target, to, count);
      expect(Array.from({ length: 96 }, (_, j) => bit(target, j))).toEqual(expected);
    }
  });
});
