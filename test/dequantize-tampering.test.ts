// Packed files handed to dequantize with their scales, zero points or codes tampered with: a
// bad group is a MALFORMED_FILE naming the tensor and the group, nothing is written, and no
// dequantized file ever holds NaN or ±Inf. A table of targeted edits, then a seeded campaign of
// random byte edits (FUZZ_RUNS sets more by hand), on both WebAssembly builds.

import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WasmBackend } from '../src/backends/wasm/backend.js';
import { dequantizeSafetensors } from '../src/formats/dequantize-file.js';
import { quantizeSafetensors, type QuantizeFileOptions } from '../src/formats/quantize-file.js';
import { decodeFloat32, encodeFloat32, encodeSafetensors, memorySource, openSafetensors, readBytes, type SafetensorsFile } from '../src/formats/safetensors.js';
import { WasmPacker } from '../src/backends/wasm/packer.js';
import { memorySink } from './support/memory-sink.js';
import { randomTensor } from './support/fixtures.js';
import { FUZZ_SEED, FUZZ_TIMEOUT_MS, fuzzRuns } from './support/fuzz.js';

let backends: WasmBackend[];
let packers: WasmPacker[];
beforeAll(async () => {
  backends = [await WasmBackend.create('simd'), await WasmBackend.create('scalar')];
  packers = backends.map((b) => new WasmPacker(b));
});
afterAll(() => backends.forEach((b) => b.dispose()));

/** A packed file of one [8, 16] tensor "w" in groups of 16 (8 groups). */
async function packedFile(options: QuantizeFileOptions): Promise<Uint8Array> {
  const model = encodeSafetensors([{ name: 'w', dtype: 'F32', shape: [8, 16], data: encodeFloat32(randomTensor(128, 3, 2), 'F32') }]);
  const sink = memorySink();
  await quantizeSafetensors(memorySource(model), sink, packers[0]!, options);
  return sink.bytes();
}

/** The file with `edit` applied to the bytes of one of its tensors. */
async function tampered(bytes: Uint8Array, part: string, edit: (data: Uint8Array) => void): Promise<Uint8Array> {
  const file = await openSafetensors(memorySource(bytes));
  const tensor = file.tensors.find((t) => t.name === part)!;
  const out = bytes.slice();
  edit(out.subarray(tensor.byteOffset, tensor.byteOffset + tensor.byteLength));
  return out;
}

const setFloat = (index: number, value: number) => (data: Uint8Array) => new DataView(data.buffer, data.byteOffset).setFloat32(index * 4, value, true);

async function allFinite(file: SafetensorsFile): Promise<boolean> {
  for (const t of file.tensors) if (!decodeFloat32(await readBytes(file, t), t.dtype as 'F32').every(Number.isFinite)) return false;
  return true;
}

const CASES: { label: string; options: QuantizeFileOptions; part: string; edit: (data: Uint8Array) => void; group: number; what: RegExp }[] = [
  { label: 'a NaN scale', options: { bits: 4 }, part: 'w.scale', edit: setFloat(0, NaN), group: 0, what: /scale/i },
  { label: 'an infinite scale', options: { bits: 4 }, part: 'w.scale', edit: setFloat(7, Infinity), group: 7, what: /scale/i },
  { label: 'a negative scale', options: { bits: 8 }, part: 'w.scale', edit: setFloat(3, -0.5), group: 3, what: /scale/i },
  { label: 'a scale whose codes overflow', options: { bits: 8 }, part: 'w.scale', edit: setFloat(5, 3e38), group: 5, what: /beyond float32|finite|overflow/i },
  { label: 'a NaN zero point', options: { bits: 5, type: 'asymmetric' }, part: 'w.zero', edit: setFloat(2, NaN), group: 2, what: /zero/i },
  { label: 'an infinite zero point', options: { bits: 5, type: 'asymmetric' }, part: 'w.zero', edit: setFloat(6, -Infinity), group: 6, what: /zero/i },
  { label: 'a NaN ternary alpha', options: { bits: 2 }, part: 'w.scale', edit: setFloat(4, NaN), group: 4, what: /scale|alpha/i },
  {
    label: 'a ternary code 3',
    options: { bits: 2 },
    part: 'w.q',
    edit: (d) => {
      d[4 * 4 + 1]! |= 0b11;
    },
    group: 4,
    what: /code/i,
  },
  { label: 'a NaN binary mean', options: { bits: 1 }, part: 'w.scale', edit: setFloat(1, NaN), group: 1, what: /scale|mean/i },
];

describe.each(['wasm-simd', 'wasm'])('dequantize on %s', (kind) => {
  const packer = () => packers[kind === 'wasm-simd' ? 0 : 1]!;

  it.each(CASES)('refuses $label, naming the tensor and group', async ({ options, part, edit, group, what }) => {
    const bad = await tampered(await packedFile(options), part, edit);
    for (const chunkBytes of [undefined, 64]) {
      const sink = memorySink();
      const attempt = dequantizeSafetensors(memorySource(bad), sink, packer(), chunkBytes ? { chunkBytes } : {});
      await expect(attempt).rejects.toMatchObject({
        code: 'MALFORMED_FILE',
        location: { group },
        message: expect.stringMatching(new RegExp(`packed tensor "w" group ${group} \\(elements ${group * 16}\\.\\.${group * 16 + 15}\\)`)),
      });
      await expect(attempt).rejects.toThrow(what);
      expect(sink.state).toBe('aborted');
    }
  });

  it(
    'never writes a non-finite value, whatever bytes of a packed file change',
    async () => {
      const files = await Promise.all([{ bits: 4 }, { bits: 6, type: 'asymmetric' as const }, { bits: 2 }, { bits: 1 }].map((o) => packedFile(o)));
      await fc.assert(
        fc.asyncProperty(
          fc.nat(files.length - 1),
          fc.constantFrom('w.q', 'w.scale', 'w.zero'),
          fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 6 }),
          async (which, part, edits) => {
            const original = files[which]!;
            const parts = (await openSafetensors(memorySource(original))).tensors.map((t) => t.name);
            if (!parts.includes(part)) return;
            const bad = await tampered(original, part, (data) => {
              for (const [at, value] of edits) data[at % data.length] = value;
            });
            const sink = memorySink();
            try {
              await dequantizeSafetensors(memorySource(bad), sink, packer(), { dtype: 'F32' });
            } catch (error) {
              expect(error).toMatchObject({ code: 'MALFORMED_FILE' });
              expect(sink.state).toBe('aborted');
              return;
            }
            expect(await allFinite(await openSafetensors(memorySource(sink.bytes())))).toBe(true);
          },
        ),
        { seed: FUZZ_SEED, numRuns: fuzzRuns(150) },
      );
    },
    FUZZ_TIMEOUT_MS,
  );
});
