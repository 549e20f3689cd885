// Bad inputs on the WebGPU backend: the same typed errors as on WebAssembly, raised before
// anything is modified, host arrays and GPU buffers alike.

import { describe, expect, it } from 'vitest';
import { WebGpuBackend } from '../src/backends/webgpu/backend.js';
import { bufferWith, readBuffer, testGpu, useBackendOnOwnDevice, webgpuAvailable, weights } from './support/webgpu.js';

const available = await webgpuAvailable();

describe.skipIf(!available)('bad inputs on WebGPU', () => {
  const gpu = useBackendOnOwnDevice();

  it.each([
    ['a NaN in a large group', 10000, 1, 7777, NaN],
    ['an Inf in a small group', 640, 160, 3, Infinity],
    ['a -Inf in a chunk after the first', 9000, 2, 8999, -Infinity],
  ])('rejects %s with NON_FINITE, naming the index, and modifies nothing', async (_, length, groups, at, bad) => {
    const data = weights(length, length);
    data[at] = bad;
    const original = data.slice();
    await expect(gpu.backend.fakeQuantize(data, { bits: 8, groups })).rejects.toMatchObject({
      code: 'NON_FINITE',
      message: expect.stringMatching(new RegExp(`^data\\[${at}\\] is ${bad}: `)),
      location: { job: 0, index: at, group: Math.floor(at / (length / groups)) },
    });
    expect(data).toEqual(original);
  });

  it('leaves every tensor of a parameter group untouched when one holds a NaN', async () => {
    const jobs = [weights(4096, 1), weights(100, 2), weights(8192, 3)].map((data) => ({ data, options: { bits: 4, groups: 4 } }));
    jobs[2]!.data[5000] = NaN;
    const originals = jobs.map((job) => job.data.slice());
    await expect(gpu.backend.fakeQuantizeMany(jobs)).rejects.toThrow(/^jobs\[2\]\.data\[5000\] is NaN: .*Nothing was modified/);
    await expect(gpu.backend.fakeQuantizeMany(jobs.map((job, i) => ({ ...job, label: `t${i}` })))).rejects.toMatchObject({
      message: expect.stringMatching(/^t2\[5000\] is NaN/),
      location: { job: 2, index: 5000, group: 2 },
    });
    jobs.forEach((job, i) => expect(job.data).toEqual(originals[i]));
  });

  it('leaves GPU buffers untouched when one holds an Inf', async () => {
    const values = [weights(4096, 4), weights(64, 5)];
    values[1]![10] = Infinity;
    const buffers = values.map((v) => bufferWith(gpu.device, v));
    await expect(gpu.backend.fakeQuantizeBuffers(buffers.map((buffer, i) => ({ buffer, length: values[i]!.length, options: { bits: 8 } })))).rejects.toMatchObject({
      code: 'NON_FINITE',
      message: expect.stringMatching(/^jobs\[1\]\.buffer\[10\] is NaN or infinite/),
      location: { job: 1, index: 10, group: 0 },
    });
    for (const [i, buffer] of buffers.entries()) expect(await readBuffer(gpu.device, buffer, values[i]!.length)).toEqual(values[i]);
  });

  it('rejects bad options and data before submitting anything', async () => {
    const submissions = gpu.backend.stats().submissions;
    const data = weights(12, 1);
    await expect(gpu.backend.fakeQuantize(new Float32Array(0), { bits: 8 })).rejects.toMatchObject({ code: 'EMPTY_TENSOR' });
    await expect(gpu.backend.fakeQuantize(data, { bits: 8, groups: 5 })).rejects.toMatchObject({ code: 'GROUPS_DO_NOT_DIVIDE' });
    await expect(gpu.backend.fakeQuantize(data, { bits: 0 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/bits must be an integer from 1 to 16/) });
    await expect(gpu.backend.fakeQuantize(data, { bits: 17 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(gpu.backend.fakeQuantize(data, { bits: 2, type: 'asymmetric' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(gpu.backend.fakeQuantize(Float64Array.from(data) as never, { bits: 8 })).rejects.toMatchObject({ code: 'WRONG_DTYPE' });
    await expect(gpu.backend.fakeQuantize([1, 2, 3] as never, { bits: 8 })).rejects.toMatchObject({ code: 'WRONG_DTYPE' });
    await expect(gpu.backend.fakeQuantizeMany({} as never)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(gpu.backend.groupStats(Float32Array.of(1, NaN), { groups: 1 })).rejects.toThrow(/^data\[1\] is NaN/);
    expect(gpu.backend.stats().submissions).toBe(submissions);
  });

  it('rejects buffers it cannot quantize in place', async () => {
    const readable = gpu.device.createBuffer({ size: 64, usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ });
    const storage = bufferWith(gpu.device, weights(16, 1));
    await expect(gpu.backend.fakeQuantizeBuffer(readable, 16, { bits: 8 })).rejects.toThrow(/lacks GPUBufferUsage.STORAGE/);
    await expect(gpu.backend.fakeQuantizeBuffer(storage, 17, { bits: 8 })).rejects.toThrow(/holds 16 float32 values, fewer than the length 17/);
    await expect(gpu.backend.fakeQuantizeBuffer(storage, 0, { bits: 8 })).rejects.toMatchObject({ code: 'EMPTY_TENSOR' });
    await expect(gpu.backend.fakeQuantizeBuffer(new Float32Array(16) as never, 16, { bits: 8 })).rejects.toMatchObject({ code: 'WRONG_DTYPE' });
    await expect(gpu.backend.fakeQuantizeBuffer(storage, 16, { bits: 8, groups: 3 })).rejects.toMatchObject({ code: 'GROUPS_DO_NOT_DIVIDE' });
    expect(await readBuffer(gpu.device, storage, 16)).toEqual(weights(16, 1));
  });

  it('refuses work once disposed', async () => {
    const disposable = await WebGpuBackend.create({ gpu: testGpu() });
    disposable.dispose();
    await expect(disposable.fakeQuantize(weights(8, 1), { bits: 8 })).rejects.toMatchObject({ code: 'BACKEND_UNAVAILABLE' });
  });
});
