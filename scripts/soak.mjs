// Soak test: does a long training run leak? Two Quantizers (symmetric nearest with the mixed-fp16
// blend; asymmetric stochastic) drive T tensors of various sizes through N optimizer steps on
// each backend, with overflow steps and a save/restore through JSON every 1000 steps, while
// their precision steps down through every bit width it reaches. Every K steps, after a full
// garbage collection, it samples process.memoryUsage() (heapUsed, external, arrayBuffers, rss),
// the WebAssembly memory size, and on WebGPU the backend's counters (buffers, bind groups,
// pipelines, shader modules created; calls that fell back to WebAssembly). Per metric it prints
// start, after warm-up, peak and end, and "flat" when end - after-warm-up is within the
// metric's tolerance, else "GROWING"; the exit status is 1 if anything grows.
//
//   node scripts/soak.mjs [--steps 10000] [--tensors 100] [--backend all|wasm-simd|wasm|webgpu[,...]]
//                         [--seconds 600] [--every K] [--json] [--simulate-leak BYTES]
//
// --simulate-leak keeps BYTES of JavaScript arrays alive per step: the check that this soak
// catches a leak (test/soak.test.ts runs it). --json prints one line per backend, every sample
// included.
//
// --seconds bounds the whole run (each backend gets an equal share of what is left); a backend
// cut short reports how far it got. "After warm-up" is the first sample after a tenth of the
// steps run; a run too short to sample after it is "inconclusive". Uses the
// built dist/ (npm run soak builds it first). Restarts itself under --expose-gc when needed, so
// that samples are taken on a collected heap.

import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { uniforms } from '../test/support/uniforms.mjs';

if (typeof globalThis.gc !== 'function') {
  const child = spawnSync(process.execPath, ['--expose-gc', ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(child.status ?? 1);
}

/** @typedef {import('../dist/index.js').Parameter} Parameter */
/** @typedef {import('../dist/index.js').QuantizerOptions} QuantizerOptions */
/** @typedef {import('../dist/index.js').Quantizer} QuantizerInstance */
/** @typedef {'wasm-simd' | 'wasm' | 'webgpu'} Kind */
/**
 * A backend of any kind; WebAssembly ones allocate tensors, WebGPU ones count their resources.
 * @typedef {import('../dist/index.js').Backend
 *   & Partial<Pick<import('../dist/index.js').WasmBackend, 'allocate'>>
 *   & Partial<Pick<import('../dist/index.js').WebGpuBackend, 'stats'>>} SoakBackend
 */
/** @typedef {{ step: number, metrics: Record<string, number> }} Sample */
/** @typedef {{ start: number, afterWarmUp: number | undefined, peak: number, end: number, verdict: string }} MetricRow */
/** @typedef {{ kind: Kind, skipped: string }} Skipped */
/**
 * @typedef {{ kind: Kind, steps: number, requestedSteps: number, tensors: number, values: number, seconds: number,
 *   switches: number, bits: number[], finite: boolean, fellBack: number, warmUpStep: number } & ReturnType<typeof judge>} Soaked
 */

const { createBackend, Quantizer } = await import('../dist/index.js');
const { nodeGpu } = await import('../dist/backends/webgpu/node-gpu.js');
// Present: the process restarted itself under --expose-gc above.
const collectGarbage = /** @type {() => void} */ (globalThis.gc);

const MiB = 1024 * 1024;
/** @type {Kind[]} */
const KINDS = ['wasm-simd', 'wasm', 'webgpu'];

/**
 * What may change between the sample after warm-up and the last one and still count as flat.
 * @type {Record<string, number>}
 */
const TOLERANCE = {
  heapUsed: 1 * MiB,
  external: 1 * MiB,
  arrayBuffers: 1 * MiB,
  rss: 32 * MiB,
  wasmMemory: 0,
  gpuBuffers: 0,
  gpuBindGroups: 0,
  gpuPipelines: 0,
  gpuShaderModules: 0,
  wasmFallbackCalls: 0,
};
const BYTES = new Set(['heapUsed', 'external', 'arrayBuffers', 'rss', 'wasmMemory']);

/** @param {string[]} argv */
function parseArgs(argv) {
  const args = { steps: 10_000, tensors: 100, backend: 'all', seconds: 600, every: 0, json: false, 'simulate-leak': 0 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === '--json') {
      args.json = true;
      continue;
    }
    const name = flag.replace(/^--/, '');
    const value = argv[++i];
    if (!(name in args) || value === undefined) usage(`unknown or incomplete option ${flag}`);
    if (name === 'backend') args.backend = value;
    else {
      const n = Number(value);
      if (!Number.isInteger(n) || n < (name === 'simulate-leak' ? 0 : 1)) usage(`${flag} needs a positive integer, got ${value}`);
      args[/** @type {'steps' | 'tensors' | 'seconds' | 'every' | 'simulate-leak'} */ (name)] = n;
    }
  }
  const kinds = args.backend === 'all' ? KINDS : /** @type {Kind[]} */ (args.backend.split(','));
  for (const kind of kinds) if (!KINDS.includes(kind)) usage(`unknown backend ${kind}; one of all, ${KINDS.join(', ')}`);
  return { ...args, kinds, every: args.every || Math.max(1, Math.floor(args.steps / 50)), explicitBackend: args.backend !== 'all' };
}

/**
 * @param {string} problem
 * @returns {never}
 */
function usage(problem) {
  console.error(`soak: ${problem}\nusage: node scripts/soak.mjs [--steps N] [--tensors T] [--backend all|wasm-simd|wasm|webgpu[,...]] [--seconds S] [--every K] [--json] [--simulate-leak BYTES]`);
  process.exit(2);
}

/**
 * T tensors: weights of 32..512 values (every shape divides into 4 groups) and some biases
 * (1-D: scheduled but never quantized). Even indices belong to quantizer A, odd ones to B.
 * @param {number} count
 * @returns {{ owner: 'a' | 'b', param: Parameter & { shape: number[], data: Float32Array } }[]}
 */
function makeModel(count) {
  const next = uniforms(12345);
  const rows = [4, 8, 16, 32],
    cols = [8, 16, 32];
  return Array.from({ length: count }, (_, i) => {
    const owner = i % 2 === 0 ? 'a' : 'b';
    const family = ['attn', 'mlp'][Math.floor(i / 2) % 2];
    const bias = i % 10 === 9;
    const shape = bias ? [cols[i % 3]] : [rows[i % 4], cols[Math.floor(i / 4) % 3]];
    const length = shape.reduce((a, b) => a * b, 1);
    const data = Float32Array.from({ length }, () => Math.fround((next() + next() + next() - 1.5) * 0.1));
    return { owner, param: { name: `${owner}.${family}.${i}.${bias ? 'bias' : 'weight'}`, shape, data } };
  });
}

/** @type {Record<'a' | 'b', QuantizerOptions>} */
const QUANTIZERS = {
  a: {
    groups: 4,
    type: 'symmetric',
    rounding: 'nearest',
    mixedFp16: true,
    changeRatio: 0.002,
    schedules: [
      { startBits: 8, targetBits: 2, period: 40, modules: ['attn'] },
      { startBits: 16, targetBits: 1, period: 25, modules: ['mlp'] },
    ],
  },
  b: {
    groups: 4,
    type: 'asymmetric',
    rounding: 'stochastic',
    seed: 7,
    scheduleOffset: 10,
    schedules: [
      { startBits: 12, targetBits: 3, period: 30, modules: ['attn'] },
      { startBits: 8, targetBits: 4, period: 60, modules: ['mlp'] },
    ],
  },
};

/**
 * The optimizer step: a small deterministic update, in float32.
 * @param {{ data: Float32Array }[]} params
 * @param {number} step
 * @param {Float32Array} noise
 */
function update(params, step, noise) {
  for (const [k, p] of params.entries()) {
    const offset = (step * 7919 + k * 104729) % (noise.length - p.data.length);
    for (let i = 0; i < p.data.length; i++) p.data[i] = Math.fround(p.data[i] + noise[offset + i]);
  }
}

/**
 * @param {Kind} kind
 * @returns {Promise<{ backend: SoakBackend } | { skipped: string }>}
 */
async function openBackend(kind) {
  if (kind !== 'webgpu') return { backend: await createBackend({ kind }) };
  const found = await nodeGpu();
  const adapter = found && (await found.gpu.requestAdapter());
  if (!found || !adapter) return { skipped: 'no WebGPU adapter here (install the "webgpu" package and a Vulkan driver, e.g. apt-get install -y chromium libvulkan1)' };
  return { backend: await createBackend({ kind: 'webgpu', gpu: found.gpu }) };
}

/**
 * WebAssembly memory size through the public API: a one-element tensor's buffer is the memory.
 * @param {SoakBackend} backend
 */
function wasmMemoryBytes(backend) {
  if (typeof backend.allocate !== 'function') return undefined;
  const tensor = backend.allocate(1);
  const bytes = tensor.array.buffer.byteLength;
  tensor.free();
  return bytes;
}

/**
 * @param {SoakBackend} backend
 * @param {number} step
 * @returns {Sample}
 */
function sample(backend, step) {
  collectGarbage();
  collectGarbage();
  const { heapUsed, external, arrayBuffers, rss } = process.memoryUsage();
  /** @type {Record<string, number>} */
  const metrics = { heapUsed, external, arrayBuffers, rss };
  const wasmMemory = wasmMemoryBytes(backend);
  if (wasmMemory !== undefined) metrics.wasmMemory = wasmMemory;
  if (typeof backend.stats === 'function') {
    const s = backend.stats();
    Object.assign(metrics, { gpuBuffers: s.buffers, gpuBindGroups: s.bindGroups, gpuPipelines: s.pipelines, gpuShaderModules: s.shaderModules, wasmFallbackCalls: s.wasmCalls });
  }
  return { step, metrics };
}

/** What --simulate-leak keeps alive. @type {number[][]} */
const leaked = [];

/**
 * @param {Kind} kind
 * @param {ReturnType<typeof parseArgs>} args
 * @param {number} deadline performance.now() at which to stop
 * @returns {Promise<Skipped | Soaked>}
 */
async function soak(kind, args, deadline) {
  const opened = await openBackend(kind);
  if ('skipped' in opened) return { kind, skipped: opened.skipped };
  const { backend } = opened;
  const model = makeModel(args.tensors);
  const groups = { a: model.filter((m) => m.owner === 'a').map((m) => m.param), b: model.filter((m) => m.owner === 'b').map((m) => m.param) };
  /** @type {Record<'a' | 'b', QuantizerInstance>} */
  const quantizers = { a: new Quantizer(QUANTIZERS.a, { backend }), b: new Quantizer(QUANTIZERS.b, { backend }) };
  const noiseSource = uniforms(99);
  const noise = Float32Array.from({ length: 1 << 16 }, () => Math.fround((noiseSource() - 0.5) * 2e-3));
  const values = model.reduce((sum, m) => sum + m.param.data.length, 0);
  const samples = [sample(backend, 0)];
  const started = performance.now();
  // A run cut short by the time bound still gets about 50 samples.
  const sampleSeconds = (deadline - started) / 1000 / 50;
  let lastSample = started;
  let step = 0;
  let switches = 0;
  for (const q of Object.values(quantizers)) q.onSwitch(() => switches++);
  for (; step < args.steps; step++) {
    if (performance.now() > deadline) break;
    update(groups.a, step, noise);
    update(groups.b, step + 1, noise);
    if (args['simulate-leak'] > 0) leaked.push(new Array(Math.ceil(args['simulate-leak'] / 8)).fill(step + 0.5));
    const overflow = step % 97 === 96;
    await quantizers.a.step([groups.a], { overflow });
    await quantizers.b.step([groups.b], { overflow });
    if ((step + 1) % 1000 === 0) {
      for (const key of /** @type {const} */ (['a', 'b'])) {
        quantizers[key] = Quantizer.restore(JSON.parse(JSON.stringify(quantizers[key].state())), { backend });
        quantizers[key].onSwitch(() => switches++);
      }
    }
    if ((step + 1) % args.every === 0 || performance.now() - lastSample > sampleSeconds * 1000) {
      samples.push(sample(backend, step + 1));
      lastSample = performance.now();
    }
  }
  const seconds = (performance.now() - started) / 1000;
  if (samples[samples.length - 1].step !== step) samples.push(sample(backend, step));
  const finite = model.every((m) => m.param.data.every(Number.isFinite));
  const bits = [...new Set(model.map((m) => quantizers[m.owner].bitsOf(m.param.name)).filter((b) => b !== undefined))].sort((x, y) => y - x);
  const fellBack = typeof backend.stats === 'function' ? backend.stats().wasmCalls : 0;
  backend.dispose();
  // Warm-up: the first tenth of the steps run (pools and staging areas reach their size).
  const warmUpStep = Math.max(1, Math.floor(step / 10));
  return { kind, steps: step, requestedSteps: args.steps, tensors: args.tensors, values, seconds, switches, bits, finite, fellBack, warmUpStep, ...judge(samples, warmUpStep) };
}

/**
 * Start, after warm-up, peak and end of every metric, and the verdicts.
 * @param {Sample[]} samples
 * @param {number} warmUpStep
 */
function judge(samples, warmUpStep) {
  const warm = samples.find((s) => s.step >= warmUpStep);
  const last = samples[samples.length - 1];
  /** @type {Record<string, MetricRow>} */
  const metrics = {};
  for (const name of Object.keys(samples[0].metrics)) {
    const series = samples.map((s) => s.metrics[name]);
    const start = series[0];
    const afterWarmUp = warm?.metrics[name];
    const end = last.metrics[name];
    const verdict = !warm || warm === last || afterWarmUp === undefined ? 'inconclusive' : end - afterWarmUp <= TOLERANCE[name] ? 'flat' : 'GROWING';
    metrics[name] = { start, afterWarmUp, peak: Math.max(...series), end, verdict };
  }
  const verdicts = Object.values(metrics).map((m) => m.verdict);
  const verdict = verdicts.includes('GROWING') ? 'GROWING' : verdicts.includes('inconclusive') ? 'inconclusive' : 'flat';
  return { samples: samples.length, metrics, verdict, series: samples };
}

/**
 * @param {string} name
 * @param {number | undefined} value
 */
function format(name, value) {
  if (value === undefined) return '-';
  if (!BYTES.has(name)) return String(value);
  return `${(value / MiB).toFixed(2)} MiB`;
}

/** @param {Skipped | Soaked} result */
function report(result) {
  if ('skipped' in result) return `${result.kind}: skipped: ${result.skipped}`;
  const lines = [
    `${result.kind}: ${result.steps}${result.steps < result.requestedSteps ? ` of ${result.requestedSteps} (time bound)` : ''} steps x ${result.tensors} tensors ` +
      `(${result.values} values) in ${result.seconds.toFixed(1)} s (${((1000 * result.seconds) / Math.max(1, result.steps)).toFixed(2)} ms/step); ` +
      `${result.switches} precision switches, bits now ${result.bits.join('/')}; ${result.samples} samples, warm-up ${result.warmUpStep} steps` +
      `${result.finite ? '' : '; NON-FINITE VALUES in the model'}${result.fellBack ? `; ${result.fellBack} calls fell back to WebAssembly` : ''}`,
    `  ${'metric'.padEnd(18)}${['start', 'after warm-up', 'peak', 'end', 'change'].map((h) => h.padStart(14)).join('')}  verdict (tolerance)`,
  ];
  for (const [name, m] of Object.entries(result.metrics)) {
    const change = m.afterWarmUp === undefined ? undefined : m.end - m.afterWarmUp;
    const signed = change === undefined ? '-' : `${change >= 0 ? '+' : ''}${BYTES.has(name) ? `${(change / 1024).toFixed(0)} KiB` : change}`;
    lines.push(
      `  ${name.padEnd(18)}${[m.start, m.afterWarmUp, m.peak, m.end].map((v) => format(name, v).padStart(14)).join('')}${signed.padStart(14)}  ` + `${m.verdict} (${format(name, TOLERANCE[name])})`,
    );
  }
  lines.push(`  verdict: ${result.verdict}`);
  return lines.join('\n');
}

const args = parseArgs(process.argv.slice(2));
const deadline0 = performance.now() + args.seconds * 1000;
const results = [];
for (const [i, kind] of args.kinds.entries()) {
  const share = (deadline0 - performance.now()) / (args.kinds.length - i);
  const result = await soak(kind, args, performance.now() + share);
  results.push(result);
  console.log(args.json ? JSON.stringify(result) : report(result));
}
const growing = results.filter((r) => ('skipped' in r ? args.explicitBackend : r.verdict === 'GROWING' || !r.finite));
if (!args.json) console.log(`soak: ${growing.length === 0 ? 'flat' : `GROWING or failed: ${growing.map((r) => r.kind).join(', ')}`}`);
// Dawn keeps the process alive while its GPU object exists.
process.exit(growing.length === 0 ? 0 : 1);
