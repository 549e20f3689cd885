// Streaming safetensors quantization: chunked output equals packing whole tensors, the packed
// file dequantizes to fakeQuantize's values, and a failure never leaves an output file.

import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WasmBackend } from '../src/backends/wasm/backend.js';
import { dequantizeSafetensors } from '../src/formats/dequantize-file.js';
import { atomicFileSink, fileSource } from '../src/formats/node-file.js';
import { readPackedLayout } from '../src/formats/packed-metadata.js';
import { chunkElementsFor } from '../src/formats/chunking.js';
import { quantizeSafetensors, type QuantizeFileOptions } from '../src/formats/quantize-file.js';
import { decodeFloat32, encodeFloat32, encodeSafetensors, memorySource, openSafetensors, readBytes, type Dtype } from '../src/formats/safetensors.js';
import { WasmPacker } from '../src/backends/wasm/packer.js';
import { tensorIdOf } from '../src/noise.js';
import { memorySink } from './support/memory-sink.js';
import { randomTensor } from './support/fixtures.js';

let backend: WasmBackend;
let packer: WasmPacker;
const dir = mkdtempSync(join(tmpdir(), 'edge-moq-files-'));

beforeAll(async () => {
  backend = await WasmBackend.create('simd');
  packer = new WasmPacker(backend);
});
afterAll(() => backend.dispose());

interface Source {
  name: string;
  dtype: Dtype;
  shape: number[];
  values: Float32Array;
}

function model(): Source[] {
  const tensor = (name: string, dtype: Dtype, shape: number[], seed: number): Source => {
    const length = shape.reduce((a, b) => a * b, 1);
    // Round through the dtype so the float32 values are exactly what the file holds.
    const values = decodeFloat32(encodeFloat32(randomTensor(length, seed, 3), dtype as 'F32'), dtype as 'F32');
    return { name, dtype, shape, values };
  };
  return [
    tensor('embed.weight', 'F32', [40, 24], 1),
    tensor('block.0.attn.weight', 'F16', [24, 24], 2),
    tensor('block.0.attn.bias', 'F32', [24], 3),
    tensor('block.0.mlp.weight', 'BF16', [48, 24], 4),
    tensor('head.weight', 'F32', [10, 24], 5),
  ];
}

function encode(tensors: Source[], extra: { name: string; dtype: Dtype; shape: number[]; data: Uint8Array }[] = []): Uint8Array {
  return encodeSafetensors([...tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: encodeFloat32(t.values, t.dtype as 'F32') })), ...extra], { note: 'kept' });
}

async function quantize(bytes: Uint8Array, options: QuantizeFileOptions) {
  const sink = memorySink();
  const report = await quantizeSafetensors(memorySource(bytes), sink, packer, options);
  return { report, out: sink.bytes() };
}

const variants: QuantizeFileOptions[] = [
  { bits: 4, groupSize: 8 },
  { bits: 3, groupSize: 3, type: 'asymmetric' },
  { bits: 5, groups: 2, rounding: 'stochastic', seed: 9 },
  { bits: 2 },
  { bits: 1, groupSize: 12 },
  { bits: 16, groupSize: 24 },
];

describe('quantizeSafetensors', () => {
  it.each(variants)('packs whole-tensor-equal codes in small chunks, and dequantizes to fakeQuantize: %o', async (options) => {
    const tensors = model();
    const input = encode(tensors);
    const whole = await quantize(input, options);
    const chunked = await quantize(input, { ...options, chunkBytes: 64 });
    expect(chunked.out).toEqual(whole.out);
    const errors = (report: typeof whole.report) => report.tensors.map(({ maxAbsError, rmsError }) => [maxAbsError, rmsError]);
    expect(errors(chunked.report)).toEqual(errors(whole.report));

    const packedFile = await openSafetensors(memorySource(whole.out));
    const layout = readPackedLayout(packedFile);
    expect(layout.packed.map((p) => p.name)).toEqual(['embed.weight', 'block.0.attn.weight', 'block.0.mlp.weight', 'head.weight']);
    expect(layout.plain.map((t) => t.name)).toEqual(['block.0.attn.bias']);
    expect(packedFile.metadata.note).toBe('kept');

    const sink = memorySink();
    await dequantizeSafetensors(memorySource(whole.out), sink, packer, { dtype: 'F32', chunkBytes: 40 });
    const restored = await openSafetensors(memorySource(sink.bytes()));
    for (const t of tensors) {
      const info = restored.tensors.find((r) => r.name === t.name)!;
      const values = decodeFloat32(await readBytes(restored, info), 'F32');
      if (t.shape.length < 2) {
        expect(values).toEqual(t.values);
        continue;
      }
      const groupSize = options.groups ? t.values.length / options.groups : (options.groupSize ?? t.shape.at(-1)!);
      const fake = await backend.fakeQuantize(t.values.slice(), {
        bits: options.bits,
        groupSize,
        ...(options.type ? { type: options.type } : {}),
        ...(options.rounding ? { rounding: options.rounding, seed: options.seed!, tensorId: tensorIdOf(t.name) } : {}),
      });
      for (let i = 0; i < fake.length; i++) {
        const want = options.bits === 1 && t.values[i] === 0 ? Math.abs(values[i]!) : fake[i]! + 0;
        expect(values[i]! + 0).toBe(want);
      }
    }
  });

  it('reports what it packed and kept, the bytes and the errors', async () => {
    const tensors = model();
    const { report } = await quantize(encode(tensors, [{ name: 'ids', dtype: 'I32', shape: [2], data: new Uint8Array(8) }]), { bits: 4, groupSize: 8, exclude: /^head\./ });
    const byName = Object.fromEntries(report.tensors.map((t) => [t.name, t]));
    expect(byName['head.weight']).toMatchObject({ packed: false, reason: 'matched by --exclude' });
    expect(byName.ids).toMatchObject({ packed: false, reason: 'I32 is not a float dtype' });
    expect(byName['block.0.attn.bias']!.reason).toMatch(/1-D/);
    const embed = byName['embed.weight']!;
    expect(embed).toMatchObject({ packed: true, bits: 4, type: 'symmetric', groupSize: 8, bytesIn: 40 * 24 * 4, bytesOut: (40 * 24) / 2 + ((40 * 24) / 8) * 4 });
    // Nearest rounding: no error exceeds one step (the top value is clamped to 2^(b-1)-1 steps,
    // a whole step below absmax); steps here are at most 2 * 3 / 16.
    expect(embed.maxAbsError).toBeGreaterThan(0);
    expect(embed.maxAbsError).toBeLessThanOrEqual((2 * 3) / 16 + 1e-6);
    expect(embed.rmsError).toBeLessThan(embed.maxAbsError!);
    expect(report.packed).toBe(3);
    expect(report.skipped).toBe(3);
    expect(report.ratio).toBeCloseTo(report.bytesIn / report.bytesOut, 12);
  });

  it('packs 1-D tensors when asked, and only tensors --include matches', async () => {
    const { report } = await quantize(encode(model()), { bits: 8, includeVectors: true, include: /attn/ });
    expect(report.tensors.filter((t) => t.packed).map((t) => t.name)).toEqual(['block.0.attn.weight', 'block.0.attn.bias']);
  });

  it('keeps tensors whose groups do not divide, saying why', async () => {
    const { report } = await quantize(encode(model()), { bits: 8, groupSize: 64 });
    expect(report.tensors.find((t) => t.name === 'head.weight')).toMatchObject({ packed: false, reason: 'group size 64 does not divide 240 elements' });
    expect(report.tensors.find((t) => t.name === 'embed.weight')).toMatchObject({ packed: true, groupSize: 64 });
  });

  it('chooses chunks of whole groups that start on a byte', () => {
    for (const [groupSize, bits, chunkBytes, expected] of [
      [3, 3, 64, 24],
      [3, 3, 400, 96],
      [5, 4, 4, 10],
      [32, 4, 1 << 20, 1 << 18],
      [7, 1, 16, 56],
    ] as const) {
      const chunk = chunkElementsFor({ groupSize, bits, length: 1 << 20 }, chunkBytes);
      expect(chunk).toBe(expected);
      expect((chunk * bits) % 8).toBe(0);
      expect(chunk % groupSize).toBe(0);
    }
  });
});

describe('a failed quantization leaves no output file', () => {
  const files = () => readdirSync(dir);

  it('on a NaN inside a tensor, naming tensor and element', async () => {
    const tensors = model();
    tensors[3]!.values[100] = Number.NaN;
    const input = join(dir, 'nan.safetensors');
    writeFileSync(input, encode(tensors));
    const output = join(dir, 'nan.q.safetensors');
    const source = await fileSource(input);
    await expect(quantizeSafetensors(source, atomicFileSink(output), packer, { bits: 4, groupSize: 8, chunkBytes: 64 })).rejects.toThrow(/tensor "block.0.mlp.weight" element 100: is NaN/);
    await source.close();
    expect(existsSync(output)).toBe(false);
    expect(files().filter((f) => f.includes('partial'))).toEqual([]);
  });

  it('on a truncated input', async () => {
    const input = join(dir, 'cut.safetensors');
    const bytes = encode(model());
    writeFileSync(input, bytes.subarray(0, bytes.length - 10));
    const output = join(dir, 'cut.q.safetensors');
    const source = await fileSource(input);
    await expect(quantizeSafetensors(source, atomicFileSink(output), packer, { bits: 4 })).rejects.toMatchObject({ code: 'MALFORMED_FILE' });
    await source.close();
    expect(existsSync(output)).toBe(false);
    expect(files().filter((f) => f.includes('partial'))).toEqual([]);
  });

  it('on bad options, before reading anything', async () => {
    const sink = memorySink();
    await expect(quantizeSafetensors(memorySource(encode(model())), sink, packer, { bits: 0 })).rejects.toThrow(/bits must be an integer from 1 to 16/);
    expect(sink.state).toBe('aborted');
  });

  it('when a packed name would collide with a tensor already there', async () => {
    const tensors = model();
    const clash = { name: 'embed.weight.q', dtype: 'U8' as Dtype, shape: [1], data: new Uint8Array(1) };
    const sink = memorySink();
    await expect(quantizeSafetensors(memorySource(encode(tensors, [clash])), sink, packer, { bits: 4 })).rejects.toThrow(/would replace a tensor/);
    expect(sink.state).toBe('aborted');
  });
});

describe('dequantizeSafetensors', () => {
  it('restores each tensor in its original dtype by default', async () => {
    const { out } = await quantize(encode(model()), { bits: 8, groupSize: 8 });
    const sink = memorySink();
    await dequantizeSafetensors(memorySource(out), sink, packer);
    const restored = await openSafetensors(memorySource(sink.bytes()));
    expect(restored.tensors.map((t) => [t.name, t.dtype])).toEqual(model().map((t) => [t.name, t.dtype]));
    expect(restored.metadata).toEqual({ note: 'kept' });
  });

  it('refuses a file that is not packed, and one whose metadata lies', async () => {
    await expect(dequantizeSafetensors(memorySource(encode(model())), memorySink(), packer)).rejects.toThrow(/not packed by edge-moq/);
    const { out } = await quantize(encode(model()), { bits: 4, groupSize: 8 });
    // Same length, so only the metadata changes: the codes no longer fit the bits it claims.
    const headerEnd = 8 + Number(new DataView(out.buffer, out.byteOffset).getBigUint64(0, true));
    const header = new TextDecoder().decode(out.subarray(8, headerEnd)).replace('\\"bits\\":4', '\\"bits\\":5');
    const lying = out.slice();
    lying.set(new TextEncoder().encode(header), 8);
    const sink = memorySink();
    await expect(dequantizeSafetensors(memorySource(lying), sink, packer)).rejects.toThrow(/"embed.weight.q" must be U8 of shape \[600\]/);
    expect(sink.state).toBe('aborted');
  });
});

it('leaves the input file as it was', async () => {
  const input = join(dir, 'keep.safetensors');
  const bytes = encode(model());
  writeFileSync(input, bytes);
  const source = await fileSource(input);
  await quantizeSafetensors(source, atomicFileSink(join(dir, 'keep.q.safetensors')), packer, { bits: 4 });
  await source.close();
  expect(new Uint8Array(readFileSync(input))).toEqual(bytes);
  expect(existsSync(join(dir, 'keep.q.safetensors'))).toBe(true);
});
