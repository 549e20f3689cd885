// Fuzzing safetensors reading and writing. Whatever bytes it is given, openSafetensors either
// returns a table that is consistent with the file (every tensor readable, the tensors' bytes
// covering the data area exactly, no overlaps) or throws an EdgeMoqError; it never throws
// anything else and never hangs. The campaigns: small mutations of valid files (to get deep into
// validation), wild random headers, nesting at every depth and place, duplicate keys at every
// level, hostile sources, and hostile values in the writer's specs (whose contract is success or
// an InvalidInputError, and a file that reads back as written).
// The test runs a few hundred cases each; run a longer campaign with
//   EDGE_MOQ_FUZZ_RUNS=100000 npx vitest run test/safetensors.test.ts -t fuzz

import assert from 'node:assert/strict';
import fc from 'fast-check';
import { EdgeMoqError, InvalidInputError } from '../../src/errors.js';
import {
  createSafetensorsWriter,
  DTYPE_BYTES,
  encodeSafetensors,
  isFloatDtype,
  layoutSafetensors,
  memorySource,
  openSafetensors,
  readBytes,
  readFloat32Chunks,
  type ByteSource,
  type Dtype,
  type SafetensorsFile,
  type TensorBytes,
} from '../../src/formats/safetensors.js';
import { MAX_JSON_DEPTH } from '../../src/formats/strict-json.js';
import { throwingProxy } from './fuzz.js';

const DTYPES = Object.keys(DTYPE_BYTES) as Dtype[];

/** Opens `bytes` and checks whichever way it goes; returns the error, if any. */
export async function checkOpen(bytes: Uint8Array, source: ByteSource = memorySource(bytes)): Promise<EdgeMoqError | null> {
  let file: SafetensorsFile;
  try {
    file = await openSafetensors(source);
  } catch (error) {
    if (!(error instanceof EdgeMoqError)) throw error;
    // A memory source never fails to read, so the only possible complaint is the format.
    assert.equal(error.code, 'MALFORMED_FILE', error.message);
    return error;
  }
  assert.ok(file.dataOffset >= 8 && file.dataOffset <= bytes.length);
  for (const value of Object.values(file.metadata)) assert.equal(typeof value, 'string');
  let end = file.dataOffset;
  let previousOffset = 0;
  for (const tensor of file.tensors) {
    assert.equal(
      tensor.length,
      tensor.shape.reduce((a, b) => a * b, 1),
      tensor.name,
    );
    assert.equal(tensor.byteLength, tensor.length * DTYPE_BYTES[tensor.dtype], tensor.name);
    assert.ok(tensor.byteOffset >= file.dataOffset && tensor.byteOffset + tensor.byteLength <= bytes.length, tensor.name);
    assert.ok(tensor.byteOffset >= previousOffset, 'tensors in data order');
    previousOffset = tensor.byteOffset;
    if (tensor.byteLength > 0) {
      assert.equal(tensor.byteOffset, end, `${tensor.name} must start where the tensor before it ends`);
      end = tensor.byteOffset + tensor.byteLength;
    }
    assert.deepEqual(await readBytes(file, tensor), bytes.subarray(tensor.byteOffset, tensor.byteOffset + tensor.byteLength));
    if (isFloatDtype(tensor.dtype)) {
      let count = 0;
      for await (const chunk of readFloat32Chunks(file, tensor, { chunkElements: 7 })) count += chunk.length;
      assert.equal(count, tensor.length);
    }
  }
  assert.equal(end, bytes.length, "the tensors' bytes end where the file ends");
  return null;
}

const smallShape = fc.array(fc.nat(4), { maxLength: 3 });

/** A valid file of a few small tensors of any dtype. */
const validFile = fc.uniqueArray(fc.record({ name: fc.string({ maxLength: 6 }), dtype: fc.constantFrom(...DTYPES), shape: smallShape }), { maxLength: 4, selector: (t) => t.name }).chain((tensors) =>
  fc
    .tuple(
      fc.tuple(
        ...tensors.map((t) =>
          fc.uint8Array({
            minLength: t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype],
            maxLength: t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype],
          }),
        ),
      ),
      fc.option(fc.dictionary(fc.string({ maxLength: 4 }), fc.string({ maxLength: 4 }), { maxKeys: 2 }), { nil: undefined }),
    )
    .map(([data, metadata]) =>
      encodeSafetensors(
        tensors.map((t, i) => ({ ...t, data: data[i]! })),
        metadata,
      ),
    ),
);

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

const mutatedFile = fc.tuple(validFile, fc.array(mutation, { minLength: 1, maxLength: 4 })).map(([file, mutations]) => mutations.reduce(mutate, file));

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
const plausibleFile = fc
  .record({
    entries: fc.array(fc.record({ name: tensorName, dtype: fc.constantFrom(...DTYPES), shape: smallShape, gap: nudge, slack: nudge }), { maxLength: 5 }),
    metadata: fc.option(fc.dictionary(fc.string({ maxLength: 4 }), fc.string({ maxLength: 4 }), { maxKeys: 2 }), { nil: undefined }),
    padding: fc.nat(9),
    extra: fc.oneof({ weight: 5, arbitrary: fc.nat(4) }, { weight: 1, arbitrary: fc.integer({ min: -3, max: -1 }) }),
  })
  .map(({ entries, metadata, padding, extra }) => {
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

const dimension = fc.oneof({ weight: 6, arbitrary: fc.nat(5) }, { weight: 1, arbitrary: fc.constantFrom(-1, 0.5, 2 ** 53, 2 ** 60, 1e300, '3', null) });

const wildEntry = fc.record(
  {
    dtype: fc.oneof(fc.constantFrom(...DTYPES), fc.string({ maxLength: 5 }), json),
    shape: fc.oneof(fc.array(dimension, { maxLength: 5 }), json),
    data_offsets: fc.oneof(fc.tuple(fc.nat(80), fc.nat(80)), fc.array(fc.integer({ min: -5, max: 2 ** 54 }), { maxLength: 3 }), json),
  },
  { requiredKeys: [] },
);

/** Headers of any shape: wrong types everywhere, missing fields, stray JSON. */
const wildFile = fc
  .record({
    fields: fc.array(
      fc.oneof(
        fc.tuple(tensorName, fc.oneof({ weight: 3, arbitrary: wildEntry }, fc.constantFrom(null, [], 5, 'x'), json)),
        fc.tuple(fc.constant('__metadata__'), fc.oneof(fc.dictionary(fc.string({ maxLength: 4 }), fc.oneof(fc.string(), json), { maxKeys: 3 }), json)),
      ),
      { maxLength: 4 },
    ),
    padding: fc.nat(9),
    dataLength: fc.nat(96),
  })
  .map(({ fields, padding, dataLength }) => fileOf(fields, padding, dataLength));

const randomHeaderFile = fc.oneof({ weight: 3, arbitrary: plausibleFile }, { weight: 1, arbitrary: wildFile });

/** A file whose header is `text` verbatim (so duplicate keys and any nesting reach the parser). */
function fileOfText(text: string, dataLength: number): Uint8Array {
  const header = new TextEncoder().encode(text);
  const file = new Uint8Array(8 + header.length + dataLength);
  new DataView(file.buffer).setBigUint64(0, BigInt(header.length), true);
  file.set(header, 8);
  return file;
}

const U8x2 = '{"dtype":"U8","shape":[2],"data_offsets":[0,2]}';

/**
 * Where nesting goes in a header of one 2-byte tensor "w", and how many arrays and objects
 * enclose that place (the header itself counts).
 */
const NESTING_PLACES: readonly { header: (nested: string) => string; enclosing: number }[] = [
  { header: (n) => `{"__metadata__":{"k":${n}},"w":${U8x2}}`, enclosing: 2 },
  { header: (n) => `{"__metadata__":${n},"w":${U8x2}}`, enclosing: 1 },
  { header: (n) => `{"w":${n}}`, enclosing: 1 },
  { header: (n) => `{"w":{"dtype":"U8","shape":${n},"data_offsets":[0,2]}}`, enclosing: 2 },
  { header: (n) => `{"w":{"dtype":"U8","shape":[2,${n}],"data_offsets":[0,2]}}`, enclosing: 3 },
  { header: (n) => `{"w":{"dtype":${n},"shape":[2],"data_offsets":[0,2]}}`, enclosing: 2 },
  { header: (n) => `{"w":{"dtype":"U8","shape":[2],"data_offsets":${n}}}`, enclosing: 2 },
  { header: (n) => `{"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2],"extra":${n}}}`, enclosing: 2 },
];

/** Arrays and objects nested `levels` deep, around a scalar or nothing. */
const nesting = fc
  .record({
    levels: fc.oneof(fc.integer({ min: 0, max: 2 * MAX_JSON_DEPTH }), fc.integer({ min: MAX_JSON_DEPTH - 4, max: MAX_JSON_DEPTH + 4 }), fc.constant(10_000)),
    kinds: fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }),
    core: fc.constantFrom('', '1', '"x"', 'null'),
  })
  .map(({ levels, kinds, core }) => {
    let open = '';
    let close = '';
    for (let i = 0; i < levels; i++) {
      const isObject = kinds[i % kinds.length]!;
      open += isObject ? '{"a":' : '[';
      close = (isObject ? '}' : ']') + close;
    }
    // An object must hold a value; an array may be empty.
    const needsValue = levels > 0 && kinds[(levels - 1) % kinds.length]!;
    return { text: `${open}${core === '' && needsValue ? '0' : core}${close}`, levels };
  });

const nestedFile = fc.record({ place: fc.constantFrom(...NESTING_PLACES), nested: nesting });

async function checkNesting({ place, nested }: { place: (typeof NESTING_PLACES)[number]; nested: { text: string; levels: number } }) {
  const error = await checkOpen(fileOfText(place.header(nested.text), 2));
  if (place.enclosing + nested.levels > MAX_JSON_DEPTH) {
    assert.match(error?.message ?? 'opened', new RegExp(`nests arrays and objects more than ${MAX_JSON_DEPTH} deep`));
  }
}

/** A valid header as key/value pairs down to its entries, with one pair given twice. */
const duplicatedFile = fc
  .record({
    tensors: fc.uniqueArray(fc.record({ name: fc.oneof(fc.string({ maxLength: 4 }), fc.constantFrom('__proto__', 'constructor')), length: fc.nat(3) }), {
      minLength: 1,
      maxLength: 4,
      selector: (t) => t.name,
    }),
    metadata: fc.uniqueArray(fc.string({ maxLength: 3 }), { minLength: 1, maxLength: 3 }),
    level: fc.constantFrom('tensor', 'entry', 'metadata key', '__metadata__'),
    which: fc.nat(),
    again: fc.boolean(),
  })
  .map(({ tensors, metadata, level, which, again }) => {
    let begin = 0;
    const entries = tensors.map(({ name, length }) => {
      const fields = [
        ['dtype', '"U8"'],
        ['shape', `[${length}]`],
        ['data_offsets', `[${begin},${begin + length}]`],
      ];
      begin += length;
      return { name, fields };
    });
    const pairs = (list: string[][]) => list.map(([k, v]) => `${JSON.stringify(k)}:${v}`);
    const twice = <T>(list: T[]) => {
      const index = which % list.length;
      // The copy goes right after the original or at the end: both are duplicates.
      return again ? [...list, list[index]!] : [...list.slice(0, index + 1), ...list.slice(index)];
    };
    const metadataPairs = metadata.map((k) => [k, '"v"']);
    const entryTexts = entries.map(({ name, fields }, i) => [name, `{${(level === 'entry' && i === which % entries.length ? pairs(twice(fields)) : pairs(fields)).join(',')}}`]);
    const metadataText = `{${pairs(level === 'metadata key' ? twice(metadataPairs) : metadataPairs).join(',')}}`;
    let top = [['__metadata__', metadataText], ...entryTexts];
    if (level === 'tensor') top = [top[0]!, ...twice(entryTexts)];
    if (level === '__metadata__') top = [...top, top[0]!];
    return fileOfText(`{${pairs(top).join(',')}}`, begin);
  });

async function checkDuplicate(bytes: Uint8Array) {
  const error = await checkOpen(bytes);
  assert.match(error?.message ?? 'opened', / has the key .* twice in one object \(at byte \d+\)$/);
}

/** Sizes a ByteSource could claim. */
const claimedSize = fc.oneof(fc.constantFrom(NaN, Infinity, -Infinity, -1, 1.5, 2 ** 53, 2 ** 64, '100', null, undefined, 10n, {}, [8]), fc.nat(200));

async function checkSource([bytes, size]: [Uint8Array, unknown]) {
  const source = { size, read: memorySource(bytes).read } as ByteSource;
  if (Number.isSafeInteger(size) && (size as number) >= 0 && (size as number) <= bytes.length) {
    // A smaller size is a shorter file: everything past it must go unread.
    await checkOpen(bytes.subarray(0, size as number), source);
    return;
  }
  const error = await openSafetensors(source).then(
    () => null,
    (e: unknown) => e,
  );
  if (error === null) return;
  if (!(error instanceof EdgeMoqError)) throw error;
  // Not a size at all, or past the end of the bytes (an IO error reading there, or a header that does not fit).
  const expected = Number.isSafeInteger(size) && (size as number) >= 0 ? ['IO', 'MALFORMED_FILE'] : ['INVALID_ARGUMENT'];
  assert.ok(expected.includes(error.code), `${error.code}: ${error.message}`);
}

// ---- The writer's specs ---------------------------------------------------------------

/** A value made fresh for each case (cycles, Proxies and detached buffers cannot be shared). */
type Make = () => unknown;

const cyclicArray: Make = () => {
  const a: unknown[] = [2];
  a.push(a);
  return a;
};
const cyclicObject: Make = () => {
  const o: Record<string, unknown> = {};
  o.self = o;
  return o;
};
const detached =
  (length: number): Make =>
  () => {
    const array = new Uint8Array(length);
    structuredClone(array.buffer, { transfer: [array.buffer] });
    return array;
  };
class LyingLength extends Uint8Array {
  override get length() {
    return 2;
  }
}

const hostile: fc.Arbitrary<Make> = fc.constantFrom<Make>(
  () => 10n,
  () => 2n ** 300n,
  () => NaN,
  () => -1,
  () => 1.5,
  () => 2 ** 53,
  () => Symbol('s'),
  () => null,
  () => undefined,
  () => '\u001b[2J\u009b\u202e',
  () => '__metadata__',
  () => ({}),
  () => [],
  cyclicArray,
  cyclicObject,
  () => new Proxy([2], {}),
  () => new Proxy(new Uint8Array(2), {}),
  () => new Float32Array(2),
  () => new LyingLength(0),
  detached(2),
  () => ({
    get x() {
      return 1;
    },
  }),
  () => Object.create(null),
  throwingProxy,
  () => ({
    get name() {
      throw new Error('getter');
    },
  }),
);

const specDimension: fc.Arbitrary<Make> = fc.oneof({ weight: 4, arbitrary: fc.nat(3).map((n) => () => n) }, hostile);

/** A spec of one tensor of U8 (so its data length is its element count), with a hostile field now and then. */
const spec = fc
  .record({
    name: fc.oneof({ weight: 4, arbitrary: fc.string({ maxLength: 4 }).map((n) => () => n) }, hostile),
    dtype: fc.oneof({ weight: 4, arbitrary: fc.constant<Make>(() => 'U8') }, hostile),
    shape: fc.oneof({ weight: 3, arbitrary: fc.array(specDimension, { maxLength: 3 }).map((dims) => () => dims.map((d) => d())) }, hostile),
    byteLength: fc.oneof({ weight: 3, arbitrary: fc.constant<Make | null>(null) }, hostile),
    data: fc.oneof({ weight: 4, arbitrary: fc.constant<Make | null>(null) }, hostile),
    viaGetters: fc.boolean(),
  })
  .map(({ name, dtype, shape, byteLength, data, viaGetters }) => () => {
    const fields: Record<string, unknown> = { name: name(), dtype: dtype(), shape: shape() };
    const shapeValue = fields.shape;
    const elements = Array.isArray(shapeValue) && shapeValue.every((d) => typeof d === 'number') ? shapeValue.reduce((a: number, b: number) => a * b, 1) : 0;
    if (byteLength) fields.byteLength = byteLength();
    fields.data = data ? data() : new Uint8Array(Number.isSafeInteger(elements) && elements >= 0 && elements < 1000 ? elements : 0).fill(7);
    if (!viaGetters) return fields;
    // The same fields, each behind a getter (read once by the writer, or the data would differ).
    return Object.defineProperties({}, Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, { get: () => v, enumerable: true }])));
  });

const writerCase = fc.record({
  specs: fc.oneof({ weight: 6, arbitrary: fc.array(fc.oneof({ weight: 6, arbitrary: spec }, hostile), { maxLength: 3 }).map((specs) => () => specs.map((s) => s())) }, hostile),
  metadata: fc.oneof(
    { weight: 3, arbitrary: fc.constant<Make>(() => undefined) },
    {
      weight: 2,
      arbitrary: fc
        .dictionary(fc.string({ maxLength: 3 }), fc.oneof({ weight: 3, arbitrary: fc.string({ maxLength: 3 }).map((v) => () => v) }, hostile), { maxKeys: 2 })
        .map((entries) => () => Object.fromEntries(Object.entries(entries).map(([k, v]) => [k, v()]))),
    },
    hostile,
  ),
  call: fc.constantFrom('encodeSafetensors', 'layoutSafetensors', 'createSafetensorsWriter'),
});

async function checkWriter({ specs, metadata, call }: { specs: Make; metadata: Make; call: string }) {
  const tensors = specs() as TensorBytes[];
  const meta = metadata() as Record<string, string> | undefined;
  try {
    if (call === 'layoutSafetensors') {
      layoutSafetensors(tensors, meta);
    } else if (call === 'createSafetensorsWriter') {
      const writer = await createSafetensorsWriter({ write: async () => undefined, close: async () => undefined, abort: async () => undefined }, { tensors, metadata: meta as Record<string, string> });
      await writer.abort();
    } else {
      const bytes = encodeSafetensors(tensors, meta);
      // What was written reads back: the names in order, and each tensor's bytes.
      const file = await openSafetensors(memorySource(bytes));
      assert.equal(await checkOpen(bytes), null);
      const byName = new Map(file.tensors.map((t) => [t.name, t]));
      for (const tensor of tensors) {
        const info = byName.get(tensor.name)!;
        assert.deepEqual(await readBytes(file, info), new Uint8Array(tensor.data));
      }
    }
  } catch (error) {
    if (!(error instanceof InvalidInputError)) throw error;
    assert.equal(error.code, 'INVALID_ARGUMENT');
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the check is that messages hold no control characters.
    assert.ok(!/[\u0000-\u001f\u007f-\u009f]/.test(error.message), `unescaped control characters in ${JSON.stringify(error.message)}`);
  }
}

/** Runs every campaign, `runs` cases each; a failure is reported with its seed and a shrunk case. */
export async function fuzzSafetensors(runs: number, seed = 20240611): Promise<void> {
  // A case that takes a second is a hang: these files are a few hundred bytes.
  const parameters = { numRuns: runs, seed, timeout: 1000 };
  const opens = async (bytes: Uint8Array) => {
    await checkOpen(bytes);
  };
  await fc.assert(fc.asyncProperty(mutatedFile, opens), parameters);
  await fc.assert(fc.asyncProperty(randomHeaderFile, opens), parameters);
  await fc.assert(fc.asyncProperty(nestedFile, checkNesting), parameters);
  await fc.assert(fc.asyncProperty(duplicatedFile, checkDuplicate), parameters);
  await fc.assert(fc.asyncProperty(fc.tuple(fc.oneof(validFile, plausibleFile), claimedSize), checkSource), parameters);
  await fc.assert(fc.asyncProperty(writerCase, checkWriter), parameters);
}
