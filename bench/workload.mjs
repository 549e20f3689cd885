// What every benchmark measures: the same tensor, the same kernels, the same statistic.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';

export const N = 16_777_216;
export const GROUP = 4096;

/** @type {[string, import('../dist/index.js').FakeQuantizeOptions][]} */
export const VARIANTS = [
  ['symmetric 8-bit nearest', { bits: 8 }],
  ['asymmetric 8-bit nearest', { bits: 8, type: 'asymmetric' }],
  ['symmetric 8-bit stochastic', { bits: 8, rounding: 'stochastic', seed: 7 }],
  ['symmetric 4-bit nearest', { bits: 4 }],
  ['ternary (2-bit)', { bits: 2 }],
  ['binary (1-bit)', { bits: 1 }],
];

/** Deterministic weights, uniform in [-0.1, 0.1): no zero groups. */
export function weights(n = N) {
  const data = new Float32Array(n);
  let s = 12345;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = (s / 4294967296 - 0.5) * 0.2;
  }
  return data;
}

/** @param {readonly number[]} samples */
export function median(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  return /** @type {number} */ (sorted[Math.floor(sorted.length / 2)]);
}

/**
 * @typedef {object} Case
 * @property {string} name
 * @property {() => unknown} [prepare] untimed, before each sample
 * @property {() => unknown} run timed (awaited when it returns a promise)
 */

/**
 * Times every case once per round, rounds interleaved, so that load on a shared machine shifts
 * all cases alike; the first case is the floor, and each case's ratio is to the floor of the
 * same round. The time is the process's CPU time (user + system, which counts page faults),
 * not wall time: on a machine with more runnable jobs than cores, waiting for a core would
 * otherwise be timed. Everything timed runs on one thread. The first `warmup` rounds are not
 * counted. Returns, per case, the median time in ms and the median ratio.
 * @param {readonly Case[]} cases
 * @param {number} rounds
 * @param {number} [warmup]
 * @returns {Promise<{ name: string, ms: number, ratio: number }[]>}
 */
export async function timeRounds(cases, rounds, warmup = 2) {
  /** @type {number[][]} */
  const samples = cases.map(() => []);
  for (let round = 0; round < rounds + warmup; round++) {
    for (let c = 0; c < cases.length; c++) {
      const { prepare, run } = /** @type {Case} */ (cases[c]);
      await prepare?.();
      globalThis.gc?.();
      const t0 = process.cpuUsage();
      await run();
      const { user, system } = process.cpuUsage(t0);
      const ms = (user + system) / 1000;
      if (round >= warmup) /** @type {number[]} */ (samples[c]).push(ms);
    }
  }
  const floor = /** @type {number[]} */ (samples[0]);
  return cases.map(({ name }, c) => {
    const mine = /** @type {number[]} */ (samples[c]);
    return { name, ms: median(mine), ratio: median(mine.map((ms, r) => ms / /** @type {number} */ (floor[r]))) };
  });
}

/** WebGPU in Node for the GPU benchmarks (the `webgpu` package), or exit saying what is missing. */
export async function requireNodeGpu() {
  const { nodeGpu } = await import('../dist/backends/webgpu/node-gpu.js');
  const found = await nodeGpu();
  if (!found) {
    console.error('no WebGPU here: install the "webgpu" package (and a Vulkan driver, e.g. apt-get install -y chromium libvulkan1).');
    process.exit(1);
  }
  return found.gpu;
}

/**
 * Replaces the part of BENCHMARKS.md between `<!-- key:start -->` and `<!-- key:end -->` with
 * `body` (appending it, markers and all, where there is none yet); the rest of the file is kept.
 * @param {string} key
 * @param {string} body
 */
export function writeSection(key, body) {
  const file = new URL('../BENCHMARKS.md', import.meta.url);
  const start = `<!-- ${key}:start -->`,
    end = `<!-- ${key}:end -->`;
  const section = `${start}\n${body}\n${end}`;
  const doc = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n\nWritten by `npm run bench`. Timings depend on the machine; ratios to the floor travel better.\n\n';
  const at = doc.indexOf(start),
    to = doc.indexOf(end);
  writeFileSync(file, at >= 0 && to > at ? doc.slice(0, at) + section + doc.slice(to + end.length) : `${doc.trimEnd()}\n\n${section}\n`);
}

/** The machine, for the line above each table. */
export function machine() {
  const cpus = os.cpus();
  return `${cpus.length} x ${cpus[0]?.model.trim() ?? 'unknown CPU'}, Node ${process.versions.node}`;
}
