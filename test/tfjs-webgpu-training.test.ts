// MoQ training on tfjs's WebGPU backend (@tensorflow/tfjs-backend-webgpu): the GPU path keeps
// the masters on tfjs's device and quantizes them there. One scenario
// (fixtures/tfjs-webgpu-scenario.ts) runs in Node through Dawn and in headless Chromium, both on
// SwiftShader: the path is picked and explained; the weights, masters and bits after every step
// equal the host path's on tfjs's CPU backend bit for bit; a training step maps no buffer and
// reads no tensor back; after model.fit every weight is Q(master) exactly, and the model exported
// from the masters predicts as the trained one; an overflow only the GPU can see leaves masters
// and weights as they were; detach writes the masters back.

import { buildSync } from 'esbuild';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import * as tf from '@tensorflow/tfjs';
import { WasmBackend } from '../src/backends/wasm/backend.js';
import { InvalidInputError } from '../src/errors.js';
import { Quantizer } from '../src/quantizer.js';
import { attachMoq, packedModel } from '../src/tfjs/index.js';
import { runScenario, type ScenarioReport } from './fixtures/tfjs-webgpu-scenario.js';
import { CHROMIUM, CHROMIUM_ARGS, chromiumAvailability } from './support/chromium.js';
import { PACKAGE_ROOT } from './support/package-link.js';
import { bufferWith, readBuffer, testGpu, useBackendOnOwnDevice, webgpuAvailable } from './support/webgpu.js';
import { serveDirectory } from '../scripts/serve.mjs';

const dawn = await webgpuAvailable();
if (dawn) {
  // tfjs-backend-webgpu registers itself on import only if navigator.gpu exists; Node 20 has no navigator.
  Object.defineProperty(globalThis, 'navigator', { value: { gpu: testGpu() }, configurable: true });
  await import('@tensorflow/tfjs-backend-webgpu');
}
const { available: chromium, webGpuAvailable: chromiumWebGpu } = await chromiumAvailability();

/** The assertions both runtimes share. */
function checkReport(report: ScenarioReport): void {
  expect(report.adapter).toMatch(/swiftshader/i);

  expect(report.paths.webgpu.kind).toBe('gpu');
  expect(report.paths.webgpu.reason).toMatch(/tfjs runs on WebGPU/);
  expect(report.paths.cpu).toEqual({ kind: 'host', reason: expect.stringMatching(/'cpu' backend/) });
  expect(report.paths.gpuOnCpuError).toMatch(/path 'gpu' cannot run: tfjs runs on its 'cpu' backend/);
  expect(report.paths.hostOnWebgpu).toBe('host');

  for (const { name, host, gpu } of report.trajectories) {
    // The trajectory covers what a step can do: wait out the offset, quantize, switch bits, overflow.
    expect(
      host.some((s) => s.overflow),
      name,
    ).toBe(true);
    expect(
      host.some((s) => s.quantized),
      name,
    ).toBe(true);
    expect(new Set(host.map((s) => s.bits['encoder/kernel'])).size, name).toBeGreaterThan(1);
    // toEqual compares numbers with Object.is: bit for bit (a -0 against a 0 fails).
    expect(gpu, name).toEqual(host);
  }

  const { steps, smallestWeightBytes, quantizedSteps, loopWithoutMoq, hostPathSteps, control, tensorsAfterStep } = report.noReadback;
  expect(new Set(tensorsAfterStep).size).toBe(1);
  expect(control.maps).toBeGreaterThan(0);
  expect(control.tensorReads).toBeGreaterThan(0);
  expect(loopWithoutMoq).toMatchObject({ maps: 0, readbackBuffers: 0, tensorReads: 0 });
  expect(quantizedSteps).toBe(steps.length);
  for (const step of steps) {
    expect(step).toMatchObject({ maps: 0, readbackBuffers: 0, tensorReads: 0 });
    // Only uniforms and parameters go up, never a weight.
    expect(step.largestUpload).toBeLessThan(smallestWeightBytes);
  }
  for (const step of hostPathSteps) expect(step.maps).toBeGreaterThan(0);

  expect(report.fit.path).toBe('gpu');
  expect(report.fit.losses.every(Number.isFinite)).toBe(true);
  expect(Object.values(report.fit.bits)).toEqual([3, 3]);
  expect(report.fit.mismatches).toEqual({ 'encoder/kernel': 0, 'decoder/kernel': 0 });
  expect(report.fit.exportedPredictionsEqual).toBe(true);

  expect(report.gpuDetectedOverflow).toEqual({ reportOverflow: false, mastersKept: true, weightsRestored: true });

  expect(report.detach.equalsMasters).toBe(true);
  expect(report.detach.masterWeightsError).toMatch(/readMasters/);
}

describe('attachMoq path option', () => {
  const build = (): tf.Sequential => tf.sequential({ layers: [tf.layers.dense({ units: 4, inputShape: [4] })] });
  const quantizer = { schedules: [{ startBits: 8, targetBits: 8, period: 1 }] };

  it('refuses a path it does not know, and the GPU path where it cannot run, saying why', async () => {
    await tf.setBackend('cpu');
    const model = build();
    await expect(attachMoq(tf, model, { quantizer, path: 'sideways' as 'gpu' })).rejects.toThrow(InvalidInputError);
    await expect(attachMoq(tf, model, { quantizer, path: 'gpu' })).rejects.toThrow(/path 'gpu' cannot run: tfjs runs on its 'cpu' backend/);
    const host = await attachMoq(tf, model, { quantizer, path: 'host' });
    expect(host.path).toEqual({ kind: 'host', reason: "requested (path: 'host')" });
    expect(host.model).toBe(model);
    expect([...(await host.readMasters()).keys()]).toEqual([...host.masterWeights().keys()]);
    host.detach();
    await expect(host.readMasters()).rejects.toThrow(/detached/);
    model.dispose();
  });

  it.skipIf(!dawn)('keeps a ready-made Quantizer on the host path, and says so', async () => {
    await tf.setBackend('webgpu');
    const model = build();
    const moq = await attachMoq(tf, model, { quantizer: new Quantizer(quantizer) });
    expect(moq.path.kind).toBe('host');
    expect(moq.path.reason).toMatch(/ready-made Quantizer/);
    moq.detach();
    await expect(attachMoq(tf, model, { quantizer: new Quantizer(quantizer), path: 'gpu' })).rejects.toThrow(/path 'gpu' cannot run: a ready-made Quantizer/);
    model.dispose();
  });
});

describe.skipIf(!dawn)('WebGpuBackend.enqueueFakeQuantizeBuffers (Dawn on SwiftShader)', () => {
  const gpu = useBackendOnOwnDevice();
  let wasm: WasmBackend;
  beforeAll(async () => {
    wasm = await WasmBackend.create('simd');
  });
  afterAll(() => wasm?.dispose());

  it('quantizes buffers in place as fakeQuantizeBuffers does, mapping nothing', async () => {
    const values = [Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 3), Float32Array.from({ length: 96 }, (_, i) => i / 7 - 5)];
    const options = [
      { bits: 4, groups: 8 },
      { bits: 3, groups: 2, type: 'asymmetric' as const, rounding: 'stochastic' as const, seed: 3 },
    ];
    const buffers = values.map((v) => bufferWith(gpu.device, v));
    const mapAsync = GPUBuffer.prototype.mapAsync;
    let maps = 0;
    GPUBuffer.prototype.mapAsync = function counted(...args) {
      maps++;
      return mapAsync.apply(this, args);
    };
    try {
      await gpu.backend.enqueueFakeQuantizeBuffers(buffers.map((buffer, i) => ({ buffer, length: values[i]!.length, options: options[i]! })));
    } finally {
      GPUBuffer.prototype.mapAsync = mapAsync;
    }
    expect(maps).toBe(0);
    for (const [i, v] of values.entries()) {
      const expected = await wasm.fakeQuantize(v.slice(), options[i]!);
      expect(await readBuffer(gpu.device, buffers[i]!, v.length)).toEqual(expected);
    }
    for (const buffer of buffers) buffer.destroy();
  });

  it('leaves every buffer of a call as it was when one holds a NaN, without a word (nothing is read back)', async () => {
    const values = [Float32Array.from({ length: 64 }, (_, i) => i - 30), Float32Array.from({ length: 64 }, (_, i) => (i === 17 ? NaN : i))];
    const buffers = values.map((v) => bufferWith(gpu.device, v));
    await gpu.backend.enqueueFakeQuantizeBuffers(buffers.map((buffer) => ({ buffer, length: 64, options: { bits: 2, groups: 1 } })));
    for (const [i, v] of values.entries()) expect(await readBuffer(gpu.device, buffers[i]!, 64)).toEqual(v);
    for (const buffer of buffers) buffer.destroy();
  });

  it('refuses a buffer it cannot bind, before anything is submitted', async () => {
    const buffer = gpu.device.createBuffer({ size: 64, usage: GPUBufferUsage.COPY_DST });
    await expect(gpu.backend.enqueueFakeQuantizeBuffers([{ buffer, length: 16, options: { bits: 8 } }])).rejects.toThrow(/lacks GPUBufferUsage.STORAGE/);
    buffer.destroy();
  });
});

describe.skipIf(!dawn)('MoQ on tfjs-backend-webgpu in Node (Dawn on SwiftShader)', () => {
  let wasm: WasmBackend;
  beforeAll(async () => {
    wasm = await WasmBackend.create('simd');
  });
  afterAll(() => wasm?.dispose());

  it('runs the scenario: GPU path, host trajectory bit for bit, no read-back in a step', async () => {
    const report = await runScenario(tf, {
      attachMoq,
      packedModel,
      fakeQuantize: (data, options) => wasm.fakeQuantize(data, options),
    });
    checkReport(report);
  }, 120_000);
});

describe.skipIf(!chromium || !chromiumWebGpu)('MoQ on tfjs-backend-webgpu in Chromium (SwiftShader)', () => {
  let server: { url: string; close(): Promise<void> };
  let browser: Browser;
  let bundleDir: string;

  beforeAll(async () => {
    // tfjs, its WebGPU backend and the scenario in one bundle; edge-moq comes from the package's
    // own browser bundle (dist/bundles), as a page would load it.
    bundleDir = mkdtempSync(join(tmpdir(), 'edge-moq-tfjs-webgpu-'));
    buildSync({
      entryPoints: [join(PACKAGE_ROOT, 'test/fixtures/tfjs-webgpu-page.ts')],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      outfile: join(bundleDir, 'page.js'),
      logLevel: 'error',
    });
    server = await serveDirectory(PACKAGE_ROOT, { aliases: { '/tfjs-webgpu-page.js': join(bundleDir, 'page.js') } });
    const { chromium: launcher } = await import('playwright-core');
    browser = await launcher.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (bundleDir) rmSync(bundleDir, { recursive: true, force: true });
  });

  it('runs the scenario: GPU path, host trajectory bit for bit, no read-back in a step', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    try {
      await page.goto(`${server.url}/test/fixtures/tfjs-webgpu-training.html`);
      await page.waitForFunction(() => (window as { ready?: boolean }).ready === true, null, { timeout: 30_000 });
      const report = await page.evaluate(() => (window as unknown as { run(): Promise<ScenarioReport> }).run());
      expect(errors).toEqual([]);
      checkReport(report);
    } finally {
      await page.close();
    }
  }, 120_000);
});
