import { describe, expect, it } from 'vitest';
import { WasmBackend } from '../src/backends/wasm.js';
import { WasmPacker } from '../src/packed/wasm-packer.js';
import { axisView, tensorIndexOf } from '../src/formats/axis.js';
import { quantizeSafetensors } from '../src/formats/quantize-file.js';
import { dequantizeSafetensors } from '../src/formats/dequantize-file.js';
import { decodeFloat32, encodeFloat32, encodeSafetensors, memorySource, openSafetensors, readBytes } from '../src/formats/safetensors.js';
import { memorySink } from './support/memory-sink.js';
import { randomTensor } from './support/fixtures.js';
import { decodePackedFile } from './support/independent-decoder.mjs';

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
      const entry = decodePackedFile(sink.bytes()).get('w').packed;
      expect(entry.axis).toBe(axis);
      const view = axisView(shape, axis);
      const stream = Float32Array.from({ length }, (_, p) => values[tensorIndexOf(view, p)]!);
      const fake = await backend.fakeQuantize(stream, { bits: entry.bits, groupSize: entry.groupSize, ...(entry.grid ? { grid: entry.grid } : {}) });
      const want = new Float32Array(length); fake.forEach((v, p) => { want[tensorIndexOf(view, p)] = v + 0; });
      const out = memorySink();
      await dequantizeSafetensors(memorySource(sink.bytes()), out, packer, { dtype: 'F32' });
      const file = await openSafetensors(memorySource(out.bytes()));
      expect(Array.from(decodeFloat32(await readBytes(file, file.tensors[0]!), 'F32'), (v) => v + 0)).toEqual(Array.from(want));
    }
    backend.dispose();
  });
});
