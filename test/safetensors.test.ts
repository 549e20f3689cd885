// The safetensors reader and writer: exact float conversions, round trips, chunked reads that
// equal whole reads, a typed and specific error for every malformed file, writes that leave no
// partial file behind, and a fuzz of the reader.

import { mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EdgeMoqError, FormatError, InvalidInputError } from '../src/errors.js';
import { atomicFileSink, fileSource } from '../src/formats/node-file.js';
import {
  DTYPE_BYTES,
  bf16ToF32,
  createSafetensorsWriter,
  decodeFloat32,
  encodeFloat32,
  encodeSafetensors,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  isFloatDtype,
  layoutSafetensors,
  memorySource,
  openSafetensors,
  readByteChunks,
  readBytes,
  readFloat32Chunks,
  swapWords,
  type ByteSink,
  type ByteSource,
  type FloatDtype,
  type SafetensorsWriter,
  type TensorBytes,
  type TensorSpec,
} from '../src/formats/safetensors.js';
import { randomTensor, uniforms } from './support/fixtures.js';
import { fuzzSafetensors } from './support/safetensors-fuzz.js';

const bitsOf = (values: Float32Array) => [...new Uint32Array(values.buffer, values.byteOffset, values.length)];
const lengthOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

function randomBytes(length: number, seed: number): Uint8Array {
  const next = uniforms(seed);
  return Uint8Array.from({ length }, () => Math.floor(next() * 256));
}

/** Tensor bytes: float dtypes hold random values (with signed zeros and infinities up front). */
function tensorBytes(spec: TensorSpec, seed: number): TensorBytes {
  const length = lengthOf(spec.shape);
  if (!isFloatDtype(spec.dtype)) return { ...spec, data: randomBytes(length * DTYPE_BYTES[spec.dtype], seed) };
  const values = randomTensor(length, seed, 1000);
  values.set([-0, Infinity, -Infinity, 0].slice(0, Math.max(0, length - 1)));
  return { ...spec, data: encodeFloat32(values, spec.dtype) };
}

async function collectFloat32(chunks: AsyncIterable<Float32Array>): Promise<{ values: Float32Array; lengths: number[]; buffers: Set<ArrayBufferLike> }> {
  const parts: Float32Array[] = [];
  const buffers = new Set<ArrayBufferLike>();
  for await (const chunk of chunks) {
    parts.push(chunk.slice());
    buffers.add(chunk.buffer);
  }
  const values = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    values.set(p, at);
    at += p.length;
  }
  return { values, lengths: parts.map((p) => p.length), buffers };
}

/** A hand-written file: `header` (bytes, a string or a JSON value), padded to `headerLength` bytes. */
function rawFile(header: unknown, data: Uint8Array | number = 0, headerLength?: number): Uint8Array {
  const text = header instanceof Uint8Array ? header : new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const length = headerLength ?? Math.ceil(text.length / 8) * 8;
  const bytes = typeof data === 'number' ? new Uint8Array(data) : data;
  const file = new Uint8Array(8 + length + bytes.length);
  new DataView(file.buffer).setBigUint64(0, BigInt(length), true);
  file.fill(0x20, 8, 8 + length).set(text, 8);
  file.set(bytes, 8 + length);
  return file;
}

/** A file whose first 8 bytes declare `declared` and whose size is `size`, read lazily. */
function declaringSource(declared: bigint, size: number): ByteSource {
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, declared, true);
  return {
    size,
    async read(offset, into) {
      if (offset !== 0 || into.length !== 8) throw new Error(`read ${into.length} bytes at ${offset}: past the prefix`);
      into.set(prefix);
    },
  };
}

/** A sink in memory that records what happened to it. */
function memorySink(failWrite = false) {
  const chunks: Uint8Array[] = [];
  const sink = {
    state: 'open' as 'open' | 'closed' | 'aborted',
    chunks,
    bytes: () => Uint8Array.from(chunks.flatMap((c) => [...c])),
    async write(bytes: Uint8Array) {
      if (failWrite && chunks.length > 0) throw new Error('disk full');
      chunks.push(bytes.slice());
    },
    async close() {
      sink.state = 'closed';
    },
    async abort() {
      sink.state = 'aborted';
    },
  };
  return sink satisfies ByteSink;
}

describe('float conversions', () => {
  it('swapWords reverses each 4-byte word in place (F32 on a big-endian host), leaving a short tail', () => {
    const bytes = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8, 9, 10);
    swapWords(bytes.subarray(0, 8));
    expect([...bytes]).toEqual([4, 3, 2, 1, 8, 7, 6, 5, 9, 10]);
    swapWords(bytes);
    expect([...bytes]).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('decodes and encodes F32 bytes at any alignment, into part of a reused array, NaN payloads kept', () => {
    // 1.5, -2 and the NaN 0x7fc00001, little-endian, starting one byte into their buffer.
    const bytes = [0, 0, 0xc0, 0x3f, 0, 0, 0, 0xc0, 1, 0, 0xc0, 0x7f];
    const raw = Uint8Array.of(0xee, ...bytes).subarray(1);
    const into = new Float32Array(5).fill(9);
    expect(decodeFloat32(raw, 'F32', into.subarray(1, 4)).buffer).toBe(into.buffer);
    expect([...new Uint32Array(into.buffer)]).toEqual([0x41100000, 0x3fc00000, 0xc0000000, 0x7fc00001, 0x41100000]);
    const out = new Uint8Array(14).fill(0xee);
    encodeFloat32(into.subarray(1, 4), 'F32', out.subarray(1, 13));
    expect([...out]).toEqual([0xee, ...bytes, 0xee]);
  });

  const F16_TO_F32: [string, number, number][] = [
    ['+0', 0x0000, 0],
    ['-0', 0x8000, -0],
    ['1', 0x3c00, 1],
    ['-2', 0xc000, -2],
    ['1/3', 0x3555, 0.333251953125],
    ['smallest subnormal', 0x0001, 2 ** -24],
    ['largest subnormal', 0x03ff, 1023 * 2 ** -24],
    ['-subnormal', 0x8200, -(2 ** -15)],
    ['smallest normal', 0x0400, 2 ** -14],
    ['max', 0x7bff, 65504],
    ['-max', 0xfbff, -65504],
    ['+inf', 0x7c00, Infinity],
    ['-inf', 0xfc00, -Infinity],
    ['nan', 0x7e00, NaN],
    ['signalling nan', 0x7c01, NaN],
  ];
  it.each(F16_TO_F32)('f16ToF32 %s', (_, bits, value) => expect(f16ToF32(bits)).toBe(value));

  const BF16_TO_F32: [string, number, number][] = [
    ['+0', 0x0000, 0],
    ['-0', 0x8000, -0],
    ['1', 0x3f80, 1],
    ['-2', 0xc000, -2],
    ['pi', 0x4049, 3.140625],
    ['smallest subnormal', 0x0001, 2 ** -133],
    ['max', 0x7f7f, (2 - 2 ** -7) * 2 ** 127],
    ['+inf', 0x7f80, Infinity],
    ['-inf', 0xff80, -Infinity],
    ['nan', 0x7fc0, NaN],
  ];
  it.each(BF16_TO_F32)('bf16ToF32 %s', (_, bits, value) => expect(bf16ToF32(bits)).toBe(value));

  const F32_TO_F16: [string, number, number][] = [
    ['+0', 0, 0x0000],
    ['-0', -0, 0x8000],
    ['1', 1, 0x3c00],
    ['-1.5', -1.5, 0xbe00],
    ['0.1', 0.1, 0x2e66],
    ['max', 65504, 0x7bff],
    ['just below the overflow tie', 65519, 0x7bff],
    ['overflow tie goes to inf', 65520, 0x7c00],
    ['1e6 overflows', 1e6, 0x7c00],
    ['+inf', Infinity, 0x7c00],
    ['-inf', -Infinity, 0xfc00],
    ['nan', NaN, 0x7e00],
    ['smallest subnormal', 2 ** -24, 0x0001],
    ['half the smallest subnormal ties to 0', 2 ** -25, 0x0000],
    ['3/4 of the smallest subnormal', 3 * 2 ** -26, 0x0001],
    ['subnormal tie to even 2', 3 * 2 ** -25, 0x0002],
    ['below 2^-25 flushes to 0', 2 ** -26, 0x0000],
    ['-tiny keeps its sign', -(2 ** -30), 0x8000],
    ['tie into the smallest normal', 2047 * 2 ** -25, 0x0400],
    ['smallest normal', 2 ** -14, 0x0400],
    ['tie to even (down)', 1 + 2 ** -11, 0x3c00],
    ['tie to even (up)', 1 + 3 * 2 ** -11, 0x3c02],
    ['just above a tie', 1 + 2 ** -11 + 2 ** -20, 0x3c01],
    ['f32 subnormal', 2 ** -149, 0x0000],
  ];
  it.each(F32_TO_F16)('f32ToF16 %s', (_, value, bits) => expect(f32ToF16(value)).toBe(bits));

  const F32_TO_BF16: [string, number, number][] = [
    ['+0', 0, 0x0000],
    ['-0', -0, 0x8000],
    ['1', 1, 0x3f80],
    ['pi', 3.140625, 0x4049],
    ['tie to even (down)', 1 + 2 ** -8, 0x3f80],
    ['tie to even (up)', 1 + 3 * 2 ** -8, 0x3f82],
    ['just above a tie', 1 + 2 ** -8 + 2 ** -20, 0x3f81],
    ['f32 max rounds to inf', 3.4028234663852886e38, 0x7f80],
    ['+inf', Infinity, 0x7f80],
    ['-inf', -Infinity, 0xff80],
    ['nan', NaN, 0x7fc0],
    ['smallest bf16 subnormal', 2 ** -133, 0x0001],
    ['f32 subnormal flushes', 2 ** -149, 0x0000],
  ];
  it.each(F32_TO_BF16)('f32ToBf16 %s', (_, value, bits) => expect(f32ToBf16(value)).toBe(bits));

  // Every 16-bit pattern: bulk decoding agrees with the scalar functions, and encoding gives the
  // pattern back (a signalling NaN comes back quiet: the 0x0200 / 0x0040 bit set).
  it.each([
    ['F16', f16ToF32, 0x7c00, 0x0200],
    ['BF16', bf16ToF32, 0x7f80, 0x0040],
  ] as const)('%s: all 65536 patterns decode and re-encode exactly', (dtype, scalar, exponentMask, quietBit) => {
    const patterns = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const raw = new Uint8Array(patterns.length * 2);
    patterns.forEach((p, i) => {
      raw[2 * i] = p & 0xff;
      raw[2 * i + 1] = p >> 8;
    });
    const values = decodeFloat32(raw, dtype);
    const isNaNPattern = (p: number) => (p & exponentMask) === exponentMask && (p & ~exponentMask & 0x7fff) !== 0;
    const expectedPatterns = [...patterns].map((p) => (isNaNPattern(p) ? p | quietBit : p));
    const reencoded = encodeFloat32(values, dtype);
    expect([...reencoded].filter((_, i) => i % 2 === 0).map((lo, i) => lo | (reencoded[2 * i + 1]! << 8))).toEqual(expectedPatterns);
    expect([...values].every((v, i) => Object.is(v, scalar(i)))).toBe(true);
  });

  it('F32 bytes decode and re-encode bit for bit, NaN payloads included', () => {
    const raw = randomBytes(4 * 4096, 7);
    raw.set([0x01, 0x00, 0x80, 0x7f], 0); // a signalling NaN
    expect(encodeFloat32(decodeFloat32(raw, 'F32'), 'F32')).toEqual(raw);
  });
});

describe('round trip', () => {
  const SPECS: TensorSpec[] = [
    { name: 'scalar', dtype: 'F32', shape: [] },
    { name: 'vector', dtype: 'F16', shape: [7] },
    { name: 'matrix', dtype: 'BF16', shape: [3, 5] },
    { name: 'empty', dtype: 'F16', shape: [2, 0, 3] },
    { name: 'cube', dtype: 'F32', shape: [2, 3, 4] },
    { name: '10', dtype: 'BF16', shape: [1] }, // integer-like names must keep their place
    { name: '2', dtype: 'F16', shape: [4, 1] },
    { name: 'half scalar', dtype: 'F16', shape: [] },
    { name: 'brain scalar', dtype: 'BF16', shape: [] },
    { name: 'empty32', dtype: 'F32', shape: [0] },
    { name: 'ids', dtype: 'I32', shape: [3] },
    { name: 'mask', dtype: 'BOOL', shape: [2, 2] },
    { name: 'fp8', dtype: 'F8_E4M3', shape: [5] },
  ];
  const TENSORS = SPECS.map((spec, i) => tensorBytes(spec, i + 1));
  const METADATA = { format: 'pt', note: 'ünïcode ✓', ['__proto__']: 'a key like any other' };
  const bytes = encodeSafetensors(TENSORS, METADATA);

  it('gives back every tensor, in order, with its metadata', async () => {
    const file = await openSafetensors(memorySource(bytes));
    expect(file.tensors.map(({ name, dtype, shape, length, byteLength }) => ({ name, dtype, shape, length, byteLength }))).toEqual(
      SPECS.map((s) => ({ ...s, length: lengthOf(s.shape), byteLength: lengthOf(s.shape) * DTYPE_BYTES[s.dtype] })),
    );
    expect(Object.entries(file.metadata)).toEqual(Object.entries(METADATA));
    for (const [i, tensor] of file.tensors.entries()) {
      expect(await readBytes(file, tensor)).toEqual(TENSORS[i]!.data);
      if (!isFloatDtype(tensor.dtype)) continue;
      const { values } = await collectFloat32(readFloat32Chunks(file, tensor, { chunkElements: 4 }));
      expect(bitsOf(values)).toEqual(bitsOf(decodeFloat32(TENSORS[i]!.data, tensor.dtype)));
    }
  });

  it('pads the header with spaces so that the data starts 8-byte aligned', async () => {
    const file = await openSafetensors(memorySource(bytes));
    expect(file.dataOffset % 8).toBe(0);
    const header = new TextDecoder().decode(bytes.subarray(8, file.dataOffset));
    expect(header).toMatch(/^\{.*\} *$/);
    expect(header.length - header.trimEnd().length).toBeLessThan(8);
  });

  it('streams the same bytes as the in-memory encoder, however the data is split', async () => {
    const data = Uint8Array.from(TENSORS.flatMap((t) => [...t.data]));
    for (const split of [1, 5, 64, data.length]) {
      const sink = memorySink();
      const writer = await createSafetensorsWriter(sink, { tensors: SPECS, metadata: METADATA });
      for (let at = 0; at < data.length; at += split) await writer.write(data.subarray(at, at + split));
      await writer.close();
      expect(sink.state).toBe('closed');
      expect(sink.bytes()).toEqual(bytes);
      expect(writer.size).toBe(bytes.length);
    }
  });

  it('lists tensors in the order of their data, not of the header', async () => {
    const file = await openSafetensors(
      memorySource(
        rawFile(
          {
            z: { dtype: 'U8', shape: [2], data_offsets: [4, 6] },
            a: { dtype: 'U8', shape: [4], data_offsets: [0, 4] },
            m: { dtype: 'U8', shape: [0], data_offsets: [6, 6] },
          },
          6,
        ),
      ),
    );
    expect(file.tensors.map((t) => t.name)).toEqual(['a', 'z', 'm']);
  });
});

describe('chunked reads', () => {
  const SHAPE = [6, 10];
  const tensors = (['F32', 'F16', 'BF16'] as const).map((dtype, i) => tensorBytes({ name: dtype, dtype, shape: SHAPE }, 40 + i));
  const bytes = encodeSafetensors(tensors);
  const CASES = (['F32', 'F16', 'BF16'] as const).flatMap((dtype) => [1, 7, 12, 60, 64, 1000].map((chunk) => [dtype, chunk] as const));

  it.each(CASES)('%s in chunks of %i elements equals the whole tensor', async (dtype, chunkElements) => {
    const file = await openSafetensors(memorySource(bytes));
    const tensor = file.tensors.find((t) => t.name === dtype)!;
    const whole = decodeFloat32(await readBytes(file, tensor), dtype);
    const { values, lengths, buffers } = await collectFloat32(readFloat32Chunks(file, tensor, { chunkElements }));
    expect(bitsOf(values)).toEqual(bitsOf(whole));
    expect(lengths).toEqual(Array.from({ length: Math.ceil(60 / chunkElements) }, (_, i) => Math.min(chunkElements, 60 - i * chunkElements)));
    expect(buffers.size).toBe(1); // one reused output buffer
  });

  it("yields views of the caller's buffer when given one", async () => {
    const file = await openSafetensors(memorySource(bytes));
    const into = new Float32Array(16);
    const { buffers } = await collectFloat32(readFloat32Chunks(file, file.tensors[1]!, { chunkElements: 16, into }));
    expect([...buffers]).toEqual([into.buffer]);
  });

  it.each([1, 5, 16, 240, 1000])('raw bytes in chunks of %i equal the whole tensor', async (chunkBytes) => {
    const file = await openSafetensors(memorySource(bytes));
    const tensor = file.tensors[0]!;
    const parts: number[] = [];
    const buffers = new Set<ArrayBufferLike>();
    for await (const chunk of readByteChunks(file, tensor, { chunkBytes })) {
      expect(chunk.length).toBe(Math.min(chunkBytes, tensor.byteLength - parts.length));
      parts.push(...chunk);
      buffers.add(chunk.buffer);
    }
    expect(Uint8Array.from(parts)).toEqual(tensors[0]!.data);
    expect(buffers.size).toBe(1);
  });

  it('an empty tensor yields no chunks', async () => {
    const file = await openSafetensors(memorySource(encodeSafetensors([{ name: 'e', dtype: 'F16', shape: [3, 0], data: new Uint8Array(0) }])));
    expect((await collectFloat32(readFloat32Chunks(file, file.tensors[0]!, { chunkElements: 8 }))).lengths).toEqual([]);
  });

  const mixed = encodeSafetensors([
    { name: 'ids', dtype: 'I32', shape: [2], data: new Uint8Array(8) },
    { name: 'fp8', dtype: 'F8_E5M2', shape: [2], data: new Uint8Array(2) },
    { name: 'w', dtype: 'F16', shape: [8], data: new Uint8Array(16) },
  ]);
  const BAD_READS: { name: string; tensor: string; options: unknown; code: string; message: RegExp }[] = [
    { name: 'an I32 tensor', tensor: 'ids', options: { chunkElements: 4 }, code: 'WRONG_DTYPE', message: /tensor 'ids' is I32; only F32, F16 and BF16 can be quantized/ },
    { name: 'an F8 tensor', tensor: 'fp8', options: { chunkElements: 4 }, code: 'WRONG_DTYPE', message: /tensor 'fp8' is F8_E5M2; only F32, F16 and BF16/ },
    { name: 'chunkElements 0', tensor: 'w', options: { chunkElements: 0 }, code: 'INVALID_ARGUMENT', message: /options.chunkElements must be a positive integer, got 0/ },
    { name: 'fractional chunkElements', tensor: 'w', options: { chunkElements: 1.5 }, code: 'INVALID_ARGUMENT', message: /got 1.5/ },
    { name: 'no options', tensor: 'w', options: undefined, code: 'INVALID_ARGUMENT', message: /options.chunkElements/ },
    {
      name: 'a short output buffer',
      tensor: 'w',
      options: { chunkElements: 4, into: new Float32Array(3) },
      code: 'INVALID_ARGUMENT',
      message: /options.into must be a Float32Array of at least 4 elements/,
    },
    { name: 'a Float64Array output', tensor: 'w', options: { chunkElements: 4, into: new Float64Array(4) }, code: 'INVALID_ARGUMENT', message: /options.into must be a Float32Array/ },
    { name: 'a copy of a tensor entry', tensor: 'copy', options: { chunkElements: 4 }, code: 'INVALID_ARGUMENT', message: /tensor 'w' is not one of this file's tensors/ },
  ];
  it.each(BAD_READS)('readFloat32Chunks refuses $name before reading', async ({ tensor, options, code, message }) => {
    const file = await openSafetensors(memorySource(mixed));
    const info = tensor === 'copy' ? { ...file.tensors[2]! } : file.tensors.find((t) => t.name === tensor)!;
    let error: unknown;
    try {
      readFloat32Chunks(file, info, options as never);
    } catch (thrown) {
      error = thrown;
    }
    expect(error).toBeInstanceOf(InvalidInputError);
    expect(error).toMatchObject({ code, message: expect.stringMatching(message) });
  });
});

describe('malformed files', () => {
  const F32x3 = { dtype: 'F32', shape: [3], data_offsets: [0, 12] };
  const valid = encodeSafetensors([{ name: 'w', dtype: 'F32', shape: [4], data: new Uint8Array(16) }]);
  const CASES: { name: string; source: () => ByteSource; message: RegExp }[] = [
    { name: 'shorter than the length prefix', source: () => memorySource(new Uint8Array(5)), message: /the file is 5 bytes, shorter than the 8-byte header length/ },
    { name: 'header length 2^40', source: () => declaringSource(2n ** 40n, 1234), message: /header length 1099511627776 \(bytes 0-7\) exceeds the file size 1234/ },
    { name: 'header length 2^64-1', source: () => declaringSource(2n ** 64n - 1n, 1234), message: /header length 18446744073709551615 .*exceeds the file size 1234/ },
    { name: 'header over the cap', source: () => declaringSource(150_000_000n, 200_000_000), message: /header length 150000000 exceeds the cap of 100000000 bytes \(100 MB\)/ },
    { name: 'header not UTF-8', source: () => memorySource(rawFile(Uint8Array.of(0x7b, 0xff, 0x7d))), message: /the header \(bytes 8-15\) is not UTF-8 JSON/ },
    { name: 'header not JSON', source: () => memorySource(rawFile('{"w": ')), message: /the header \(bytes 8-15\) is not JSON: expected a value, the text ends \(at byte 16\)/ },
    { name: 'header with a trailing comma', source: () => memorySource(rawFile('{"w": 5,}')), message: /the header \(bytes 8-23\) is not JSON: expected a key \(a string\), found "}" \(at byte 16\)/ },
    { name: 'empty header', source: () => memorySource(rawFile('', 0, 0)), message: /the header \(0 bytes\) is not JSON: expected a value, the text ends \(at byte 8\)/ },
    { name: 'header an array', source: () => memorySource(rawFile([1, 2])), message: /the header .* must be a JSON object of tensors, got \[1,2\]/ },
    { name: 'header null', source: () => memorySource(rawFile('null')), message: /must be a JSON object of tensors, got null/ },
    { name: 'metadata an array', source: () => memorySource(rawFile({ __metadata__: [1] })), message: /__metadata__ must be an object of string values, got \[1\]/ },
    {
      name: 'metadata value not a string',
      source: () => memorySource(rawFile({ __metadata__: { format: 'pt', step: 3 } })),
      message: /__metadata__ value for key 'step' is 3; metadata values must be strings/,
    },
    { name: 'entry not an object', source: () => memorySource(rawFile({ w: 5 })), message: /tensor 'w' must be an object with dtype, shape and data_offsets, got 5/ },
    { name: 'unknown dtype', source: () => memorySource(rawFile({ w: { ...F32x3, dtype: 'Q4' } }, 12)), message: /tensor 'w' has unknown dtype "Q4"; known: F64, F32, F16, BF16/ },
    { name: 'missing dtype', source: () => memorySource(rawFile({ w: { shape: [3], data_offsets: [0, 12] } }, 12)), message: /tensor 'w' has unknown dtype undefined/ },
    { name: 'shape not an array', source: () => memorySource(rawFile({ w: { ...F32x3, shape: '3' } }, 12)), message: /tensor 'w' shape must be an array of dimensions, got "3"/ },
    { name: 'negative dimension', source: () => memorySource(rawFile({ w: { ...F32x3, shape: [3, -2] } }, 12)), message: /tensor 'w' shape\[1\] is -2; dimensions must be integers from 0 to 2\^53-1/ },
    { name: 'fractional dimension', source: () => memorySource(rawFile({ w: { ...F32x3, shape: [1.5] } }, 12)), message: /shape\[0\] is 1.5/ },
    { name: 'unsafe dimension', source: () => memorySource(rawFile({ w: { ...F32x3, shape: [1e20] } }, 12)), message: /shape\[0\] is 100000000000000000000/ },
    {
      name: 'element count overflow',
      source: () => memorySource(rawFile({ w: { ...F32x3, shape: [2 ** 26, 2 ** 26, 2 ** 26] } }, 12)),
      message: /tensor 'w' shape \[67108864,67108864,67108864\] has more than 2\^53-1 elements/,
    },
    {
      name: 'byte count overflow',
      source: () => memorySource(rawFile({ w: { ...F32x3, dtype: 'F64', shape: [2 ** 51] } }, 12)),
      message: /tensor 'w' shape \[2251799813685248\] × F64 is more than 2\^53-1 bytes/,
    },
    {
      name: 'missing data_offsets',
      source: () => memorySource(rawFile({ w: { dtype: 'F32', shape: [3] } }, 12)),
      message: /tensor 'w' data_offsets must be \[begin, end\] with integers 0 <= begin <= end, got undefined/,
    },
    { name: 'reversed data_offsets', source: () => memorySource(rawFile({ w: { ...F32x3, data_offsets: [12, 0] } }, 12)), message: /data_offsets must be .* got \[12,0\]/ },
    { name: 'negative data_offsets', source: () => memorySource(rawFile({ w: { ...F32x3, data_offsets: [-4, 8] } }, 12)), message: /got \[-4,8\]/ },
    { name: 'fractional data_offsets', source: () => memorySource(rawFile({ w: { ...F32x3, data_offsets: [0, 11.5] } }, 12)), message: /got \[0,11.5\]/ },
    { name: 'three data_offsets', source: () => memorySource(rawFile({ w: { ...F32x3, data_offsets: [0, 6, 12] } }, 12)), message: /got \[0,6,12\]/ },
    {
      name: 'data_offsets that do not fit the shape',
      source: () => memorySource(rawFile({ w: { ...F32x3, data_offsets: [0, 10] } }, 12)),
      message: /tensor 'w' data_offsets \[0, 10\] do not match shape \[3\] × F32 = 12 bytes/,
    },
    {
      name: 'a tensor past the end',
      source: () => memorySource(rawFile({ w: { ...F32x3, shape: [4], data_offsets: [0, 16] } }, 12, 64)),
      message: /tensor 'w' ends at byte 88 past the end of the file \(size 84\): the file is truncated/,
    },
    {
      name: 'a valid file cut short',
      source: () => memorySource(valid.subarray(0, valid.length - 1)),
      message: /tensor 'w' ends at byte \d+ past the end of the file \(size \d+\): the file is truncated/,
    },
    { name: 'overlapping tensors', source: () => memorySource(rawFile({ a: F32x3, b: { ...F32x3, data_offsets: [8, 20] } }, 20)), message: /tensors 'a' \[0, 12\] and 'b' \[8, 20\] overlap/ },
    { name: 'a name that needs escaping', source: () => memorySource(rawFile({ 'it\'s "w"\n': 5 })), message: /tensor 'it's \\"w\\"\\n' must be an object/ },
  ];
  it.each(CASES)('$name', async ({ source, message }) => {
    const attempt = openSafetensors(source());
    await expect(attempt).rejects.toThrow(FormatError);
    await expect(attempt).rejects.toThrow(message);
    await expect(attempt).rejects.toMatchObject({ code: 'MALFORMED_FILE' });
  });

  const ACCEPTED: { name: string; file: () => Uint8Array; tensors: string[] }[] = [
    { name: 'no tensors', file: () => rawFile('{}'), tensors: [] },
    { name: 'whitespace padding', file: () => rawFile('{"w": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}\n\t ', 2, 80), tensors: ['w'] },
    { name: 'an empty tensor inside another one', file: () => rawFile({ a: F32x3, e: { dtype: 'F32', shape: [0], data_offsets: [4, 4] } }, 12), tensors: ['a', 'e'] },
    { name: 'fields beyond dtype, shape and data_offsets', file: () => rawFile({ w: { ...F32x3, layout: 'row-major' } }, 12), tensors: ['w'] },
  ];
  it.each(ACCEPTED)('accepts $name', async ({ file, tensors }) => {
    expect((await openSafetensors(memorySource(file()))).tensors.map((t) => t.name)).toEqual(tensors);
  });
});

const CYCLIC_ARRAY: unknown[] = [3];
CYCLIC_ARRAY.push(CYCLIC_ARRAY);
const CYCLIC_OBJECT: Record<string, unknown> = {};
CYCLIC_OBJECT.self = CYCLIC_OBJECT;
const REVOKED = (() => {
  const { proxy, revoke } = Proxy.revocable([], {});
  revoke();
  return proxy;
})();

describe('streaming writer', () => {
  const W: TensorSpec = { name: 'w', dtype: 'F32', shape: [3] };
  const BAD_SPECS: { name: string; tensors: unknown; metadata?: unknown; message: RegExp }[] = [
    { name: 'tensors not an array', tensors: { w: W }, message: /tensors must be an array of \{ name, dtype, shape \}/ },
    { name: 'a duplicate name', tensors: [W, W], message: /tensors\[1\].name must be a unique string other than "__metadata__", got "w"/ },
    { name: 'the name __metadata__', tensors: [{ ...W, name: '__metadata__' }], message: /tensors\[0\].name must be a unique string/ },
    { name: 'an unknown dtype', tensors: [{ ...W, dtype: 'F24' }], message: /tensor 'w' has unknown dtype "F24"/ },
    { name: 'a negative dimension', tensors: [{ ...W, shape: [-1] }], message: /tensor 'w' shape\[0\] is -1/ },
    { name: 'a byteLength that does not fit', tensors: [{ ...W, byteLength: 10 }], message: /tensor 'w' byteLength 10 does not match shape \[3\] × F32 = 12 bytes/ },
    { name: 'a metadata value that is not a string', tensors: [W], metadata: { step: 3 }, message: /metadata value for key 'step' is 3; metadata values must be strings/ },
    // Each of these threw a raw TypeError or RangeError while the message was built.
    { name: 'a BigInt name', tensors: [{ ...W, name: 10n }], message: /tensors\[0\].name must be a unique string other than "__metadata__", got 10n/ },
    { name: 'a BigInt dtype', tensors: [{ ...W, dtype: 4n }], message: /tensor 'w' has unknown dtype 4n/ },
    { name: 'a BigInt dimension', tensors: [{ ...W, shape: [3n] }], message: /tensor 'w' shape\[0\] is 3n; dimensions must be integers/ },
    { name: 'a BigInt byteLength', tensors: [{ ...W, byteLength: 12n }], message: /tensor 'w' byteLength 12n does not match shape \[3\] × F32 = 12 bytes/ },
    { name: 'a cyclic shape', tensors: [{ ...W, shape: CYCLIC_ARRAY }], message: /tensor 'w' shape\[1\] is Array; dimensions must be integers/ },
    { name: 'a cyclic name', tensors: [{ ...W, name: CYCLIC_OBJECT }], message: /tensors\[0\].name must be a unique string .*, got Object/ },
    { name: 'a BigInt metadata value', tensors: [W], metadata: { step: 3n }, message: /metadata value for key 'step' is 3n; metadata values must be strings/ },
    { name: 'a cyclic metadata value', tensors: [W], metadata: { self: CYCLIC_OBJECT }, message: /metadata value for key 'self' is Object; metadata values must be strings/ },
    { name: 'cyclic metadata', tensors: [W], metadata: [CYCLIC_ARRAY], message: /metadata must be an object of string values, got Array/ },
    {
      name: 'a spec whose getter throws',
      tensors: [
        {
          ...W,
          get shape() {
            throw new RangeError('no shape');
          },
        },
      ],
      message: /^tensors\[0\] could not be read: RangeError: no shape$/,
    },
    { name: 'a Proxy of a Uint8Array as a spec', tensors: [new Proxy(new Uint8Array(2), {})], message: /^tensors\[0\] could not be read: TypeError: / },
    { name: 'a revoked Proxy as the tensors', tensors: REVOKED, message: /^tensors could not be read: TypeError: / },
    {
      name: 'metadata whose traps throw',
      tensors: [W],
      metadata: new Proxy(
        {},
        {
          ownKeys() {
            throw new Error('ownKeys trap');
          },
        },
      ),
      message: /^metadata could not be read: Error: ownKeys trap$/,
    },
  ];
  it.each(BAD_SPECS)('refuses $name and aborts the sink', async ({ tensors, metadata, message }) => {
    const sink = memorySink();
    const attempt = createSafetensorsWriter(sink, { tensors, metadata } as never);
    await expect(attempt).rejects.toThrow(InvalidInputError);
    await expect(attempt).rejects.toThrow(message);
    expect(sink.state).toBe('aborted');
    expect(sink.chunks).toEqual([]);
  });

  const TWO: TensorSpec[] = [W, { name: 'b', dtype: 'F16', shape: [2] }];
  it('discards the output when close() finds bytes missing, naming the tensor', async () => {
    const sink = memorySink();
    const writer = await createSafetensorsWriter(sink, { tensors: TWO });
    await writer.write(new Uint8Array(14));
    await expect(writer.close()).rejects.toThrow(/tensor 'b' got 2 of its 4 bytes \(14 of the 16 data bytes were written\); the output was discarded/);
    expect(sink.state).toBe('aborted');
  });

  it('discards the output on a write past the promised bytes, then refuses more', async () => {
    const sink = memorySink();
    const writer = await createSafetensorsWriter(sink, { tensors: TWO });
    await expect(writer.write(new Uint8Array(17))).rejects.toThrow(/a write of 17 bytes at data byte 0 goes past the 16 bytes the header promised/);
    expect(sink.state).toBe('aborted');
    await expect(writer.write(new Uint8Array(1))).rejects.toThrow(/the safetensors writer is aborted/);
  });

  it('aborts the sink when the sink fails, and passes the failure on', async () => {
    const sink = memorySink(true);
    const writer = await createSafetensorsWriter(sink, { tensors: TWO });
    await expect(writer.write(new Uint8Array(4))).rejects.toThrow('disk full');
    expect(sink.state).toBe('aborted');
  });

  it('abort() discards the output', async () => {
    const sink = memorySink();
    const writer = await createSafetensorsWriter(sink, { tensors: TWO });
    await writer.abort();
    expect(sink.state).toBe('aborted');
    await expect(writer.close()).rejects.toThrow(/writer is aborted/);
  });

  it('reports where each tensor goes', async () => {
    const writer = await createSafetensorsWriter(memorySink(), { tensors: TWO });
    const [w, b] = writer.tensors;
    expect(b!.byteOffset).toBe(w!.byteOffset + 12);
    expect(writer.size).toBe(b!.byteOffset + 4);
  });
});

describe('hostile arguments', () => {
  it('reads each field of a spec once, so a getter cannot change a field after it was checked', () => {
    let reads = 0;
    const spec = {
      name: 'w',
      dtype: 'F32',
      get shape() {
        reads++;
        return reads === 1 ? [3] : [1e9];
      },
    } as TensorSpec;
    const layout = layoutSafetensors([spec]);
    expect(reads).toBe(1);
    expect(layout.tensors[0]).toMatchObject({ shape: [3], length: 3, byteLength: 12 });
    expect(layout.size).toBe(layout.header.length + 12);
  });

  const detached = new Uint8Array(12);
  structuredClone(detached.buffer, { transfer: [detached.buffer] });
  class LyingLength extends Uint8Array {
    override get length() {
      return 12;
    }
  }
  const DATA: { name: string; data: unknown; message: RegExp }[] = [
    {
      name: 'a Proxy of a Uint8Array',
      data: new Proxy(new Uint8Array(12), {}),
      message: /tensor 'w' data must be a Uint8Array of 12 bytes .*, got a Proxy or another object that only inherits from Uint8Array.prototype/,
    },
    { name: 'a detached Uint8Array', data: detached, message: /tensor 'w' data must be a Uint8Array of 12 bytes .*, got one whose buffer was detached \(transferred\)/ },
    { name: 'a subclass whose length lies', data: new LyingLength(0), message: /tensor 'w' data must be a Uint8Array of 12 bytes .*, got 0 bytes/ },
    { name: 'a Float32Array', data: new Float32Array(3), message: /tensor 'w' data must be a Uint8Array of 12 bytes .*, got Float32Array/ },
    { name: 'a BigInt', data: 12n, message: /got 12n/ },
  ];
  it.each(DATA)('encodeSafetensors refuses $name as data', ({ data, message }) => {
    const encode = () => encodeSafetensors([{ name: 'w', dtype: 'F32', shape: [3], data: data as Uint8Array }]);
    expect(encode).toThrow(InvalidInputError);
    expect(encode).toThrow(message);
  });

  const SIZES: [string, unknown][] = [
    ['NaN', NaN],
    ['-1', -1],
    ['1.5', 1.5],
    ['Infinity', Infinity],
    ['9007199254740992', 2 ** 53],
    ['"100"', '100'],
    ['undefined', undefined],
    ['10n', 10n],
  ];
  it.each(SIZES)('openSafetensors refuses a source whose size is %s', async (shown, size) => {
    const source = { size, read: () => Promise.reject(new Error('read')) } as unknown as ByteSource;
    const attempt = openSafetensors(source);
    await expect(attempt).rejects.toThrow(InvalidInputError);
    await expect(attempt).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: `source.size must be the file's size in bytes, an integer from 0 to 2^53-1, got ${shown}` });
  });

  it.each([
    ['null', null, /source must be a ByteSource \{ size, read\(offset, into\) \}, got null/],
    ['a source without read()', { size: 100 }, /source must be a ByteSource \{ size, read\(offset, into\) \}, got \{"size":100\}/],
    [
      'a source whose size getter throws',
      {
        get size() {
          throw new Error('stat failed');
        },
        read: async () => undefined,
      },
      /^source could not be read: Error: stat failed$/,
    ],
  ])('openSafetensors refuses %s as the source', async (_, source, message) => {
    await expect(openSafetensors(source as never)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(message) });
  });

  it('checks that a tensor belongs to the file without scanning file.tensors', async () => {
    const file = await openSafetensors(memorySource(encodeSafetensors(Array.from({ length: 100 }, (_, i) => ({ name: `t${i}`, dtype: 'U8' as const, shape: [1], data: new Uint8Array(1) })))));
    let elementReads = 0;
    const tensors = new Proxy(file.tensors, {
      get(target, key, receiver) {
        if (typeof key === 'string' && /^\d+$/.test(key)) elementReads++;
        return Reflect.get(target, key, receiver);
      },
    });
    // A scan (Array.includes) reads every entry up to the one found: O(n) per read, O(n^2) per file.
    await readBytes({ ...file, tensors }, file.tensors[99]!).catch(() => undefined);
    expect(elementReads).toBe(0);
    expect(await readBytes({ ...file }, file.tensors[99]!)).toEqual(new Uint8Array(1));
  });
});

describe('Node files', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edge-moq-safetensors-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const SPECS: TensorSpec[] = [
    { name: 'w', dtype: 'BF16', shape: [40, 3] },
    { name: 'b', dtype: 'F32', shape: [3] },
  ];
  const DATA = SPECS.map((spec, i) => tensorBytes(spec, 90 + i).data);

  async function write(path: string, finish: (writer: SafetensorsWriter) => Promise<unknown>) {
    const writer = await createSafetensorsWriter(atomicFileSink(path), { tensors: SPECS, metadata: { source: 'test' } });
    await finish(writer);
  }

  it('writes a file that reads back, leaving nothing else in the directory', async () => {
    const path = join(dir, 'model.safetensors');
    await write(path, async (writer) => {
      for (const data of DATA) await writer.write(data);
      await writer.close();
    });
    expect(await readdir(dir)).toEqual(['model.safetensors']);
    const source = await fileSource(path);
    try {
      const file = await openSafetensors(source);
      expect(file.metadata).toEqual({ source: 'test' });
      for (const [i, tensor] of file.tensors.entries()) {
        const { values } = await collectFloat32(readFloat32Chunks(file, tensor, { chunkElements: 7 }));
        expect(bitsOf(values)).toEqual(bitsOf(decodeFloat32(DATA[i]!, tensor.dtype as FloatDtype)));
      }
    } finally {
      await source.close();
    }
  });

  const FAILURES: { name: string; finish: (writer: SafetensorsWriter) => Promise<unknown> }[] = [
    {
      name: 'aborted',
      finish: async (writer) => {
        await writer.write(DATA[0]!);
        await writer.abort();
      },
    },
    {
      name: 'closed with bytes missing',
      finish: async (writer) => {
        await writer.write(DATA[0]!);
        await writer.close().catch(() => undefined);
      },
    },
    { name: 'written past the end', finish: (writer) => writer.write(new Uint8Array(1000)).catch(() => undefined) },
  ];
  it.each(FAILURES)('leaves no file, temporary or final, when $name', async ({ finish }) => {
    await write(join(dir, 'model.safetensors'), finish);
    expect(await readdir(dir)).toEqual([]);
  });

  it.each(FAILURES)('leaves an existing file untouched when $name', async ({ finish }) => {
    const path = join(dir, 'model.safetensors');
    await writeFile(path, 'the previous model');
    await write(path, finish);
    expect(await readdir(dir)).toEqual(['model.safetensors']);
    expect(await readFile(path, 'utf8')).toBe('the previous model');
  });

  it('says which path it could not write, and leaves nothing', async () => {
    const path = join(dir, 'missing-directory', 'model.safetensors');
    const attempt = createSafetensorsWriter(atomicFileSink(path), { tensors: SPECS });
    await expect(attempt).rejects.toThrow(EdgeMoqError);
    await expect(attempt).rejects.toMatchObject({ code: 'IO', message: expect.stringContaining(path) });
    expect(await readdir(dir)).toEqual([]);
  });

  it('says which path it could not open', async () => {
    const path = join(dir, 'absent.safetensors');
    await expect(fileSource(path)).rejects.toMatchObject({ code: 'IO', message: expect.stringMatching(/cannot open .*absent.safetensors for reading/) });
  });

  it('notices a file that shrank after it was opened', async () => {
    const path = join(dir, 'model.safetensors');
    await writeFile(path, encodeSafetensors([{ name: 'w', dtype: 'U8', shape: [64], data: new Uint8Array(64) }]));
    const source = await fileSource(path);
    try {
      const file = await openSafetensors(source);
      await truncate(path, file.dataOffset + 10);
      await expect(readBytes(file, file.tensors[0]!)).rejects.toMatchObject({ code: 'IO', message: expect.stringMatching(/ended at byte \d+ .*did it change\?/) });
    } finally {
      await source.close();
    }
  });
});

// Runs a few hundred cases each; EDGE_MOQ_FUZZ_RUNS sets more for a campaign by hand.
const FUZZ_RUNS = Number(process.env.EDGE_MOQ_FUZZ_RUNS ?? 500);
it(
  `fuzz: ${FUZZ_RUNS} cases each of mutated files, random headers, nesting, duplicate keys, hostile sources and hostile writer specs`,
  async () => {
    await fuzzSafetensors(FUZZ_RUNS);
  },
  Math.max(60_000, FUZZ_RUNS * 50),
);

// Oracles independent of the code under test: bytes written out by hand, conversions at the
// edges of each range, chunk lengths listed one by one.
describe('byte layouts written out', () => {
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

  it('a header with metadata, an integer-like name and padding, then the data in order', async () => {
    const json = '{"__metadata__":{"k":"v"},"b":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"1":{"dtype":"F16","shape":[],"data_offsets":[2,4]}}';
    expect(json.length).toBe(130);
    const expected = Uint8Array.from([136, 0, 0, 0, 0, 0, 0, 0, ...new TextEncoder().encode(`${json}      `), 7, 8, 0x00, 0x3c]);
    const specs: TensorSpec[] = [
      { name: 'b', dtype: 'U8', shape: [2] },
      { name: '1', dtype: 'F16', shape: [] },
    ];
    const sink = memorySink();
    const writer = await createSafetensorsWriter(sink, { tensors: specs, metadata: { k: 'v' } });
    expect(writer.size).toBe(148);
    expect(writer.tensors).toEqual([
      { name: 'b', dtype: 'U8', shape: [2], length: 2, byteLength: 2, byteOffset: 144 },
      { name: '1', dtype: 'F16', shape: [], length: 1, byteLength: 2, byteOffset: 146 },
    ]);
    expect(text(sink.bytes())).toBe(text(expected.subarray(0, 144)));
    await writer.write(Uint8Array.of(7));
    await writer.write(Uint8Array.of(8, 0x00, 0x3c));
    expect(sink.state).toBe('open');
    await writer.close();
    expect(sink.state).toBe('closed');
    expect(sink.bytes()).toEqual(expected);
    expect(
      encodeSafetensors(
        [
          { ...specs[0]!, data: Uint8Array.of(7, 8) },
          { ...specs[1]!, data: Uint8Array.of(0, 0x3c) },
        ],
        { k: 'v' },
      ),
    ).toEqual(expected);
  });

  it('no metadata key without metadata, and no padding when the header fills 8-byte words', () => {
    const json = '{"wxyz":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}';
    expect(json.length).toBe(56);
    const layout = layoutSafetensors([{ name: 'wxyz', dtype: 'U8', shape: [1] }]);
    expect(layout.header).toEqual(Uint8Array.from([56, 0, 0, 0, 0, 0, 0, 0, ...new TextEncoder().encode(json)]));
    expect(layout.size).toBe(65);
    expect(layoutSafetensors([{ name: 'wxyz', dtype: 'U8', shape: [1] }], {}).header).toEqual(layout.header);
  });

  it('reads what the bytes say: offsets, lengths and values', async () => {
    const json = '{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"z":{"dtype":"BF16","shape":[1,1],"data_offsets":[4,6]}}';
    const padded = json.padEnd(Math.ceil(json.length / 8) * 8, ' ');
    const file = Uint8Array.from([padded.length, 0, 0, 0, 0, 0, 0, 0, ...new TextEncoder().encode(padded), 0x00, 0x3c, 0x00, 0xc0, 0x80, 0x3f]);
    const opened = await openSafetensors(memorySource(file));
    expect(opened.dataOffset).toBe(8 + padded.length);
    expect(opened.tensors).toEqual([
      { name: 'a', dtype: 'F16', shape: [2], length: 2, byteLength: 4, byteOffset: 8 + padded.length },
      { name: 'z', dtype: 'BF16', shape: [1, 1], length: 1, byteLength: 2, byteOffset: 12 + padded.length },
    ]);
    expect(opened.metadata).toEqual({});
    expect([...(await collectFloat32(readFloat32Chunks(opened, opened.tensors[0]!, { chunkElements: 2 }))).values]).toEqual([1, -2]);
    expect([...(await collectFloat32(readFloat32Chunks(opened, opened.tensors[1]!, { chunkElements: 2 }))).values]).toEqual([1]);
    expect(await readBytes(opened, opened.tensors[1]!)).toEqual(Uint8Array.of(0x80, 0x3f));
  });
});

describe('conversions at the edges of their ranges', () => {
  // [2^16, 2^17) has the exponent right at the overflow test; 2^-14 .. 2^-24 are the subnormals.
  it.each([
    [65536, 0x7c00],
    [-65536, 0xfc00],
    [100000, 0x7c00],
    [131071.99, 0x7c00],
    [2 ** 17, 0x7c00],
    [65519.99, 0x7bff],
    [-65504, 0xfbff],
    [2 ** 15, 0x7800],
    [2 ** -14 - 2 ** -24, 0x03ff],
    [2 ** -24 * 1.5, 0x0002],
    [2 ** -24 * 0.75, 0x0001],
    [-(2 ** -24), 0x8001],
    [0.5 + 2 ** -12, 0x3800],
    [0.5 + 3 * 2 ** -12, 0x3802],
  ])('f32ToF16(%d) is 0x%s', (value, bits) => {
    expect(f32ToF16(value)).toBe(bits);
  });

  it.each([
    [0x7f7f, 3.3895313892515355e38],
    [0x0080, 2 ** -126],
    [0xc2f7, -123.5],
    [0x7fc1, NaN],
  ])('bf16ToF32(0x%s)', (bits, value) => {
    expect(bf16ToF32(bits)).toBe(value);
    expect(bf16ToF32(bits | 0x10000)).toBe(value);
  });

  it.each([
    [0x7bff, 65504],
    [0x0001, 2 ** -24],
    [0x03ff, 2 ** -14 - 2 ** -24],
    [0x0200, 2 ** -15],
    [0x8400, -(2 ** -14)],
    [0xfc00, -Infinity],
  ])('f16ToF32(0x%s)', (bits, value) => {
    expect(f16ToF32(bits)).toBe(value);
    expect(f16ToF32(bits | 0x30000)).toBe(value);
  });

  it('NaN payloads narrow to quiet NaNs that keep their top bits', () => {
    const values = new Float32Array(new Uint32Array([0x7f800001, 0xffc02000, 0x7fbfe000]).buffer);
    expect([...new Uint16Array(encodeFloat32(values, 'F16').buffer)]).toEqual([0x7e00, 0xfe01, 0x7fff]);
    expect([...new Uint16Array(encodeFloat32(values, 'BF16').buffer)]).toEqual([0x7fc0, 0xffc0, 0x7fff]);
  });

  it('encodes into a given buffer and decodes into a given array, longer ones included', () => {
    const into = new Uint8Array(8).fill(0xee);
    const encoded = encodeFloat32(Float32Array.of(1, -2), 'F16', into);
    expect(encoded.buffer).toBe(into.buffer);
    expect(encoded.length).toBe(4);
    expect([...into]).toEqual([0x00, 0x3c, 0x00, 0xc0, 0xee, 0xee, 0xee, 0xee]);
    expect([...encodeFloat32(Float32Array.of(1), 'F32')]).toEqual([0x00, 0x00, 0x80, 0x3f]);
    const out = new Float32Array(3).fill(9);
    const decoded = decodeFloat32(Uint8Array.of(0x00, 0x00, 0x80, 0x3f), 'F32', out);
    expect(decoded.buffer).toBe(out.buffer);
    expect([...decoded]).toEqual([1]);
    expect([...out]).toEqual([1, 9, 9]);
  });

  it.each([
    ['a raw length that is not whole values', () => decodeFloat32(new Uint8Array(3), 'F16'), '3 bytes are not a whole number of F16 values'],
    ['raw not a Uint8Array', () => decodeFloat32([0, 0] as never, 'F16'), 'raw must be a Uint8Array, got [0,0]'],
    ['an integer dtype', () => decodeFloat32(new Uint8Array(4), 'I32' as never), 'dtype must be F32, F16 or BF16, got "I32"'],
    ['values not a Float32Array', () => encodeFloat32(new Float64Array(1) as never, 'F16'), 'values must be a Float32Array, got Float64Array'],
    ['a short output buffer', () => encodeFloat32(new Float32Array(2), 'BF16', new Uint8Array(3)), 'into must be a Uint8Array of at least 4 bytes, got 3 bytes'],
    ['a short output array', () => decodeFloat32(new Uint8Array(8), 'F32', new Float32Array(1)), 'into must be a Float32Array of at least 2 values, got 1 values'],
  ])('refuses %s', (_name, call, message) => {
    expect(call).toThrow(InvalidInputError);
    expect(call).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', message }));
  });
});

describe('chunk lengths listed', () => {
  const file = () =>
    openSafetensors(
      memorySource(
        encodeSafetensors([
          { name: 'pad', dtype: 'U8', shape: [3], data: Uint8Array.of(1, 2, 3) },
          { name: 'w', dtype: 'U8', shape: [10], data: Uint8Array.from({ length: 10 }, (_, i) => 10 + i) },
        ]),
      ),
    );

  it.each([
    [3, [[10, 11, 12], [13, 14, 15], [16, 17, 18], [19]]],
    [
      4,
      [
        [10, 11, 12, 13],
        [14, 15, 16, 17],
        [18, 19],
      ],
    ],
    [9, [[10, 11, 12, 13, 14, 15, 16, 17, 18], [19]]],
    [10, [[10, 11, 12, 13, 14, 15, 16, 17, 18, 19]]],
    [11, [[10, 11, 12, 13, 14, 15, 16, 17, 18, 19]]],
  ])('readByteChunks in chunks of %i, the last one short', async (chunkBytes, expected) => {
    const f = await file();
    const chunks: number[][] = [];
    for await (const chunk of readByteChunks(f, f.tensors[1]!, { chunkBytes })) chunks.push([...chunk]);
    expect(chunks).toEqual(expected);
  });

  it("readByteChunks into a caller's buffer, which may be longer than a chunk", async () => {
    const f = await file();
    const into = new Uint8Array(6);
    const chunks: Uint8Array[] = [];
    for await (const chunk of readByteChunks(f, f.tensors[1]!, { chunkBytes: 4, into })) {
      expect(chunk.buffer).toBe(into.buffer);
      chunks.push(chunk.slice());
    }
    expect(chunks.map((c) => [...c])).toEqual([
      [10, 11, 12, 13],
      [14, 15, 16, 17],
      [18, 19],
    ]);
  });

  it.each([
    [{ chunkBytes: 0 }, 'options.chunkBytes must be a positive integer, got 0'],
    [{ chunkBytes: 2 ** 53 }, 'options.chunkBytes must be a positive integer, got 9007199254740992'],
    [{ chunkBytes: 4, into: new Uint8Array(3) }, 'options.into must be a Uint8Array of at least 4 bytes, got 3 bytes'],
    [{ chunkBytes: 4, into: new Uint16Array(4) }, 'options.into must be a Uint8Array of at least 4 bytes, got Uint16Array'],
  ])('readByteChunks refuses %j before reading', async (options, message) => {
    const f = await file();
    const call = () => readByteChunks(f, f.tensors[1]!, options as never);
    expect(call).toThrow(InvalidInputError);
    expect(call).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', message }));
  });

  it('memorySource refuses reads outside its bytes', async () => {
    const source = memorySource(Uint8Array.of(1, 2, 3, 4));
    const into = new Uint8Array(2);
    await source.read(2, into);
    expect([...into]).toEqual([3, 4]);
    for (const offset of [3, -1, 0.5]) {
      await expect(source.read(offset, new Uint8Array(2))).rejects.toThrow(
        expect.objectContaining({
          code: 'IO',
          message: `cannot read 2 bytes at offset ${offset} of a 4-byte buffer`,
        }),
      );
    }
  });
});
