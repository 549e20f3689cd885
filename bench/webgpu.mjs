// `node bench/webgpu.mjs` (after `npx tsc -p .`): the WebGPU backend on 16,777,216 float32 values
// in groups of 4096, the sizes of the core benchmark (bench/run.mjs). For each kernel: the host
// round trip split into its parts (upload: writeBuffer until the queue is done; kernels:
// fakeQuantizeBuffer on a resident GPUBuffer, validation and all, which is also the figure for
// caller-owned buffers; read-back: copy to a mappable buffer, map, copy into the array), the
// round trip as fakeQuantize on a Float32Array actually takes, and WebAssembly SIMD on the same
// array. Medians of BENCH_RUNS runs (default 5). Prints a markdown table.
// On a software adapter (SwiftShader) these numbers only show overheads.

import os from 'node:os';
import { WasmBackend } from '../dist/index.js';
import { WebGpuBackend } from '../dist/backends/webgpu/backend.js';
import { GROUP, N, VARIANTS, median, weights, requireNodeGpu } from './workload.mjs';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
// GPUBufferUsage / GPUMapMode values.
const STORAGE = 128, COPY_SRC = 4, COPY_DST = 8, MAP_READ = 1;

const backend = await WebGpuBackend.create({ gpu: await requireNodeGpu() });
const wasm = await WasmBackend.create('simd');
const { device } = backend;

const original = weights();
const host = new Float32Array(N);
const resident = device.createBuffer({ size: N * 4, usage: STORAGE | COPY_SRC | COPY_DST });
const staging = device.createBuffer({ size: N * 4, usage: MAP_READ | COPY_DST });


/** Median of `fn` over RUNS runs after one warm-up, `prepare` untimed before each. */
async function time(prepare, fn) {
  const samples = [];
  for (let r = 0; r <= RUNS; r++) {
    await prepare();
    const t0 = performance.now();
    await fn();
    if (r > 0) samples.push(performance.now() - t0);
  }
  return median(samples);
}

async function upload() {
  device.queue.writeBuffer(resident, 0, original);
  await device.queue.onSubmittedWorkDone();
}

async function readBack() {
  const encoder = device.createCommandEncoder();
  encoder.copyBufferToBuffer(resident, 0, staging, 0, N * 4);
  device.queue.submit([encoder.finish()]);
  await staging.mapAsync(MAP_READ);
  host.set(new Float32Array(staging.getMappedRange()));
  staging.unmap();
}

const resetHost = () => host.set(original);
const rows = [];
for (const [name, variant] of VARIANTS) {
  const options = { ...variant, groupSize: GROUP };
  const up = await time(() => {}, upload);
  const kernels = await time(upload, () => backend.fakeQuantizeBuffer(resident, N, options));
  const down = await time(upload, readBack);
  const roundTrip = await time(resetHost, () => backend.fakeQuantize(host, options));
  const onWasm = await time(resetHost, () => wasm.fakeQuantize(host, options));
  rows.push([name, up, kernels, down, roundTrip, onWasm]);
  console.error(`${name}: upload ${up.toFixed(1)}, kernels ${kernels.toFixed(1)}, read-back ${down.toFixed(1)}, round trip ${roundTrip.toFixed(1)}, wasm-simd ${onWasm.toFixed(1)} ms`);
}

const a = backend.adapter;
console.log('## WebGPU\n');
console.log(`Measured ${new Date().toISOString().slice(0, 10)} on ${os.cpus().length} x ${os.cpus()[0]?.model.trim()}, Node ${process.versions.node}; ` +
  `WebGPU adapter: ${a.description || a.device || 'unnamed'} (${a.vendor}/${a.architecture}${a.isFallbackAdapter ? ', a fallback adapter' : ''}), ` +
  `reductions ${backend.usesSubgroups ? 'with subgroup operations' : 'in workgroup memory'}; ` +
  `16,777,216 float32 values, groups of 4096, medians of ${RUNS} runs. "Kernels" is fakeQuantizeBuffer on a resident GPUBuffer ` +
  '(validation, statistics and writes, plus the small status read-back): the cost for caller-owned buffers. ' +
  '"Host round trip" is fakeQuantize on a Float32Array: upload, kernels and read-back in one submission.\n');
console.log('| kernel | upload, ms | kernels (GPUBuffer), ms | read-back, ms | host round trip, ms | wasm-simd host, ms |');
console.log('|---|---:|---:|---:|---:|---:|');
for (const [name, ...ms] of rows) console.log(`| ${name} | ${ms.map((m) => m.toFixed(2)).join(' | ')} |`);
backend.dispose();
process.exit(0);
