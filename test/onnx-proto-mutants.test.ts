// The protobuf layer under the ONNX reader and writer (src/formats/onnx/proto.ts), against bytes
// written out by hand: each wire type read, kept byte for byte and written back, and every
// damaged message refused with a FormatError whose whole message says what and where.

import { describe, expect, it } from 'vitest';
import { FormatError } from '../src/errors.js';
import { bytesValue, type Field, intValue, MessageWriter, readFields, readFloats, readInts, stringValue } from '../src/formats/onnx/proto.js';
import { thrown } from './support/thrown.js';

function expectFormatError(call: () => unknown, message: string): void {
  const error = thrown(call);
  expect(error).toBeInstanceOf(FormatError);
  expect((error as FormatError).code).toBe('MALFORMED_FILE');
  expect((error as Error).message).toBe(message);
}

const bytes = (...values: number[]) => Uint8Array.from(values);
const fieldOf = (...values: number[]): Field => readFields(bytes(...values), 'm')[0]!;

// 1: varint 150; 2: "hi"; 3: fixed64 1; 4: fixed32 2.5f; 2 again: empty.
const MESSAGE = bytes(0x08, 0x96, 0x01, 0x12, 0x02, 0x68, 0x69, 0x19, 1, 0, 0, 0, 0, 0, 0, 0, 0x25, 0x00, 0x00, 0x20, 0x40, 0x12, 0x00);

describe('readFields', () => {
  it('lists every field in order with its number, wire type, raw bytes and payload', () => {
    const fields = readFields(MESSAGE, 'm');
    expect(fields.map((f) => [f.number, f.wire, [...f.raw], [...f.payload]])).toEqual([
      [1, 0, [0x08, 0x96, 0x01], [0x96, 0x01]],
      [2, 2, [0x12, 0x02, 0x68, 0x69], [0x68, 0x69]],
      [3, 1, [0x19, 1, 0, 0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0, 0]],
      [4, 5, [0x25, 0x00, 0x00, 0x20, 0x40], [0x00, 0x00, 0x20, 0x40]],
      [2, 2, [0x12, 0x00], []],
    ]);
    // Views of the input, not copies.
    expect(fields[1]!.payload.buffer).toBe(MESSAGE.buffer);
    expect(fields[1]!.payload.byteOffset).toBe(5);
    expect(readFields(new Uint8Array(0), 'm')).toEqual([]);
  });

  it('reads a two-byte field number', () => {
    // Field 16, varint 1: tag 16 << 3 = 128 = 0x80 0x01.
    expect(readFields(bytes(0x80, 0x01, 0x01), 'm').map((f) => [f.number, f.wire])).toEqual([[16, 0]]);
  });

  const tail = 'The file is not ONNX, or it is truncated or damaged; export the model again.';
  it.each([
    ['field number 0', bytes(0x08, 0x01, 0x00, 0x01), `graph is not a valid protobuf message: field number 0 at byte 2. ${tail}`],
    ['wire type 3 (a group)', bytes(0x0b), `graph is not a valid protobuf message: wire type 3 (ONNX uses 0, 1, 2 and 5) at byte 0. ${tail}`],
    ['wire type 4', bytes(0x08, 0x01, 0x0c), `graph is not a valid protobuf message: wire type 4 (ONNX uses 0, 1, 2 and 5) at byte 2. ${tail}`],
    ['wire type 7', bytes(0x0f), `graph is not a valid protobuf message: wire type 7 (ONNX uses 0, 1, 2 and 5) at byte 0. ${tail}`],
  ])('refuses %s', (_name, message, expected) => {
    expectFormatError(() => readFields(message, 'graph'), expected);
  });

  it.each([
    ['a payload past the end', bytes(0x12, 0x05, 0x68)],
    ['a fixed64 cut short', bytes(0x19, 1, 2, 3)],
    ['a fixed32 cut short', bytes(0x25, 1)],
    ['a varint cut short', bytes(0x08, 0x96)],
  ])('refuses %s, at the byte where the field starts', (_name, message) => {
    const error = thrown(() => readFields(message, 'graph'));
    expect(error).toBeInstanceOf(FormatError);
    expect((error as FormatError).code).toBe('MALFORMED_FILE');
    expect((error as Error).message).toMatch(/^graph is not a valid protobuf message: .+ at byte 0\. The file is not ONNX, or it is truncated or damaged; export the model again\.$/);
    expect((error as Error).cause).toBeInstanceOf(Error);
  });
});

describe('field values', () => {
  it('intValue reads varints, negative and large ones included', () => {
    expect(intValue(fieldOf(0x08, 0x96, 0x01), 'n')).toBe(150);
    expect(intValue(fieldOf(0x08, 0x00), 'n')).toBe(0);
    expect(intValue(fieldOf(0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), 'n')).toBe(-1);
    // 2^53 - 1: seven bytes of 0x7f groups, then 0x0f.
    expect(intValue(fieldOf(0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f), 'n')).toBe(2 ** 53 - 1);
    // 2^32: past 32 bits, as external data offsets past 4 GiB are.
    expect(intValue(fieldOf(0x08, 0x80, 0x80, 0x80, 0x80, 0x10), 'n')).toBe(2 ** 32);
  });

  it('intValue refuses 2^53 + 2 and other wire types', () => {
    expectFormatError(() => intValue(fieldOf(0x08, 0x82, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10), 'offset'), 'offset is 9007199254740994, beyond what this reader handles exactly (2^53).');
    expectFormatError(() => intValue(fieldOf(0x12, 0x00), 'dims'), 'dims (field 2) has wire type 2, expected 0: the file is not ONNX or is damaged.');
  });

  it('stringValue decodes UTF-8 and refuses what is not', () => {
    expect(stringValue(fieldOf(0x12, 0x03, 0xc3, 0xbc, 0x78), 'name')).toBe('üx');
    expect(stringValue(fieldOf(0x12, 0x00), 'name')).toBe('');
    expectFormatError(() => stringValue(fieldOf(0x12, 0x02, 0xc3, 0x28), 'name'), 'name is not UTF-8: the file is not ONNX or is damaged.');
    expect((thrown(() => stringValue(fieldOf(0x12, 0x01, 0xff), 'name')) as Error).cause).toBeInstanceOf(TypeError);
    expectFormatError(() => stringValue(fieldOf(0x08, 0x01), 'name'), 'name (field 1) has wire type 0, expected 2: the file is not ONNX or is damaged.');
  });

  it('bytesValue gives the payload and refuses other wire types', () => {
    expect([...bytesValue(fieldOf(0x12, 0x02, 0x01, 0x02), 'raw')]).toEqual([1, 2]);
    expectFormatError(() => bytesValue(fieldOf(0x25, 0, 0, 0, 0), 'raw'), 'raw (field 4) has wire type 5, expected 2: the file is not ONNX or is damaged.');
  });

  it('readInts appends one value per field, or a packed list', () => {
    const into = [7];
    readInts(fieldOf(0x08, 0x03), 'dims', into);
    readInts(fieldOf(0x0a, 0x04, 0x01, 0xac, 0x02, 0x00), 'dims', into);
    readInts(fieldOf(0x0a, 0x00), 'dims', into);
    expect(into).toEqual([7, 3, 1, 300, 0]);
  });

  it('readInts refuses a damaged packed list, an unsafe value and another wire type', () => {
    expectFormatError(() => readInts(fieldOf(0x0a, 0x02, 0x01, 0x80), 'dims', []), 'dims is not a valid packed integer list: the file is damaged.');
    expect((thrown(() => readInts(fieldOf(0x0a, 0x01, 0x80), 'dims', [])) as Error).cause).toBeInstanceOf(RangeError);
    expectFormatError(() => readInts(fieldOf(0x0a, 0x08, 0x82, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10), 'dims', []), 'dims is 9007199254740994, beyond what this reader handles exactly (2^53).');
    expectFormatError(() => readInts(fieldOf(0x0d, 0, 0, 0, 0), 'dims', []), 'dims (field 1) has wire type 5, expected 2: the file is not ONNX or is damaged.');
  });

  it('readFloats appends one fixed32 per field, or a packed list', () => {
    const into = [9];
    readFloats(fieldOf(0x25, 0x00, 0x00, 0x20, 0x40), 'f', into);
    readFloats(fieldOf(0x22, 0x08, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0), 'f', into);
    readFloats(fieldOf(0x22, 0x00), 'f', into);
    expect(into).toEqual([9, 2.5, 1, -2]);
  });

  it('readFloats refuses a packed list that is not whole floats, and another wire type', () => {
    expectFormatError(() => readFloats(fieldOf(0x22, 0x03, 1, 2, 3), 'float_data', []), 'float_data holds 3 bytes, not a whole number of floats.');
    expectFormatError(() => readFloats(fieldOf(0x20, 0x01), 'float_data', []), 'float_data (field 4) has wire type 0, expected 2: the file is not ONNX or is damaged.');
  });
});

describe('MessageWriter', () => {
  it('writes each kind of field as protobuf does, and keeps raw fields as they were', () => {
    const inner = new MessageWriter().int(1, 150);
    const w = new MessageWriter()
      .raw(bytes(0x19, 1, 0, 0, 0, 0, 0, 0, 0))
      .string(2, 'hi')
      .bytes(3, bytes(9, 8))
      .int(4, -1)
      .ints(5, [1, 300])
      .message(6, inner)
      .ints(7, []);
    const expected = [
      0x19, 1, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x02, 0x68, 0x69, 0x1a, 0x02, 9, 8, 0x20, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x2a, 0x03, 0x01, 0xac, 0x02, 0x32, 0x03, 0x08, 0x96,
      0x01, 0x3a, 0x00,
    ];
    expect(w.length).toBe(expected.length);
    expect([...w.finish()]).toEqual(expected);
    expect(new MessageWriter().finish()).toEqual(new Uint8Array(0));
  });

  it('writes a field number past 15 and a length past 127 as multi-byte varints', () => {
    const out = new MessageWriter().bytes(16, new Uint8Array(200)).finish();
    expect([...out.subarray(0, 4)]).toEqual([0x82, 0x01, 0xc8, 0x01]);
    expect(out.length).toBe(204);
  });

  it('reads back what it wrote', () => {
    const out = new MessageWriter()
      .int(1, 2 ** 40)
      .string(2, 'ü')
      .ints(3, [5, 6])
      .finish();
    const fields = readFields(out, 'm');
    expect(intValue(fields[0]!, 'a')).toBe(2 ** 40);
    expect(stringValue(fields[1]!, 'b')).toBe('ü');
    const ints: number[] = [];
    readInts(fields[2]!, 'c', ints);
    expect(ints).toEqual([5, 6]);
  });

  it('refuses a message over 4 GiB, and takes one of exactly 4 GiB - 1', () => {
    const big = new MessageWriter();
    big.length = 2 ** 32;
    expectFormatError(() => new MessageWriter().message(1, big), "a protobuf message of 4294967296 bytes is over the format's 4 GiB limit; keep large tensors in external data.");
    const largest = new MessageWriter();
    largest.length = 2 ** 32 - 1;
    // Only the header is written here: the inner message has no parts.
    expect([...new MessageWriter().message(1, largest).finish()]).toEqual([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]);
  });
});
