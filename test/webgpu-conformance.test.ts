// The DeepSpeed vectors on the WebGPU backend (Dawn on SwiftShader), with the subgroup
// reductions and with the workgroup-memory ones. The division is correctly rounded, so no case
// may rely on the near-tie allowance the conformance runner grants WebGPU.

import { describe, expect, it } from 'vitest';
import { runConformance } from '../src/conformance.js';
import { WebGpuBackend } from '../src/backends/webgpu/backend.js';
import { conformanceFile } from './support/fixtures.js';
import { testDevice, testGpu, webgpuAvailable } from './support/webgpu.js';

const available = await webgpuAvailable();

describe.skipIf(!available)('conformance on WebGPU', () => {
  it.each([
    ['subgroup', true],
    ['workgroup-memory', false],
  ])('passes every case of deepspeed-moq.json with %s reductions', async (_, subgroups) => {
    const device = await testDevice(subgroups);
    const backend = await WebGpuBackend.create({ gpu: testGpu(), device });
    expect(backend.usesSubgroups).toBe(subgroups);
    const file = conformanceFile();
    const report = await runConformance(file, backend);
    const failures = report.results.filter((r) => !r.passed).map((r) => `${r.id}: ${r.detail}`);
    expect(failures).toEqual([]);
    expect(report.passed).toBe(file.cases.length);
    expect(report.nearTieCases).toBe(0);
    expect(backend.activeKind).toBe('webgpu');
    expect(backend.stats().wasmCalls).toBe(0);
    backend.dispose();
    device.destroy();
  });
});
