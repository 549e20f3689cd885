// A lost device loses nothing: the device is destroyed in the middle of a Quantizer step over
// many parameters (between encoding and submitting its one submission, and while a step is in
// flight); the step completes on WebAssembly with the same results a WebAssembly-only run
// gives, the downgrade is announced once, and later steps stay on WebAssembly.

import { afterEach, beforeEach, describe, expect, it, vi, type MockInstance } from 'vitest';
import { createBackend } from '../src/backends/select.js';
import type { AutoBackend } from '../src/backends/auto.js';
import { WasmBackend } from '../src/backends/wasm/backend.js';
import { WebGpuBackend, type DowngradeEvent } from '../src/backends/webgpu/backend.js';
import type { Backend } from '../src/backends/backend.js';
import { Quantizer, type Parameter } from '../src/quantizer.js';
import { MOQ_OPTIONS } from './support/fixtures.js';
import { bufferWith, testDevice, testGpu, webgpuAvailable, weights } from './support/webgpu.js';

const available = await webgpuAvailable();

const SHAPES = [[64, 64], [128, 32], [256], [32, 96], [16, 16], [8, 512], [96, 48], [40, 40], [200, 20], [12, 300], [64, 8], [24, 24]];

function model(): Parameter[] {
  return SHAPES.map((shape, i) => ({
    name: `layer${i}.${shape.length > 1 ? 'weight' : 'bias'}`,
    shape,
    data: weights(
      shape.reduce((a, b) => a * b, 1),
      300 + i,
      i % 3 === 0 ? 0.02 : 0,
    ),
  }));
}

const OPTIONS = { ...MOQ_OPTIONS, groups: 8 };

/** Optimizer updates, the same for both runs. */
function update(params: Parameter[], step: number): void {
  params.forEach((p, i) => {
    const delta = weights(p.data.length, 7000 + 100 * step + i);
    for (let k = 0; k < p.data.length; k++) p.data[k] = Math.fround(p.data[k]! + Math.fround(delta[k]! * 0.05));
  });
}

/** Runs `steps` steps on `backend` and on WebAssembly SIMD alongside, comparing after each. */
async function trainAlongside(backend: Backend, steps: number, during?: (step: number, run: Promise<unknown>) => void): Promise<void> {
  const onBackend = new Quantizer(OPTIONS, { backend });
  const onWasm = new Quantizer(OPTIONS, { backend: await WasmBackend.create('simd') });
  const paramsA = model();
  const paramsB = model();
  for (let step = 0; step < steps; step++) {
    update(paramsA, step);
    update(paramsB, step);
    const run = onBackend.step([paramsA]);
    during?.(step, run);
    await run;
    await onWasm.step([paramsB]);
    paramsA.forEach((p, i) => expect(p.data, `step ${step}, ${p.name}`).toEqual(paramsB[i]!.data));
    expect(onBackend.state()).toEqual(onWasm.state());
  }
}

describe.skipIf(!available)('losing the WebGPU device', () => {
  let warn: MockInstance;

  beforeEach(() => {
    warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
  });

  afterEach(() => {
    warn.mockRestore();
  });

  it('mid-step: the step completes on WebAssembly, equal to a WebAssembly-only run, and later steps stay there', async () => {
    let submissions = 0;
    const log = vi.fn();
    const backend = await WebGpuBackend.create({
      gpu: testGpu(),
      log,
      // The third step's submission is encoded when the device goes.
      beforeSubmit: (device) => {
        if (++submissions === 3) device.destroy();
      },
    });
    const events: DowngradeEvent[] = [];
    backend.onDowngrade((e) => events.push(e));
    await trainAlongside(backend, 8);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ from: 'webgpu', to: 'wasm-simd' });
    expect(log).toHaveBeenCalledTimes(1);
    expect(log.mock.calls[0]![0]).toMatch(/^edge-moq: WebGPU stopped, .*; continuing on wasm-simd, no data lost\.$/);
    expect(warn, 'the library prints nothing itself').not.toHaveBeenCalled();
    expect(backend.kind).toBe('webgpu');
    expect(backend.activeKind).toBe('wasm-simd');
    expect(backend.stats()).toMatchObject({ submissions: 3, gpuCalls: 2, wasmCalls: 6 });
    expect(backend.explain()).toMatch(/now running on wasm-simd: device lost/);
  });

  it('while a step is in flight: the step still completes, on WebAssembly', async () => {
    const backend = await WebGpuBackend.create({ gpu: testGpu() });
    await trainAlongside(backend, 4, (step) => {
      if (step === 1) backend.device.destroy();
    });
    expect(backend.activeKind).toBe('wasm-simd');
    expect(backend.stats().gpuCalls).toBe(1);
  });

  it('says DEVICE_LOST for caller-owned buffers, whose contents went with the device', async () => {
    const device = await testDevice();
    const backend = await WebGpuBackend.create({ gpu: testGpu(), device });
    const buffer = bufferWith(device, weights(64, 1));
    device.destroy();
    await expect(backend.fakeQuantizeBuffer(buffer, 64, { bits: 8 })).rejects.toMatchObject({
      code: 'DEVICE_LOST',
      message: expect.stringMatching(/create a new device and backend/),
    });
    await expect(backend.fakeQuantize(weights(64, 2), { bits: 8 })).resolves.toEqual(await (await WasmBackend.create('simd')).fakeQuantize(weights(64, 2), { bits: 8 }));
  });

  it("moves 'auto' entirely to WebAssembly and says so", async () => {
    const device = await testDevice();
    const log = vi.fn();
    const auto = (await createBackend({ kind: 'auto', gpu: testGpu(), device, crossoverElements: 1000, log })) as AutoBackend;
    expect(auto.kind, 'before any call: where large calls go').toBe('webgpu');
    await trainAlongside(auto, 3, (step) => {
      if (step === 1) device.destroy();
    });
    expect(auto.activeKind).toBe('wasm-simd');
    expect(auto.lastKind).toBe('wasm-simd');
    expect(auto.kind, 'the kind that ran the last call').toBe('wasm-simd');
    expect(auto.explain()).toMatch(/now running everything on wasm-simd: device lost/);
    expect(log).toHaveBeenCalledTimes(1);
    expect(warn).not.toHaveBeenCalled();
  });
});
