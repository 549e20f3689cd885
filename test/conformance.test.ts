// The DeepSpeed vectors on both WebAssembly builds: every case passes (bit for bit, except the
// 1e-6 relative tolerance the file's README allows at 1 and 2 bits).

import { describe, expect, it } from 'vitest';
import { WasmBackend } from '../src/backends/wasm.js';
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

  it('rejects a file that is not moq-conformance/1', async () => {
    const backend = await WasmBackend.create('simd');
    await expect(runConformance({ format: 'other' }, backend)).rejects.toThrow(/not a moq-conformance\/1 file/);
  });
});
