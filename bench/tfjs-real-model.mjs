// `npm run bench:tfjs-real-model`: the real pretrained tfjs model of test/tfjs-real-model.test.ts
// (@vladmandic/human's facial-expression classifier, a graph model) quantized by the CLI binary
// and loaded through edge-moq/tfjs's packedModel, on the 108 real face crops of the package's
// gallery screenshot. For each width: the folder a server hosts (model.json + weights) against
// the float model's, top-1 agreement and |Δp| with the float model, and the load time: handler
// load (read, unpack on WebAssembly, tfjs builds the graph) plus the first prediction (one face),
// median of BENCH_RUNS runs (default 5) after one warm-up, in one process on tfjs's WebAssembly
// backend. The float row loads the plain model through the same handler. Prints the README's
// markdown table. Not a test: timings vary.

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

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const root = fileURLToPath(new URL('..', import.meta.url));
const VARIANTS = [
  ['8 bits', ['--bits', '8']],
  ['4 bits', ['--bits', '4']],
  ['4 bits, groups of 32', ['--bits', '4', '--group-size', '32']],
];

// The model, the faces and their preprocessing are the test's own (one definition of each);
// that file is TypeScript, so it is transpiled next to node_modules, where its imports resolve.
const supportFile = join(root, 'node_modules', '.cache', 'edge-moq-bench', 'tfjs-real-model.mjs');
mkdirSync(join(supportFile, '..'), { recursive: true });
await build({ entryPoints: [join(root, 'test', 'support', 'tfjs-real-model.ts')], outfile: supportFile, format: 'esm', platform: 'node', logLevel: 'error' });
const real = await import(pathToFileURL(supportFile).href);

setWasmPaths(join(root, 'node_modules', '@tensorflow', 'tfjs-backend-wasm', 'dist') + '/');
await tf.setBackend('wasm');

const input = real.emotionInput(tf, real.galleryFaces());
const oneFace = input.slice([0, 0, 0, 0], [1, -1, -1, -1]);

async function outputsOf(modelJson) {
  const model = await tf.loadGraphModel(packedModel(modelJson));
  try {
    return await real.classify(tf, model, input);
  } finally {
    model.dispose();
  }
}

async function loadTime(modelJson) {
  const samples = [];
  for (let r = 0; r <= RUNS; r++) {
    const t0 = performance.now();
    const model = await tf.loadGraphModel(packedModel(modelJson));
    await real.classify(tf, model, oneFace);
    if (r > 0) samples.push(performance.now() - t0);
    model.dispose();
  }
  return median(samples);
}

const kb = (bytes) => `${(bytes / 1024).toFixed(1)} KB`;
const floatPath = real.emotionModelPath();
const floatSize = real.modelFolderBytes(floatPath);
const reference = await outputsOf(floatPath);
const rows = [['float32 (as shipped)', kb(floatSize.total), '1.00x', `${reference.length}/${reference.length}`, '0', '0', (await loadTime(floatPath)).toFixed(1)]];

const dir = mkdtempSync(join(os.tmpdir(), 'edge-moq-bench-tfjs-'));
try {
  for (const [label, flags] of VARIANTS) {
    const output = join(dir, flags.join('_'), 'model.json');
    const cli = spawnSync(process.execPath, [join(root, 'dist', 'cli', 'main.js'), 'quantize', floatPath, '-o', output, ...flags], { encoding: 'utf8' });
    if (cli.status !== 0) throw new Error(`edge-moq quantize ${flags.join(' ')} exited ${cli.status}: ${cli.stderr}`);
    const size = real.modelFolderBytes(output);
    const measured = real.agreement(reference, await outputsOf(output));
    rows.push([
      label, kb(size.total), `${(floatSize.total / size.total).toFixed(2)}x`, `${measured.sameTop1}/${measured.faces}`,
      measured.meanAbsDiff.toFixed(4), measured.maxAbsDiff.toFixed(3), (await loadTime(output)).toFixed(1),
    ]);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
  input.dispose();
  oneFace.dispose();
}

const header = ['model', 'folder (model.json + weights)', 'smaller', 'top-1 same as float', 'mean \\|Δp\\|', 'max \\|Δp\\|', 'load + first prediction (ms)'];
console.log(`${real.REAL_MODEL_PACKAGE} models/emotion.json (7 expressions, 64x64 gray), ${reference.length} real faces, tfjs ${tf.version.tfjs} on its ${tf.getBackend()} backend, ${os.cpus().length} CPU(s), median of ${RUNS} loads\n`);
console.log(`| ${header.join(' | ')} |`);
console.log(`|${header.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`);
for (const row of rows) console.log(`| ${row.join(' | ')} |`);
