// quantizeSafetensors deciding groups along an axis and on the full grid (options and recipe
// rules): the files dequantize to fakeQuantize of the transposed data, and say which layout
// version they need.

import { describe, expect, it } from 'vitest';
import { WasmBackend } from '../src/backends/wasm/backend.js';
import { WasmPacker } from '../src/backends/wasm/packer.js';
import { axisView, tensorIndexOf } from '../src/formats/axis.js';
import { quantizeSafetensors } from '../src/formats/quantize-file.js';
import { dequantizeSafetensors } from '../src/formats/dequantize-file.js';
import { decodeFloat32, encodeFloat32, encodeSafetensors, memorySource, openSafetensors, readBytes } from '../src/formats/safetensors.js';
import { memorySink } from './support/memory-sink.js';
import { randomTensor } from './support/fixtures.js';
import { decodePackedFile } from './support/independent-decoder.mjs';
import { readPackedLayout } from '../src/formats/packed-metadata.js';

describe('quantizeSafetensors with axis and grid', () => {
  it.each([
    [{ bits: 4, axis: 0, grid: 'full' as const }, [48, 10], 0],
    [{ bits: 8, axis: -2 }, [3, 3, 4, 6], 2],
    [{ bits: 4, recipe: [{ match: 'w', axis: 0, groupSize: 16, grid: 'full' as const }] }, [48, 10], 0],
  ])('%j', async (options, shape, axis) => {
    const backend = await WasmBackend.create('simd');
    const packer = new WasmPacker(backend);
    const length = shape.reduce((a, b) => a * b, 1);
    const values = randomTensor(length, 3, 2);
    const model = encodeSafetensors([{ name: 'w', dtype: 'F32', shape, data: encodeFloat32(values, 'F32') }]);
    for (const chunkBytes of [undefined, 16, 100]) {
      const sink = memorySink();
      const report = await quantizeSafetensors(memorySource(model), sink, packer, { ...options, ...(chunkBytes ? { chunkBytes } : {}) } as never);
      expect(report.packed).toBe(1);
      const entry = decodePackedFile(sink.bytes()).get('w')!.packed!;
      expect(entry.axis).toBe(axis);
      const view = axisView(shape, axis);
      const stream = Float32Array.from({ length }, (_, p) => values[tensorIndexOf(view, p)]!);
      const fake = await backend.fakeQuantize(stream, { bits: entry.bits, groupSize: entry.groupSize, ...(entry.grid ? { grid: entry.grid } : {}) });
      const want = new Float32Array(length);
      fake.forEach((v, p) => {
        want[tensorIndexOf(view, p)] = v + 0;
      });
      const out = memorySink();
      await dequantizeSafetensors(memorySource(sink.bytes()), out, packer, { dtype: 'F32' });
      const file = await openSafetensors(memorySource(out.bytes()));
      expect(Array.from(decodeFloat32(await readBytes(file, file.tensors[0]!), 'F32'), (v) => v + 0)).toEqual(Array.from(want));
    }
    backend.dispose();
  });
});

describe('the layout version a file says', () => {
  const model = () => encodeSafetensors([{ name: 'w', dtype: 'F32', shape: [16, 8], data: encodeFloat32(randomTensor(128, 5), 'F32') }]);
  const formatOf = async (options: object) => {
    const backend = await WasmBackend.create('simd');
    const sink = memorySink();
    await quantizeSafetensors(memorySource(model()), sink, new WasmPacker(backend), { bits: 4, ...options });
    backend.dispose();
    return { bytes: sink.bytes(), format: (await openSafetensors(memorySource(sink.bytes()))).metadata.format };
  };

  it.each([
    [{}, 'edge-moq.packed/1'],
    [{ grid: 'deepspeed' }, 'edge-moq.packed/1'],
    [{ axis: -1 }, 'edge-moq.packed/1'],
    [{ axis: 0 }, 'edge-moq.packed/2'],
    [{ grid: 'full' }, 'edge-moq.packed/2'],
  ])('%j -> %s', async (options, format) => {
    expect((await formatOf(options)).format).toBe(format);
  });

  it('refuses an axis record in a file that says /1 (whose older readers would ignore it)', async () => {
    const { bytes } = await formatOf({ axis: 0 });
    const marker = new TextEncoder().encode('edge-moq.packed/2');
    const at = Buffer.from(bytes).indexOf(Buffer.from(marker));
    const lying = bytes.slice();
    lying[at + marker.length - 1] = '1'.charCodeAt(0);
    const file = await openSafetensors(memorySource(lying));
    expect(() => readPackedLayout(file)).toThrow(/names an axis or grid, which a "edge-moq.packed\/1" file cannot hold/);
  });
});
