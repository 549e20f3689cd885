// The WebGPU kernels against the WebAssembly SIMD build on random tensors: every bit width,
// both grid types, nearest and stochastic rounding with the same seed, with and without the
// blend, over group layouts that take every kernel path (one invocation per small group, one
// chunk per group, several chunks folded per group). At 3..16 bits the results must be equal
// bit for bit; at 1 and 2 bits the group means are float32 sums in another order, so within a
// relative 1e-6.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FakeQuantizeOptions } from '../src/kernel-plan.js';
import { WasmBackend } from '../src/backends/wasm/backend.js';
import { WebGpuBackend } from '../src/backends/webgpu/backend.js';
import { testDevice, testGpu, webgpuAvailable, weights } from './support/webgpu.js';

const available = await webgpuAvailable();

/** Index of the first element that differs beyond what the bit width allows, or -1. */
function firstMismatch(gpu: Float32Array, cpu: Float32Array, bits: number): number {
  for (let i = 0; i < cpu.length; i++) {
    const ok = bits >= 3 ? gpu[i] === cpu[i] : Math.abs(gpu[i]! - cpu[i]!) <= 1e-6 * Math.abs(cpu[i]!);
    if (!ok) return i;
  }
  return -1;
}

function variants(bits: number): FakeQuantizeOptions[] {
  if (bits <= 2) return [{ bits }, { bits, blendRatio: 0.25 }];
  const all: FakeQuantizeOptions[] = [];
  for (const type of ['symmetric', 'asymmetric', 'full'] as const) {
    for (const rounding of ['nearest', 'stochastic'] as const) {
      for (const blendRatio of [undefined, 0.25]) {
        all.push({
          bits, ...(type === 'full' ? { grid: type } : { type }), rounding, seed: 42, step: 3, tensorId: 7,
          ...(blendRatio === undefined ? {} : { blendRatio }),
        });
      }
    }
  }
  return all;
}

describe.skipIf(!available)('WebGPU against WebAssembly SIMD', () => {
  let gpu: WebGpuBackend;
  let wasm: WasmBackend;

  beforeAll(async () => {
    gpu = await WebGpuBackend.create({ gpu: testGpu() });
    wasm = await WasmBackend.create('simd');
  });

  afterAll(() => gpu.dispose());

  async function compare(values: Float32Array, options: FakeQuantizeOptions, on: WebGpuBackend = gpu): Promise<void> {
    const fromGpu = await on.fakeQuantize(values.slice(), options);
    const fromWasm = await wasm.fakeQuantize(values.slice(), options);
    const at = firstMismatch(fromGpu, fromWasm, options.bits);
    expect(at, `${JSON.stringify(options)}: element ${at} of ${values.length}: input ${values[at]}, ` +
      `WebGPU ${fromGpu[at]}, WebAssembly ${fromWasm[at]}`).toBe(-1);
  }

  // [elements, groups]: groups of 1, small groups (one invocation each), one chunk per group,
  // a group a little over one chunk, several chunks per group.
  it.each([
    [1, 1], [7, 7], [96, 32], [64, 1], [6400, 100], [65, 1], [130, 2], [4096, 4], [12291, 3], [10000, 2], [40000, 1],
  ])('%i elements in %i groups, at every bit width', async (length, groups) => {
    for (let bits = 1; bits <= 16; bits++) {
      for (const options of variants(bits)) {
        const values = weights(length, 1000 * bits + length, options.type === 'asymmetric' ? 0.05 : 0);
        await compare(values, { ...options, groups });
      }
    }
  });

  // At 1 and 2 bits the reference is computed in float64: over a million float32 terms, the
  // WebAssembly build's 16 running sums drift by more than 1e-6 themselves. The ternary
  // threshold comes from the GPU's own mean (the binary result, checked against float64 first),
  // since an element can sit exactly on a threshold one ulp away.
  it('one group of more than a million elements', async () => {
    const values = weights(1_200_000, 99);
    for (const bits of [3, 8, 16]) {
      for (const options of variants(bits).filter((o) => o.blendRatio === undefined)) await compare(values, { ...options, groups: 1 });
    }
    const meanOver = (keep: (a: number) => boolean) => {
      let sum = 0, count = 0;
      for (const x of values) if (keep(Math.abs(x))) { sum += Math.abs(x); count++; }
      return sum / count;
    };
    const mean = meanOver(() => true);
    const binary = await gpu.fakeQuantize(values.slice(), { bits: 1, groups: 1 });
    expect(firstMismatch(binary, values.map((x) => Math.sign(x) * mean), 1), '1 bit').toBe(-1);
    const threshold = Math.fround(Math.fround(0.7) * Math.abs(binary[0]!));
    const alpha = meanOver((a) => a > threshold);
    const ternary = await gpu.fakeQuantize(values.slice(), { bits: 2, groups: 1 });
    expect(firstMismatch(ternary, values.map((x) => (x > threshold ? alpha : x < -threshold ? -alpha : 0)), 2), '2 bits').toBe(-1);
  });

  // Inputs made to sit within a few ulps of k + 1/2 grid steps: where an inexact division
  // would round the other way.
  it('rounds values at grid ties exactly as the reference does', async () => {
    const bitsOf = new Float32Array(1);
    const asInt = new Int32Array(bitsOf.buffer);
    const nudge = (x: number, ulps: number) => { bitsOf[0] = x; asInt[0]! += ulps; return bitsOf[0]!; };
    for (const bits of [3, 8, 12, 16]) {
      for (const type of ['symmetric', 'asymmetric', 'full'] as const) {
        const groupSize = 4096;
        const values = new Float32Array(4 * groupSize);
        for (let g = 0; g < 4; g++) {
          const absMax = Math.fround(0.3 + 0.37 * g);
          // The full grid: m = +absMax exact, its scale negative (the grid runs down from m).
          const lo = type === 'symmetric' ? -absMax : Math.fround((type === 'full' ? -0.93 : -0.41) * absMax);
          const scale = type === 'symmetric' ? Math.fround(absMax * 2 ** (1 - bits))
            : type === 'full' ? Math.fround(-absMax * 2 ** (1 - bits)) : Math.fround(Math.fround(absMax - lo) * 2 ** -bits);
          const base = g * groupSize;
          values[base] = lo;
          values[base + 1] = absMax;
          for (let i = 2; i < groupSize; i++) {
            const t = (type === 'full' ? absMax : lo) + ((i * 7919) % 2 ** Math.min(bits, 12) + 0.5) * scale;
            const x = nudge(Math.fround(t), (i % 9) - 4);
            values[base + i] = Math.min(absMax, Math.max(lo, x));
          }
        }
        const grid = type === 'full' ? { grid: type } : { type };
        for (const rounding of ['nearest', 'stochastic'] as const) await compare(values, { bits, ...grid, rounding, groups: 4, seed: 5 });
      }
    }
  });

  it('quantizes a whole parameter group in one submission', async () => {
    const jobs = [
      { length: 4096, options: { bits: 8, groups: 4 } },
      { length: 100, options: { bits: 2, groups: 1 } },
      { length: 9000, options: { bits: 4, groups: 2, type: 'asymmetric', rounding: 'stochastic', seed: 1, tensorId: 9, blendRatio: 0.5 } },
      { length: 64, options: { bits: 1, groups: 64 } },
      { length: 12288, options: { bits: 16, groups: 1, rounding: 'stochastic', seed: 1, tensorId: 10 } },
    ] as const;
    const inputs = jobs.map((job, i) => weights(job.length, 500 + i));
    const onGpu = inputs.map((values, i) => ({ data: values.slice(), options: jobs[i]!.options as FakeQuantizeOptions }));
    const onWasm = inputs.map((values, i) => ({ data: values.slice(), options: jobs[i]!.options as FakeQuantizeOptions }));
    const before = gpu.stats().submissions;
    await gpu.fakeQuantizeMany(onGpu);
    expect(gpu.stats().submissions).toBe(before + 1);
    await wasm.fakeQuantizeMany(onWasm);
    onGpu.forEach((job, i) => expect(firstMismatch(job.data, onWasm[i]!.data, job.options.bits), `job ${i}`).toBe(-1));
  });

  it('matches with workgroup-memory reductions too (no subgroups feature)', async () => {
    const device = await testDevice(false);
    const plain = await WebGpuBackend.create({ gpu: testGpu(), device });
    expect(plain.usesSubgroups).toBe(false);
    for (const [length, groups] of [[96, 32], [4096, 4], [40000, 1]] as const) {
      for (const bits of [1, 2, 4, 8]) {
        for (const options of variants(bits)) await compare(weights(length, bits + length), { ...options, groups }, plain);
      }
    }
    plain.dispose();
    device.destroy();
  });
});
