// Headers written to hurt: nesting that overflows a recursive walk, names given twice so that
// one tensor hides another, bytes that belong to no tensor, names that drive a terminal. Every
// one is a MALFORMED_FILE error that says where, never a raw RangeError and never a silent
// success; the edge-moq packed metadata (JSON inside a metadata string) gets the same checks.

import { describe, expect, it } from 'vitest';
import { FormatError } from '../src/errors.js';
import { readPackedLayout } from '../src/formats/packed-metadata.js';
import { encodeSafetensors, memorySource, openSafetensors } from '../src/formats/safetensors.js';
import { MAX_JSON_DEPTH } from '../src/formats/strict-json.js';
import { PACKED_FORMAT } from '../src/packed/layout.js';

/** A file whose header is `header` verbatim (duplicate keys and all), padded to 8 bytes, then `dataLength` bytes. */
function fileWithHeader(header: string, dataLength: number): Uint8Array {
  const text = new TextEncoder().encode(header);
  const headerLength = Math.ceil(text.length / 8) * 8;
  const file = new Uint8Array(8 + headerLength + dataLength).fill(0x20, 8, 8 + headerLength);
  new DataView(file.buffer).setBigUint64(0, BigInt(headerLength), true);
  file.set(text, 8);
  return file;
}

const DEEP = `${'['.repeat(10_000)}${']'.repeat(10_000)}`;
const U8x2 = (begin: number) => `{"dtype":"U8","shape":[2],"data_offsets":[${begin},${begin + 2}]}`;
const nestedArrays = (levels: number) => `${'['.repeat(levels)}${']'.repeat(levels)}`;

async function malformed(bytes: Uint8Array): Promise<FormatError> {
  const error = await openSafetensors(memorySource(bytes)).then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(FormatError);
  expect(error).toMatchObject({ code: 'MALFORMED_FILE' });
  return error as FormatError;
}

describe('nesting', () => {
  // Each held a 10,000-deep array that overflowed the stack while the message was built.
  const CASES: [string, string, number][] = [
    ['a metadata value', `{"__metadata__":{"k":${DEEP}},"w":${U8x2(0)}}`, 2],
    ['a shape', `{"w":{"dtype":"U8","shape":${DEEP},"data_offsets":[0,2]}}`, 2],
    ['a dimension', `{"w":{"dtype":"U8","shape":[2,${DEEP}],"data_offsets":[0,2]}}`, 2],
    ['a dtype', `{"w":{"dtype":${DEEP},"shape":[2],"data_offsets":[0,2]}}`, 2],
    ['an entry', `{"w":${DEEP}}`, 0],
    ['data_offsets', `{"w":{"dtype":"U8","shape":[2],"data_offsets":${DEEP}}}`, 2],
    ['an extra field of objects', `{"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2],"x":${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}}}`, 2],
    ['the metadata itself', `{"__metadata__":${DEEP}}`, 0],
  ];
  it.each(CASES)('in %s is MALFORMED_FILE, not a RangeError', async (_, header, dataLength) => {
    const error = await malformed(fileWithHeader(header, dataLength));
    expect(error.message).toMatch(new RegExp(`^the header \\(bytes 8-\\d+\\) nests arrays and objects more than ${MAX_JSON_DEPTH} deep \\(at byte \\d+\\)`));
  });

  it('points at the first bracket too deep, in bytes of the file', async () => {
    // The name's two-byte characters make byte and character offsets differ.
    const header = `{"ü":${U8x2(0)},"w":{"dtype":"U8","shape":${DEEP},"data_offsets":[2,4]}}`;
    const error = await malformed(fileWithHeader(header, 4));
    const firstBracket = new TextEncoder().encode(header.slice(0, header.indexOf('[['))).length;
    expect(error.message).toContain(`(at byte ${8 + firstBracket + MAX_JSON_DEPTH - 2})`);
  });

  // The header is level 1 and an entry level 2, so a field of the entry may nest 62 more.
  it.each([
    [MAX_JSON_DEPTH - 2, true],
    [MAX_JSON_DEPTH - 1, false],
  ])('an entry field nested %i levels deep is accepted: %s', async (levels, accepted) => {
    const bytes = fileWithHeader(`{"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2],"x":${nestedArrays(levels)}}}`, 2);
    if (accepted) expect((await openSafetensors(memorySource(bytes))).tensors.map((t) => t.name)).toEqual(['w']);
    else await malformed(bytes);
  });
});

describe('duplicate keys', () => {
  // JSON.parse keeps the last of duplicate keys: each of these opened without a word, the
  // first tensor (or field) silently dropped.
  const CASES: [string, string, number, string][] = [
    ['a tensor named twice', `{"w":${U8x2(0)},"w":${U8x2(2)}}`, 4, '"w"'],
    ['a tensor named "__proto__" twice', `{"__proto__":${U8x2(0)},"__proto__":${U8x2(2)}}`, 4, '"__proto__"'],
    ['dtype twice in an entry', '{"w":{"dtype":"F32","dtype":"U8","shape":[2],"data_offsets":[0,2]}}', 2, '"dtype"'],
    ['data_offsets twice in an entry', '{"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2],"data_offsets":[2,4]}}', 4, '"data_offsets"'],
    ['__metadata__ twice', `{"__metadata__":{"a":"1"},"w":${U8x2(0)},"__metadata__":{"b":"2"}}`, 2, '"__metadata__"'],
    ['a metadata key twice', `{"__metadata__":{"format":"pt","format":"edge-moq.packed/1"},"w":${U8x2(0)}}`, 2, '"format"'],
  ];
  it.each(CASES)('%s is MALFORMED_FILE', async (_, header, dataLength, key) => {
    const error = await malformed(fileWithHeader(header, dataLength));
    const second = new TextEncoder().encode(header.slice(0, header.lastIndexOf(key))).length;
    expect(error.message).toBe(`the header (bytes 8-${7 + Math.ceil(new TextEncoder().encode(header).length / 8) * 8}) has the key ${key} twice in one object (at byte ${8 + second})`);
  });
});

describe('bytes that belong to no tensor', () => {
  // The reference implementation rejects each of these: the data must be exactly the tensors'
  // bytes, one after another. The header is 128 bytes here, so data byte 0 is file byte 136.
  const header = (fields: string) => `{${fields}}`.padEnd(128);
  const CASES: [string, string, number, string][] = [
    ['a gap between tensors', `"a":${U8x2(0)},"b":${U8x2(4)}`, 6, "data bytes [2, 4) (file bytes 138-139) belong to no tensor: they lie between tensors 'a' and 'b'"],
    ['a gap before the first tensor', `"a":${U8x2(2)}`, 4, "data bytes [0, 2) (file bytes 136-137) belong to no tensor: they lie before tensor 'a'"],
    ['bytes after the last tensor', `"a":${U8x2(0)},"b":${U8x2(2)}`, 7, "data bytes [4, 7) (file bytes 140-142) belong to no tensor: they lie after tensor 'b', the last"],
    ['bytes and no tensors', '', 3, 'data bytes [0, 3) (file bytes 136-138) belong to no tensor: the file has no tensor data'],
    ['bytes and only empty tensors', '"e":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}', 1, 'data bytes [0, 1) (file byte 136) belong to no tensor: the file has no tensor data'],
  ];
  it.each(CASES)('%s is MALFORMED_FILE naming the range', async (_, fields, dataLength, message) => {
    const error = await malformed(fileWithHeader(header(fields), dataLength));
    expect(error.message).toBe(`${message}; safetensors data must run from the end of the header to the end of the file without gaps`);
  });

  it("accepts our own writer's files, empty tensors included", async () => {
    const file = encodeSafetensors(
      [
        { name: 'e', dtype: 'F32', shape: [0], data: new Uint8Array(0) },
        { name: 'a', dtype: 'U8', shape: [3], data: new Uint8Array(3) },
        { name: 'f', dtype: 'F16', shape: [2, 0], data: new Uint8Array(0) },
        { name: 'b', dtype: 'F16', shape: [2], data: new Uint8Array(4) },
      ],
      { note: 'x' },
    );
    expect((await openSafetensors(memorySource(file))).tensors.map((t) => t.name)).toEqual(['e', 'a', 'f', 'b']);
  });
});

describe('names in messages', () => {
  it.each([
    ['a terminal escape', '\u001b[2J\u001b[H all tensors verified OK', "tensor '\\u001b[2J\\u001b[H all tensors verified OK' has unknown dtype"],
    ['a C1 control and a bidi override', 'w\u009b\u202e', "tensor 'w\\u009b\\u202e' has unknown dtype"],
  ])('%s comes out escaped', async (_, name, message) => {
    const error = await malformed(fileWithHeader(JSON.stringify({ [name]: { dtype: 'Q9', shape: [2], data_offsets: [0, 2] } }), 2));
    expect(error.message).toContain(message);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the assertion is that no control character reaches the message.
    expect(error.message).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u202e]/);
  });
});

describe('edge-moq packed metadata', () => {
  /** A packed file with one 4-bit tensor "w" of 8 elements in one group, and `edgeMoq` as its packing records. */
  async function packedFile(edgeMoq: string) {
    const file = encodeSafetensors(
      [
        { name: 'w.q', dtype: 'U8', shape: [4], data: new Uint8Array(4) },
        { name: 'w.scale', dtype: 'F32', shape: [1], data: new Uint8Array(4) },
      ],
      { format: PACKED_FORMAT, 'edge-moq': edgeMoq },
    );
    return openSafetensors(memorySource(file));
  }
  const ENTRY = '{"bits":4,"type":"symmetric","groupSize":8,"shape":[8],"dtype":"F32"}';

  it('reads a well-formed record', async () => {
    expect(readPackedLayout(await packedFile(`{"w":${ENTRY}}`)).packed.map((p) => p.name)).toEqual(['w']);
  });

  const CASES: [string, string, RegExp][] = [
    [
      'a 10,000-deep shape',
      `{"w":{"bits":4,"type":"symmetric","groupSize":8,"shape":${DEEP},"dtype":"F32"}}`,
      new RegExp(
        `^__metadata__\\["edge-moq"\\] nests arrays and objects more than 64 deep \\(at character ${'{"w":{"bits":4,"type":"symmetric","groupSize":8,"shape":'.length + MAX_JSON_DEPTH - 2}\\)`,
      ),
    ],
    ['a 10,000-deep dtype', `{"w":{"bits":4,"type":"symmetric","groupSize":8,"shape":[8],"dtype":${DEEP}}}`, /nests arrays and objects more than 64 deep/],
    ['a tensor listed twice', `{"w":${ENTRY},"w":${ENTRY}}`, /^__metadata__\["edge-moq"\] has the key "w" twice in one object \(at character \d+\)/],
    ['bits twice', '{"w":{"bits":2,"bits":4,"type":"symmetric","groupSize":8,"shape":[8],"dtype":"F32"}}', /has the key "bits" twice/],
    ['not JSON', '{"w":', /^__metadata__\["edge-moq"\] is not JSON: expected a value, the text ends \(at character 5\)/],
    ['a name with control characters', `{"w\\u001b[2J":${ENTRY}}`, /^"w\\u001b\[2J" is listed as packed but the file has no tensor "w\\u001b\[2J.q"/],
    ['a dtype with control characters', '{"w":{"bits":4,"type":"symmetric","groupSize":8,"shape":[8],"dtype":"\\u009b"}}', /dtype must be F32, F16 or BF16, got "\\u009b"/],
  ];
  it.each(CASES)('%s is MALFORMED_FILE', async (_, edgeMoq, message) => {
    const file = await packedFile(edgeMoq);
    let error: unknown;
    try {
      readPackedLayout(file);
    } catch (thrown) {
      error = thrown;
    }
    expect(error).toBeInstanceOf(FormatError);
    expect((error as FormatError).message).toMatch(message);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the assertion is that no control character reaches the message.
    expect((error as FormatError).message).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
  });
});
