// Packing on WebGPU: the codes decode to exactly what the same backend's fakeQuantize writes
// (over group layouts that take every statistics path, and words that straddle groups), the
// stream reads back by the layout text, the codes equal the WebAssembly packer's, tensors can
// stay on the device, bad input changes nothing, warm calls create nothing, and a lost device
// moves host arrays to WebAssembly.

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi, type MockInstance } from 'vitest';
import { WasmBackend } from '../src/backends/wasm/backend.js';
import { WebGpuBackend } from '../src/backends/webgpu/backend.js';
import { CHUNK_SIZE, SMALL_GROUP_MAX } from '../src/backends/webgpu/plan.js';
import { allocatePacked, planPack, type PackedTensor, type PackOptions } from '../src/packed/layout.js';
import { createPacker } from '../src/packed/index.js';
import { WasmPacker } from '../src/backends/wasm/packer.js';
import { WebGpuPacker, type GpuPackedTensor } from '../src/backends/webgpu/packer.js';
import { uniforms } from './support/fixtures.js';
import { bufferWith, readBuffer, testDevice, testGpu, webgpuAvailable, weights } from './support/webgpu.js';
import { codeAt, setCodeAt, valueAt } from './support/layout-reader.js';
import { differenceFromFake } from './support/packers.js';

const available = await webgpuAvailable();

// [elements, group size]: groups of one element; groups of 3 and 7 (at 3 bits a word holds
// parts of several groups); small groups (one invocation each) up to SMALL_GROUP_MAX and just
// past it; one chunk per group; groups of two chunks.
const LAYOUTS: [number, number][] = [
  [1, 1], [40, 1], [21, 3], [63, 7], [96, 32],
  [5 * SMALL_GROUP_MAX, SMALL_GROUP_MAX], [5 * (SMALL_GROUP_MAX + 1), SMALL_GROUP_MAX + 1],
  [4 * 1025, 1025], [3 * (CHUNK_SIZE + 1), CHUNK_SIZE + 1],
];

const VARIANTS: PackOptions[] = [];
for (let bits = 1; bits <= 16; bits++) {
  for (const type of bits >= 3 ? ['symmetric', 'asymmetric'] as const : ['symmetric'] as const) {
    for (const rounding of bits >= 3 ? ['nearest', 'stochastic'] as const : ['nearest'] as const) {
      VARIANTS.push({ bits, type, rounding, ...(rounding === 'stochastic' ? { seed: 42, step: 3, tensorId: 7 } : {}) });
      if (type === 'symmetric' && bits >= 3) {
        VARIANTS.push({ bits, grid: 'full', rounding, ...(rounding === 'stochastic' ? { seed: 42, step: 3, tensorId: 7 } : {}) });
      }
    }
  }
}

/** A tensor for `options`: shifted for asymmetric grids, with an exact +0 and -0 in it. */
function tensorFor(length: number, seed: number, options: PackOptions): Float32Array {
  const x = weights(length, seed, options.type === 'asymmetric' ? 0.05 : 0);
  if (length > 6) {
    x[3] = 0;
    x[6] = -0;
  }
  return x;
}

/** The first element whose stream value differs from the unpacked one, or whose padding bits are set. */
function differenceFromStream(packed: PackedTensor, unpacked: Float32Array): string | null {
  for (let i = 0; i < packed.length; i++) {
    if (valueAt(packed, i) + 0 !== unpacked[i]! + 0) return `element ${i}: stream ${valueAt(packed, i)}, unpacked ${unpacked[i]}`;
  }
  const usedBits = (packed.length * packed.bits) % 8;
  if (usedBits !== 0 && packed.codes[packed.codes.length - 1]! >> usedBits !== 0) return 'the bits past the last code are not zero';
  return null;
}

function bytesOf(values: Float32Array): Uint8Array {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

async function readBytes(device: GPUDevice, buffer: GPUBuffer, bytes: number): Promise<Uint8Array> {
  return bytesOf(await readBuffer(device, buffer, Math.ceil(bytes / 4))).slice(0, bytes);
}

describe.skipIf(!available)('WebGpuPacker', () => {
  let backend: WebGpuBackend;
  let packer: WebGpuPacker;
  let wasmPacker: WasmPacker;

  beforeAll(async () => {
    backend = await WebGpuBackend.create({ gpu: testGpu() });
    packer = await WebGpuPacker.create(backend);
    wasmPacker = new WasmPacker(await WasmBackend.create('simd'));
  });

  afterAll(() => {
    packer.dispose();
    backend.dispose();
  });

  /** Checks the WebGPU codes against the WebAssembly packer's (see the test below). */
  function differenceFromWasm(x: Float32Array, onGpu: PackedTensor, onWasm: PackedTensor): string | null {
    const { bits, groupSize } = onGpu;
    if (bits >= 3) {
      // A zero point of 0 takes the sign of the group's minimum, and min(-0, +0) may be either.
      const zeros = (p: PackedTensor) => Array.from(p.zeros ?? [], (z) => z + 0);
      if (!onGpu.codes.every((c, k) => c === onWasm.codes[k])) return 'codes differ';
      if (!onGpu.scales.every((s, g) => s === onWasm.scales[g])) return 'scales differ';
      return zeros(onGpu).every((z, g) => z === zeros(onWasm)[g]) ? null : 'zero points differ';
    }
    for (const [g, s] of onGpu.scales.entries()) {
      if (Math.abs(s - onWasm.scales[g]!) > 1e-6 * onWasm.scales[g]!) return `group ${g}: scale ${s}, WebAssembly ${onWasm.scales[g]}`;
    }
    for (let i = 0; i < x.length; i++) {
      if (codeAt(onGpu.codes, bits, i) === codeAt(onWasm.codes, bits, i)) continue;
      const group = x.subarray(i - (i % groupSize), i - (i % groupSize) + groupSize);
      const threshold = (0.7 * group.reduce((sum, v) => sum + Math.abs(v), 0)) / groupSize;
      if (Math.abs(Math.abs(x[i]!) - threshold) > 2e-6 * threshold) return `element ${i} (${x[i]}): codes differ away from the threshold ${threshold}`;
    }
    return null;
  }

  describe('unpack(pack(x)) equals the backend\'s fakeQuantize(x)', () => {
    // At 1 and 2 bits both packers sum a group's |x| in float32, in different orders: the means
    // agree to 1e-6, and a ternary code may differ only for a value that close to the threshold.
    it.each(VARIANTS)('%o; the stream reads back by the layout text; the codes equal the WebAssembly packer\'s', async (options) => {
      for (const [length, groupSize] of LAYOUTS) {
        const x = tensorFor(length, 1000 * options.bits + length, options);
        const original = x.slice();
        const packed = await packer.pack(x, { ...options, groupSize });
        expect(x).toEqual(original);
        expect(packed).toMatchObject({ bits: options.bits, length, groupSize });
        expect(packed.codes.length).toBe(Math.ceil((length * options.bits) / 8));
        const unpacked = await packer.unpack(packed);
        const fake = await backend.fakeQuantize(x.slice(), { ...options, groupSize });
        const where = `${length} elements in groups of ${groupSize}`;
        expect(differenceFromFake(x, fake, unpacked, packed), where).toBeNull();
        expect(differenceFromStream(packed, unpacked), where).toBeNull();
        expect(differenceFromWasm(x, packed, await wasmPacker.pack(x, { ...options, groupSize })), where).toBeNull();
      }
    });

    it('keeps all-zero and constant groups as they are', async () => {
      const x = new Float32Array([0, 0, -0, 0, 2.5, 2.5, 2.5, 2.5]);
      for (const options of [{ bits: 4 }, { bits: 4, type: 'asymmetric' as const }, { bits: 2 }, { bits: 16, type: 'asymmetric' as const }]) {
        const packed = await packer.pack(x, { ...options, groupSize: 4 });
        const unpacked = await packer.unpack(packed);
        const fake = await backend.fakeQuantize(x.slice(), { ...options, groupSize: 4 });
        expect(differenceFromFake(x, fake, unpacked, packed), JSON.stringify(options)).toBeNull();
        if (options.type === 'asymmetric') expect(Array.from(packed.zeros!)).toEqual([0, 2.5]);
      }
    });
  });

  describe('the codes', () => {
    it('put 4-bit symmetric codes low nibble first with zero point 8', async () => {
      // absmax 8 → s = 1: codes are x + 8.
      const packed = await packer.pack(new Float32Array([-8, 7, 0, 1, 2, -3, 5, 8]), { bits: 4 });
      expect(packed.scales[0]).toBe(1);
      expect(Array.from(packed.codes)).toEqual([0xf0, 0x98, 0x5a, 0xfd]);
    });

    it('come out the same when a tensor is packed a few groups at a time with firstIndex', async () => {
      for (const [bits, groupSize] of [[3, 5], [5, 7], [8, 100]] as const) {
        const x = weights(40 * groupSize, bits);
        const options: PackOptions = { bits, groupSize, rounding: 'stochastic', seed: 3 };
        const whole = await packer.pack(x, options);
        const step = 8 * groupSize; // 8 groups: every part starts on a byte
        const codes: number[] = [];
        for (let first = 0; first < x.length; first += step) {
          codes.push(...(await packer.pack(x.subarray(first, first + step), { ...options, firstIndex: first })).codes);
        }
        expect(codes).toEqual(Array.from(whole.codes));
        expect((await wasmPacker.pack(x, options)).codes).toEqual(whole.codes);
      }
    });

    it('decode by the layout text when built elsewhere, on the host and on the device', async () => {
      const next = uniforms(17);
      for (let bits = 1; bits <= 16; bits++) {
        for (const type of bits >= 3 ? ['symmetric', 'asymmetric'] as const : [bits === 1 ? 'binary' as const : 'ternary' as const]) {
          const [length, groupSize] = [93, 31];
          const packed = allocatePacked(planPack(length, { bits, groupSize, ...(type === 'asymmetric' ? { type } : {}) }));
          packed.codes.forEach((_, k) => { packed.codes[k] = Math.floor(next() * 256); });
          packed.codes[packed.codes.length - 1]! &= 0xff >> ((8 - ((length * bits) % 8)) % 8);
          // Ternary has no code 3 (unpack refuses it: test/packed-validation.test.ts).
          if (type === 'ternary') for (let i = 0; i < length; i++) if (codeAt(packed.codes, 2, i) === 3) setCodeAt(packed.codes, 2, i, i % 3);
          packed.scales.forEach((_, g) => { packed.scales[g] = Math.fround(next() * 0.01 + 1e-4); });
          packed.zeros?.forEach((_, g) => { packed.zeros![g] = Math.fround(next() - 0.5); });
          const expected = Float32Array.from({ length }, (_, i) => valueAt(packed, i));
          const out = new Float32Array(length);
          await expect(packer.unpack(packed, out)).resolves.toBe(out);
          expect(out, `${bits} bits, ${type}`).toEqual(expected);
          const onDevice = packer.upload(packed);
          const values = await packer.unpackToBuffer(onDevice);
          expect(await readBuffer(backend.device, values, length), `${bits} bits, ${type}, on the device`).toEqual(expected);
          for (const buffer of [values, onDevice.codes, onDevice.scales, onDevice.zeros]) buffer?.destroy();
        }
      }
    });
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

  describe('refuses bad input and touches nothing', () => {
    it('names the first NaN or ±Inf and leaves `into` as it was', async () => {
      for (const [length, groupSize] of [[64, 16], [3 * (CHUNK_SIZE + 1), CHUNK_SIZE + 1]] as const) {
        const x = weights(length, 1);
        x[length - 2] = Number.NaN;
        x[40] = Number.POSITIVE_INFINITY;
        const into = allocatePacked(planPack(length, { bits: 8, groupSize }));
        into.codes.fill(0xaa);
        const call = packer.pack(x, { bits: 8, groupSize }, into);
        await expect(call).rejects.toMatchObject({ code: 'NON_FINITE' });
        await expect(call).rejects.toThrow(/data\[40\] is Infinity/);
        expect(into.codes.every((b) => b === 0xaa)).toBe(true);
        expect(into.scales.every((s) => s === 0)).toBe(true);
      }
    });

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

    it('checks options, arrays and buffers before anything runs', async () => {
      const x = weights(64, 1);
      await expect(packer.pack(x, { bits: 4, blendRatio: 0.5 } as PackOptions)).rejects.toThrow(/blendRatio has no packed form/);
      await expect(packer.pack([1, 2] as unknown as Float32Array, { bits: 4 })).rejects.toMatchObject({ code: 'WRONG_DTYPE' });
      await expect(packer.pack(x, { bits: 4 }, allocatePacked(planPack(32, { bits: 4 })))).rejects.toThrow(/allocatePacked/);
      const good = await packer.pack(x, { bits: 4, groupSize: 16 });
      await expect(packer.unpack({ ...good, codes: good.codes.subarray(1) })).rejects.toThrow(/codes must be a Uint8Array/);
      await expect(packer.unpack(good, new Float32Array(3))).rejects.toThrow(/out must be a Float32Array of 64 values/);
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

  it('creates no modules, pipelines, buffers or bind groups once warm, and submits once per call', async () => {
    const fresh = await WebGpuPacker.create(backend);
    const compiled = fresh.stats();
    expect(compiled).toMatchObject({ shaderModules: 1, buffers: 0, bindGroups: 0, submissions: 0 });
    expect(compiled.pipelines).toBeGreaterThan(0);
    const shapes: [number, PackOptions][] = [[4096, { bits: 8, groups: 4 }], [600, { bits: 2, groupSize: 10 }], [9000, { bits: 3, groups: 1, type: 'asymmetric' }]];
    const arrays = shapes.map(([length], i) => weights(length, i));
    const packedOnHost = shapes.map(([length, options]) => allocatePacked(planPack(length, options)));
    const sources = arrays.map((x) => bufferWith(backend.device, x));
    const onDevice = await Promise.all(shapes.map(([length, options], i) => fresh.packBuffer(sources[i]!, length, options)));
    const outs = arrays.map((x) => bufferWith(backend.device, x));
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
  });
});

// One device for both: compiling the kernels for a new device takes seconds on SwiftShader.
describe.skipIf(!available)('WebGpuPacker on a device of its own without subgroups, until it is lost', () => {
  const context = {} as { device: GPUDevice; backend: WebGpuBackend; packer: WebGpuPacker };
  let warn: MockInstance;

  beforeAll(async () => {
    context.device = await testDevice(false);
    context.backend = await WebGpuBackend.create({ gpu: testGpu(), device: context.device });
    context.packer = await WebGpuPacker.create(context.backend);
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

  it('unpack(pack(x)) equals fakeQuantize(x) with workgroup-memory reductions', async () => {
    const { backend, packer } = context;
    expect(backend.usesSubgroups).toBe(false);
    for (const [length, groupSize] of [[63, 7], [4 * 1025, 1025], [3 * (CHUNK_SIZE + 1), CHUNK_SIZE + 1]] as const) {
      for (const options of VARIANTS.filter((o) => [1, 2, 3, 8].includes(o.bits))) {
        const x = tensorFor(length, options.bits + length, options);
        const packed = await packer.pack(x, { ...options, groupSize });
        const fake = await backend.fakeQuantize(x.slice(), { ...options, groupSize });
        expect(differenceFromFake(x, fake, await packer.unpack(packed), packed), `${JSON.stringify(options)}, groups of ${groupSize}`).toBeNull();
      }
    }
  });

  it('then packs host arrays on WebAssembly, with the same codes; GPUBuffers throw DEVICE_LOST', async () => {
    const { device, backend, packer } = context;
    const reference = new WasmPacker(backend.wasm);
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
