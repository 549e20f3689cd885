// Fuzzing the safetensors reader: whatever bytes it is given, openSafetensors either returns a
// table that is consistent with the file (every tensor readable, inside the file, no overlaps)
// or throws an EdgeMoqError; it never throws anything else and never hangs. Two campaigns:
// small mutations of valid files (to get deep into validation) and wild random headers.
// The test runs a few hundred cases; run a longer campaign with
//   EDGE_MOQ_FUZZ_RUNS=100000 npx vitest run test/safetensors.test.ts -t fuzz

import assert from 'node:assert/strict';
import fc from 'fast-check';
import { EdgeMoqError } from '../../src/errors.js';
import {
  DTYPE_BYTES, encodeSafetensors, isFloatDtype, memorySource, openSafetensors, readBytes, readFloat32Chunks,
  type Dtype, type SafetensorsFile,
} from '../../src/formats/safetensors.js';

const DTYPES = Object.keys(DTYPE_BYTES) as Dtype[];

/** Opens `bytes` and checks whichever way it goes. */
export async function checkOpen(bytes: Uint8Array): Promise<void> {
  let file: SafetensorsFile;
  try {
    file = await openSafetensors(memorySource(bytes));
  } catch (error) {
    if (!(error instanceof EdgeMoqError)) throw error;
    // A memory source never fails to read, so the only possible complaint is the format.
    assert.equal(error.code, 'MALFORMED_FILE', error.message);
    return;
  }
  assert.ok(file.dataOffset >= 8 && file.dataOffset <= bytes.length);
  for (const value of Object.values(file.metadata)) assert.equal(typeof value, 'string');
  let end = file.dataOffset;
  let previousOffset = 0;
  for (const tensor of file.tensors) {
    assert.equal(tensor.length, tensor.shape.reduce((a, b) => a * b, 1), tensor.name);
    assert.equal(tensor.byteLength, tensor.length * DTYPE_BYTES[tensor.dtype], tensor.name);
    assert.ok(tensor.byteOffset >= file.dataOffset && tensor.byteOffset + tensor.byteLength <= bytes.length, tensor.name);
    assert.ok(tensor.byteOffset >= previousOffset, 'tensors in data order');
    previousOffset = tensor.byteOffset;
    if (tensor.byteLength > 0) {
      assert.ok(tensor.byteOffset >= end, `${tensor.name} overlaps the tensor before it`);
      end = tensor.byteOffset + tensor.byteLength;
    }
    assert.deepEqual(await readBytes(file, tensor), bytes.subarray(tensor.byteOffset, tensor.byteOffset + tensor.byteLength));
    if (isFloatDtype(tensor.dtype)) {
      let count = 0;
      for await (const chunk of readFloat32Chunks(file, tensor, { chunkElements: 7 })) count += chunk.length;
      assert.equal(count, tensor.length);
    }
  }
}

const smallShape = fc.array(fc.nat(4), { maxLength: 3 });

/** A valid file of a few small tensors of any dtype. */
const validFile = fc.uniqueArray(
  fc.record({ name: fc.string({ maxLength: 6 }), dtype: fc.constantFrom(...DTYPES), shape: smallShape }),
  { maxLength: 4, selector: (t) => t.name },
).chain((tensors) => fc.tuple(
  fc.tuple(...tensors.map((t) => fc.uint8Array({
    minLength: t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype],
    maxLength: t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype],
  }))),
  fc.option(fc.dictionary(fc.string({ maxLength: 4 }), fc.string({ maxLength: 4 }), { maxKeys: 2 }), { nil: undefined }),
).map(([data, metadata]) => encodeSafetensors(
  tensors.map((t, i) => ({ ...t, data: data[i]! })), metadata)));

type Mutation =
  | { kind: 'set'; at: number; value: number }
  | { kind: 'digit'; at: number; value: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; count: number }
  | { kind: 'length'; delta: bigint };

// Weighted towards changes that keep the file nearly valid, which reach the later checks;
// the rest mostly die at the length prefix or the JSON parser.
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('digit' as const), at: fc.nat(), value: fc.nat(9) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.nat(255) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 8 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('length' as const), delta: fc.oneof(fc.bigInt({ min: -4n, max: 4n }), fc.bigInt({ min: 0n, max: 2n ** 64n })) }) },
);

function mutate(file: Uint8Array, m: Mutation): Uint8Array {
  const at = 'at' in m ? m.at % (file.length + 1) : 0;
  switch (m.kind) {
    case 'set': {
      const out = file.slice();
      if (at < out.length) out[at] = m.value;
      return out;
    }
    case 'digit': {
      // Changing a digit of the header keeps it JSON while moving an offset or a dimension.
      const out = file.slice();
      const digits = [...out.keys()].filter((i) => i >= 8 && out[i]! >= 0x30 && out[i]! <= 0x39);
      if (digits.length > 0) out[digits[at % digits.length]!] = 0x30 + m.value;
      return out;
    }
    case 'truncate':
      return file.slice(0, at);
    case 'insert':
      return Uint8Array.from([...file.subarray(0, at), ...m.bytes, ...file.subarray(at)]);
    case 'delete':
      return Uint8Array.from([...file.subarray(0, at), ...file.subarray(at + m.count)]);
    case 'length': {
      const out = file.slice();
      if (out.length < 8) return out;
      const view = new DataView(out.buffer);
      view.setBigUint64(0, BigInt.asUintN(64, view.getBigUint64(0, true) + m.delta), true);
      return out;
    }
  }
}

const mutatedFile = fc.tuple(validFile, fc.array(mutation, { minLength: 1, maxLength: 4 }))
  .map(([file, mutations]) => mutations.reduce(mutate, file));

/** A file with `fields` as its header (serialised by hand so that "__proto__" and duplicate keys reach the parser). */
function fileOf(fields: [string, unknown][], padding: number, dataLength: number): Uint8Array {
  const header = new TextEncoder().encode(`{${fields.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}${' '.repeat(padding)}`);
  const file = new Uint8Array(8 + header.length + dataLength);
  new DataView(file.buffer).setBigUint64(0, BigInt(header.length), true);
  file.set(header, 8);
  file.fill(0x5a, 8 + header.length);
  return file;
}

const nudge = fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: -6, max: 6 }) });
const tensorName = fc.oneof(fc.string({ maxLength: 3 }), fc.constantFrom('__proto__', 'w'));

/**
 * Tensors laid out one after another, then nudged: gaps, overlaps, offsets that miss the
 * shape, data areas a little short or long, duplicate names.
 */
const plausibleFile = fc.record({
  entries: fc.array(fc.record({ name: tensorName, dtype: fc.constantFrom(...DTYPES), shape: smallShape, gap: nudge, slack: nudge }), { maxLength: 5 }),
  metadata: fc.option(fc.dictionary(fc.string({ maxLength: 4 }), fc.string({ maxLength: 4 }), { maxKeys: 2 }), { nil: undefined }),
  padding: fc.nat(9),
  extra: fc.oneof({ weight: 5, arbitrary: fc.nat(4) }, { weight: 1, arbitrary: fc.integer({ min: -3, max: -1 }) }),
}).map(({ entries, metadata, padding, extra }) => {
  let end = 0;
  const fields: [string, unknown][] = entries.map(({ name, dtype, shape, gap, slack }) => {
    const begin = end + gap;
    end = begin + shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype] + slack;
    return [name, { dtype, shape, data_offsets: [begin, end] }];
  });
  if (metadata) fields.unshift(['__metadata__', metadata]);
  return fileOf(fields, padding, Math.max(0, end + extra));
});

const json = fc.jsonValue({ maxDepth: 2 });

const dimension = fc.oneof(
  { weight: 6, arbitrary: fc.nat(5) },
  { weight: 1, arbitrary: fc.constantFrom(-1, 0.5, 2 ** 53, 2 ** 60, 1e300, '3', null) },
);

const wildEntry = fc.record({
  dtype: fc.oneof(fc.constantFrom(...DTYPES), fc.string({ maxLength: 5 }), json),
  shape: fc.oneof(fc.array(dimension, { maxLength: 5 }), json),
  data_offsets: fc.oneof(fc.tuple(fc.nat(80), fc.nat(80)), fc.array(fc.integer({ min: -5, max: 2 ** 54 }), { maxLength: 3 }), json),
}, { requiredKeys: [] });

/** Headers of any shape: wrong types everywhere, missing fields, stray JSON. */
const wildFile = fc.record({
  fields: fc.array(fc.oneof(
    fc.tuple(tensorName, fc.oneof({ weight: 3, arbitrary: wildEntry }, fc.constantFrom(null, [], 5, 'x'), json)),
    fc.tuple(fc.constant('__metadata__'), fc.oneof(fc.dictionary(fc.string({ maxLength: 4 }), fc.oneof(fc.string(), json), { maxKeys: 3 }), json)),
  ), { maxLength: 4 }),
  padding: fc.nat(9),
  dataLength: fc.nat(96),
}).map(({ fields, padding, dataLength }) => fileOf(fields, padding, dataLength));

const randomHeaderFile = fc.oneof({ weight: 3, arbitrary: plausibleFile }, { weight: 1, arbitrary: wildFile });

/** Runs both campaigns, `runs` cases each; a failure is reported with its seed and a shrunk case. */
export async function fuzzSafetensors(runs: number, seed = 20240611): Promise<void> {
  // A case that takes a second is a hang: these files are a few hundred bytes.
  const parameters = { numRuns: runs, seed, timeout: 1000 };
  await fc.assert(fc.asyncProperty(mutatedFile, checkOpen), parameters);
  await fc.assert(fc.asyncProperty(randomHeaderFile, checkOpen), parameters);
}
