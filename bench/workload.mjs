// What every benchmark measures: the same tensor, the same kernels, the same statistic.

export const N = 16_777_216;
export const GROUP = 4096;

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

export function median(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
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
