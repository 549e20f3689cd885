// edge-moq/onnx on the GPU path users meet in browsers: the com.microsoft MatMulNBits models
// quantizeOnnx writes, run by onnxruntime-web's 'webgpu' execution provider in headless Chromium
// (WebGPU on SwiftShader), compared with the same model run by the wasm EP in Node.
// onnxruntime-web 1.23 ships two WebGPU EPs: its default bundle (ort.min.mjs) runs the JavaScript
// kernels ("JSEP"); ort.webgpu.min.mjs runs the C++ WebGPU EP compiled to wasm. Both are checked:
// the C++ EP runs 4 and 8 bits (symmetric, and asymmetric with zero_points); JSEP runs 4 bits only.
// Measured on SwiftShader: the largest error is about 2% of the bound below.

import * as ort from 'onnxruntime-web';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { WasmBackend } from '../src/backends/wasm/backend.js';
import { readFields, bytesValue } from '../src/formats/onnx/proto.js';
import { GraphField, readModel, readTensor } from '../src/formats/onnx/model.js';
import { decodeFloat32 } from '../src/formats/safetensors.js';
import { WasmPacker } from '../src/backends/wasm/packer.js';
import { dequantizeMatMulNBits, quantizeOnnx, type QuantizeOnnxOptions } from '../src/onnx.js';
import { randomTensor } from './support/fixtures.js';
import { encodeModel, float32Raw, OnnxDataType } from './support/onnx-model.js';
import { CHROMIUM, CHROMIUM_ARGS, chromiumAvailability } from './support/chromium.js';
import { PACKAGE_ROOT } from './support/package-link.js';
import { serveDirectory } from '../scripts/serve.mjs';

ort.env.wasm.numThreads = 1;
ort.env.logLevel = 'error';

const { available, webGpuAvailable } = await chromiumAvailability();

const U = 2 ** -24;
const M = 3;
const K = 64;
const N = 16;

const cases: { name: string; options: QuantizeOnnxOptions }[] = [
  { name: '4 bits symmetric', options: { bits: 4, blockSize: 32 } },
  { name: '8 bits symmetric', options: { bits: 8, blockSize: 32 } },
  { name: '4 bits asymmetric', options: { bits: 4, type: 'asymmetric', blockSize: 16 } },
  { name: '8 bits asymmetric', options: { bits: 8, type: 'asymmetric', blockSize: 16 } },
];

interface Built {
  name: string;
  bytes: Uint8Array;
  a: Float32Array;
  w: Float32Array;
  wasm: Float32Array;
}
interface PageResult {
  name: string;
  y?: number[];
  error?: string;
  placements: string[];
}
interface PageReport {
  adapter: { vendor: string; architecture: string } | null;
  results: PageResult[];
}

/** Y = Relu(A @ B), B [K, N] an initializer: the graph quantizeOnnx turns into MatMulNBits. */
function matMulModel(b: Float32Array): Uint8Array {
  return encodeModel({
    irVersion: 10,
    opsetImports: [{ domain: '', version: 21 }],
    producerName: 'edge-moq tests',
    graph: {
      name: 'main',
      nodes: [
        { opType: 'MatMul', name: 'proj', inputs: ['A', 'proj.weight'], outputs: ['H'] },
        { opType: 'Relu', name: 'act', inputs: ['H'], outputs: ['Y'] },
      ],
      initializers: [{ name: 'proj.weight', dataType: OnnxDataType.FLOAT, dims: [K, N], raw: float32Raw(b) }],
      inputs: [{ name: 'A', elemType: OnnxDataType.FLOAT, shape: [M, K] }],
      outputs: [{ name: 'Y', elemType: OnnxDataType.FLOAT, shape: [M, N] }],
    },
  });
}

/** The dequantized weights [K, N] a quantized model carries. */
function dequantized(bytes: Uint8Array, bits: number, blockSize: number): Float32Array {
  const graph = readFields(bytesValue(readModel(bytes).graph, 'graph'), 'graph');
  const inits = new Map(
    graph
      .filter((f) => f.number === GraphField.INITIALIZER)
      .map((f) => {
        const t = readTensor(bytesValue(f, 'initializer'), 'initializer');
        return [t.name, t.fields.find((x) => x.number === 9)!.payload] as const;
      }),
  );
  const zp = inits.get('proj.weight_zero_points');
  return dequantizeMatMulNBits({
    k: K,
    n: N,
    bits,
    blockSize,
    b: inits.get(`proj.weight_Q${bits}`)!,
    scales: decodeFloat32(inits.get('proj.weight_scales')!, 'F32'),
    zeroPoints: zp ?? null,
  });
}

async function runWasm(bytes: Uint8Array, a: Float32Array): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'] });
  try {
    return (await session.run({ A: new ort.Tensor('float32', a, [M, K]) })).Y!.data as Float32Array;
  } finally {
    await session.release();
  }
}

/**
 * Largest |y − wasm| / bound over the outputs. Both EPs compute Relu(Σ_i a_i·w_i) in float32
 * from the same codes, scales and zero points, only in a different order (the GPU kernels split
 * K across lanes and blocks). Each result is within γ_{K+2}·Σ|a_i·w_i| of the exact sum (K−1
 * additions, the product, the dequantizing multiply; Relu is exact), so two of them differ by at
 * most 2·γ_{K+2}·Σ|a·w|. A relative 1e-5 would not do: cancellation makes |y| far smaller than Σ|a·w|.
 */
function worstRatio(c: Built, y: ArrayLike<number>): number {
  const gamma = ((K + 2) * U) / (1 - (K + 2) * U);
  let worst = 0;
  for (let row = 0; row < M; row++) {
    for (let col = 0; col < N; col++) {
      let magnitude = 0;
      for (let i = 0; i < K; i++) magnitude += Math.abs(c.a[row * K + i]! * c.w[i * N + col]!);
      const bound = 2 * gamma * magnitude + Number.MIN_VALUE;
      worst = Math.max(worst, Math.abs(y[row * N + col]! - c.wasm[row * N + col]!) / bound);
    }
  }
  return worst;
}

describe.skipIf(!available || !webGpuAvailable)("MatMulNBits on onnxruntime-web's WebGPU EPs in Chromium (SwiftShader)", () => {
  let server: { url: string; close(): Promise<void> };
  let browser: Browser;
  const built: Built[] = [];

  beforeAll(async () => {
    const backend = await WasmBackend.create('simd');
    const packer = new WasmPacker(backend);
    try {
      for (const [i, { name, options }] of cases.entries()) {
        const b = randomTensor(K * N, 0x51 + i, 0.5);
        const a = randomTensor(M * K, 0x61 + i, 2);
        const { model: bytes } = await quantizeOnnx(matMulModel(b), options, { packer });
        built.push({ name, bytes, a, w: dequantized(bytes, options.bits ?? 4, options.blockSize ?? 32), wasm: await runWasm(bytes, a) });
      }
    } finally {
      packer.dispose();
      backend.dispose();
    }
    server = await serveDirectory(PACKAGE_ROOT);
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  async function runPage(build: 'jsep' | 'webgpu'): Promise<PageReport> {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    try {
      await page.goto(`${server.url}/test/fixtures/onnx-webgpu/index.html?build=${build}`);
      await page.waitForFunction(() => (window as { ready?: boolean }).ready === true, null, { timeout: 20_000 });
      const models = built.map(({ name, bytes, a }) => ({ name, bytes: Array.from(bytes), a: Array.from(a), dims: [M, K] }));
      const report = await page.evaluate((m) => (window as unknown as { runOnWebGpu(m: unknown): Promise<PageReport> }).runOnWebGpu(m), models);
      expect(errors).toEqual([]);
      return report;
    } finally {
      await page.close();
    }
  }

  function expectAgrees(result: PageResult, provider: string): void {
    expect(result.error, result.name).toBeUndefined();
    // The log line onnxruntime writes after partitioning: MatMulNBits and Relu both on the GPU EP.
    expect(result.placements, result.name).toEqual([`All nodes placed on [${provider}]. Number of nodes: 2`]);
    const c = built.find((x) => x.name === result.name)!;
    expect(result.y, result.name).toHaveLength(M * N);
    const worst = worstRatio(c, result.y!);
    expect(worst, `${result.name}: largest |webgpu − wasm| / bound ${worst}`).toBeLessThanOrEqual(1);
  }

  it('the C++ WebGPU EP (ort.webgpu.min.mjs) runs 4 and 8 bits, symmetric and asymmetric, as the wasm EP does', async () => {
    const report = await runPage('webgpu');
    expect(report.adapter?.architecture).toBe('swiftshader');
    expect(report.results.map((r) => r.name)).toEqual(cases.map((c) => c.name));
    for (const result of report.results) expectAgrees(result, 'WebGpuExecutionProvider');
  }, 30_000);

  it("the default bundle's JSEP kernels (ort.min.mjs) run 4 bits, and refuse 8 bits when the session is created", async () => {
    const report = await runPage('jsep');
    expect(report.adapter?.architecture).toBe('swiftshader');
    for (const result of report.results) {
      if (result.name.startsWith('4 bits')) {
        expectAgrees(result, 'JsExecutionProvider');
      } else {
        // contrib_ops/js/quantization/matmul_nbits.h enforces nbits == 4 ("Only 4b quantization is
        // supported for MatMulNBits op"); onnxruntime-web 1.23 surfaces the C++ exception as a
        // bare number. Nodes are placed on JSEP, then creating the kernel throws: no output at all.
        expect(result.y, result.name).toBeUndefined();
        expect(result.error, result.name).toMatch(/^\d+$/);
        expect(result.placements, result.name).toEqual(['All nodes placed on [JsExecutionProvider]. Number of nodes: 2']);
      }
    }
  }, 30_000);
});
