// What only the WebGPU implementation has (test/contracts/ runs the Backend and Packer contracts
// on it, with and without subgroups): tensors that stay on the device as GPUBuffers, packed and
// unpacked there and checked before anything runs; a parameter group in one submission; warm
// calls that create nothing; and a lost device that moves host arrays to WebAssembly.

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi, type MockInstance } from 'vitest';
import { createBackend, type WebGpuBackend, type FakeQuantizeOptions } from '../src/index.js';
import { allocatePacked, createPacker, planPack, WebGpuPacker, type GpuPackedTensor, type PackOptions } from '../src/packed/index.js';
import { bufferWith, readBuffer, testDevice, testGpu, webgpuAvailable, weights } from './support/webgpu.js';
import { randomLayouts } from './support/layout-reader.js';

const available = await webgpuAvailable();

function bytesOf(values: Float32Array): Uint8Array {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

async function readBytes(device: GPUDevice, buffer: GPUBuffer, bytes: number): Promise<Uint8Array> {
  return bytesOf(await readBuffer(device, buffer, Math.ceil(bytes / 4))).slice(0, bytes);
}

describe.skipIf(!available)('WebGPU', () => {
  let backend: WebGpuBackend;
  let packer: WebGpuPacker;

  beforeAll(async () => {
    backend = (await createBackend({ kind: 'webgpu', gpu: testGpu() })) as WebGpuBackend;
    packer = (await createPacker(backend)) as WebGpuPacker;
  });

  afterAll(() => {
    packer.dispose();
    backend.dispose();
  });

  it('decodes packed tensors uploaded to the device by the layout text', async () => {
    for (const { bits, type, packed, expected } of randomLayouts()) {
      const onDevice = packer.upload(packed);
      const values = await packer.unpackToBuffer(onDevice);
      expect(await readBuffer(backend.device, values, packed.length), `${bits} bits, ${type}, on the device`).toEqual(expected);
      for (const buffer of [values, onDevice.codes, onDevice.scales, onDevice.zeros]) buffer?.destroy();
    }
  });

  describe('on the device', () => {
    const CASES: [number, PackOptions][] = [
      [4096, { bits: 4, groupSize: 128 }],
      [9000, { bits: 3, groups: 3, type: 'asymmetric', rounding: 'stochastic', seed: 2, tensorId: 5 }],
      [600, { bits: 2, groupSize: 10 }],
      [20000, { bits: 1, groups: 2 }],
      [63, { bits: 16, groupSize: 7, type: 'asymmetric' }],
      [4096, { bits: 4, groupSize: 32, grid: 'full' }],
      [9000, { bits: 8, groups: 3, grid: 'full', rounding: 'stochastic', seed: 4 }],
    ];

    it('packs a GPUBuffer as the host path packs an array, and unpacks into one', async () => {
      for (const [length, options] of CASES) {
        const x = weights(length, length);
        const source = bufferWith(backend.device, x);
        const onDevice = await packer.packBuffer(source, length, options);
        expect(await readBuffer(backend.device, source, length)).toEqual(x);
        const fromHost = await packer.pack(x, options);
        expect(await packer.download(onDevice), JSON.stringify(options)).toEqual(fromHost);
        expect(await readBytes(backend.device, onDevice.codes, fromHost.codes.length)).toEqual(fromHost.codes);
        const values = await packer.unpackToBuffer(onDevice);
        expect(await readBuffer(backend.device, values, length)).toEqual(await packer.unpack(fromHost));
        for (const buffer of [source, values, onDevice.codes, onDevice.scales, onDevice.zeros]) buffer?.destroy();
      }
    });

    it('writes into given buffers and leaves what lies past `length` alone', async () => {
      const [length, options] = CASES[1]!;
      const source = bufferWith(backend.device, weights(length + 3, 8));
      const first = await packer.packBuffer(source, length, options);
      const again = await packer.packBuffer(source, length, options, first);
      expect(again).toBe(first);
      const out = bufferWith(backend.device, new Float32Array(length + 5).fill(7));
      await expect(packer.unpackToBuffer(first, out)).resolves.toBe(out);
      const contents = await readBuffer(backend.device, out, length + 5);
      expect(Array.from(contents.subarray(length))).toEqual([7, 7, 7, 7, 7]);
      expect(contents.subarray(0, length)).toEqual(await packer.unpack(await packer.pack(weights(length + 3, 8).subarray(0, length), options)));
      const into = allocatePacked(planPack(length, options));
      await expect(packer.download(first, into)).resolves.toBe(into);
      for (const buffer of [source, out, first.codes, first.scales, first.zeros]) buffer?.destroy();
    });
  });

  describe('refuses bad input on the device and touches nothing', () => {
    it('names the first NaN in a GPUBuffer and writes nothing to `into`', async () => {
      const x = weights(256, 2);
      const into = await packer.packBuffer(bufferWith(backend.device, x), 256, { bits: 6, groups: 4 });
      const codesBefore = await readBytes(backend.device, into.codes, 192);
      const scalesBefore = await readBuffer(backend.device, into.scales, 4);
      x[100] = Number.NaN;
      const source = bufferWith(backend.device, x);
      await expect(packer.packBuffer(source, 256, { bits: 6, groups: 4 }, into)).rejects.toThrow(/buffer\[100\] is NaN or infinite/);
      expect(await readBytes(backend.device, into.codes, 192)).toEqual(codesBefore);
      expect(await readBuffer(backend.device, into.scales, 4)).toEqual(scalesBefore);
      await expect(packer.packBuffer(source, 256, { bits: 6, groups: 4 })).rejects.toMatchObject({ code: 'NON_FINITE' });
    });

    it('checks buffers before anything runs', async () => {
      const x = weights(64, 1);
      const good = await packer.pack(x, { bits: 4, groupSize: 16 });
      const readable = backend.device.createBuffer({ size: 256, usage: GPUBufferUsage.COPY_SRC });
      await expect(packer.packBuffer(readable, 64, { bits: 4 })).rejects.toThrow(/lacks GPUBufferUsage.STORAGE/);
      const small = bufferWith(backend.device, x.subarray(0, 32));
      await expect(packer.packBuffer(small, 64, { bits: 4 })).rejects.toThrow(/fewer than the 256/);
      const onDevice = packer.upload(good);
      await expect(packer.unpackToBuffer({ ...onDevice, bits: 5 })).rejects.toThrow(/packed.codes is 32 bytes, fewer than the 40/);
      await expect(packer.unpackToBuffer(onDevice, small)).rejects.toThrow(/out is 128 bytes, fewer than the 256/);
      for (const buffer of [readable, small, onDevice.codes, onDevice.scales]) buffer.destroy();
    });
  });

  it('is what createPacker gives for a WebGPU backend', async () => {
    const viaFactory = await createPacker(backend);
    expect(viaFactory).toBeInstanceOf(WebGpuPacker);
    expect(viaFactory.kind).toBe('webgpu');
    viaFactory.dispose();
  });

  it('quantizes a whole parameter group in one submission', async () => {
    const jobs: { length: number; options: FakeQuantizeOptions }[] = [
      { length: 4096, options: { bits: 8, groups: 4 } },
      { length: 100, options: { bits: 2, groups: 1 } },
      { length: 9000, options: { bits: 4, groups: 2, type: 'asymmetric', rounding: 'stochastic', seed: 1, tensorId: 9, blendRatio: 0.5 } },
    ];
    const before = backend.stats().submissions;
    await backend.fakeQuantizeMany(jobs.map((job, i) => ({ data: weights(job.length, 500 + i), options: job.options })));
    expect(backend.stats().submissions).toBe(before + 1);
  });

  it('compiles the pack kernels once per backend, and once warm creates no modules, pipelines, buffers or bind groups and submits once per call', async () => {
    const own = (await createBackend({ kind: 'webgpu', gpu: testGpu() })) as WebGpuBackend;
    const bare = own.stats();
    const fresh = (await createPacker(own)) as WebGpuPacker;
    const compiled = fresh.stats();
    expect(compiled).toMatchObject({ shaderModules: bare.shaderModules + 1, buffers: bare.buffers, bindGroups: bare.bindGroups, submissions: bare.submissions });
    expect(compiled.pipelines).toBeGreaterThan(bare.pipelines);
    const second = await createPacker(own);
    expect(own.stats()).toEqual(compiled);
    second.dispose();
    const shapes: [number, PackOptions][] = [
      [4096, { bits: 8, groups: 4 }],
      [600, { bits: 2, groupSize: 10 }],
      [9000, { bits: 3, groups: 1, type: 'asymmetric' }],
    ];
    const arrays = shapes.map(([length], i) => weights(length, i));
    const packedOnHost = shapes.map(([length, options]) => allocatePacked(planPack(length, options)));
    const sources = arrays.map((x) => bufferWith(own.device, x));
    const onDevice = await Promise.all(shapes.map(([length, options], i) => fresh.packBuffer(sources[i]!, length, options)));
    const outs = arrays.map((x) => bufferWith(own.device, x));
    const calls = async () => {
      for (const [i, [length, options]] of shapes.entries()) {
        await fresh.pack(arrays[i]!, options, packedOnHost[i]);
        await fresh.unpack(packedOnHost[i]!, arrays[i]);
        await fresh.packBuffer(sources[i]!, length, options, onDevice[i]);
        await fresh.unpackToBuffer(onDevice[i]!, outs[i]);
      }
      return shapes.length * 4;
    };
    await calls();
    await calls();
    const warm = fresh.stats();
    const count = await calls();
    expect(fresh.stats()).toEqual({ ...warm, submissions: warm.submissions + count, gpuCalls: warm.gpuCalls + count });
    expect(fresh.stats().pipelines).toBe(compiled.pipelines);
    const all: (GPUBuffer | null)[] = [...sources, ...outs, ...onDevice.flatMap((p: GpuPackedTensor) => [p.codes, p.scales, p.zeros])];
    for (const buffer of all) buffer?.destroy();
    fresh.dispose();
    own.dispose();
  });
});

// A device of its own, destroyed by the test.
describe.skipIf(!available)('WebGpuPacker on a device of its own, until it is lost', () => {
  const context = {} as { device: GPUDevice; backend: WebGpuBackend; packer: WebGpuPacker };
  let warn: MockInstance;

  beforeAll(async () => {
    context.device = await testDevice(false);
    context.backend = (await createBackend({ kind: 'webgpu', gpu: testGpu(), device: context.device })) as WebGpuBackend;
    context.packer = (await createPacker(context.backend)) as WebGpuPacker;
  });

  afterAll(() => {
    context.packer.dispose();
    context.backend.dispose();
  });

  beforeEach(() => {
    warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
  });

  afterEach(() => {
    warn.mockRestore();
  });

  it('then packs host arrays on WebAssembly, with the same codes; GPUBuffers throw DEVICE_LOST', async () => {
    const { device, packer } = context;
    const reference = await createPacker('wasm-simd');
    const options: PackOptions = { bits: 5, groupSize: 100, type: 'asymmetric', rounding: 'stochastic', seed: 9 };
    const x = weights(3000, 4, 0.05);
    const source = bufferWith(device, x);
    const before = await packer.pack(x, options);
    expect(packer.kind).toBe('webgpu');

    // Lost between the call and its submission.
    const into = allocatePacked(planPack(x.length, options));
    const during = packer.pack(x, options, into);
    device.destroy();
    await expect(during).resolves.toBe(into);
    expect(into).toEqual(before);
    expect(packer.kind).toBe('wasm-simd');
    expect(packer.stats().wasmCalls).toBe(1);

    await expect(packer.pack(x, options)).resolves.toEqual(await reference.pack(x, options));
    await expect(packer.unpack(before)).resolves.toEqual(await reference.unpack(before));
    await expect(packer.packBuffer(source, x.length, options)).rejects.toMatchObject({ code: 'DEVICE_LOST' });
    reference.dispose();
  });
});
