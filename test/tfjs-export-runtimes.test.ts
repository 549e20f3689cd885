// A MoQ-trained model, exported packed in Node, served where tfjs models are served: in
// Cloudflare's workerd (a Worker that carries the model in its upload and answers predictions)
// and in headless Chromium (the page loads it by URL, over the network). Both run tfjs's cpu
// backend, the arithmetic Node's run uses, so their weights and predictions must equal Node's
// bit for bit; Chromium also shows that what crosses the network is the packed files.

import * as esbuild from 'esbuild';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { WasmBackend } from '../src/backends/wasm/backend.js';
import { writePackedTfjsModel } from '../src/formats/tfjs/node-file.js';
import { exportTrainedModel, type ExportedModel } from '../src/tfjs/export.js';
import { attachMoq, packedModel } from '../src/tfjs/index.js';
import { concatenatedWeights } from './fixtures/model-weights.js';
import { randomTensor } from './support/fixtures.js';
import { CHROMIUM, CHROMIUM_ARGS, chromiumAvailability, openRecordingPage } from './support/chromium.js';
import { PACKAGE_ROOT } from './support/package-link.js';
import { useBundledWorker, workerdAvailable } from './support/workerd.js';
import { serveDirectory } from '../scripts/serve.mjs';

const workerd = await workerdAvailable();
const { available: chromiumAvailable } = await chromiumAvailability();

const INPUT_SHAPE = [32, 16];

/** What Node saw: the exported folder, the inputs, and the packed model's predictions and weights once loaded by file path. */
interface NodeRun {
  folder: string;
  exported: ExportedModel;
  inputs: Float32Array;
  outputs: Float32Array;
  weights: Float32Array;
}

let node: NodeRun;

beforeAll(async () => {
  await tf.setBackend('cpu');
  const backend = await WasmBackend.create('simd');
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ name: 'encoder', inputShape: [16], units: 64, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
      tf.layers.dense({ name: 'hidden', units: 32, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
      tf.layers.dense({ name: 'decoder', units: 4, kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }) }),
    ],
  });
  model.compile({ optimizer: tf.train.sgd(0.05), loss: 'meanSquaredError' });
  const moq = await attachMoq(tf, model, { quantizer: { groups: 8, schedules: [{ startBits: 8, targetBits: 4, period: 1 }] }, backend });
  const x = tf.tensor2d(randomTensor(64 * 16, 21), [64, 16]);
  const y = tf.tensor2d(randomTensor(64 * 4, 22), [64, 4]);
  await model.fit(x, y, { batchSize: 4, epochs: 1, shuffle: false, verbose: 0, callbacks: [moq.callback()] });
  tf.dispose([x, y]);

  const exported = await exportTrainedModel({ tf, model, masters: moq.masterWeights(), quantizer: moq.quantizer, weights: moq.weights });
  const folder = mkdtempSync(join(tmpdir(), 'edge-moq-export-runtimes-'));
  await writePackedTfjsModel(join(folder, 'model.json'), exported);
  const loaded = await tf.loadLayersModel(packedModel(join(folder, 'model.json')));
  const inputs = randomTensor(INPUT_SHAPE[0]! * INPUT_SHAPE[1]!, 23);
  const [trainedOut, loadedOut] = tf.tidy(() => {
    const batch = tf.tensor2d(inputs, INPUT_SHAPE as [number, number]);
    return [model.predict(batch) as tf.Tensor, loaded.predict(batch) as tf.Tensor];
  });
  const outputs = new Float32Array((await loadedOut.data()) as Float32Array);
  // The export test checks this in depth; here it anchors the runtimes' results to training.
  expect(Buffer.from(outputs.buffer).equals(Buffer.from(((await trainedOut.data()) as Float32Array).slice().buffer))).toBe(true);
  const weights = await concatenatedWeights(loaded);
  tf.dispose([trainedOut, loadedOut]);
  loaded.dispose();
  moq.detach();
  backend.dispose();
  node = { folder, exported, inputs, outputs, weights };
});

afterAll(() => {
  if (node?.folder) rmSync(node.folder, { recursive: true, force: true });
});

const sameBits = (a: Float32Array, b: Float32Array) => a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
const fromBits = (bits: number[]) => new Float32Array(Uint32Array.from(bits).buffer);

describe.skipIf(!workerd)('workerd: a Worker serving the exported model', () => {
  // The weights file travels as a Data module, model.json inside the script.
  const served = useBundledWorker('tfjs-export', () => ({
    entry: join(PACKAGE_ROOT, 'test/fixtures/tfjs-export-worker.ts'),
    platform: 'browser',
    files: { prefix: 'tfjs-export-model', folder: node.folder },
  }));

  it('carries the packed weights file as a module, and no Node code', () => {
    const files = readdirSync(join(served.dir, 'worker')).sort();
    expect(files).toEqual(['edge-moq-scalar.wasm', 'edge-moq-simd.wasm', 'model.moq.safetensors', 'tfjs-export-worker.js']);
    expect(statSync(join(served.dir, 'worker', 'model.moq.safetensors')).size).toBe(node.exported.weights.length);
    expect(readFileSync(join(served.dir, 'worker', 'tfjs-export-worker.js'), 'utf8')).not.toMatch(/node:fs|require\("fs"\)/);
  });

  it('loads the weights Node loaded, bit for bit', async () => {
    const response = await served.worker.dispatchFetch('http://worker/weights');
    expect(response.status, response.status === 200 ? '' : await response.clone().text()).toBe(200);
    expect(sameBits(new Float32Array(await response.arrayBuffer()), node.weights)).toBe(true);
  });

  it("answers POST /predict with Node's predictions, bit for bit, on tfjs's cpu backend", async () => {
    const response = await served.worker.dispatchFetch('http://worker/predict', {
      method: 'POST',
      body: new Uint8Array(node.inputs.buffer),
      headers: { 'x-shape': INPUT_SHAPE.join(',') },
    });
    expect(response.status, response.status === 200 ? '' : await response.clone().text()).toBe(200);
    expect(response.headers.get('x-tfjs-backend')).toBe('cpu');
    expect(sameBits(new Float32Array(await response.arrayBuffer()), node.outputs)).toBe(true);
  });
});

describe.skipIf(!chromiumAvailable)('Chromium: the exported model loaded by URL', () => {
  let pageDir: string;
  let server: { url: string; close(): Promise<void> };
  let browser: Browser;
  let page: Page;
  let fetched: Map<string, number>;

  beforeAll(async () => {
    pageDir = mkdtempSync(join(tmpdir(), 'edge-moq-export-page-'));
    // tfjs for the browser, bundled; edge-moq/tfjs stays the package's own browser bundle (an import map names it).
    await esbuild.build({
      entryPoints: [join(PACKAGE_ROOT, 'test/fixtures/tfjs-export-page.ts')],
      outfile: join(pageDir, 'tfjs-export-page.js'),
      bundle: true,
      format: 'esm',
      platform: 'browser',
      external: ['edge-moq/tfjs'],
      logLevel: 'error',
    });
    server = await serveDirectory(PACKAGE_ROOT, {
      aliases: {
        '/page/tfjs-export-page.js': join(pageDir, 'tfjs-export-page.js'),
        '/model/model.json': join(node.folder, 'model.json'),
        '/model/model.moq.safetensors': join(node.folder, 'model.moq.safetensors'),
      },
    });
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    ({ page, fetched } = await openRecordingPage(browser, `${server.url}/test/fixtures/tfjs-export-page.html`, '/model/'));
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (pageDir) rmSync(pageDir, { recursive: true, force: true });
  });

  it("fetches the packed files, loads the weights Node loaded and predicts Node's outputs, bit for bit", async () => {
    const inputBits = Array.from(new Uint32Array(node.inputs.buffer));
    const result = await page.evaluate(
      ([url, bits, shape]) => (window as unknown as { predict(u: string, b: number[], s: number[]): Promise<{ backend: string; outputs: number[]; weights: number[] }> }).predict(url, bits, shape),
      [`${server.url}/model/model.json`, inputBits, INPUT_SHAPE] as const,
    );
    expect(result.backend).toBe('cpu');
    expect(sameBits(fromBits(result.weights), node.weights)).toBe(true);
    expect(sameBits(fromBits(result.outputs), node.outputs)).toBe(true);

    const files = { '/model/model.json': statSync(join(node.folder, 'model.json')).size, '/model/model.moq.safetensors': node.exported.weights.length };
    await expect.poll(() => Object.fromEntries(fetched)).toEqual(files);
    const download = files['/model/model.json'] + files['/model/model.moq.safetensors'];
    console.log(
      `Chromium fetched the MoQ export: ${download} B (model.json ${files['/model/model.json']} B, weights ${files['/model/model.moq.safetensors']} B); the float32 weights alone are ${node.exported.report.floatBytes} B`,
    );
    expect(files['/model/model.moq.safetensors']).toBeLessThan(node.exported.report.floatBytes / 4);
  });
});
