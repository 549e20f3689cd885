// `npm run bench`: 16,777,216 float32 values in groups of 4096, quantized in place in
// WebAssembly memory, timed against the bandwidth floor (Float32Array.prototype.set of the
// same size) and a plain TypeScript loop. Medians of RUNS runs; writes BENCHMARKS.md.
// Not a test: timings vary with the machine and its load.

import { writeFileSync, readFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import { WasmBackend } from '../dist/index.js';
import { GROUP, N, VARIANTS, median, weights } from './workload.mjs';

const RUNS = Number(process.env.BENCH_RUNS ?? 15);

function time(prepare, fn) {
  const samples = [];
  for (let r = 0; r < RUNS + 2; r++) {
    prepare();
    globalThis.gc?.();
    const t0 = performance.now();
    fn();
    const t = performance.now() - t0;
    if (r >= 2) samples.push(t);
  }
  return median(samples);
}

/** The straightforward TypeScript loop a user would write: symmetric 8-bit nearest, in place. */
function plainLoop(data, groupSize, bits) {
  const levels = 2 ** bits;
  for (let g = 0; g < data.length; g += groupSize) {
    let lo = Infinity, hi = -Infinity;
    for (let i = g; i < g + groupSize; i++) { const x = data[i]; if (x < lo) lo = x; if (x > hi) hi = x; }
    const scale = Math.fround(Math.max(Math.abs(lo), Math.abs(hi)) * Math.fround(2 / levels));
    if (!(scale > 0)) continue;
    for (let i = g; i < g + groupSize; i++) {
      const v = Math.fround(data[i] / scale);
      let r = Math.round(v);
      if (r - v === 0.5 && r % 2 !== 0) r -= 1; // half to even
      data[i] = Math.fround(Math.min(Math.max(r, -levels / 2), levels / 2 - 1) * scale);
    }
  }
}

const original = weights();
const copy = new Float32Array(N);
const floor = time(() => {}, () => copy.set(original));
const plain = time(() => copy.set(original), () => plainLoop(copy, GROUP, 8));

const rows = [];
for (const build of ['simd', 'scalar']) {
  const backend = await WasmBackend.create(build);
  const tensor = backend.upload(original);
  for (const [name, options] of VARIANTS) {
    const opts = { ...options, groupSize: GROUP };
    // In WebAssembly memory: two passes (statistics and NaN/Inf check for the whole tensor, then the writes).
    const ms = time(() => tensor.array.set(original), () => backend.fakeQuantizeSync(tensor.array, opts));
    // A host Float32Array: copied in, one fused pass over the copy, copied back.
    const hostMs = time(() => copy.set(original), () => backend.fakeQuantizeSync(copy, opts));
    rows.push({ build, name, ms, hostMs });
  }
  tensor.free();
  backend.dispose();
}

const targets = { simd: { 'symmetric 8-bit nearest': 1.5, 'asymmetric 8-bit nearest': 1.8, 'symmetric 8-bit stochastic': 2.5, 'symmetric 4-bit nearest': 1.5, 'ternary (2-bit)': 2, 'binary (1-bit)': 2 } };
const ratio = (ms) => (ms / floor).toFixed(2);
const lines = [
  `| kernel | build | in WebAssembly memory, ms | x floor | target | host Float32Array, ms | x floor |`,
  `|---|---|---:|---:|---:|---:|---:|`,
  `| Float32Array.prototype.set (the floor) | — | ${floor.toFixed(2)} | 1.00 | | | |`,
  `| plain TypeScript loop, symmetric 8-bit | — | | | | ${plain.toFixed(2)} | ${ratio(plain)} |`,
  ...rows.map((r) => `| ${r.name} | ${r.build === 'simd' ? 'wasm-simd' : 'wasm (scalar)'} | ${r.ms.toFixed(2)} | ${ratio(r.ms)} | ≤ ${r.build === 'simd' ? targets.simd[r.name] : 8}x | ${r.hostMs.toFixed(2)} | ${ratio(r.hostMs)} |`),
];
const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
const header = `Measured ${new Date().toISOString().slice(0, 10)} on ${os.cpus().length} x ${cpu}, Node ${process.versions.node}; ` +
  `${N.toLocaleString('en')} float32 values, groups of ${GROUP}, medians of ${RUNS} runs. ` +
  `"In WebAssembly memory": the tensor lives there (WasmTensor) and is quantized in place in two passes, ` +
  `statistics with the NaN/Inf check for the whole tensor first, then the writes, so bad input leaves it untouched. ` +
  `"Host Float32Array": copied in, quantized in one fused pass over the copy, copied back.`;
console.log(header + '\n\n' + lines.join('\n'));

const file = new URL('../BENCHMARKS.md', import.meta.url);
const start = '<!-- wasm:start -->', end = '<!-- wasm:end -->';
const section = `${start}\n## WebAssembly (CPU)\n\n${header}\n\n${lines.join('\n')}\n${end}`;
let doc = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n\nWritten by `npm run bench`. Timings depend on the machine; ratios to the floor travel better.\n\n';
doc = doc.includes(start) ? doc.replace(new RegExp(`${start}[\\s\\S]*${end}`), section) : `${doc}${section}\n`;
writeFileSync(file, doc);
