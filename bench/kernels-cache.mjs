// Each kernel alone on a block that stays in cache (32,768 float32 = 128 KiB, the host path's
// chunk; groups of 4096), in ns per element of CPU time, beside the floor's cost per element
// (Float32Array.prototype.set of 16,777,216 values, from and to memory) and a copy within the
// cache. What it shows: how much of a host call is arithmetic that no memory traffic hides.
// Writes the table into BENCHMARKS.md (its "kernels-cache" section).
//   node --expose-gc bench/kernels-cache.mjs [--builds simd,scalar]

import { WasmBackend } from '../dist/index.js';
import { GROUP, N, machine, median, weights, writeSection } from './workload.mjs';

const BLOCK = 32768;
const REPEAT = 1000;
const ROUNDS = Number(process.env.BENCH_RUNS ?? 7);
const buildsArg = process.argv.indexOf('--builds');
const builds = /** @type {('simd' | 'scalar')[]} */ ((buildsArg >= 0 ? process.argv[buildsArg + 1] : 'simd,scalar')?.split(',') ?? []);

/** @param {() => unknown} fn @param {number} repeat @param {number} elements @returns {number} ns per element, median of ROUNDS */
function nsPerElement(fn, repeat, elements) {
  /** @type {number[]} */
  const samples = [];
  for (let r = 0; r < ROUNDS + 1; r++) {
    globalThis.gc?.();
    const t0 = process.cpuUsage();
    for (let k = 0; k < repeat; k++) fn();
    const t = process.cpuUsage(t0);
    if (r > 0) samples.push(((t.user + t.system) * 1000) / repeat / elements);
  }
  return median(samples);
}

const original = weights(N);
const copy = new Float32Array(N);
// One copy per sample after a collection, as npm run bench times its floor.
const floor = nsPerElement(() => copy.set(original), 1, N);

/** @type {string[][]} */
const rows = [];
for (const build of builds) {
  const backend = await WasmBackend.create(build);
  const { kernels: k, heap } = backend.internals;
  const groups = BLOCK / GROUP;
  const src = heap.allocate(BLOCK * 4),
    dst = heap.allocate(BLOCK * 4),
    stats = heap.allocate(groups * 16);
  new Float32Array(k.memory.buffer, src, BLOCK).set(original.subarray(0, BLOCK));
  k.groupRanges(src, groups, GROUP, stats);
  /** @param {number} ranges @param {number} asymmetric @param {number} stochastic */
  const grid = (ranges, asymmetric, stochastic) => () => k.quantizeGrid(src, dst, groups, GROUP, ranges, 8, asymmetric, 0, stochastic, 5, 0, 0, 1, 0);
  /** @type {[string, () => unknown][]} */
  const kernels = [
    ['copy within the cache (set)', () => new Float32Array(k.memory.buffer, dst, BLOCK).set(new Float32Array(k.memory.buffer, src, BLOCK))],
    ['NaN/Inf check (firstNonFiniteGroup)', () => k.firstNonFiniteGroup(src, groups, GROUP)],
    ['min and max per group (groupRanges)', () => k.groupRanges(src, groups, GROUP, stats)],
    ['max |x| per group (groupAbsRanges)', () => k.groupAbsRanges(src, groups, GROUP, stats)],
    ['mean |x| per group (groupAbsMeans)', () => k.groupAbsMeans(src, groups, GROUP, stats)],
    ['symmetric 8-bit, fused (range + write)', grid(0, 0, 0)],
    ['symmetric 8-bit, write only (ranges given)', grid(stats, 0, 0)],
    ['asymmetric 8-bit, fused', grid(0, 1, 0)],
    ['asymmetric 8-bit, write only', grid(stats, 1, 0)],
    ['stochastic 8-bit, fused', grid(0, 0, 1)],
    ['stochastic 8-bit, write only', grid(stats, 0, 1)],
    ['ternary, fused', () => k.quantizeTernary(src, dst, groups, GROUP, 0, 0, 1, 0)],
    ['binary, fused', () => k.quantizeBinary(src, dst, groups, GROUP, 0, 0, 1, 0)],
  ];
  for (const [name, fn] of kernels) {
    const ns = nsPerElement(fn, REPEAT, BLOCK);
    rows.push([name, backend.kind, ns.toFixed(3), (ns / floor).toFixed(2)]);
  }
  backend.dispose();
}

const lines = [
  '## Each kernel alone, in cache',
  '',
  `Measured ${new Date().toISOString().slice(0, 10)} on ${machine()} by \`npm run bench:kernels-cache\`: each kernel alone on ${BLOCK.toLocaleString('en-US')} float32 (128 KiB, the host path's chunk) in groups of ${GROUP}, repeated in cache, ns per element of CPU time, medians of ${ROUNDS} rounds. The floor, \`Float32Array.prototype.set\` of ${N.toLocaleString('en-US')} values from and to memory, costs ${floor.toFixed(3)} ns per element; "x floor" is each kernel's cost per element over that.`,
  '',
  '| kernel (in cache) | build | ns per element | x floor |',
  '|---|---|---:|---:|',
  ...rows.map((r) => `| ${r.join(' | ')} |`),
];
console.log(lines.join('\n'));
writeSection('kernels-cache', lines.join('\n'));
