// Interop with real consumers of the packed layout `edge-moq.packed/1`:
//  - onnxruntime-web (wasm, in Node) runs a com.microsoft MatMulNBits node whose B and scales are
//    our 4-bit symmetric codes and scales, unchanged; its output must match A @ dequantize(W)^T.
//  - a reader written only from the layout text (support/independent-decoder.mjs) decodes a file
//    written by quantizeSafetensors to what the library itself unpacks.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-web';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WasmBackend } from '../src/backends/wasm/backend.js';
import { atomicFileSink, fileSource } from '../src/formats/node-file.js';
import { quantizeSafetensors, type QuantizeFileOptions } from '../src/formats/quantize-file.js';
import { encodeFloat32, encodeSafetensors } from '../src/formats/safetensors.js';
import { tensorIdOf } from '../src/noise.js';
import { createPacker, type Packer, type PackedTensor } from '../src/packed/index.js';
import { decodePackedFile, dequantize, floatValues, readCode, readSafetensors } from './support/independent-decoder.mjs';
import { randomTensor } from './support/fixtures.js';
import { matMulNBitsModel } from './support/onnx-model.js';

// One thread: no worker threads inside the forked test process, and one accumulation order.
ort.env.wasm.numThreads = 1;
ort.env.logLevel = 'error';

/** float32 unit roundoff. */
const U = 2 ** -24;

let packer: Packer;
let backend: WasmBackend;
beforeAll(async () => {
  packer = await createPacker('wasm-simd');
  backend = await WasmBackend.create('simd');
});
afterAll(() => {
  packer?.dispose();
  backend?.dispose();
});

/** -0 and +0 are one value here (a zero keeps no sign through packing). */
const signless = (a: Float32Array) => a.map((x) => x + 0);

interface MatMulCase {
  m: number;
  k: number;
  n: number;
  blockSize: number;
}

/** Y[m, n] = sum_k A[m, k] W[n, k] in float64, and the matching sum_k |A[m, k] W[n, k]|. */
function referenceMatMul({ m, k, n }: MatMulCase, a: Float32Array, w: Float32Array) {
  const y = new Float64Array(m * n);
  const magnitude = new Float64Array(m * n);
  for (let row = 0; row < m; row++) {
    for (let col = 0; col < n; col++) {
      let sum = 0;
      let abs = 0;
      for (let i = 0; i < k; i++) {
        const term = a[row * k + i]! * w[col * k + i]!;
        sum += term;
        abs += Math.abs(term);
      }
      y[row * n + col] = sum;
      magnitude[row * n + col] = abs;
    }
  }
  return { y, magnitude };
}

async function runMatMulNBits(c: MatMulCase, weight: Uint8Array, scales: Float32Array, a: Float32Array): Promise<Float32Array> {
  const model = matMulNBitsModel({ m: c.m, k: c.k, n: c.n, bits: 4, blockSize: c.blockSize, weight, scales });
  const session = await ort.InferenceSession.create(model, { executionProviders: ['wasm'] });
  try {
    const { Y } = await session.run({ A: new ort.Tensor('float32', a, [c.m, c.k]) });
    expect(Y!.dims).toEqual([c.m, c.n]);
    return Y!.data as Float32Array;
  } finally {
    await session.release();
  }
}

/** Swaps the two codes of every byte: what a high-nibble-first writer would produce. */
const swapNibbles = (codes: Uint8Array) => codes.map((b) => (b >> 4) | ((b & 0x0f) << 4));

describe('onnxruntime-web MatMulNBits reads our 4-bit symmetric codes as they are', () => {
  const cases: MatMulCase[] = [16, 32, 64, 128].map((blockSize) => ({ m: 5, k: 128, n: 64, blockSize }));

  async function prepare(c: MatMulCase) {
    const w = randomTensor(c.n * c.k, 0x5eed + c.blockSize);
    const a = randomTensor(c.m * c.k, 0xa11ce + c.blockSize, 2);
    const packed: PackedTensor = await packer.pack(w, { bits: 4, groupSize: c.blockSize });
    expect(packed).toMatchObject({ bits: 4, type: 'symmetric', groupSize: c.blockSize, zeros: null });
    const dequantized = dequantize(packed);
    const reference = referenceMatMul(c, a, dequantized);
    // A float32 dot product of K terms, in any summation order, errs by at most
    // gamma_K * sum |a w|, gamma_n = n u / (1 - n u) (Higham, Accuracy and Stability, 3.1).
    // Two more roundings cover the runtime's choices: scaling each block's sum of
    // a * (code - 8) instead of each weight, and our weights being (code - 8) * s rounded.
    const gamma = ((c.k + 2) * U) / (1 - (c.k + 2) * U);
    const tolerance = reference.magnitude.map((mag) => gamma * mag);
    return { a, packed, dequantized, reference, tolerance };
  }

  it.each(cases)('block_size $blockSize: B = codes [N, K/block, block/2], scales [N, K/block]', async (c) => {
    const { a, packed, dequantized, reference, tolerance } = await prepare(c);
    expect(signless(await packer.unpack(packed))).toEqual(signless(dequantized));

    const y = await runMatMulNBits(c, packed.codes, packed.scales, a);
    const errors = Array.from(y, (v, i) => Math.abs(v - reference.y[i]!));
    const worst = Math.max(...errors.map((e, i) => e / tolerance[i]!));
    expect(worst, `largest error / bound ${worst}`).toBeLessThanOrEqual(1);
  });

  it('sees a high-nibble-first layout as a different matrix (the check above can fail)', async () => {
    const c = cases[1]!;
    const { a, packed, reference, tolerance } = await prepare(c);
    const y = await runMatMulNBits(c, swapNibbles(packed.codes), packed.scales, a);
    const outside = Array.from(y).filter((v, i) => Math.abs(v - reference.y[i]!) > tolerance[i]!);
    expect(outside.length).toBeGreaterThan(0.9 * y.length);
  });
});

describe('the independent decoder reads what the packer writes', () => {
  it('takes stream bit j from bit j mod 8 of byte floor(j/8)', () => {
    // 3-bit codes 5, 2, 7: stream bits 101 010 111 (element 0 first, low bit first) =
    // byte 0 bits 0..7 = 1,0,1,0,1,0,1,1 and byte 1 bit 0 = 1.
    const codes = Uint8Array.of(0b1101_0101, 0b0000_0001);
    expect([0, 1, 2].map((i) => readCode(codes, i, 3))).toEqual([5, 2, 7]);
  });

  const settings = [
    { bits: 1, groupSize: 7, type: 'symmetric' },
    { bits: 2, groupSize: 9, type: 'symmetric' },
    { bits: 3, groupSize: 5, type: 'asymmetric' },
    { bits: 3, groupSize: 11, type: 'symmetric' },
    { bits: 4, groupSize: 32, type: 'symmetric' },
    { bits: 5, groupSize: 13, type: 'asymmetric' },
    { bits: 7, groupSize: 3, type: 'symmetric' },
    { bits: 8, groupSize: 15, type: 'asymmetric' },
    { bits: 12, groupSize: 21, type: 'symmetric' },
  ] as const;

  it.each(settings)('bits $bits ($type grid where bits > 2), groups of $groupSize', async (options) => {
    const data = randomTensor(options.groupSize * 6, 0xdec0de + options.bits, 3);
    const packed = await packer.pack(data, options);
    expect(signless(dequantize(packed))).toEqual(signless(await packer.unpack(packed)));
  });
});

describe('quantizeSafetensors output, read by the independent decoder', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edge-moq-interop-'));
  const inPath = join(dir, 'in.safetensors');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Shapes whose sizes all divide by 7 (an odd group size), with exact zeros for binary. */
  const inputs = [
    { name: 'attn.q.weight', dtype: 'F32', shape: [6, 35], seed: 11 },
    { name: 'mlp.up.weight', dtype: 'F16', shape: [10, 21], seed: 12 },
    { name: 'mlp.down.weight', dtype: 'BF16', shape: [4, 14], seed: 13 },
    { name: 'norm.weight', dtype: 'F32', shape: [35], seed: 14 },
  ] as const;

  const inputFile = (() => {
    const tensors = inputs.map(({ name, dtype, shape, seed }) => {
      const values = randomTensor(
        shape.reduce((a, b) => a * b, 1),
        seed,
        3,
      );
      for (let i = 0; i < values.length; i += 9) values[i] = 0;
      return { name, dtype, shape, data: encodeFloat32(values, dtype) };
    });
    return encodeSafetensors(tensors);
  })();
  writeFileSync(inPath, inputFile);
  // The values as the file holds them, widened by the independent reader.
  const original = new Map([...readSafetensors(inputFile).tensors].map(([name, t]) => [name, { values: floatValues(t), bytes: t.bytes }]));

  const runs: { label: string; options: QuantizeFileOptions }[] = [
    { label: '4-bit symmetric, a group per row', options: { bits: 4 } },
    { label: '3-bit asymmetric, groups of 7', options: { bits: 3, type: 'asymmetric', groupSize: 7 } },
    { label: 'ternary, groups of 7', options: { bits: 2, groupSize: 7 } },
    { label: 'binary, 2 groups per tensor', options: { bits: 1, groups: 2 } },
    { label: '5-bit asymmetric stochastic, groups of 7', options: { bits: 5, type: 'asymmetric', groupSize: 7, rounding: 'stochastic', seed: 1234 } },
  ];

  it.each(runs)('$label', async ({ label, options }) => {
    const outPath = join(dir, `${label.replace(/\W+/g, '-')}.safetensors`);
    const source = await fileSource(inPath);
    try {
      // Tiny chunks: the file is written a few groups at a time, the decoder reads it whole.
      await quantizeSafetensors(source, atomicFileSink(outPath), packer, { ...options, chunkBytes: 64 });
    } finally {
      await source.close();
    }
    const decoded = decodePackedFile(readFileSync(outPath));
    expect([...decoded.keys()].sort()).toEqual(inputs.map((t) => t.name).sort());

    for (const { name, dtype, shape } of inputs) {
      const tensor = decoded.get(name)!;
      const x = original.get(name)!;
      if (shape.length === 1) {
        expect(tensor.packed, `${name} is 1-D: stored unchanged`).toBeNull();
        expect(tensor.bytes).toEqual(x.bytes);
        continue;
      }
      const decodedValues = tensor.values!;
      const groupSize = options.groupSize ?? (options.groups ? x.values.length / options.groups : shape.at(-1)!);
      const grid = options.type ?? 'symmetric';
      expect(tensor.packed).toEqual({
        bits: options.bits,
        groupSize,
        shape,
        dtype,
        type: options.bits === 1 ? 'binary' : options.bits === 2 ? 'ternary' : grid,
      });
      const fakeOptions = {
        bits: options.bits,
        groupSize,
        type: grid,
        rounding: options.rounding ?? 'nearest',
        ...(options.rounding === 'stochastic' ? { seed: options.seed!, tensorId: tensorIdOf(name) } : {}),
      } as const;
      // The library's own round trip of the whole tensor: equal bit for bit (a zero has no sign).
      const unpacked = await packer.unpack(await packer.pack(x.values, fakeOptions));
      expect(signless(decodedValues), name).toEqual(signless(unpacked));
      // fakeQuantize of the original: equal too, except that binary packs an exact 0 as +m.
      const fake = await backend.fakeQuantize(x.values.slice(), fakeOptions);
      for (let i = 0; i < fake.length; i++) {
        if (options.bits === 1 && x.values[i] === 0) {
          const group = decodedValues.subarray(i - (i % groupSize), i - (i % groupSize) + groupSize);
          expect(decodedValues[i], `${name}[${i}] = 0 packs as +m`).toBe(Math.max(...group));
        } else if (decodedValues[i]! + 0 !== fake[i]! + 0) {
          expect.fail(`${name}[${i}]: decoded ${decodedValues[i]}, fakeQuantize ${fake[i]}`);
        }
      }
    }
  });
});
