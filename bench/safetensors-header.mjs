// `node bench/safetensors-header.mjs` (after a build): a header of 100,000 tensors (about 9 MB of
// JSON) parsed by the strict parser next to JSON.parse, the whole openSafetensors (parse, checks,
// sort, tiling), and a readBytes of every tensor (each checks the tensor is the file's own).
// Not a test: timings vary. BENCH_TENSORS and BENCH_RUNS change the size and the repeats.

import { layoutSafetensors, memorySource, openSafetensors, readBytes } from '../dist/formats/safetensors.js';
import { parseStrictJson } from '../dist/formats/strict-json.js';

const TENSORS = Number(process.env.BENCH_TENSORS ?? 100_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 7);

/** @param {number[]} values */
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

/** @param {() => unknown} fn */
async function time(fn) {
  const samples = [];
  // Two warm-up runs, then the median of RUNS.
  for (let r = 0; r < RUNS + 2; r++) {
    const t0 = performance.now();
    await fn();
    if (r >= 2) samples.push(performance.now() - t0);
  }
  return median(samples);
}

/** @type {import('../dist/formats/safetensors.js').TensorSpec[]} */
const specs = Array.from({ length: TENSORS }, (_, i) => ({
  name: `model.layers.${Math.floor(i / 7)}.${['q', 'k', 'v', 'o', 'gate', 'up', 'down'][i % 7]}_proj.weight`,
  dtype: 'F32',
  shape: [2, 2],
}));
const layout = layoutSafetensors(specs, { format: 'pt' });
const bytes = new Uint8Array(layout.size);
bytes.set(layout.header);
const text = new TextDecoder().decode(layout.header.subarray(8));
/**
 * @param {string} problem
 * @param {number} index
 */
const fail = (problem, index) => {
  throw new Error(`${problem} at ${index}`);
};

const file = await openSafetensors(memorySource(bytes));
/** @type {[string, number][]} */
const rows = [
  ['JSON.parse', await time(() => JSON.parse(text))],
  ['parseStrictJson', await time(() => parseStrictJson(text, fail))],
  ['openSafetensors (parse and every check)', await time(() => openSafetensors(memorySource(bytes)))],
  [
    'readBytes of every tensor',
    await time(async () => {
      for (const tensor of file.tensors) await readBytes(file, tensor);
    }),
  ],
];
console.log(`${TENSORS} tensors, a ${(text.length / 1e6).toFixed(1)} MB header; median of ${RUNS} runs`);
for (const [what, ms] of rows) console.log(`${what.padEnd(42)} ${ms.toFixed(1).padStart(8)} ms`);
