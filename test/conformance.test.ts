// The DeepSpeed vectors on both WebAssembly builds: every case passes (bit for bit, except the
// 1e-6 relative tolerance the file's README allows at 1 and 2 bits).

import { describe, expect, it } from 'vitest';
import { WasmBackend } from '../src/backends/wasm/backend.js';
import { runConformance } from '../src/conformance.js';
import { conformanceFile } from './support/fixtures.js';

describe.each(['simd', 'scalar'] as const)('conformance on the %s build', (build) => {
  it('passes every case of deepspeed-moq.json', async () => {
    const backend = await WasmBackend.create(build);
    const file = conformanceFile();
    const report = await runConformance(file, backend);
    const failures = report.results.filter((r) => !r.passed).map((r) => `${r.id}: ${r.detail}`);
    expect(failures).toEqual([]);
    expect(report.passed).toBe(file.cases.length);
    expect(report.results.filter((r) => r.kind === 'schedule').length).toBeGreaterThan(0);
  });
});

describe('conformance runner', () => {
  it('reports the first differing element of a failing case', async () => {
    const backend = await WasmBackend.create('simd');
    const original = conformanceFile().cases.find((c) => c.kind === 'fake_quant')!;
    const expected = [...(original.expected as number[])];
    expected[5] = expected[5]! + 1;
    const report = await runConformance({ format: 'moq-conformance/1', cases: [{ ...original, expected }] }, backend);
    expect(report.failed).toBe(1);
    expect(report.results[0]!.detail).toMatch(/^output\[5\]: got .*, expected /);
  });

  it('on WebGPU, reports values one step off at a rounding tie separately and fails any other', async () => {
    const wasm = await WasmBackend.create('simd');
    const step = 2 ** -7; // 8 bits, abs-max 1
    const input = [1, 2.5 * step, 0.3];
    const expected = Array.from(await wasm.fakeQuantize(Float32Array.from(input), { bits: 8 }));
    const file = { format: 'moq-conformance/1', cases: [{ id: 'tie', kind: 'fake_quant', bits: 8, groups: 1, type: 'symmetric', rounding: 'nearest', shape: [3], input, expected }] };
    // A backend that rounds element `off` the other way, as an inexact division may.
    const gpuLike = (off: number) => ({
      ...wasm,
      kind: 'webgpu' as const,
      fakeQuantize: async (data: Float32Array) => {
        data.set(expected);
        data[off] = data[off]! + step;
        return data;
      },
    });
    const tie = await runConformance(file, gpuLike(1) as never);
    expect(tie).toMatchObject({ passed: 1, failed: 0, nearTieCases: 1 });
    expect(tie.results[0]!.nearTies).toBe(1);
    const notTie = await runConformance(file, gpuLike(2) as never);
    expect(notTie.failed).toBe(1);
    expect(notTie.results[0]!.detail).toMatch(/output\[2\].*not a near-tie/);
    // The WebAssembly backends get no such allowance.
    expect((await runConformance(file, { ...gpuLike(1), kind: 'wasm-simd' } as never)).failed).toBe(1);
  });

  it('rejects a file that is not moq-conformance/1', async () => {
    const backend = await WasmBackend.create('simd');
    await expect(runConformance({ format: 'other' }, backend)).rejects.toThrow(/not a moq-conformance\/1 file/);
  });
});
