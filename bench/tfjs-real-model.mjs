// `npm run bench:tfjs-real-model`: the real pretrained tfjs models of test/tfjs-real-model.test.ts
// (@vladmandic/human's facial-expression classifier and its face description network, graph
// models) quantized by the CLI binary and loaded through edge-moq/tfjs's packedModel, on the 108
// real face crops of the package's gallery screenshot. For each width: the folder a server hosts
// (model.json + weights) against the float model's, agreement with the float model's outputs,
// and the load time: handler load (read, unpack on WebAssembly, tfjs builds the graph) plus the
// first prediction (one face), median of BENCH_RUNS runs (default 9) after one warm-up, in one
// process on tfjs's WebAssembly backend. The float rows load the plain models through the same
// handler. Prints the README's markdown tables. Not a test: timings vary.

import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { build } from 'esbuild';
import { packedModel } from '../dist/tfjs/index.js';
import { median } from './workload.mjs';

const RUNS = Number(process.env.BENCH_RUNS ?? 9);
const root = fileURLToPath(new URL('..', import.meta.url));

// The model, the faces and their preprocessing are the test's own (one definition of each);
// that file is TypeScript, so it is transpiled next to node_modules, where its imports resolve.
const supportFile = join(root, 'node_modules', '.cache', 'edge-moq-bench', 'tfjs-real-model.mjs');
mkdirSync(join(supportFile, '..'), { recursive: true });
await build({ entryPoints: [join(root, 'test', 'support', 'tfjs-real-model.ts')], outfile: supportFile, format: 'esm', platform: 'node', logLevel: 'error' });
const real = await import(pathToFileURL(supportFile).href);

setWasmPaths(`${join(root, 'node_modules', '@tensorflow', 'tfjs-backend-wasm', 'dist')}/`);
await tf.setBackend('wasm');

const gallery = real.galleryFaces();
/** @param {number} bytes */
const kb = (bytes) => `${(bytes / 1024).toFixed(1)} KB`;
const cpus = os.cpus().length;

/**
 * @typedef {object} ModelSpec
 * @property {string} title
 * @property {string} path
 * @property {import('@tensorflow/tfjs').Tensor} input
 * @property {(model: import('@tensorflow/tfjs').GraphModel, input: import('@tensorflow/tfjs').Tensor) => unknown} run
 * @property {string[]} columns
 * @property {(reference: unknown, outputs: unknown) => string[]} compare
 * @property {[string, string[]][]} variants
 */

/**
 * What each table measures: how a model's outputs are read and compared with the float model's.
 * @type {ModelSpec[]}
 */
const MODELS = [
  {
    title: `${real.REAL_MODEL_PACKAGE} models/emotion.json (facial expression: 7 classes from a 64x64 gray face)`,
    path: real.emotionModelPath(),
    input: real.emotionInput(tf, gallery),
    run: (model, input) => real.classify(tf, model, input),
    columns: ['top-1 same as float', 'mean \\|Δp\\|', 'max \\|Δp\\|'],
    compare(reference, outputs) {
      const m = real.agreement(reference, outputs);
      return [`${m.sameTop1}/${m.faces}`, m.meanAbsDiff.toFixed(4), m.maxAbsDiff.toFixed(3)];
    },
    variants: [
      ['8 bits', ['--bits', '8']],
      ['4 bits', ['--bits', '4']],
      ['4 bits, asymmetric (DeepSpeed grid)', ['--bits', '4', '--type', 'asymmetric']],
      ['4 bits, groups of 32', ['--bits', '4', '--group-size', '32']],
    ],
  },
  {
    title: `${real.REAL_MODEL_PACKAGE} models/faceres.json (face description, a MobileNet with float16-stored weights: gender, age, 1024-value descriptor from a 224x224 face)`,
    path: real.faceresModelPath(),
    input: real.faceresInput(tf, gallery),
    run: (model, input) => real.describeFaces(tf, model, input),
    columns: ['gender same as float', 'mean / max \\|Δ age\\| (years)', 'descriptor cosine mean / min'],
    compare(reference, outputs) {
      const m = real.descriptionAgreement(reference, outputs);
      return [`${m.sameGender}/${m.faces}`, `${m.meanAgeDiff.toFixed(2)} / ${m.maxAgeDiff.toFixed(2)}`, `${m.meanCosine.toFixed(3)} / ${m.minCosine.toFixed(3)}`];
    },
    variants: [
      ['8 bits', ['--bits', '8']],
      ['6 bits', ['--bits', '6']],
      ['6 bits, asymmetric (DeepSpeed grid)', ['--bits', '6', '--type', 'asymmetric']],
      ['4 bits', ['--bits', '4']],
    ],
  },
];

/**
 * @param {ModelSpec} spec
 * @param {string} modelJson
 */
async function outputsOf(spec, modelJson) {
  const model = await tf.loadGraphModel(packedModel(modelJson));
  try {
    return await spec.run(model, spec.input);
  } finally {
    model.dispose();
  }
}

/**
 * @param {ModelSpec} spec
 * @param {string} modelJson
 */
async function loadTime(spec, modelJson) {
  const oneFace = spec.input.slice(0, 1);
  const samples = [];
  for (let r = 0; r <= RUNS; r++) {
    const t0 = performance.now();
    const model = await tf.loadGraphModel(packedModel(modelJson));
    await spec.run(model, oneFace);
    if (r > 0) samples.push(performance.now() - t0);
    model.dispose();
  }
  oneFace.dispose();
  return median(samples);
}

const dir = mkdtempSync(join(os.tmpdir(), 'edge-moq-bench-tfjs-'));
try {
  for (const spec of MODELS) {
    const floatSize = real.modelFolderBytes(spec.path);
    const reference = await outputsOf(spec, spec.path);
    const rows = [['float (as shipped)', kb(floatSize.total), '1.00x', ...spec.compare(reference, reference), (await loadTime(spec, spec.path)).toFixed(1)]];
    for (const [label, flags] of spec.variants) {
      const output = join(dir, `${spec.path.split('/').pop()}-${flags.join('_')}`, 'model.json');
      const cli = spawnSync(process.execPath, [join(root, 'dist', 'cli', 'main.js'), 'quantize', spec.path, '-o', output, ...flags], { encoding: 'utf8' });
      if (cli.status !== 0) throw new Error(`edge-moq quantize ${flags.join(' ')} exited ${cli.status}: ${cli.stderr}`);
      const size = real.modelFolderBytes(output);
      rows.push([label, kb(size.total), `${(floatSize.total / size.total).toFixed(2)}x`, ...spec.compare(reference, await outputsOf(spec, output)), (await loadTime(spec, output)).toFixed(1)]);
    }
    const header = ['model', 'folder (model.json + weights)', 'smaller', ...spec.columns, 'load + first prediction (ms)'];
    console.log(`\n${spec.title}; ${gallery.faces.length} real faces; tfjs ${tf.version.tfjs} on its ${tf.getBackend()} backend, ${cpus} CPU(s), median of ${RUNS} loads\n`);
    console.log(`| ${header.join(' | ')} |`);
    console.log(`|${header.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`);
    for (const row of rows) console.log(`| ${row.join(' | ')} |`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
  for (const spec of MODELS) spec.input.dispose();
}
