// `npm run bench:gpu`: the WebGPU backend on a real GPU, in one run of a few minutes.
//   1. Kernels alone on a caller-owned GPUBuffer, 2^MIN..2^MAX elements (symmetric 8-bit,
//      groups of 4096), against copyBufferToBuffer of the same buffer: the copy is the
//      device's bandwidth floor, and copy time / kernel time is the fraction of it reached.
//   2. Every kernel at 2^min(24, MAX) elements: upload, kernels, read-back, the host round
//      trip (fakeQuantize on a Float32Array) and wasm-simd on the same array, whose result the
//      GPU's must equal as the README promises (else the run ends with status 3).
//   3. The host crossover: fakeQuantize on a Float32Array, WebGPU against wasm-simd, 2^10..2^MAX;
//      the smallest size from which WebGPU stays faster is what WEBGPU_CROSSOVER_ELEMENTS
//      (src/backends/select.ts) should be.
// The GPU is found through the `webgpu` package (Dawn on Vulkan). Where no Vulkan driver is
// named (VK_ICD_FILENAMES / VK_DRIVER_FILES) and NVIDIA's is installed, NVIDIA's is used.
// A software adapter (SwiftShader, llvmpipe) is refused unless BENCH_GPU_ALLOW_SOFTWARE=1, and
// then nothing is written to BENCHMARKS.md: its timings say nothing about a GPU.
// Settings: BENCH_GPU_MIN_LOG2 (20), BENCH_GPU_MAX_LOG2 (26), BENCH_RUNS (5).

import { existsSync } from 'node:fs';
import { WEBGPU_CROSSOVER_ELEMENTS, WasmBackend, WebGpuBackend, describeAdapter, summarizeAdapter } from '../dist/index.js';
import { GROUP, VARIANTS, machine, median, weights, writeSection } from './workload.mjs';

const MIN_LOG2 = Number(process.env.BENCH_GPU_MIN_LOG2 ?? 20);
const MAX_LOG2 = Number(process.env.BENCH_GPU_MAX_LOG2 ?? 26);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const ALLOW_SOFTWARE = process.env.BENCH_GPU_ALLOW_SOFTWARE === '1';
const HOST_MIN_LOG2 = 10;
/** Submissions in flight per timing of the device-side work: launch latency overlaps the work. */
const PIPELINED = 10;
// GPUBufferUsage / GPUMapMode / GPUQueryType values.
const STORAGE = 128,
  COPY_SRC = 4,
  COPY_DST = 8,
  MAP_READ = 1,
  QUERY_RESOLVE = 512;

/** Where NVIDIA's driver installs its Vulkan ICD, container mounts first. */
const NVIDIA_ICDS = ['/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json', '/usr/share/vulkan/icd.d/nvidia_icd.json', '/etc/vulkan/icd.d/nvidia_icd.json'];
/** Chromium's CPU Vulkan driver (Debian's `chromium` package). */
const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

/**
 * @param {string} message
 * @returns {never}
 */
function fail(message, code = 1) {
  console.error(`bench:gpu: ${message}`);
  process.exit(code);
}

if (!(Number.isInteger(MIN_LOG2) && Number.isInteger(MAX_LOG2) && HOST_MIN_LOG2 <= MIN_LOG2 && MIN_LOG2 <= MAX_LOG2 && MAX_LOG2 <= 28)) {
  fail(`BENCH_GPU_MIN_LOG2=${MIN_LOG2} and BENCH_GPU_MAX_LOG2=${MAX_LOG2} must be integers with ${HOST_MIN_LOG2} <= min <= max <= 28.`);
}

const namedIcd = process.env.VK_ICD_FILENAMES ?? process.env.VK_DRIVER_FILES;
const nvidiaIcd = namedIcd === undefined ? NVIDIA_ICDS.find((path) => existsSync(path)) : undefined;
if (nvidiaIcd) {
  // The Vulkan loader reads these when Dawn creates its instance, so they are set before.
  process.env.VK_ICD_FILENAMES = nvidiaIcd;
  process.env.VK_DRIVER_FILES = nvidiaIcd;
}
const icdNote = namedIcd !== undefined ? `Vulkan driver as named: ${namedIcd}` : nvidiaIcd ? `Vulkan driver: ${nvidiaIcd}` : "Vulkan drivers: the loader's default search (no NVIDIA ICD file found)";

/** @type {{ create(flags: string[]): GPU, globals: object }} */
let dawn;
try {
  const specifier = 'webgpu';
  dawn = await import(specifier);
} catch (error) {
  fail(`the "webgpu" package (Dawn for Node) did not load: ${/** @type {Error} */ (error).message}. Run npm install where the package's linux-x64 binary is present.`);
}
Object.assign(globalThis, dawn.globals);
// Dawn rounds timestamps off (a guard against timing attacks in browsers); the copy timings want them whole.
const DAWN_FLAGS = ['disable-dawn-features=timestamp_quantization'];
const gpu = dawn.create(DAWN_FLAGS);
let adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
let softwareGpu;
if (!adapter && namedIcd === undefined && !nvidiaIcd && existsSync(SWIFTSHADER_ICD)) {
  // No hardware driver: Chromium's SwiftShader, as the tests use, to check this script end to end.
  process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
  softwareGpu = dawn.create(DAWN_FLAGS);
  adapter = await softwareGpu.requestAdapter();
}
if (!adapter) {
  fail(
    `no WebGPU adapter (${icdNote}). Dawn needs the Vulkan loader (libvulkan.so.1: \`ldconfig -p | grep libvulkan\`) ` +
      'and a Vulkan driver for the GPU; for NVIDIA, VK_ICD_FILENAMES=/path/to/nvidia_icd.json if it is not in a standard place.',
  );
}
const summary = summarizeAdapter(adapter);
const description = [summary.vendor, summary.architecture, summary.device, summary.description].join(' ');
const software = summary.isFallbackAdapter || /swiftshader|llvmpipe|lavapipe|software/i.test(description);
console.error(`bench:gpu: adapter ${describeAdapter(summary)}${software ? ' (software)' : ''}; ${icdNote}`);
console.error(`bench:gpu: limits maxBufferSize ${adapter.limits.maxBufferSize}, maxStorageBufferBindingSize ${adapter.limits.maxStorageBufferBindingSize}; features ${summary.features.join(', ')}`);
if (software && !ALLOW_SOFTWARE) {
  fail(
    'this adapter is software, not a GPU: its timings would say nothing about one. Check the Vulkan driver ' +
      '(above), or set BENCH_GPU_ALLOW_SOFTWARE=1 to run anyway (nothing is written to BENCHMARKS.md then).',
    2,
  );
}

const timestamps = adapter.features.has('timestamp-query');
const device = await adapter.requestDevice({
  requiredFeatures: /** @type {GPUFeatureName[]} */ (['subgroups', 'timestamp-query'].filter((f) => adapter.features.has(f))),
  requiredLimits: { maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize, maxBufferSize: adapter.limits.maxBufferSize },
});
const backend = await WebGpuBackend.create({ device, gpu: softwareGpu ?? gpu });
const wasm = await WasmBackend.create('simd');
const maxBytes = Math.min(device.limits.maxBufferSize, device.limits.maxStorageBufferBindingSize);
const started = performance.now();

/**
 * Median of `fn` over RUNS runs after one warm-up, `prepare` untimed before each.
 * @param {() => unknown} prepare
 * @param {() => unknown} fn
 * @param {number} [runs]
 */
async function time(prepare, fn, runs = RUNS) {
  const samples = [];
  for (let r = 0; r <= runs; r++) {
    await prepare();
    const t0 = performance.now();
    await fn();
    if (r > 0) samples.push(performance.now() - t0);
  }
  return median(samples);
}

/**
 * Wall time per submission of PIPELINED submissions of `encode`'s work, all in flight at once.
 * @param {() => unknown} enqueue submits one unit of work
 */
async function pipelined(enqueue) {
  return (
    (await time(
      () => {},
      async () => {
        for (let i = 0; i < PIPELINED; i++) await enqueue();
        await device.queue.onSubmittedWorkDone();
      },
    )) / PIPELINED
  );
}

/**
 * The copy's own time on the GPU from timestamps: empty compute passes before and after it
 * (copies take no timestampWrites of their own). Null without the feature.
 * @param {GPUBuffer} from
 * @param {GPUBuffer} to
 * @param {number} bytes
 */
async function copyOnGpu(from, to, bytes) {
  if (!timestamps) return null;
  const querySet = device.createQuerySet({ type: 'timestamp', count: 2 });
  const resolved = device.createBuffer({ size: 16, usage: QUERY_RESOLVE | COPY_SRC });
  const read = device.createBuffer({ size: 16, usage: MAP_READ | COPY_DST });
  const samples = [];
  for (let r = 0; r <= RUNS; r++) {
    const encoder = device.createCommandEncoder();
    encoder.beginComputePass({ timestampWrites: { querySet, endOfPassWriteIndex: 0 } }).end();
    encoder.copyBufferToBuffer(from, 0, to, 0, bytes);
    encoder.beginComputePass({ timestampWrites: { querySet, beginningOfPassWriteIndex: 1 } }).end();
    encoder.resolveQuerySet(querySet, 0, 2, resolved, 0);
    encoder.copyBufferToBuffer(resolved, 0, read, 0, 16);
    device.queue.submit([encoder.finish()]);
    await read.mapAsync(MAP_READ);
    const [begin, end] = new BigUint64Array(read.getMappedRange());
    read.unmap();
    if (r > 0) samples.push(Number(/** @type {bigint} */ (end) - /** @type {bigint} */ (begin)) / 1e6);
  }
  querySet.destroy();
  resolved.destroy();
  read.destroy();
  return median(samples);
}

const original = weights(2 ** MAX_LOG2);
const symmetric8 = { bits: 8, groupSize: GROUP };

// 1. Kernels on a caller-owned GPUBuffer against the copy.
const deviceRows = [];
for (let log = MIN_LOG2; log <= MAX_LOG2; log++) {
  const n = 2 ** log,
    bytes = n * 4;
  if (bytes > maxBytes) {
    console.error(`2^${log}: ${bytes} bytes is over this device's buffer limit (${maxBytes}); stopping there`);
    break;
  }
  const data = device.createBuffer({ size: bytes, usage: STORAGE | COPY_SRC | COPY_DST });
  const other = device.createBuffer({ size: bytes, usage: STORAGE | COPY_SRC | COPY_DST });
  device.queue.writeBuffer(data, 0, original, 0, n);
  const copyMs = await pipelined(() => {
    const encoder = device.createCommandEncoder();
    encoder.copyBufferToBuffer(data, 0, other, 0, bytes);
    device.queue.submit([encoder.finish()]);
  });
  const copyGpuMs = await copyOnGpu(data, other, bytes);
  // Re-quantizing quantized values is the same work: no reset between runs.
  const kernelsMs = await pipelined(() => backend.enqueueFakeQuantizeBuffers([{ buffer: data, length: n, options: symmetric8 }]));
  const callMs = await time(
    () => {},
    () => backend.fakeQuantizeBuffer(data, n, symmetric8),
  );
  data.destroy();
  other.destroy();
  deviceRows.push({ log, n, copyMs, copyGpuMs, kernelsMs, callMs });
  console.error(`2^${log}: copy ${copyMs.toFixed(3)} ms${copyGpuMs === null ? '' : ` (${copyGpuMs.toFixed(3)} on the GPU)`}, kernels ${kernelsMs.toFixed(3)} ms, one call ${callMs.toFixed(3)} ms`);
}

// 2. Every kernel, split into its parts, at one size.
const splitLog = Math.min(24, MAX_LOG2);
const splitN = 2 ** splitLog;
const splitHost = new Float32Array(splitN);
const resident = device.createBuffer({ size: splitN * 4, usage: STORAGE | COPY_SRC | COPY_DST });
const staging = device.createBuffer({ size: splitN * 4, usage: MAP_READ | COPY_DST });
const upload = async () => {
  device.queue.writeBuffer(resident, 0, original, 0, splitN);
  await device.queue.onSubmittedWorkDone();
};
const readBack = async () => {
  const encoder = device.createCommandEncoder();
  encoder.copyBufferToBuffer(resident, 0, staging, 0, splitN * 4);
  device.queue.submit([encoder.finish()]);
  await staging.mapAsync(MAP_READ);
  splitHost.set(new Float32Array(staging.getMappedRange()));
  staging.unmap();
};
const resetSplitHost = () => splitHost.set(original.subarray(0, splitN));
/** The README's promise at 1 and 2 bits, where the order of the mean's summation is free: within this, relative. */
const LOW_BIT_TOLERANCE = 1e-6;
/**
 * The GPU's result against wasm-simd's on the same input: values that differ bit for bit, and
 * (at 1 and 2 bits) those beyond the relative tolerance. A kernel that did nothing must not be
 * timed as fast, and no test here runs on a real GPU.
 * @param {import('../dist/index.js').FakeQuantizeOptions} options
 */
async function compare(options) {
  const onGpu = await backend.fakeQuantize(original.slice(0, splitN), options);
  const onWasm = await wasm.fakeQuantize(original.slice(0, splitN), options);
  const lowBits = (options.bits ?? 8) <= 2;
  let differ = 0,
    beyond = 0;
  for (let i = 0; i < splitN; i++) {
    const got = /** @type {number} */ (onGpu[i]),
      want = /** @type {number} */ (onWasm[i]);
    if (Object.is(got, want)) continue;
    differ++;
    if (!lowBits || !(Math.abs(got - want) <= LOW_BIT_TOLERANCE * Math.abs(want))) beyond++;
  }
  return { lowBits, differ, beyond };
}
const splitRows = [];
for (const [name, variant] of VARIANTS) {
  const options = { ...variant, groupSize: GROUP };
  const row = {
    name,
    check: await compare(options),
    upload: await time(() => {}, upload),
    kernels: await time(upload, () => backend.fakeQuantizeBuffer(resident, splitN, options)),
    readBack: await time(upload, readBack),
    roundTrip: await time(resetSplitHost, () => backend.fakeQuantize(splitHost, options)),
    wasm: await time(resetSplitHost, () => wasm.fakeQuantize(splitHost, options)),
  };
  splitRows.push(row);
  console.error(
    `${name} at 2^${splitLog}: ${row.check.differ} values differ from wasm-simd (${row.check.beyond} beyond what the README allows); upload ${row.upload.toFixed(2)}, kernels ${row.kernels.toFixed(2)}, read-back ${row.readBack.toFixed(2)}, round trip ${row.roundTrip.toFixed(2)}, wasm-simd ${row.wasm.toFixed(2)} ms`,
  );
}
resident.destroy();
staging.destroy();

// 3. The host crossover.
const hostRows = [];
for (let log = HOST_MIN_LOG2; log <= MAX_LOG2 && 2 ** log * 4 <= maxBytes; log++) {
  const n = 2 ** log;
  const host = original.slice(0, n);
  const options = { bits: 8, groupSize: Math.min(n, GROUP) };
  const reset = () => host.set(original.subarray(0, n));
  const runs = n <= 2 ** 16 ? 21 : n <= 2 ** 20 ? 9 : RUNS;
  const wasmMs = await time(reset, () => wasm.fakeQuantize(host, options), runs);
  const gpuMs = await time(reset, () => backend.fakeQuantize(host, options), runs);
  hostRows.push({ log, n, wasmMs, gpuMs });
  console.error(`host 2^${log}: wasm-simd ${wasmMs.toFixed(3)} ms, webgpu round trip ${gpuMs.toFixed(3)} ms`);
}
/** @type {{ log: number, n: number } | undefined} */
let crossover;
for (let i = hostRows.length - 1; i >= 0; i--) {
  const row = /** @type {typeof hostRows[number]} */ (hostRows[i]);
  if (row.gpuMs >= row.wasmMs) break;
  crossover = row;
}

const f = (/** @type {number} */ v, digits = 3) => v.toFixed(digits);
const gbps = (/** @type {number} */ n, /** @type {number} */ ms) => f((2 * n * 4) / ms / 1e6, 0);
const header =
  `Measured ${new Date().toISOString().slice(0, 10)} by \`npm run bench:gpu\` on ${machine()}; WebGPU through the ` +
  `\`webgpu\` package (Dawn): ${describeAdapter(summary)}${software ? ', a software adapter: these timings say nothing about a GPU' : ''}; ` +
  `reductions ${backend.usesSubgroups ? 'with subgroup operations' : 'in workgroup memory'}; timestamp queries ${timestamps ? 'available' : 'not available'}. ` +
  `Medians of ${RUNS} runs (more for small host sizes), groups of ${GROUP}.`;
const gpuTimed = deviceRows.some((r) => r.copyGpuMs !== null && r.copyGpuMs > 0);
const deviceLines = [
  `| elements | copy, ms | ${gpuTimed ? 'copy on the GPU (timestamps), ms | ' : ''}copy bandwidth, GB/s (read + write) | kernels, ms | fraction of copy bandwidth | ` +
    `${gpuTimed ? 'against the GPU-timed copy | ' : ''}one fakeQuantizeBuffer call, ms |`,
  `|---:|---:|${gpuTimed ? '---:|' : ''}---:|---:|---:|${gpuTimed ? '---:|' : ''}---:|`,
  ...deviceRows.map((r) => {
    const gpuCopy = gpuTimed && r.copyGpuMs !== null && r.copyGpuMs > 0 ? r.copyGpuMs : null;
    return (
      `| 2^${r.log} | ${f(r.copyMs)} | ${gpuTimed ? `${gpuCopy === null ? '—' : f(gpuCopy)} | ` : ''}${gbps(r.n, gpuCopy ?? r.copyMs)} ` +
      `| ${f(r.kernelsMs)} | ${f((100 * r.copyMs) / r.kernelsMs, 0)}% | ${gpuTimed ? `${gpuCopy === null ? '—' : `${f((100 * gpuCopy) / r.kernelsMs, 0)}%`} | ` : ''}${f(r.callMs)} |`
    );
  }),
];
const splitLines = [
  `| kernel (2^${splitLog} elements) | upload, ms | kernels (GPUBuffer), ms | read-back, ms | host round trip, ms | wasm-simd host, ms | result against wasm-simd |`,
  '|---|---:|---:|---:|---:|---:|---|',
  ...splitRows.map(
    (r) =>
      `| ${r.name} | ${[r.upload, r.kernels, r.readBack, r.roundTrip, r.wasm].map((v) => f(v, 2)).join(' | ')} ` +
      `| ${
        r.check.differ === 0
          ? 'equal bit for bit'
          : r.check.beyond === 0
            ? `${r.check.differ.toLocaleString('en-US')} values differ, all within ${LOW_BIT_TOLERANCE.toExponential()} relative`
            : `${r.check.beyond.toLocaleString('en-US')} values differ${r.check.lowBits ? ` by more than ${LOW_BIT_TOLERANCE.toExponential()} relative` : ''}`
      } |`,
  ),
];
const hostLines = [
  '| elements | wasm-simd, ms | webgpu round trip, ms | faster |',
  '|---:|---:|---:|---|',
  ...hostRows.map((r) => `| 2^${r.log} | ${f(r.wasmMs)} | ${f(r.gpuMs)} | ${r.gpuMs < r.wasmMs ? 'webgpu' : 'wasm-simd'} |`),
];
const verdict = crossover
  ? `Crossover: 2^${crossover.log} = ${crossover.n.toLocaleString('en-US')} elements (WebGPU faster from there up to 2^${MAX_LOG2}). ` +
    `Set \`WEBGPU_CROSSOVER_ELEMENTS = 1 << ${crossover.log}\` in src/backends/select.ts (now ${WEBGPU_CROSSOVER_ELEMENTS.toLocaleString('en-US')}).`
  : `No crossover up to 2^${MAX_LOG2}: wasm-simd was faster for host data at the largest size measured; keep \`WEBGPU_CROSSOVER_ELEMENTS\` ` +
    `(now ${WEBGPU_CROSSOVER_ELEMENTS.toLocaleString('en-US')}) at least 2^${MAX_LOG2 + 1} for this adapter.`;
const section =
  `## WebGPU on ${describeAdapter(summary)}\n\n${header}\n\n` +
  '**Kernels alone** on a caller-owned GPUBuffer (symmetric 8-bit, `enqueueFakeQuantizeBuffers`: validation, statistics and writes, ' +
  `nothing read back), against \`copyBufferToBuffer\` of the same buffer, each as wall time per submission with ${PIPELINED} in flight; ` +
  'the fraction is copy time / kernel time. ' +
  (gpuTimed
    ? 'Where the GPU timed the copy itself (timestamps between empty passes), the bandwidth is from that time, and the fraction ' +
      "against it sets the copy's GPU time against the kernels' wall time: a lower bound. "
    : '') +
  '"One call" is `fakeQuantizeBuffer`, which also reads the status back.\n\n' +
  `${deviceLines.join('\n')}\n\n**Every kernel** at 2^${splitLog} elements: the host round trip split into its parts, wasm-simd on the same array, ` +
  `and the GPU's result against wasm-simd's (the README promises bit for bit at 3..16 bits, within ${LOW_BIT_TOLERANCE.toExponential()} relative at 1 and 2).\n\n` +
  `${splitLines.join('\n')}\n\n**Host data**: \`fakeQuantize\` on a Float32Array (symmetric 8-bit, groups of up to ${GROUP}), warm.\n\n` +
  `${hostLines.join('\n')}\n\n${verdict}`;
console.log(section);
if (software) console.error('bench:gpu: a software adapter: BENCHMARKS.md left as it was.');
else writeSection('gpu', section);
console.error(`bench:gpu: ${((performance.now() - started) / 1000).toFixed(0)} s after the device opened`);
backend.dispose();
device.destroy();
const mismatched = splitRows.filter((r) => r.check.beyond > 0).map((r) => r.name);
if (mismatched.length > 0) fail(`the GPU's results differ from wasm-simd's for ${mismatched.join(', ')}: a bug to report with the adapter above.`, 3);
process.exit(0);
