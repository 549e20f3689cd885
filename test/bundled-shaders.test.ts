// The bundles carry the WGSL kernels compacted, with the names the shaders declare shortened
// (scripts/bundle.mjs): the bundle's WebGPU backend and packer, on Dawn, against the same
// kernels from src/ with their names as written, bit for bit; and the tfjs step kernels, which
// run on tfjs's device, compile with every entry point the host asks for.

import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as IndexEntry from '../src/index.js';
import type * as PackedEntry from '../src/packed/index.js';
import { WebGpuBackend } from '../src/backends/webgpu/backend.js';
import { createPacker, type Packer } from '../src/packed/index.js';
import type { FakeQuantizeOptions } from '../src/kernel-plan.js';
import { compactWgsl, shortenWgslNames } from '../scripts/bundle.mjs';
import { randomTensor } from './support/fixtures.js';
import { KERNEL_VARIANTS } from './support/variants.js';
import { testDevice, testGpu, webgpuAvailable } from './support/webgpu.js';

const bundle = (await import(new URL('../dist/bundles/index.js', import.meta.url).href)) as typeof IndexEntry;
const packedBundle = (await import(new URL('../dist/bundles/packed.js', import.meta.url).href)) as typeof PackedEntry;
const available = await webgpuAvailable();

// Each kernel path twice: groups of one invocation each, and groups over two workgroup chunks.
const variants = KERNEL_VARIANTS.flatMap(([name, options]): [string, FakeQuantizeOptions][] => [
  [`${name}, small groups`, options],
  [`${name}, groups over two chunks`, { ...options, groupSize: 8192 + options.groupSize! }],
]);

describe.skipIf(!available)('the bundled WGSL', () => {
  describe.each([true, false])('with subgroups: %s', (subgroups) => {
    // One device, the bundle's backend and packer and those built from src/ on it: the same
    // kernels, named differently, must give the same bits.
    const under = {} as { device: GPUDevice; bundled: IndexEntry.WebGpuBackend; plain: WebGpuBackend; bundledPacker: PackedEntry.Packer; plainPacker: Packer };
    beforeAll(async () => {
      under.device = await testDevice(subgroups);
      under.bundled = await bundle.WebGpuBackend.create({ gpu: testGpu(), device: under.device });
      under.plain = await WebGpuBackend.create({ gpu: testGpu(), device: under.device });
      under.bundledPacker = await packedBundle.createPacker(under.bundled);
      under.plainPacker = await createPacker(under.plain);
    });
    afterAll(() => {
      under.bundled?.dispose();
      under.plain?.dispose();
      under.device?.destroy();
    });

    it.each(variants)('%s: the bundle quantizes as the kernels from src/', async (_, options) => {
      expect(under.bundled.usesSubgroups).toBe(under.plain.usesSubgroups);
      if (!subgroups) expect(under.bundled.usesSubgroups).toBe(false);
      const x = randomTensor(options.groupSize! * 3, options.bits * 11 + 1);
      const got = await under.bundled.fakeQuantize(x.slice(), options);
      expect(got).toEqual(await under.plain.fakeQuantize(x.slice(), options));
      expect(under.bundled.stats().gpuCalls).toBeGreaterThan(0);
    });

    it.each([
      { bits: 4, groupSize: 32 },
      { bits: 8, groupSize: 64, type: 'asymmetric' as const },
      { bits: 3, groupSize: 16, grid: 'full' as const },
    ])('packs and unpacks $bits bits as the packer from src/ does', async (options) => {
      expect(under.bundledPacker).toBeInstanceOf(packedBundle.WebGpuPacker);
      const x = randomTensor(options.groupSize * 5, options.bits);
      const got = await under.bundledPacker.pack(x, options);
      const want = await under.plainPacker.pack(x, options);
      expect(got.codes).toEqual(want.codes);
      expect(got.scales).toEqual(want.scales);
      expect(got.zeros).toEqual(want.zeros);
      expect(await under.bundledPacker.unpack(got)).toEqual(await under.plainPacker.unpack(want));
    });
  });

  it('keeps the tfjs step kernels compiling, with the entry points and the workgroup size the host reads', async () => {
    const generated = readFileSync(new URL('../src/backends/webgpu/shaders.generated.ts', import.meta.url), 'utf8');
    const shaders = [...generated.matchAll(/^export const (\w+) = (".*");$/gm)].map((m) => [m[1]!, compactWgsl(JSON.parse(m[2]!))] as const);
    const short = shortenWgslNames(shaders.map(([, text]) => text));
    const moqStep = short[shaders.findIndex(([name]) => name === 'moqStepWgsl')]!;
    expect(moqStep.length).toBeLessThan(shaders.find(([name]) => name === 'moqStepWgsl')![1].length);
    expect(moqStep).toMatch(/const WORKGROUP_SIZE\s*:\s*u32\s*=\s*\d+u/);
    const device = await testDevice(false);
    try {
      device.pushErrorScope('validation');
      const module = device.createShaderModule({ code: moqStep });
      const errors = (await module.getCompilationInfo()).messages.filter((m) => m.type === 'error');
      expect(errors.map((m) => m.message)).toEqual([]);
      for (const entryPoint of ['checkFinite', 'straightThrough', 'restoreIfNonFinite']) {
        await device.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint } });
      }
      expect(await device.popErrorScope()).toBeNull();
    } finally {
      device.destroy();
    }
  });
});
