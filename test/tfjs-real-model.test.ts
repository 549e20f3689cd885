// A real pretrained tfjs model nobody here wrote, quantized by the CLI and loaded through the
// handler: @vladmandic/human's facial-expression classifier (a graph model, 7 classes), run on the
// 108 real face crops of the package's own gallery screenshot (test/support/tfjs-real-model.ts).
// The float model's probabilities are the reference; 8 and 4 bits (per output channel, the CLI's
// default) are held to what was measured with margin, and `dequantize` must give a stock model
// whose outputs equal the handler's. A second, larger model of the same package (face
// description, weights stored as float16) is checked at 8 bits on a few faces; headless Chromium
// (by URL) and workerd (a Worker carrying it) run the 4-bit model with Node's outputs. Node runs
// tfjs's WebAssembly backend (its cpu backend takes ~15 s a pass over the 108 faces, against
// ~0.6 s) except where bit-equal outputs are compared.

import * as esbuild from 'esbuild';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packedModel } from '../src/tfjs/handler.js';
import { CHROMIUM, CHROMIUM_ARGS, chromiumAvailability, openRecordingPage } from './support/chromium.js';
import { runCli } from './support/cli.js';
import { PACKAGE_ROOT } from './support/package-link.js';
import { useBundledWorker, workerdAvailable } from './support/workerd.js';
import {
  agreement,
  classify,
  describeFaces,
  descriptionAgreement,
  EMOTION_LABELS,
  emotionInput,
  emotionModelPath,
  faceresInput,
  faceresModelPath,
  galleryFaces,
  modelFolderBytes,
  readModelArtifacts,
  top1,
  type GalleryFaces,
} from './support/tfjs-real-model.js';
import { serveDirectory } from '../scripts/serve.mjs';

const { available: chromiumAvailable } = await chromiumAvailability();
const workerd = await workerdAvailable();

let folder: string;
let gallery: GalleryFaces;
let input: tf.Tensor4D;
let reference: Float32Array[];

beforeAll(async () => {
  setWasmPaths(fileURLToPath(new URL('../node_modules/@tensorflow/tfjs-backend-wasm/dist/', import.meta.url)));
  await tf.setBackend('wasm');
  folder = mkdtempSync(join(tmpdir(), 'edge-moq-tfjs-real-'));
  gallery = galleryFaces();
  input = emotionInput(tf, gallery);
  const float = await tf.loadGraphModel(tf.io.fromMemory(readModelArtifacts(emotionModelPath())));
  try {
    reference = await classify(tf, float, input);
  } finally {
    float.dispose();
  }
});

afterAll(() => {
  input?.dispose();
  if (folder) rmSync(folder, { recursive: true, force: true });
});

async function classifyWith(handler: tf.io.IOHandler): Promise<Float32Array[]> {
  const model = await tf.loadGraphModel(handler);
  try {
    return await classify(tf, model, input);
  } finally {
    model.dispose();
  }
}

/** 12 of the 108 faces, one or two from each gallery row, for the slower runs. */
const everyNinthFace = (all: GalleryFaces): GalleryFaces => ({ ...all, faces: all.faces.filter((_, i) => i % 9 === 0) });

const quantized = new Map<number, Promise<string>>();

/** The model quantized by the CLI at `bits` (once per width, whichever test asks first). */
function quantize(bits: number): Promise<string> {
  let output = quantized.get(bits);
  if (!output) {
    output = (async () => {
      const path = join(folder, `q${bits}`, 'model.json');
      const result = await runCli(['quantize', emotionModelPath(), '-o', path, '--bits', String(bits)]);
      if (result.code !== 0) throw new Error(`quantize --bits ${bits} exited ${result.code}: ${result.stderr}`);
      return path;
    })();
    quantized.set(bits, output);
  }
  return output;
}

describe('a real tfjs model (@vladmandic/human emotion classifier) on real faces', () => {
  it('finds the 108 faces of the gallery, and the float model sees what they show: mostly smiles', () => {
    expect(gallery.faces).toHaveLength(108);
    for (const { x, y, size } of gallery.faces) {
      expect(x).toBeGreaterThanOrEqual(0);
      expect(x + size).toBeLessThanOrEqual(gallery.image.width);
      expect(y + size).toBeLessThanOrEqual(gallery.image.height);
    }
    for (const probabilities of reference) expect(probabilities.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);
    // Most people in the gallery smile for the camera; preprocessing gone wrong (channels, scale,
    // crops off the faces) does not give that. Measured: happy 71, neutral 23, sad 10, angry 3,
    // surprise 1.
    const counts = new Map<string, number>();
    for (const probabilities of reference) {
      const label = EMOTION_LABELS[top1(probabilities)]!;
      counts.set(label, (counts.get(label) ?? 0) + 1);
    }
    expect(counts.get('happy')).toBeGreaterThan(reference.length / 2);
    expect(counts.size).toBeGreaterThan(2);
  });

  it('loads the plain model through the handler with the same outputs as a stock load', async () => {
    expect(await classifyWith(packedModel(emotionModelPath()))).toEqual(reference);
  });

  // Measured on the 108 faces (tfjs's wasm backend, CLI defaults: symmetric, per output
  // channel, full grid): 8 bits keep 106 top-1 labels (the two that flip had float margins of
  // 0.017 and 0.023), mean |Δp| 0.0032, max 0.059; 4 bits keep 92, mean |Δp| 0.036, max 0.52.
  // The bounds leave room for other float rounding (another tfjs backend or version) but not
  // for a lost bit: 3 bits keep 66 faces with mean |Δp| 0.10, and a wrong scale or group does
  // worse.
  const expected = {
    8: { minSameTop1: 103, maxMeanAbsDiff: 0.008, maxAbsDiff: 0.15, maxSizeRatio: 0.3 },
    4: { minSameTop1: 85, maxMeanAbsDiff: 0.07, maxAbsDiff: 0.8, maxSizeRatio: 0.17 },
  } as const;

  it.each([8, 4] as const)('quantized at %i bits: a smaller folder whose handler-loaded outputs follow the float model', async (bits) => {
    const packed = await quantize(bits);
    const sizes = { float: modelFolderBytes(emotionModelPath()), packed: modelFolderBytes(packed) };
    expect(sizes.packed.weights / sizes.float.weights).toBeLessThan(expected[bits].maxSizeRatio);
    expect(sizes.packed.total).toBeLessThan(sizes.float.total);

    const outputs = await classifyWith(packedModel(packed));
    const measured = agreement(reference, outputs);
    expect(measured.sameTop1).toBeGreaterThanOrEqual(expected[bits].minSameTop1);
    expect(measured.meanAbsDiff).toBeLessThan(expected[bits].maxMeanAbsDiff);
    expect(measured.maxAbsDiff).toBeLessThan(expected[bits].maxAbsDiff);
    // The weights did change: a handler that ignored the packed codes would match exactly.
    expect(measured.maxAbsDiff).toBeGreaterThan(0);
  });

  it("refuses the packed model through a stock load, and `dequantize` gives a stock model with the handler's outputs", async () => {
    const packed = await quantize(4);
    const plain = join(folder, 'plain', 'model.json');
    await expect(tf.loadGraphModel(tf.io.fromMemory(readModelArtifacts(packed)))).rejects.toThrow(/unknown quantization dtype edge-moq/);

    const result = await runCli(['dequantize', packed, '-o', plain]);
    expect(result.code, result.stderr).toBe(0);
    const stock = await classifyWith(tf.io.fromMemory(readModelArtifacts(plain)));
    expect(stock).toEqual(await classifyWith(packedModel(packed)));
    expect(modelFolderBytes(plain).weights).toBe(modelFolderBytes(emotionModelPath()).weights);
  });
});

describe('a larger real model with float16 weights (@vladmandic/human face description) at 8 bits', () => {
  it('quantized by the CLI and loaded through the handler: same genders, close ages and descriptors, half the folder', async () => {
    // A few faces: this network takes ~0.2 s a face here.
    const faces = faceresInput(tf, everyNinthFace(gallery));
    const descriptions = async (handler: tf.io.IOHandler) => {
      const model = await tf.loadGraphModel(handler);
      try {
        return await describeFaces(tf, model, faces);
      } finally {
        model.dispose();
      }
    };
    try {
      const float = await descriptions(tf.io.fromMemory(readModelArtifacts(faceresModelPath())));
      const output = join(folder, 'faceres8', 'model.json');
      const result = await runCli(['quantize', faceresModelPath(), '-o', output, '--bits', '8']);
      expect(result.code, result.stderr).toBe(0);
      // Measured: every gender kept, age within 0.51 years on average (1.45 at most), descriptor
      // cosine 0.981 on average (0.965 at worst). At 4 bits this network collapses under
      // round-to-nearest (the bench shows it) whoever rounds: per-channel fake quantization
      // written in plain tfjs ops collapsed too.
      const measured = descriptionAgreement(float, await descriptions(packedModel(output)));
      expect(measured.sameGender).toBe(measured.faces);
      expect(measured.meanAgeDiff).toBeLessThan(1.5);
      expect(measured.maxAgeDiff).toBeLessThan(4);
      expect(measured.meanCosine).toBeGreaterThan(0.95);
      expect(measured.minCosine).toBeGreaterThan(0.9);
      expect(modelFolderBytes(output).weights / modelFolderBytes(faceresModelPath()).weights).toBeLessThan(0.55);
    } finally {
      faces.dispose();
    }
  });
});

// The runtimes below run tfjs's cpu backend (plain JavaScript arithmetic), where equal weights
// give equal bits, so Node's outputs on that backend are what they must return. It is slow, so
// a few faces.
const CPU_INPUT_SHAPE = [12, 64, 64, 1] as const;
let cpuRun: Promise<{ input: Float32Array; probabilities: Float32Array }> | undefined;

/** The 4-bit model's probabilities in Node on tfjs's cpu backend, and the input they came from (once). */
function cpuReference(): Promise<{ input: Float32Array; probabilities: Float32Array }> {
  cpuRun ??= (async () => {
    await tf.setBackend('cpu');
    const faces = emotionInput(tf, everyNinthFace(gallery));
    try {
      expect(faces.shape).toEqual(CPU_INPUT_SHAPE);
      const model = await tf.loadGraphModel(packedModel(await quantize(4)));
      try {
        const rows = await classify(tf, model, faces);
        return { input: new Float32Array((await faces.data()) as Float32Array), probabilities: Float32Array.from(rows.flatMap((row) => Array.from(row))) };
      } finally {
        model.dispose();
      }
    } finally {
      faces.dispose();
      await tf.setBackend('wasm');
    }
  })();
  return cpuRun;
}

// The page: tfjs (bundled here, cpu backend) loads the packed model by URL through edge-moq/tfjs,
// which the page imports from the package's own browser bundle (an import map names it), so
// the weights file is fetched and unpacked on WebAssembly as an app would. Float32 values cross
// as their bit patterns, so nothing is rounded on the way.
const PAGE_SCRIPT = `
import * as tf from '@tensorflow/tfjs';
import { packedModel } from 'edge-moq/tfjs';
const bitsOf = (values) => Array.from(new Uint32Array(values.buffer, values.byteOffset, values.length));
window.classify = async (url, inputBits, shape) => {
  await tf.setBackend('cpu');
  const model = await tf.loadGraphModel(packedModel(url));
  const input = tf.tensor(new Float32Array(Uint32Array.from(inputBits).buffer), shape, 'float32');
  const output = model.predict(input);
  const result = { backend: tf.getBackend(), probabilities: bitsOf(await output.data()) };
  tf.dispose([input, output]);
  model.dispose();
  return result;
};
window.ready = true;
`;
const PAGE_HTML = `<!doctype html>
<meta charset="utf-8">
<title>edge-moq: a real tfjs model loaded by URL</title>
<script type="importmap">{ "imports": { "edge-moq/tfjs": "/dist/bundles/browser-tfjs.js" } }</script>
<script type="module" src="/page/real-model-page.js"></script>
`;

describe.skipIf(!chromiumAvailable)('Chromium: the 4-bit real model loaded by URL', () => {
  let pageDir: string;
  let server: { url: string; close(): Promise<void> };
  let browser: Browser;
  let page: Page;
  let packed: string;
  let fetched: Map<string, number>;

  beforeAll(async () => {
    packed = await quantize(4);
    pageDir = mkdtempSync(join(tmpdir(), 'edge-moq-real-model-page-'));
    await esbuild.build({
      stdin: { contents: PAGE_SCRIPT, resolveDir: PACKAGE_ROOT, sourcefile: 'real-model-page.js', loader: 'js' },
      outfile: join(pageDir, 'real-model-page.js'),
      bundle: true,
      format: 'esm',
      platform: 'browser',
      external: ['edge-moq/tfjs'],
      logLevel: 'error',
    });
    writeFileSync(join(pageDir, 'real-model.html'), PAGE_HTML);
    server = await serveDirectory(PACKAGE_ROOT, {
      aliases: {
        '/page/real-model.html': join(pageDir, 'real-model.html'),
        '/page/real-model-page.js': join(pageDir, 'real-model-page.js'),
        '/model/model.json': packed,
        '/model/model.moq.safetensors': join(packed, '..', 'model.moq.safetensors'),
      },
    });
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    ({ page, fetched } = await openRecordingPage(browser, `${server.url}/page/real-model.html`, '/model/'));
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (pageDir) rmSync(pageDir, { recursive: true, force: true });
  });

  it("fetches only the packed files and gives Node's probabilities, bit for bit, on tfjs's cpu backend", async () => {
    const { input, probabilities } = await cpuReference();
    const result = await page.evaluate(
      ([url, bits, shape]) => (window as unknown as { classify(u: string, b: number[], s: readonly number[]): Promise<{ backend: string; probabilities: number[] }> }).classify(url, bits, shape),
      [`${server.url}/model/model.json`, Array.from(new Uint32Array(input.buffer)), [...CPU_INPUT_SHAPE]] as const,
    );
    expect(result.backend).toBe('cpu');
    expect(result.probabilities).toEqual(Array.from(new Uint32Array(probabilities.buffer)));

    const files = { '/model/model.json': statSync(packed).size, '/model/model.moq.safetensors': statSync(join(packed, '..', 'model.moq.safetensors')).size };
    await expect.poll(() => Object.fromEntries(fetched)).toEqual(files);
    expect(files['/model/model.json'] + files['/model/model.moq.safetensors']).toBe(modelFolderBytes(packed).total);
  });
});

// A Worker serving the classifier as one is deployed: the packed model travels in its upload
// (model.json bundled, the weights file a Data module), tfjs runs its cpu backend (core,
// converter, backend-cpu: no Node code) and edge-moq/tfjs comes through its workerd entry.
// POST /classify takes float32 faces (header x-shape) and answers float32 probabilities.
const WORKER_SCRIPT = `
import '@tensorflow/tfjs-backend-cpu';
import { getBackend, setBackend, tensor } from '@tensorflow/tfjs-core';
import { loadGraphModel } from '@tensorflow/tfjs-converter';
import { packedModel } from 'edge-moq/tfjs';
import modelJson from 'real-model/model.json';
import weights from 'real-model/model.moq.safetensors';
let loading;
export default {
  async fetch(request) {
    try {
      const model = await (loading ??= setBackend('cpu').then(() => loadGraphModel(packedModel({ modelJson, weights }))));
      const input = tensor(new Float32Array(await request.arrayBuffer()), request.headers.get('x-shape').split(',').map(Number), 'float32');
      const output = model.predict(input);
      const probabilities = new Float32Array(await output.data());
      input.dispose();
      output.dispose();
      return new Response(probabilities, { headers: { 'x-tfjs-backend': getBackend() } });
    } catch (error) {
      return new Response(error.name + ': ' + error.message, { status: 500 });
    }
  },
};
`;

describe.skipIf(!workerd)('workerd: a Worker serving the 4-bit real model', () => {
  // The weights file travels as a Data module, model.json inside the script.
  const served = useBundledWorker('tfjs-real-model', async () => ({
    entry: { contents: WORKER_SCRIPT, resolveDir: PACKAGE_ROOT, name: 'real-model-worker.js' },
    platform: 'browser',
    files: { prefix: 'real-model', folder: join(await quantize(4), '..') },
  }));

  it("answers with Node's probabilities, bit for bit, on tfjs's cpu backend", async () => {
    const { input, probabilities } = await cpuReference();
    const response = await served.worker.dispatchFetch('http://worker/classify', {
      method: 'POST',
      body: new Uint8Array(input.buffer),
      headers: { 'x-shape': CPU_INPUT_SHAPE.join(',') },
    });
    expect(response.status, response.status === 200 ? '' : await response.clone().text()).toBe(200);
    expect(response.headers.get('x-tfjs-backend')).toBe('cpu');
    expect(Array.from(new Uint32Array(await response.arrayBuffer()))).toEqual(Array.from(new Uint32Array(probabilities.buffer)));
  });
});
