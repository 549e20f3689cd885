// `npm run bench`: 16,777,216 float32 values in groups of 4096, every kernel on both WebAssembly
// builds, in WebAssembly memory and on a host Float32Array, in place and out of place, next to
// the JavaScript peers doing the same symmetric 8-bit work (bench/peers.mjs) and a plain
// TypeScript loop, all as ratios to the bandwidth floor (Float32Array.prototype.set of the same
// size) timed in the same rounds, in CPU time (bench/workload.mjs's timeRounds).
// Prints two tables and writes them into BENCHMARKS.md (its "wasm" and "peers" sections).
// BENCH_RUNS rounds (default 9). Not a test: timings vary with the machine and its load.

import { WasmBackend } from '../dist/index.js';
import { peerCases } from './peers.mjs';
import { GROUP, N, VARIANTS, machine, timeRounds, weights, writeSection } from './workload.mjs';

const RUNS = Number(process.env.BENCH_RUNS ?? 9);

/**
 * The straightforward TypeScript loop a user would write: symmetric 8-bit nearest, in place.
 * @param {Float32Array} data
 * @param {number} groupSize
 * @param {number} bits
 */
function plainLoop(data, groupSize, bits) {
  const levels = 2 ** bits;
  for (let g = 0; g < data.length; g += groupSize) {
    let lo = Infinity,
      hi = -Infinity;
    for (let i = g; i < g + groupSize; i++) {
      const x = /** @type {number} */ (data[i]);
      if (x < lo) lo = x;
      if (x > hi) hi = x;
    }
    const scale = Math.fround(Math.max(Math.abs(lo), Math.abs(hi)) * Math.fround(2 / levels));
    if (!(scale > 0)) continue;
    for (let i = g; i < g + groupSize; i++) {
      const v = Math.fround(/** @type {number} */ (data[i]) / scale);
      let r = Math.round(v);
      if (r - v === 0.5 && r % 2 !== 0) r -= 1; // half to even
      data[i] = Math.fround(Math.min(Math.max(r, -levels / 2), levels / 2 - 1) * scale);
    }
  }
}

const started = performance.now();
const original = weights();
const copy = new Float32Array(N);
const into = new Float32Array(N);
const FLOOR = 'Float32Array.prototype.set (the floor)';
const PLAIN = 'plain TypeScript loop, symmetric 8-bit, in place';
const FRESH = 'a fresh Float32Array, then set';
/** @type {import('./workload.mjs').Case[]} */
const cases = [
  { name: FLOOR, run: () => copy.set(original) },
  { name: PLAIN, prepare: () => copy.set(original), run: () => plainLoop(copy, GROUP, 8) },
];

const BUILDS = /** @type {const} */ (['simd', 'scalar']);
const backends = [],
  tensors = [];
for (const build of BUILDS) {
  const backend = await WasmBackend.create(build);
  const tensor = backend.upload(original);
  backends.push(backend);
  tensors.push(tensor);
  for (const [name, options] of VARIANTS) {
    const opts = { ...options, groupSize: GROUP };
    // In WebAssembly memory: validated for the whole tensor before any write.
    cases.push({ name: `${build} tensor ${name}`, prepare: () => tensor.array.set(original), run: () => backend.fakeQuantizeSync(tensor.array, opts) });
    cases.push({ name: `${build} host ${name}`, prepare: () => copy.set(original), run: () => backend.fakeQuantizeSync(copy, opts) });
    // Out of place, host array to host array: the source is only read, so it needs no reset.
    if (build === 'simd') cases.push({ name: `${build} into ${name}`, run: () => backend.fakeQuantizeSync(original, opts, { into }) });
  }
  if (build === 'simd') {
    const destination = backend.upload(original);
    tensors.push(destination);
    cases.push({
      name: 'simd tensor into tensor',
      prepare: () => tensor.array.set(original),
      run: () => backend.fakeQuantizeSync(tensor.array, { bits: 8, groupSize: GROUP }, { into: destination.array }),
    });
  }
}

// What any API that returns a new array pays before computing anything: the peers' outputs are
// such arrays. Timed after edge-moq's rows: the 64 MiB it maps and frees each round made the row
// timed right after it read up to twice its quiet ratio.
cases.push({ name: FRESH, run: () => new Float32Array(N).set(original) });

const reference = /** @type {WasmBackend} */ (backends[0]).fakeQuantizeSync(original.slice(), { bits: 8, groupSize: GROUP });
const peers = await peerCases(original, GROUP, reference);
cases.push(...peers.cases);

const results = await timeRounds(cases, RUNS);
await peers.dispose();
for (const tensor of tensors) tensor.free();
for (const backend of backends) backend.dispose();

const byName = new Map(results.map((r) => [r.name, r]));
/** @param {string} name */
const result = (name) => /** @type {{ ms: number, ratio: number }} */ (byName.get(name));
const floorMs = result(FLOOR).ms;
const ms = (/** @type {number} */ v) => v.toFixed(2);
const ratio = (/** @type {number} */ v) => v.toFixed(2);

const targets = /** @type {Record<string, number>} */ ({
  'symmetric 8-bit nearest': 1.4,
  'asymmetric 8-bit nearest': 1.5,
  'symmetric 8-bit stochastic': 2.0,
});
const hostTargets = /** @type {Record<string, number>} */ ({
  'symmetric 8-bit nearest': 1.8,
  'asymmetric 8-bit nearest': 2.0,
  'symmetric 8-bit stochastic': 2.5,
  'ternary (2-bit)': 2.2,
  'binary (1-bit)': 2.2,
});
const intoTargets = /** @type {Record<string, number>} */ ({ 'symmetric 8-bit nearest': 1.3 });
const SCALAR_TARGET = 6;
/** @param {number | undefined} t */
const target = (t) => (t === undefined ? '' : `≤ ${t}`);
const kernelLines = [
  '| kernel | build | WasmTensor in place, ms | x floor | target | host Float32Array in place, ms | x floor | target | out of place, host to host, ms | x floor | target |',
  '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ...BUILDS.flatMap((build) =>
    VARIANTS.map(([name]) => {
      const tensor = result(`${build} tensor ${name}`),
        host = result(`${build} host ${name}`);
      const simd = build === 'simd';
      const outOfPlace = simd ? result(`${build} into ${name}`) : null;
      return (
        `| ${name} | ${simd ? 'wasm-simd' : 'wasm (scalar)'} | ${ms(tensor.ms)} | ${ratio(tensor.ratio)} | ${target(simd ? targets[name] : SCALAR_TARGET)} ` +
        `| ${ms(host.ms)} | ${ratio(host.ratio)} | ${target(simd ? hostTargets[name] : SCALAR_TARGET)} ` +
        `| ${outOfPlace ? `${ms(outOfPlace.ms)} | ${ratio(outOfPlace.ratio)} | ${target(intoTargets[name])}` : '— | | '} |`
      );
    }),
  ),
];

/** @type {[string, string][]} */
const peerRows = [
  ['edge-moq wasm-simd, `WasmTensor` in place (validated, two passes)', 'simd tensor symmetric 8-bit nearest'],
  ['edge-moq wasm-simd, host `Float32Array` in place (what most users call)', 'simd host symmetric 8-bit nearest'],
  ['edge-moq wasm-simd, out of place, host to host (`{ into }`)', 'simd into symmetric 8-bit nearest'],
  ['edge-moq wasm-simd, out of place, `WasmTensor` to `WasmTensor`', 'simd tensor into tensor'],
  ['edge-moq wasm-simd, host ternary', 'simd host ternary (2-bit)'],
  ['edge-moq wasm-simd, host binary', 'simd host binary (1-bit)'],
  ['edge-moq wasm-simd, stochastic rounding, host array', 'simd host symmetric 8-bit stochastic'],
  ['edge-moq scalar build, `WasmTensor`, symmetric 8-bit', 'scalar tensor symmetric 8-bit nearest'],
  ['edge-moq scalar build, `WasmTensor` ternary', 'scalar tensor ternary (2-bit)'],
  ...peers.cases.map(({ name }) => /** @type {[string, string]} */ ([name, name])),
  ['plain TypeScript loop', PLAIN],
];
const peerLines = [
  '| implementation | ms | × floor |',
  '|---|---:|---:|',
  `| \`Float32Array.prototype.set\` (the floor) | ${ms(floorMs)} | 1.00 |`,
  `| \`new Float32Array(n)\` then \`set\`: the price of returning a fresh array | ${ms(result(FRESH).ms)} | ${ratio(result(FRESH).ratio)} |`,
  ...peerRows.map(([label, name]) => `| ${label} | ${ms(result(name).ms)} | ${ratio(result(name).ratio)} |`),
];

const when = new Date().toISOString().slice(0, 10);
const kernelHeader =
  `Measured ${when} on ${machine()}; ${N.toLocaleString('en-US')} float32 values, groups of ${GROUP}, ` +
  `medians of ${RUNS} rounds of the process's CPU time (user + system: waiting for a core on a shared machine is not counted); "x floor" is the median of each round's ratio to ` +
  `\`Float32Array.prototype.set\` of the same size (${ms(floorMs)} ms), timed in the same round. "WasmTensor in place": the tensor lives in WebAssembly memory and is validated ` +
  'for the whole tensor before any write, so bad input leaves it untouched. "Host Float32Array in place": ' +
  '`fakeQuantizeSync` on a JavaScript array, with the same promise. "Out of place": `fakeQuantizeSync(src, options, { into })` ' +
  "from one JavaScript array into another, `src` only read (timed on the SIMD build). Targets are issue 18's.";
const peerHeader =
  `The same run (${when}, ${machine()}): ${N.toLocaleString('en-US')} float32 values, symmetric 8-bit ` +
  `in groups of ${GROUP}, every row timed in the same rounds as the floor; medians of ${RUNS} rounds of ratios to it, in CPU time. ` +
  'The peers run single-threaded: onnxruntime-web on its wasm execution provider with `env.wasm.numThreads = 1`, ' +
  'a QDQ graph (Abs, ReduceMax per group, Mul by 2/256, per-axis QuantizeLinear and DequantizeLinear on [groups, 4096], opset 13); ' +
  'tfjs on tfjs-backend-wasm with its threads off, the same steps as ops (abs, max, mul, div, round, clipByValue, mul). ' +
  "Both are given DeepSpeed's grid (scale = absMax·2/256, codes in [-128, 127]) rather than int8's usual absMax/127, " +
  'which is the same arithmetic their int8 operators do, so their output can be compared with ours. ' +
  '"In-graph only": the run with the input tensor already made (onnxruntime-web still copies the input into its WebAssembly ' +
  'memory and the output out of it inside `run`; tfjs ops work on a tensor already in its memory). ' +
  '"End to end": make the input tensor from the Float32Array, run, read the output data back. ' +
  'onnxruntime-web hands its output back in a newly allocated array on every run (a pre-allocated CPU output tensor is ' +
  "ignored: it comes back unwritten), and so does tfjs's `dataSync`; the second row, a fresh array of the same size filled " +
  "by `set`, is a floor for those rows (tfjs's in-graph output stays in its WebAssembly memory, which it reuses).";
const checks = peers.notes.map((n) => `- ${n}`).join('\n');

const kernelSection = `## WebAssembly (CPU)\n\n${kernelHeader}\n\n${kernelLines.join('\n')}`;
const peerSection = `## Against the JavaScript peers\n\n${peerHeader}\n\n${peerLines.join('\n')}\n\n` + `Each peer's output was checked before it was timed:\n${checks}`;
console.log(`${kernelSection}\n\n${peerSection}`);
writeSection('wasm', kernelSection);
writeSection('peers', peerSection);
console.error(`bench: ${((performance.now() - started) / 1000).toFixed(0)} s`);
