// shaders/rounding.wgsl on its own: the stochastic noise equals the WebAssembly kernels' draw
// for draw, and the division is correctly rounded even from a deliberately poor estimate (what
// a GPU whose `/` is 2.5 ulp off would hand it; SwiftShader's own `/` is exact, so it is
// perturbed here on purpose).

import { beforeAll, describe, expect, it } from 'vitest';
import { WasmBackend } from '../src/backends/wasm/backend.js';
import { jobWgsl, roundingWgsl } from '../src/backends/webgpu/shaders.generated.js';
import { noiseKey } from '../src/noise.js';
import { uniforms } from './support/fixtures.js';
import { testDevice, webgpuAvailable } from './support/webgpu.js';

const available = await webgpuAvailable();

// data[3i], data[3i+1] in; data[3i+2]: in, the estimate's offset in ulps (as i32 bits); out, the quotient.
const PROBES = /* wgsl */ `
@compute @workgroup_size(64)
fn noise(@builtin(global_invocation_id) id: vec3<u32>) {
  if (id.x < job.length) {
    data[id.x] = stochasticOffset(job.base + id.x, job.key);
  }
}

@compute @workgroup_size(64)
fn correctFromEstimate(@builtin(global_invocation_id) id: vec3<u32>) {
  if (id.x < job.length) {
    let a = data[3u * id.x];
    let b = data[3u * id.x + 1u];
    let offset = bitcast<i32>(data[3u * id.x + 2u]);
    let estimate = bitcast<f32>(u32(i32(bitcast<u32>(a / b)) + offset));
    data[3u * id.x + 2u] = correctedQuotient(a, b, estimate);
  }
}

@compute @workgroup_size(64)
fn divide(@builtin(global_invocation_id) id: vec3<u32>) {
  if (id.x < job.length) {
    data[3u * id.x + 2u] = divideRounded(data[3u * id.x], data[3u * id.x + 1u]);
  }
}
`;

describe.skipIf(!available)('rounding.wgsl', () => {
  let device: GPUDevice;
  let module: GPUShaderModule;

  beforeAll(async () => {
    device = await testDevice(false);
    module = device.createShaderModule({ code: [jobWgsl, roundingWgsl, PROBES].join('\n') });
    const info = await module.getCompilationInfo();
    expect(info.messages.filter((m) => m.type === 'error')).toEqual([]);
  });

  /** Runs `entryPoint` over `count` items of `values` in place; the Job gets base, length and key. */
  async function run(entryPoint: string, values: Float32Array<ArrayBuffer>, count: number, job: { base?: number; key?: number } = {}): Promise<Float32Array> {
    const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint } });
    const data = device.createBuffer({ size: values.byteLength, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
    device.queue.writeBuffer(data, 0, values);
    const words = new Uint32Array(20); // struct Job: base, length, ..., key at 11, opaqueZero at 12
    words[0] = job.base ?? 0;
    words[1] = count;
    words[11] = job.key ?? 0;
    const uniform = device.createBuffer({ size: words.byteLength, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    device.queue.writeBuffer(uniform, 0, words);
    const group = device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: data } },
        { binding: 3, resource: { buffer: uniform } },
      ],
    });
    const staging = device.createBuffer({ size: values.byteLength, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(Math.ceil(count / 64));
    pass.end();
    encoder.copyBufferToBuffer(data, 0, staging, 0, values.byteLength);
    device.queue.submit([encoder.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const out = new Float32Array(staging.getMappedRange().slice(0));
    for (const b of [data, uniform, staging]) b.destroy();
    return out;
  }

  it('draws the same noise as the WebAssembly kernels, across the 2^32 index wrap', async () => {
    const wasm = await WasmBackend.create('simd');
    const stream = { seed: 1234, step: 77, tensorId: 0xdeadbeef };
    const first = 0xffffff00;
    const count = 4096;
    const gpu = await run('noise', new Float32Array(count), count, { base: first, key: noiseKey(stream.seed, stream.step, stream.tensorId) });
    expect(gpu).toEqual(wasm.noiseOffsets(count, stream, first));
  });

  /** (a, b, offset) triples; expected quotients from double division rounded once to float32. */
  function triples(count: number, seed: number, make: (next: () => number) => [number, number, number]) {
    const next = uniforms(seed);
    const values = new Float32Array(3 * count);
    const offsets = new Int32Array(values.buffer);
    const expected = new Float32Array(count);
    for (let i = 0; i < count; i++) {
      const [a, b, offset] = make(next);
      values[3 * i] = a;
      values[3 * i + 1] = b;
      offsets[3 * i + 2] = offset;
      expected[i] = Math.fround(values[3 * i]! / values[3 * i + 1]!);
    }
    return { values, expected };
  }

  const quotients = (out: Float32Array) => out.filter((_, i) => i % 3 === 2);

  it('corrects an estimate up to 64 ulps off to the rounded quotient, midpoints included', async () => {
    const count = 1 << 16;
    const { values, expected } = triples(count, 7, (next) => {
      const b = Math.fround(1 + next());
      // Half the dividends put a/b within a hair of the midpoint between two floats.
      const q = Math.fround((next() * 2 - 1) * 2 ** Math.floor(next() * 40 - 20));
      const nearMidpoint = next() < 0.5;
      const a = nearMidpoint ? Math.fround((q + q * 2 ** -24) * b) : Math.fround(q * b * (1 + next() * 1e-3));
      return [a, b, Math.floor(next() * 129) - 64];
    });
    expect(quotients(await run('correctFromEstimate', values, count))).toEqual(expected);
  });

  // Normal operands only: WGSL lets a GPU flush subnormal floats to zero (SwiftShader does).
  it('divides correctly rounded for normal operands of every magnitude', async () => {
    const count = 1 << 16;
    const { values, expected } = triples(count, 11, (next) => {
      const b = Math.fround((1 + next()) * 2 ** Math.floor(next() * 180 - 90));
      const a = Math.fround(b * (next() * 2 - 1) * 2 ** Math.floor(next() * 60 - 30));
      return [a, b, 0];
    });
    expect(quotients(await run('divide', values, count))).toEqual(expected);
  });
});
