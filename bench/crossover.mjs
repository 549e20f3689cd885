// `node bench/crossover.mjs` (after `npx tsc -p .`): where WebGPU starts to beat WebAssembly SIMD
// for host data. For 2^10..2^24 float32 values (groups of up to 4096, symmetric 8-bit), the
// median time of fakeQuantize on a host Float32Array on each backend, both warm: the WebGPU
// time is the whole round trip (upload, kernels, read-back into the same array). The crossover
// is the smallest size from which WebGPU is faster at every larger size measured; it is what
// WEBGPU_CROSSOVER_ELEMENTS in src/backends/select.ts should be on this machine.

import os from 'node:os';
import { WasmBackend } from '../dist/index.js';
import { WebGpuBackend } from '../dist/backends/webgpu/backend.js';
import { median, requireNodeGpu } from './workload.mjs';

const gpu = await WebGpuBackend.create({ gpu: await requireNodeGpu() });
const wasm = await WasmBackend.create('simd');

async function time(backend, data, options, runs) {
  await backend.fakeQuantize(data, options);
  const samples = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    await backend.fakeQuantize(data, options);
    samples.push(performance.now() - t0);
  }
  return median(samples);
}

const rows = [];
for (let log = 10; log <= 24; log++) {
  const n = 2 ** log;
  const data = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) * 0.1);
  const options = { bits: 8, groupSize: Math.min(n, 4096) };
  const runs = n <= 2 ** 16 ? 21 : n <= 2 ** 20 ? 7 : 3;
  const wasmMs = await time(wasm, data, options, runs);
  const gpuMs = await time(gpu, data, options, runs);
  rows.push({ log, n, wasmMs, gpuMs });
  console.error(`2^${log}: wasm-simd ${wasmMs.toFixed(3)} ms, webgpu ${gpuMs.toFixed(3)} ms`);
}

let crossover = null;
for (let i = rows.length - 1; i >= 0 && rows[i].gpuMs < rows[i].wasmMs; i--) crossover = rows[i];

const adapter = `${gpu.adapter.description || gpu.adapter.device || 'adapter'} (${gpu.adapter.vendor}/${gpu.adapter.architecture}${gpu.adapter.isFallbackAdapter ? ', fallback' : ''})`;
console.log(`## WebGPU crossover for host data\n`);
console.log(`${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} x ${os.cpus()[0]?.model.trim()}, Node ${process.versions.node}, WebGPU: ${adapter}. ` +
  'Symmetric 8-bit, groups of up to 4096, fakeQuantize on a host Float32Array, warm, medians.\n');
console.log('| elements | wasm-simd, ms | webgpu round trip, ms | faster |');
console.log('|---:|---:|---:|---|');
for (const r of rows) {
  console.log(`| 2^${r.log} (${r.n.toLocaleString('en-US')}) | ${r.wasmMs.toFixed(3)} | ${r.gpuMs.toFixed(3)} | ${r.gpuMs < r.wasmMs ? 'webgpu' : 'wasm-simd'} |`);
}
console.log(crossover
  ? `\nCrossover: 2^${crossover.log} = ${crossover.n} elements (WebGPU faster from there up).`
  : `\nWebGPU never wins here up to 2^24 elements: keep host data on WebAssembly on this adapter.`);
gpu.dispose();
process.exit(0);
