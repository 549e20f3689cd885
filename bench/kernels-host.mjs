// The wasm paths against the bandwidth floor (Float32Array.prototype.set of the same size) in
// CPU time, every case timed once per round, rounds interleaved, so load on this shared machine shifts all
// cases alike; medians of ratios to the floor of the same round. `--baseline DIR` also times a
// copy of an earlier build (DIR holding dist/ and build/) in the same process.
//   node --expose-gc bench/kernels-host.mjs [--baseline /tmp/kbase] [--builds simd,scalar] [--only host,tensor,into]

import { existsSync } from 'node:fs';
import { GROUP, N, VARIANTS, median, weights } from './workload.mjs';

const args = process.argv.slice(2);
/**
 * @param {string} name
 * @param {string} [fallback]
 * @returns {string | undefined}
 */
const arg = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const ROUNDS = Number(process.env.BENCH_RUNS ?? 9);
const builds = /** @type {('simd' | 'scalar')[]} */ (arg('builds', 'simd,scalar')?.split(',') ?? []);
const only = new Set(arg('only', 'host,tensor,into')?.split(','));
const variantFilter = arg('variants');

const sources = [['new', new URL('../dist/backends/wasm/backend.js', import.meta.url).href]];
const baseline = arg('baseline');
// Builds from before issue 17's layout kept the backend in dist/backends/wasm.js.
if (baseline) sources.unshift(['old', `file://${baseline}/dist/backends/${existsSync(`${baseline}/dist/backends/wasm/backend.js`) ? 'wasm/backend.js' : 'wasm.js'}`]);

const original = weights();
const copy = new Float32Array(N);
const into = new Float32Array(N);
/** @type {{ tag: string, prepare: () => void, run: () => void }[]} */
const cases = [];
for (const [label, url] of sources) {
  const { WasmBackend } = await import(url);
  for (const build of builds) {
    const backend = await WasmBackend.create(build);
    const tensor = backend.upload(original);
    const out = backend.allocate(N);
    for (const [name, options] of VARIANTS) {
      if (variantFilter && !variantFilter.split(',').some((v) => name.includes(v))) continue;
      const opts = { ...options, groupSize: GROUP };
      const tag = `${label} ${build.padEnd(6)} ${name}`;
      if (only.has('host')) cases.push({ tag: `${tag}, host in place`, prepare: () => copy.set(original), run: () => backend.fakeQuantizeSync(copy, opts) });
      if (only.has('tensor')) cases.push({ tag: `${tag}, WasmTensor in place`, prepare: () => tensor.array.set(original), run: () => backend.fakeQuantizeSync(tensor.array, opts) });
      if (only.has('into') && label === 'new') {
        cases.push({ tag: `${tag}, host into host`, prepare: () => {}, run: () => backend.fakeQuantizeSync(original, opts, { into }) });
        cases.push({ tag: `${tag}, WasmTensor into WasmTensor`, prepare: () => {}, run: () => backend.fakeQuantizeSync(tensor.array, opts, { into: out.array }) });
      }
    }
  }
}

// CPU time of this process, not wall time: with more runnable threads than cores here, wall
// time mostly measures the scheduler.
/** @param {() => void} fn */
const time = (fn) => {
  globalThis.gc?.();
  const t0 = process.cpuUsage();
  fn();
  const t = process.cpuUsage(t0);
  return (t.user + t.system) / 1000;
};
const ratios = cases.map(() => /** @type {number[]} */ ([]));
/** @type {number[]} */
const floors = [];
for (let r = 0; r < ROUNDS + 1; r++) {
  const floor = time(() => copy.set(original));
  cases.forEach((c, i) => {
    c.prepare();
    const ms = time(c.run);
    if (r > 0) ratios[i].push(ms / floor);
  });
  if (r > 0) floors.push(floor);
}
console.log(`load ${(await import('node:fs')).readFileSync('/proc/loadavg', 'utf8').trim()}; floor median ${median(floors).toFixed(2)} ms for ${N} float32, groups of ${GROUP}; ${ROUNDS} rounds`);
cases.forEach((c, i) => console.log(`${median(ratios[i]).toFixed(2).padStart(6)}x  ${c.tag}`));
