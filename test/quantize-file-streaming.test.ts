// Streaming at the limits: groups larger than a chunk, code streams that don't end on a byte,
// scales written in place, files packed twice, tensors that packing makes larger, and a
// summary that must never hold a NaN. Every chunked result is compared with the same tensor
// packed whole (one chunk), tensor by tensor.

import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WasmBackend } from '../src/backends/wasm/backend.js';
import { CodeStreamWriter, readCodeBits } from '../src/formats/code-stream.js';
import { dequantizeSafetensors } from '../src/formats/dequantize-file.js';
import { atomicFileSink } from '../src/formats/node-file.js';
import { readPackedLayout } from '../src/formats/packed-metadata.js';
import { readAheadSource } from '../src/formats/read-ahead.js';
import { readableSource } from '../src/formats/streams.js';
import { quantizeSafetensors, type QuantizeFileOptions } from '../src/formats/quantize-file.js';
import { decodeFloat32, encodeFloat32, encodeSafetensors, memorySource, openSafetensors, readBytes, type Dtype } from '../src/formats/safetensors.js';
import type { Packer } from '../src/packed/packer.js';
import { WasmPacker } from '../src/backends/wasm/packer.js';
import { memorySink } from './support/memory-sink.js';
import { randomTensor, uniforms } from './support/fixtures.js';

let backends: WasmBackend[];
let packers: WasmPacker[];
const dir = mkdtempSync(join(tmpdir(), 'edge-moq-streaming-'));

beforeAll(async () => {
  backends = [await WasmBackend.create('simd'), await WasmBackend.create('scalar')];
  packers = backends.map((b) => new WasmPacker(b));
});
afterAll(() => backends.forEach((b) => b.dispose()));

let fileCount = 0;
/** Quantizes into memory (sequential sink) or into a file (positional sink). */
async function quantize(bytes: Uint8Array, options: QuantizeFileOptions, packer: Packer, where: 'memory' | 'file') {
  if (where === 'memory') {
    const sink = memorySink();
    const report = await quantizeSafetensors(memorySource(bytes), sink, packer, options);
    return { report, out: sink.bytes() };
  }
  const path = join(dir, `out-${fileCount++}.safetensors`);
  const report = await quantizeSafetensors(memorySource(bytes), atomicFileSink(path), packer, options);
  return { report, out: new Uint8Array(readFileSync(path)) };
}

/** Every tensor of a file by name (the order differs between sinks). */
async function tensorsOf(bytes: Uint8Array): Promise<Map<string, Uint8Array>> {
  const file = await openSafetensors(memorySource(bytes));
  const out = new Map<string, Uint8Array>();
  for (const t of file.tensors) out.set(t.name, await readBytes(file, t));
  return out;
}

function modelWith(tensors: { name: string; dtype: Dtype; shape: number[]; values: Float32Array }[]): Uint8Array {
  return encodeSafetensors(tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: encodeFloat32(t.values, t.dtype as 'F32') })));
}

// Groups larger than the chunk, with lengths whose codes end mid-byte, values near the float32
// edges (asymmetric half scale), constants, and both roundings.
const wide = (length: number, seed: number, scale = 1) => randomTensor(length, seed, scale);
const GROUP_CASES: { label: string; values: Float32Array; options: QuantizeFileOptions }[] = [
  { label: 'symmetric 4-bit, one 1001-element row', values: wide(1001, 1), options: { bits: 4 } },
  { label: 'symmetric 3-bit, groups of 333 (codes end mid-byte)', values: wide(999, 2), options: { bits: 3, groupSize: 333 } },
  { label: 'asymmetric 5-bit, groups of 257', values: wide(771, 3, 40), options: { bits: 5, groupSize: 257, type: 'asymmetric' } },
  { label: 'asymmetric 7-bit near FLT_MAX (half scale)', values: wide(600, 4, 3.4e38), options: { bits: 7, groupSize: 300, type: 'asymmetric' } },
  { label: 'stochastic 6-bit, groups of 500', values: wide(1000, 5), options: { bits: 6, groupSize: 500, rounding: 'stochastic', seed: 3 } },
  { label: 'asymmetric stochastic 11-bit', values: wide(999, 6, 0.01), options: { bits: 11, groupSize: 999, type: 'asymmetric', rounding: 'stochastic', seed: 8 } },
  { label: 'a constant group', values: new Float32Array(640).fill(0.25), options: { bits: 8, groupSize: 320, type: 'asymmetric' } },
  { label: 'an all-zero group', values: new Float32Array(640), options: { bits: 8, groupSize: 640 } },
  { label: '16-bit, groups of 129', values: wide(258, 7), options: { bits: 16, groupSize: 129 } },
  { label: 'ternary, packed whole though larger than a chunk', values: wide(640, 8), options: { bits: 2, groupSize: 320 } },
];

describe.each(['wasm-simd', 'wasm'])('groups larger than a chunk on %s', (kind) => {
  const packer = () => packers[kind === 'wasm-simd' ? 0 : 1]!;

  it.each(GROUP_CASES)('$label: pieces pack as the whole group, into memory and into files', async ({ values, options }) => {
    const bytes = modelWith([{ name: 'w', dtype: 'F32', shape: [values.length / (options.groupSize ?? values.length), options.groupSize ?? values.length], values }]);
    const whole = await quantize(bytes, options, packer(), 'memory');
    const expected = await tensorsOf(whole.out);
    for (const chunkBytes of [64, 100, 4 * 97]) {
      for (const where of ['memory', 'file'] as const) {
        const chunked = await quantize(bytes, { ...options, chunkBytes }, packer(), where);
        expect(await tensorsOf(chunked.out)).toEqual(expected);
        expect(chunked.report.tensors[0]!.maxAbsError).toBe(whole.report.tensors[0]!.maxAbsError);
        // The squares are summed by element index, not by chunk: the same bits however it is read.
        expect(chunked.report.tensors[0]!.rmsError).toBe(whole.report.tensors[0]!.rmsError);
      }
    }
    // Dequantized in pieces too: the same values as dequantized whole.
    const restore = async (chunkBytes?: number) => {
      const sink = memorySink();
      await dequantizeSafetensors(memorySource(whole.out), sink, packer(), { dtype: 'F32', ...(chunkBytes ? { chunkBytes } : {}) });
      return sink.bytes();
    };
    const restored = await restore();
    expect(await restore(64)).toEqual(restored);
    expect(await restore(100)).toEqual(restored);
    const file = await openSafetensors(memorySource(restored));
    expect(decodeFloat32(await readBytes(file, file.tensors[0]!), 'F32').every(Number.isFinite)).toBe(true);
  });
});

describe('files packed twice', () => {
  const tensors = [
    { name: 'attn.q.weight', dtype: 'F32' as Dtype, shape: [8, 32], values: randomTensor(256, 1) },
    { name: 'mlp.up.weight', dtype: 'F16' as Dtype, shape: [16, 32], values: decodeFloat32(encodeFloat32(randomTensor(512, 2), 'F16'), 'F16') },
    { name: 'norm.weight', dtype: 'F32' as Dtype, shape: [32], values: randomTensor(32, 3) },
  ];

  it("keep the first run's packing: 8 bits for attention, then 4 for the rest, dequantize to both", async () => {
    const packer = packers[0]!;
    const first = await quantize(modelWith(tensors), { bits: 8, include: /attn/ }, packer, 'file');
    const second = await quantize(first.out, { bits: 4 }, packer, 'file');
    const carried = second.report.tensors.find((t) => t.name === 'attn.q.weight')!;
    expect(carried).toMatchObject({ packed: false, reason: expect.stringMatching(/already packed \(symmetric 8-bit, groups of 32\): carried over/) });
    const layout = readPackedLayout(await openSafetensors(memorySource(second.out)));
    expect(layout.packed.map((p) => [p.name, p.entry.bits]).sort()).toEqual([
      ['attn.q.weight', 8],
      ['mlp.up.weight', 4],
    ]);
    expect(layout.plain.map((t) => t.name)).toEqual(['norm.weight']);
    // The carried tensor's parts are byte for byte the first run's.
    const once = await tensorsOf(first.out);
    const twice = await tensorsOf(second.out);
    for (const part of ['attn.q.weight.q', 'attn.q.weight.scale']) expect(twice.get(part)).toEqual(once.get(part));

    const sink = memorySink();
    await dequantizeSafetensors(memorySource(second.out), sink, packer, { dtype: 'F32' });
    const restored = await tensorsOf(sink.bytes());
    for (const [name, bits] of [
      ['attn.q.weight', 8],
      ['mlp.up.weight', 4],
    ] as const) {
      const source = tensors.find((t) => t.name === name)!;
      const expected = await backends[0]!.fakeQuantize(source.values.slice(), { bits, groupSize: 32 });
      // A zero keeps no sign in the packed form (src/packed/packer.ts).
      expect(Array.from(decodeFloat32(restored.get(name)!, 'F32'), (v) => v + 0)).toEqual(Array.from(expected, (v) => v + 0));
    }
    expect(decodeFloat32(restored.get('norm.weight')!, 'F32')).toEqual(tensors[2]!.values);
  });

  it('quantizing a packed file again with nothing left to pack keeps it as it was', async () => {
    const packer = packers[0]!;
    const first = await quantize(modelWith(tensors), { bits: 4 }, packer, 'memory');
    const second = await quantize(first.out, { bits: 3 }, packer, 'memory');
    expect(second.report.packed).toBe(0);
    expect(await tensorsOf(second.out)).toEqual(await tensorsOf(first.out));
  });
});

describe('reports', () => {
  it('warn when packing makes a tensor larger (groups of 1, F16)', async () => {
    const values = decodeFloat32(encodeFloat32(randomTensor(64, 4), 'F16'), 'F16');
    const { report } = await quantize(modelWith([{ name: 'tiny', dtype: 'F16', shape: [64, 1], values }]), { bits: 8, groupSize: 1 }, packers[0]!, 'memory');
    expect(report.tensors[0]!.bytesOut).toBeGreaterThan(report.tensors[0]!.bytesIn);
    expect(report.warnings).toEqual([expect.stringMatching(/tensor "tiny" is larger packed \(320 bytes\) than as F16 \(128 bytes\)/)]);
    expect(report.ratio).toBeLessThan(1);
  });

  it('refuse a summary holding NaN: the output is discarded', async () => {
    const real = packers[0]!;
    const broken: Packer = {
      kind: real.kind,
      pack: (data, options, into) => real.pack(data, options, into),
      unpack: (packed, out) => real.unpack(packed, out),
      // A summary holding NaN, as a broken unpack would give.
      measure: async (original, packed, totals, first) => {
        await real.measure(original, packed, totals, first);
        totals[0] = Number.NaN;
      },
      dispose: () => undefined,
    };
    const sink = memorySink();
    await expect(quantizeSafetensors(memorySource(modelWith([{ name: 'w', dtype: 'F32', shape: [4, 8], values: randomTensor(32, 1) }])), sink, broken, { bits: 4 })).rejects.toMatchObject({
      code: 'NON_FINITE',
      message: expect.stringMatching(/tensor "w": the packed values differ from the input by NaN/),
    });
    expect(sink.state).toBe('aborted');
  });
});

describe('name patterns', () => {
  const names = Array.from({ length: 6 }, (_, i) => `${'a'.repeat(30 + i)}.weight`);
  const bytes = () => modelWith(names.map((name, i) => ({ name, dtype: 'F32' as Dtype, shape: [2, 8], values: randomTensor(16, i) })));

  it.each([
    ['a global RegExp (its lastIndex used to skip every other tensor)', /a/g, 6],
    ['a sticky RegExp', /a/y, 6],
    ['a string', 'weight$', 6],
    ['a pattern that backtracks exponentially in RegExp', '^(a+)+$', 0],
    ['the same, matching', '^(a+)+\\.weight$', 6],
  ] as const)('%s', async (_, include, packed) => {
    const { report } = await quantize(bytes(), { bits: 4, include }, packers[0]!, 'memory');
    expect(report.packed).toBe(packed);
  });

  it('refuses a pattern it cannot run in linear time, before reading', async () => {
    const sink = memorySink();
    await expect(quantizeSafetensors(memorySource(bytes()), sink, packers[0]!, { bits: 4, exclude: '(a)\\1' })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringMatching(/^options\.exclude/),
    });
    expect(sink.state).toBe('aborted');
  });
});

describe('refusals before anything is read', () => {
  /** A source whose header declares a tensor of `length` F32 values; data reads are counted. */
  function hugeSource(shape: number[]) {
    const length = shape.reduce((a, b) => a * b, 1);
    const json = new TextEncoder().encode(JSON.stringify({ w: { dtype: 'F32', shape, data_offsets: [0, length * 4] } }).padEnd(64, ' '));
    const header = new Uint8Array(8 + json.length);
    new DataView(header.buffer).setBigUint64(0, BigInt(json.length), true);
    header.set(json, 8);
    const reads = { data: 0 };
    return {
      reads,
      source: {
        size: header.length + length * 4,
        async read(offset: number, into: Uint8Array) {
          if (offset >= header.length) reads.data++;
          into.set(header.subarray(offset, offset + into.length));
        },
      },
    };
  }

  it('stochastic rounding of a tensor over 2^32 elements', async () => {
    const { source, reads } = hugeSource([2 ** 16, 2 ** 16 + 16]);
    const sink = memorySink();
    await expect(quantizeSafetensors(source, sink, packers[0]!, { bits: 4, rounding: 'stochastic', groupSize: 64 })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringMatching(/has 4296015872 elements; stochastic rounding .* up to 2\^32 elements. Use --rounding nearest/),
    });
    expect(reads.data).toBe(0);
    expect(sink.state).toBe('aborted');
  });

  it('a ternary group larger than the memory a group may take', async () => {
    const { source, reads } = hugeSource([2, 2 ** 27]);
    await expect(quantizeSafetensors(source, memorySink(), packers[0]!, { bits: 2 })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringMatching(/ternary groups of 134217728 elements .* pass --group-size 67108864 or smaller/),
    });
    expect(reads.data).toBe(0);
  });
});

describe('read-ahead', () => {
  const bytes = Uint8Array.from({ length: 3 << 20 }, (_, i) => (i * 7919) >>> 3);

  it('returns the bytes of any read, small or large, in any order', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.nat(bytes.length - 1), fc.oneof(fc.nat(100), fc.nat(200_000))), { maxLength: 30 }), async (reads) => {
        const source = readAheadSource(memorySource(bytes));
        for (const [offset, wanted] of reads) {
          const length = Math.min(wanted, bytes.length - offset);
          const into = new Uint8Array(length);
          await source.read(offset, into);
          expect(Buffer.compare(into, bytes.subarray(offset, offset + length))).toBe(0);
        }
      }),
      { seed: 5, numRuns: 100 },
    );
  });

  it('reads small pieces far apart directly, so that a strided read fetches about what it asks for', async () => {
    let fetched = 0;
    const source = readAheadSource({
      size: bytes.length,
      async read(offset, into) {
        fetched += into.length;
        into.set(bytes.subarray(offset, offset + into.length));
      },
    });
    let asked = 0;
    for (let offset = 0; offset + 64 < bytes.length; offset += 400_000) {
      const into = new Uint8Array(64);
      await source.read(offset, into);
      expect(Buffer.compare(into, bytes.subarray(offset, offset + 64))).toBe(0);
      asked += 64;
    }
    // The first read starts a block (1 MiB); the others, 400 KB apart, are read as asked.
    expect(fetched).toBeLessThanOrEqual((1 << 20) + asked);
  });

  it('keeps a forward-only stream forward when reads go forward (small, straddling and large)', async () => {
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let at = 0; at < bytes.length; at += 100_000) controller.enqueue(bytes.slice(at, at + 100_000));
        controller.close();
      },
    });
    const source = readAheadSource(readableSource(stream, bytes.length));
    let offset = 0;
    for (const length of [8, 1000, 60_000, (1 << 20) - 70_000, 30_000, 500_000, 16, 1_000_000, 3]) {
      const into = new Uint8Array(length);
      await source.read(offset, into);
      expect(Buffer.compare(into, bytes.subarray(offset, offset + length))).toBe(0);
      offset += length + 5;
    }
    expect(offset).toBeLessThan(bytes.length);
  });
});

describe('code streams', () => {
  it('appending bit runs of any length equals writing the stream at once; readCodeBits reads any run back', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 0, max: 70 }), { minLength: 1, maxLength: 12 }), fc.integer(), async (runs, seed) => {
        const next = uniforms(seed);
        const total = runs.reduce((a, b) => a + b, 0);
        const bits = Array.from({ length: total }, () => (next() < 0.5 ? 0 : 1));
        const stream = new Uint8Array(Math.ceil(total / 8));
        bits.forEach((b, i) => {
          stream[i >> 3]! |= b << (i & 7);
        });
        const written: number[] = [];
        const writer = new CodeStreamWriter(async (bytes) => {
          written.push(...bytes);
        });
        let at = 0;
        for (const run of runs) {
          const piece = new Uint8Array(Math.ceil(run / 8) + 1).fill(0xff); // bits past the run must be ignored
          for (let i = 0; i < run; i++) if (!bits[at + i]) piece[i >> 3]! &= ~(1 << (i & 7));
          await writer.append(piece, run);
          at += run;
        }
        await writer.finish();
        expect(Uint8Array.from(written)).toEqual(stream);

        const source = memorySource(Uint8Array.of(9, ...stream, 0, 0));
        const into = new Uint8Array(stream.length + 2);
        const scratch = new Uint8Array(stream.length + 3);
        at = 0;
        for (const run of runs) {
          const read = await readCodeBits(source, 1, at, run, into, scratch);
          for (let i = 0; i < run; i++) expect((read[i >> 3]! >> (i & 7)) & 1).toBe(bits[at + i]);
          at += run;
        }
      }),
      { seed: 13, numRuns: 200 },
    );
  });
});
