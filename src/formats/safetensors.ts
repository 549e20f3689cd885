// safetensors: an 8-byte little-endian header length N, N bytes of UTF-8 JSON naming each
// tensor's dtype, shape and data_offsets (relative to the end of the header), then the data.
// Reading and writing go through abstract byte sources and sinks so that the same code serves
// Node, browsers and workers, and through fixed-size chunks so that a model larger than memory
// streams through. Everything a file declares is checked against the file's real size before
// anything is allocated from it.

import { describeError, describeName, describeValue, typeName } from '../describe.js';
import { EdgeMoqError, FormatError, InvalidInputError } from '../errors.js';
import { parseStrictJson } from './strict-json.js';

/** The safetensors dtypes, by their names in the header. */
export type Dtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U64' | 'U32' | 'U16' | 'U8' | 'BOOL' | 'F8_E4M3' | 'F8_E5M2';

// `satisfies` keeps the table and the union in step: a dtype missing here, or one the union lacks, does not compile.
/** Bytes per element of each safetensors dtype. */
export const DTYPE_BYTES = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
} as const satisfies Record<Dtype, number>;

/** The dtypes that convert exactly to float32 (and so can be quantized). */
export type FloatDtype = 'F32' | 'F16' | 'BF16';

export const isFloatDtype = (dtype: Dtype): dtype is FloatDtype => dtype === 'F32' || dtype === 'F16' || dtype === 'BF16';

/** The reference implementation's cap: a longer header is a corrupt length, not a model. */
export const MAX_HEADER_BYTES = 100_000_000;

/** Random access to the bytes of a file, wherever it lives. */
export interface ByteSource {
  readonly size: number;
  /** Fills `into` with the bytes at [offset, offset + into.length), or throws. */
  read(offset: number, into: Uint8Array): Promise<void>;
}

/** Where a file is written, in order. Nothing is final until close(); abort() discards it. */
export interface ByteSink {
  /** Appends `bytes`; they may be reused once it resolves. */
  write(bytes: Uint8Array): Promise<void>;
  /** Makes what was written final. */
  close(): Promise<void>;
  /** Discards what was written. */
  abort(): Promise<void>;
}

/** One tensor of a safetensors file: its header entry and where its bytes are. */
export interface TensorInfo {
  readonly name: string;
  readonly dtype: Dtype;
  readonly shape: readonly number[];
  /** Elements: the product of the shape (1 for a scalar). */
  readonly length: number;
  /** From the start of the file. */
  readonly byteOffset: number;
  readonly byteLength: number;
}

/** An opened safetensors file: its header, checked; the data stays in `source`. */
export interface SafetensorsFile {
  readonly source: ByteSource;
  /** Where the data area starts: 8 + the header length. */
  readonly dataOffset: number;
  /** In the order of their data in the file. */
  readonly tensors: readonly TensorInfo[];
  readonly metadata: Readonly<Record<string, string>>;
}

const MAX_SAFE = '2^53-1';

const isPlainObject = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);

const isDtype = (value: unknown): value is Dtype => typeof value === 'string' && Object.hasOwn(DTYPE_BYTES, value);

type Fail = (message: string) => never;

// Built only for a message: escaping every name of a 100,000-tensor header would cost more
// than the checks.
const tensorLabel = (name: string) => `tensor ${describeName(name)}`;

/**
 * `shape` checked and copied, with its element count; fails (with `fail`) on anything that is
 * not a valid shape. Each dimension is read once, so what was checked is what is kept.
 */
function checkShape(shape: unknown, name: string, fail: Fail): { shape: readonly number[]; length: number } {
  if (!Array.isArray(shape)) fail(`${tensorLabel(name)} shape must be an array of dimensions, got ${describeValue(shape)}`);
  const dims = Array.from(shape as unknown[], (dim, axis) => {
    if (!Number.isSafeInteger(dim) || (dim as number) < 0) {
      fail(`${tensorLabel(name)} shape[${axis}] is ${describeValue(dim)}; dimensions must be integers from 0 to ${MAX_SAFE}`);
    }
    return dim as number;
  });
  const checked = Object.freeze(dims);
  // A zero dimension makes the tensor empty however large the others are.
  if (dims.includes(0)) return { shape: checked, length: 0 };
  let length = 1;
  for (const dim of dims) {
    length *= dim;
    if (length > Number.MAX_SAFE_INTEGER) fail(`${tensorLabel(name)} shape ${describeValue(checked)} has more than ${MAX_SAFE} elements`);
  }
  return { shape: checked, length };
}

function dtypeOf(dtype: unknown, name: string, fail: Fail): Dtype {
  if (!isDtype(dtype)) fail(`${tensorLabel(name)} has unknown dtype ${describeValue(dtype)}; known: ${Object.keys(DTYPE_BYTES).join(', ')}`);
  return dtype as Dtype;
}

function byteLengthOf(length: number, dtype: Dtype, shape: readonly number[], name: string, fail: Fail): number {
  const byteLength = length * DTYPE_BYTES[dtype];
  if (byteLength > Number.MAX_SAFE_INTEGER) fail(`${tensorLabel(name)} shape ${describeValue(shape)} × ${dtype} is more than ${MAX_SAFE} bytes`);
  return byteLength;
}

function metadataOf(metadata: unknown, label: string, fail: Fail): Readonly<Record<string, string>> {
  if (!isPlainObject(metadata)) fail(`${label} must be an object of string values, got ${describeValue(metadata)}`);
  const entries = Object.entries(metadata as object);
  for (const [key, value] of entries) {
    if (typeof value !== 'string') fail(`${label} value for key ${describeName(key)} is ${describeValue(value)}; metadata values must be strings`);
  }
  // fromEntries defines own properties, so a key like "__proto__" stays a key.
  return Object.freeze(Object.fromEntries(entries));
}

const malformed: Fail = (message) => {
  throw new FormatError(message);
};
const invalid: Fail = (message) => {
  throw new InvalidInputError('INVALID_ARGUMENT', message);
};

/**
 * `read()` reads what the caller handed over as `what`; a getter or Proxy trap that throws
 * there (a Proxy of a typed array throws from every getter) becomes an InvalidInputError
 * naming it, with the original as its cause.
 */
function readArgument<T>(what: string, read: () => T): T {
  try {
    return read();
  } catch (cause) {
    if (cause instanceof EdgeMoqError) throw cause;
    throw new InvalidInputError('INVALID_ARGUMENT', `${what} could not be read: ${describeError(cause)}`, { cause });
  }
}

// The typed-array getters themselves, not what a value's prototype chain says: a subclass can
// override `length`, and a Proxy passes `instanceof Uint8Array` while holding no bytes.
const TypedArrayPrototype = Reflect.getPrototypeOf(Uint8Array.prototype) as object;
const intrinsicGetter = (key: PropertyKey) => Reflect.getOwnPropertyDescriptor(TypedArrayPrototype, key)!.get!;
const typedArrayKind = intrinsicGetter(Symbol.toStringTag);
const typedArrayLength = intrinsicGetter('length');
const typedArrayBuffer = intrinsicGetter('buffer');
const typedArrayByteOffset = intrinsicGetter('byteOffset');

type ArrayKind = 'Uint8Array' | 'Float32Array';

function isDetached(buffer: ArrayBufferLike): boolean {
  try {
    // Only a detached buffer refuses a new view.
    new Uint8Array(buffer);
    return false;
  } catch {
    return true;
  }
}

/**
 * The true element count of `value` if it is a `kind` that holds its elements, else what it
 * is instead, as a message shows it.
 */
function elementsOf(value: unknown, kind: ArrayKind): number | string {
  if (typedArrayKind.call(value) !== kind) {
    return typeName(value) === kind ? `a Proxy or another object that only inherits from ${kind}.prototype` : describeValue(value);
  }
  const length = typedArrayLength.call(value) as number;
  if (length === 0 && isDetached(typedArrayBuffer.call(value) as ArrayBufferLike)) return 'one whose buffer was detached (transferred)';
  return length;
}

/** `count` elements from the start of a checked `array`, made without its subclass's constructor. */
function viewOf<T extends Float32Array | Uint8Array>(array: T, count: number): T {
  const View = (typedArrayKind.call(array) === 'Float32Array' ? Float32Array : Uint8Array) as unknown as new (buffer: ArrayBufferLike, byteOffset: number, length: number) => T;
  return new View(typedArrayBuffer.call(array) as ArrayBufferLike, typedArrayByteOffset.call(array) as number, count);
}

// ---- Reading ------------------------------------------------------------------------------

/** Each tensor openSafetensors made, with the list it belongs to: ownership in O(1). */
const tensorLists = new WeakMap<TensorInfo, readonly TensorInfo[]>();

/**
 * Reads and checks the header of a safetensors file; the data is read later, on demand.
 * @param source - the file's bytes, read at the offsets asked for
 * @returns the tensors' entries and the metadata; the data stays in `source`
 * @throws FormatError (`MALFORMED_FILE`) naming the field and offset that break the format
 */
export async function openSafetensors(source: ByteSource): Promise<SafetensorsFile> {
  const [size, read] = readArgument('source', () => (source !== null && typeof source === 'object' ? ([source.size, source.read] as const) : [undefined, undefined]));
  if (typeof read !== 'function') invalid(`source must be a ByteSource { size, read(offset, into) }, got ${describeValue(source)}`);
  if (!Number.isSafeInteger(size) || (size as number) < 0) {
    invalid(`source.size must be the file's size in bytes, an integer from 0 to ${MAX_SAFE}, got ${describeValue(size)}`);
  }
  const fileSize = size as number;
  if (fileSize < 8) {
    malformed(`the file is ${fileSize} bytes, shorter than the 8-byte header length that starts a safetensors file`);
  }
  const prefix = new Uint8Array(8);
  await read.call(source, 0, prefix);
  const declared = new DataView(prefix.buffer).getBigUint64(0, true);
  if (declared > BigInt(fileSize - 8)) {
    malformed(`header length ${declared} (bytes 0-7) exceeds the file size ${fileSize}: not a safetensors file, or a truncated one`);
  }
  const headerLength = Number(declared);
  if (headerLength > MAX_HEADER_BYTES) {
    malformed(`header length ${headerLength} exceeds the cap of ${MAX_HEADER_BYTES} bytes (100 MB) on safetensors headers`);
  }
  const headerBytes = new Uint8Array(headerLength);
  await read.call(source, 8, headerBytes);
  const dataOffset = 8 + headerLength;
  const { tensors, metadata } = parseHeader(headerBytes, fileSize - dataOffset, dataOffset);
  for (const tensor of tensors) tensorLists.set(tensor, tensors);
  return Object.freeze({ source, dataOffset, tensors, metadata });
}

/** The header's JSON: strictly, so that no duplicate key hides a tensor and no nesting overflows a stack. */
function parseHeaderJson(bytes: Uint8Array, where: string): unknown {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (cause) {
    throw new FormatError(`${where} is not UTF-8 JSON: ${(cause as Error).message}`, { cause });
  }
  return parseStrictJson(text, (problem, index) => {
    // Only on failure: the UTF-8 length of the text before the problem is its byte offset.
    const at = 8 + new TextEncoder().encode(text.slice(0, index)).length;
    return malformed(`${where} ${problem} (at byte ${at})`);
  });
}

function parseHeader(bytes: Uint8Array, dataSize: number, dataOffset: number) {
  const where = bytes.length > 0 ? `the header (bytes 8-${dataOffset - 1})` : 'the header (0 bytes)';
  const header = parseHeaderJson(bytes, where);
  if (!isPlainObject(header)) malformed(`${where} must be a JSON object of tensors, got ${describeValue(header)}`);
  const fields = header as Record<string, unknown>;
  const metadata = Object.hasOwn(fields, '__metadata__') ? metadataOf(fields.__metadata__, '__metadata__', malformed) : Object.freeze({});

  const tensors: TensorInfo[] = [];
  for (const name of Object.keys(fields)) {
    if (name === '__metadata__') continue;
    const entry = fields[name];
    if (!isPlainObject(entry)) malformed(`${tensorLabel(name)} must be an object with dtype, shape and data_offsets, got ${describeValue(entry)}`);
    const { dtype: rawDtype, shape: rawShape, data_offsets: offsets } = entry as Record<string, unknown>;
    const dtype = dtypeOf(rawDtype, name, malformed);
    const { shape, length } = checkShape(rawShape, name, malformed);
    const byteLength = byteLengthOf(length, dtype, shape, name, malformed);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(Number.isSafeInteger) || offsets[0] < 0 || offsets[0] > offsets[1]) {
      malformed(`${tensorLabel(name)} data_offsets must be [begin, end] with integers 0 <= begin <= end, got ${describeValue(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    if (end - begin !== byteLength) {
      malformed(`${tensorLabel(name)} data_offsets [${begin}, ${end}] do not match shape ${describeValue(shape)} × ${dtype} = ${byteLength} bytes`);
    }
    if (end > dataSize) {
      malformed(`${tensorLabel(name)} ends at byte ${dataOffset + end} past the end of the file (size ${dataOffset + dataSize}): the file is truncated`);
    }
    tensors.push(Object.freeze({ name, dtype, shape, length, byteOffset: dataOffset + begin, byteLength }));
  }

  // Sort is stable: tensors at the same offset (only empty ones can be) keep header order.
  tensors.sort((a, b) => a.byteOffset - b.byteOffset || a.byteLength - b.byteLength);
  checkTiling(tensors, dataSize, dataOffset);
  return { tensors: Object.freeze(tensors), metadata };
}

/**
 * The tensors' bytes, in data order, must cover the data area exactly, as the reference
 * implementation requires: an overlap means two tensors share bytes, and a gap or trailing bytes
 * mean the header does not describe the file (a tensor lost from the header, or a wrong length).
 * Empty tensors hold no bytes, so they overlap nothing and leave no gap wherever they point.
 */
function checkTiling(tensors: readonly TensorInfo[], dataSize: number, dataOffset: number): void {
  const dataRange = (begin: number, end: number) =>
    `data bytes [${begin}, ${end}) ${end - begin === 1 ? `(file byte ${dataOffset + begin})` : `(file bytes ${dataOffset + begin}-${dataOffset + end - 1})`}`;
  const unclaimed = (begin: number, end: number, where: string): never =>
    malformed(`${dataRange(begin, end)} belong to no tensor: ${where}; safetensors data must run from the end of the header to the end of the file without gaps`);
  let covered = 0;
  let previous: TensorInfo | undefined;
  for (const tensor of tensors) {
    if (tensor.byteLength === 0) continue;
    const begin = tensor.byteOffset - dataOffset;
    if (previous && begin < covered) {
      const range = (t: TensorInfo) => `[${t.byteOffset - dataOffset}, ${t.byteOffset - dataOffset + t.byteLength}]`;
      malformed(`tensors ${describeName(previous.name)} ${range(previous)} and ${describeName(tensor.name)} ${range(tensor)} overlap`);
    }
    if (begin > covered) {
      unclaimed(covered, begin, previous ? `they lie between tensors ${describeName(previous.name)} and ${describeName(tensor.name)}` : `they lie before tensor ${describeName(tensor.name)}`);
    }
    covered = begin + tensor.byteLength;
    previous = tensor;
  }
  if (covered < dataSize) {
    unclaimed(covered, dataSize, previous ? `they lie after tensor ${describeName(previous.name)}, the last` : 'the file has no tensor data');
  }
}

/** A tensor from another file (or a hand-made one) could point anywhere: only take our own. */
function checkOwnTensor(file: SafetensorsFile, tensor: TensorInfo): void {
  const list = tensorLists.get(tensor);
  if (list === undefined || list !== readArgument('file', () => file?.tensors)) {
    const name: unknown = readArgument('tensor', () => tensor?.name);
    invalid(`tensor ${typeof name === 'string' ? describeName(name) : describeValue(name)} is not one of this file's tensors; pass an entry of file.tensors`);
  }
}

/** The first `count` elements of `into`, an output array the caller handed over for reuse. */
function reusedArray<T extends Float32Array | Uint8Array>(into: T, kind: ArrayKind, count: number, unit: string, label = 'into'): T {
  const elements = elementsOf(into, kind);
  if (typeof elements !== 'number' || elements < count) {
    invalid(`${label} must be a ${kind} of at least ${count} ${unit}, got ${typeof elements === 'number' ? `${elements} ${unit}` : elements}`);
  }
  return viewOf(into, count);
}

function checkFloatDtype(dtype: unknown): FloatDtype {
  if (!isDtype(dtype) || !isFloatDtype(dtype)) invalid(`dtype must be F32, F16 or BF16, got ${describeValue(dtype)}`);
  return dtype as FloatDtype;
}

function chunkSize(value: unknown, name: string): number {
  if (!Number.isSafeInteger(value) || (value as number) <= 0) invalid(`options.${name} must be a positive integer, got ${describeValue(value)}`);
  return value as number;
}

/** How readFloat32Chunks cuts a tensor's values. */
export interface Float32ChunkOptions {
  /** Elements per chunk; the last chunk may be shorter. */
  chunkElements: number;
  /** The output buffer to reuse, at least min(chunkElements, tensor.length) long. */
  into?: Float32Array;
}

/**
 * The tensor's values as float32, chunk by chunk. Memory stays at one output buffer and one raw
 * buffer of a chunk each: every yielded array is a view of the same buffer, overwritten by the
 * next iteration, so copy what must outlive it.
 * @param file - an opened file
 * @param tensor - one of `file.tensors`, of dtype F32, F16 or BF16
 * @param options - the chunk length, and the output buffer to reuse
 * @returns the values in order, widened to float32, one chunk per iteration
 * @throws InvalidInputError (`WRONG_DTYPE`, `INVALID_ARGUMENT`) for another dtype or a bad chunk length
 */
export function readFloat32Chunks(file: SafetensorsFile, tensor: TensorInfo, options: Float32ChunkOptions): AsyncGenerator<Float32Array, void, undefined> {
  checkOwnTensor(file, tensor);
  const dtype = tensor.dtype;
  if (!isFloatDtype(dtype)) {
    throw new InvalidInputError('WRONG_DTYPE', `tensor ${describeName(tensor.name)} is ${dtype}; only F32, F16 and BF16 can be quantized`);
  }
  const [chunkElements, into] = readArgument('options', () => [options?.chunkElements, options?.into] as const);
  const chunk = Math.min(chunkSize(chunkElements, 'chunkElements'), tensor.length);
  const out = into === undefined ? new Float32Array(chunk) : reusedArray(into, 'Float32Array', chunk, 'elements', 'options.into');
  const raw = new Uint8Array(chunk * DTYPE_BYTES[dtype]);
  return float32Chunks(file.source, tensor, dtype, chunk, raw, out);
}

async function* float32Chunks(source: ByteSource, tensor: TensorInfo, dtype: FloatDtype, chunk: number, raw: Uint8Array, out: Float32Array) {
  const bytes = DTYPE_BYTES[dtype];
  for (let start = 0; start < tensor.length; start += chunk) {
    const count = Math.min(chunk, tensor.length - start);
    const rawChunk = raw.subarray(0, count * bytes);
    await source.read(tensor.byteOffset + start * bytes, rawChunk);
    yield decodeFloat32(rawChunk, dtype, out.subarray(0, count));
  }
}

/** How readByteChunks cuts a tensor's bytes. */
export interface ByteChunkOptions {
  /** Bytes per chunk; the last chunk may be shorter. */
  chunkBytes: number;
  /** The buffer to reuse, at least min(chunkBytes, tensor.byteLength) long. */
  into?: Uint8Array;
}

/**
 * The tensor's raw bytes, chunk by chunk, each chunk a view of one reused buffer.
 * @param file - an opened file
 * @param tensor - one of `file.tensors`
 * @param options - the chunk length, and the buffer to reuse
 * @returns the bytes in order, one chunk per iteration
 */
export function readByteChunks(file: SafetensorsFile, tensor: TensorInfo, options: ByteChunkOptions): AsyncGenerator<Uint8Array, void, undefined> {
  checkOwnTensor(file, tensor);
  const [chunkBytes, into] = readArgument('options', () => [options?.chunkBytes, options?.into] as const);
  const chunk = Math.min(chunkSize(chunkBytes, 'chunkBytes'), tensor.byteLength);
  const out = into === undefined ? new Uint8Array(chunk) : reusedArray(into, 'Uint8Array', chunk, 'bytes', 'options.into');
  return byteChunks(file.source, tensor, chunk, out);
}

async function* byteChunks(source: ByteSource, tensor: TensorInfo, chunk: number, out: Uint8Array) {
  for (let start = 0; start < tensor.byteLength; start += chunk) {
    const view = out.subarray(0, Math.min(chunk, tensor.byteLength - start));
    await source.read(tensor.byteOffset + start, view);
    yield view;
  }
}

/**
 * The tensor's raw bytes in one new array (its length was checked against the file's size).
 * @param file - an opened file
 * @param tensor - one of `file.tensors`
 * @returns a copy of the tensor's bytes
 */
export async function readBytes(file: SafetensorsFile, tensor: TensorInfo): Promise<Uint8Array> {
  checkOwnTensor(file, tensor);
  const bytes = new Uint8Array(tensor.byteLength);
  await file.source.read(tensor.byteOffset, bytes);
  return bytes;
}

/**
 * A source over bytes already in memory.
 * @param bytes - the whole file (read, never written)
 * @returns a source that reads from `bytes`
 */
export function memorySource(bytes: Uint8Array): ByteSource {
  return {
    size: bytes.length,
    async read(offset, into) {
      if (!Number.isSafeInteger(offset) || offset < 0 || offset + into.length > bytes.length) {
        throw new EdgeMoqError('IO', `cannot read ${into.length} bytes at offset ${offset} of a ${bytes.length}-byte buffer`);
      }
      into.set(bytes.subarray(offset, offset + into.length));
    },
  };
}

// ---- Writing ------------------------------------------------------------------------------

/** A tensor to write: name, dtype and shape. */
export interface TensorSpec {
  name: string;
  dtype: Dtype;
  shape: readonly number[];
  /** Optional: always shape × dtype size; when given it must say so. */
  byteLength?: number;
}

/** A file laid out before any data is written: its header, and where each tensor's bytes go. */
export interface SafetensorsLayout {
  /** The length prefix and the header, padded with spaces so the data starts 8-byte aligned. */
  header: Uint8Array;
  /** Where each tensor's bytes go, in the order given. */
  tensors: readonly TensorInfo[];
  /** The whole file. */
  size: number;
}

/**
 * Lays out a file whose tensors come in the order given: the header first, for streaming.
 * @param specs - the tensors, in file order
 * @param metadata - the `__metadata__` strings
 * @returns the header bytes, where each tensor's data goes, and the file's size
 * @throws InvalidInputError naming the spec that is wrong
 */
export function layoutSafetensors(specs: readonly TensorSpec[], metadata: Readonly<Record<string, string>> = {}): SafetensorsLayout {
  if (!readArgument('tensors', () => Array.isArray(specs))) invalid(`tensors must be an array of { name, dtype, shape }, got ${describeValue(specs)}`);
  const checkedMetadata = readArgument('metadata', () => metadataOf(metadata, 'metadata', invalid));
  const names = new Set<string>();
  let dataSize = 0;
  const placed = readArgument('tensors', () =>
    Array.from(specs, (spec, index) =>
      readArgument(`tensors[${index}]`, () => {
        if (!isPlainObject(spec)) invalid(`tensors[${index}] must be an object { name, dtype, shape }, got ${describeValue(spec)}`);
        // Each field read once: a getter cannot hand over one value to check and another to use.
        const { name, dtype: rawDtype, shape: rawShape, byteLength: declaredByteLength } = spec;
        if (typeof name !== 'string' || name === '__metadata__' || names.has(name)) {
          invalid(`tensors[${index}].name must be a unique string other than "__metadata__", got ${describeValue(name)}`);
        }
        names.add(name);
        const dtype = dtypeOf(rawDtype, name, invalid);
        const { shape, length } = checkShape(rawShape, name, invalid);
        const byteLength = byteLengthOf(length, dtype, shape, name, invalid);
        if (declaredByteLength !== undefined && declaredByteLength !== byteLength) {
          invalid(`${tensorLabel(name)} byteLength ${describeValue(declaredByteLength)} does not match shape ${describeValue(shape)} × ${dtype} = ${byteLength} bytes`);
        }
        const begin = dataSize;
        dataSize += byteLength;
        if (dataSize > Number.MAX_SAFE_INTEGER) invalid(`the tensors add up to more than ${MAX_SAFE} bytes`);
        return { name, dtype, shape, length, byteLength, begin };
      }),
    ),
  );

  // Built by hand rather than with JSON.stringify(object): an object would move tensors named
  // like integers ("0", "1") to the front, and the data must follow the header's order.
  const fields = placed.map((t) => `${JSON.stringify(t.name)}:${JSON.stringify({ dtype: t.dtype, shape: t.shape, data_offsets: [t.begin, t.begin + t.byteLength] })}`);
  if (Object.keys(checkedMetadata).length > 0) fields.unshift(`"__metadata__":${JSON.stringify(checkedMetadata)}`);
  const json = new TextEncoder().encode(`{${fields.join(',')}}`);
  const headerLength = Math.ceil(json.length / 8) * 8;
  if (headerLength > MAX_HEADER_BYTES) invalid(`the header would be ${headerLength} bytes, over the ${MAX_HEADER_BYTES}-byte cap readers enforce`);
  const header = new Uint8Array(8 + headerLength).fill(0x20);
  new DataView(header.buffer).setBigUint64(0, BigInt(headerLength), true);
  header.set(json, 8);

  const dataOffset = header.length;
  const tensors = Object.freeze(placed.map(({ begin, ...t }) => Object.freeze({ ...t, byteOffset: dataOffset + begin })));
  return { header, tensors, size: dataOffset + dataSize };
}

/** The tensors a writer takes, in file order, and the `__metadata__` strings. */
export interface SafetensorsWriterOptions {
  tensors: readonly TensorSpec[];
  metadata?: Readonly<Record<string, string>>;
}

/** Takes a file's data area after its header was written (createSafetensorsWriter). */
export interface SafetensorsWriter {
  /** Where each tensor's bytes go; write them in this order. */
  readonly tensors: readonly TensorInfo[];
  readonly size: number;
  /** The next bytes of the data area (any split: a chunk may span tensors). */
  write(bytes: Uint8Array): Promise<void>;
  /** Checks every promised byte was written, then finishes the sink; else discards the output. */
  close(): Promise<void>;
  /** Discards the output (the sink is aborted). */
  abort(): Promise<void>;
}

/**
 * Writes the header to `sink` now, then takes the data through write(). The writer owns the
 * sink from here: any failure, including bad options, aborts it, so no partial file survives.
 * @param sink - where the file goes; the writer finishes or aborts it
 * @param options - the tensors in file order, and the metadata
 * @returns the writer, the header already written
 */
export async function createSafetensorsWriter(sink: ByteSink, options: SafetensorsWriterOptions): Promise<SafetensorsWriter> {
  let state: 'open' | 'closed' | 'aborted' = 'open';
  const discard = async (error: unknown): Promise<never> => {
    state = 'aborted';
    // The first failure is the one worth reporting; a failing cleanup must not replace it.
    await sink.abort().catch(() => undefined);
    throw error;
  };

  let layout: SafetensorsLayout;
  try {
    const [tensors, metadata] = readArgument('options', () => [options?.tensors, options?.metadata] as const);
    layout = layoutSafetensors(tensors as readonly TensorSpec[], metadata);
  } catch (error) {
    return discard(error);
  }
  const dataOffset = layout.header.length;
  const dataSize = layout.size - dataOffset;
  await sink.write(layout.header).catch(discard);

  let written = 0;
  const checkOpen = () => {
    if (state !== 'open') invalid(`the safetensors writer is ${state}; create a new one`);
  };
  return {
    tensors: layout.tensors,
    size: layout.size,
    async write(bytes) {
      checkOpen();
      const length = elementsOf(bytes, 'Uint8Array');
      if (typeof length !== 'number') return discard(new InvalidInputError('INVALID_ARGUMENT', `write takes a Uint8Array, got ${length}; the output was discarded`));
      if (written + length > dataSize) {
        return discard(new InvalidInputError('INVALID_ARGUMENT', `a write of ${length} bytes at data byte ${written} goes past the ${dataSize} bytes the header promised; the output was discarded`));
      }
      written += length;
      // A plain view: the sink sees the bytes that were counted, whatever a subclass says its length is.
      await sink.write(viewOf(bytes, length)).catch(discard);
    },
    async close() {
      checkOpen();
      if (written < dataSize) {
        const short = layout.tensors.find((t) => t.byteOffset - dataOffset + t.byteLength > written)!;
        const got = Math.max(0, written - (short.byteOffset - dataOffset));
        return discard(
          new InvalidInputError(
            'INVALID_ARGUMENT',
            `tensor ${describeName(short.name)} got ${got} of its ${short.byteLength} bytes (${written} of the ${dataSize} data bytes were written); the output was discarded`,
          ),
        );
      }
      state = 'closed';
      await sink.close().catch(discard);
    },
    async abort() {
      if (state !== 'open') return;
      state = 'aborted';
      await sink.abort();
    },
  };
}

/** A tensor to encode: its header entry and its bytes. */
export interface TensorBytes {
  name: string;
  dtype: Dtype;
  shape: readonly number[];
  data: Uint8Array;
}

/**
 * A whole safetensors file in memory (for tests and small tools).
 * @param tensors - each tensor's entry and bytes, in file order
 * @param metadata - the `__metadata__` strings
 * @returns the file's bytes
 */
export function encodeSafetensors(tensors: readonly TensorBytes[], metadata?: Readonly<Record<string, string>>): Uint8Array {
  const layout = layoutSafetensors(tensors, metadata);
  const file = new Uint8Array(layout.size);
  file.set(layout.header);
  layout.tensors.forEach((info, index) => {
    const data = readArgument(`tensors[${index}].data`, () => tensors[index]!.data);
    const length = elementsOf(data, 'Uint8Array');
    if (length !== info.byteLength) {
      invalid(
        `tensor ${describeName(info.name)} data must be a Uint8Array of ${info.byteLength} bytes (shape ${describeValue(info.shape)} × ${info.dtype}), got ${typeof length === 'number' ? `${length} bytes` : length}`,
      );
    }
    file.set(data, info.byteOffset);
  });
  return file;
}

// ---- Float conversions --------------------------------------------------------------------
// Through bit patterns, so that every conversion is exact and NaN payloads survive decoding.

function f16BitsToF32Bits(half: number): number {
  const sign = (half & 0x8000) << 16;
  const exponent = (half >>> 10) & 0x1f;
  const fraction = half & 0x3ff;
  if (exponent === 0x1f) return sign | 0x7f800000 | (fraction << 13);
  if (exponent !== 0) return sign | ((exponent + 112) << 23) | (fraction << 13);
  if (fraction === 0) return sign;
  // Subnormal: shift the leading 1 into the implicit-bit place; each shift costs one exponent.
  const shift = Math.clz32(fraction) - 21;
  return sign | ((113 - shift) << 23) | (((fraction << shift) & 0x3ff) << 13);
}

/** Round to nearest, ties to even; overflow gives ±Inf; NaN stays NaN (quiet). */
function f32BitsToF16Bits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa === 0 ? 0 : 0x200 | (mantissa >>> 13));
  if (exponent >= 143) return sign | 0x7c00; // 2^16 and above: past the largest half, 65504
  // Normal halves keep 10 of 23 mantissa bits; subnormals (below 2^-14) keep fewer.
  // Below 2^-25 (exponent 102) everything rounds to zero.
  if (exponent < 102) return sign;
  const significand = exponent >= 113 ? mantissa : mantissa | 0x800000;
  const shift = exponent >= 113 ? 13 : 126 - exponent;
  const base = exponent >= 113 ? (exponent - 112) << 10 : 0;
  const kept = significand >>> shift;
  const rest = significand & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  // A carry out of the mantissa bumps the exponent, which is what rounding up should do
  // (and turns the largest finite values into Inf, as IEEE rounding does).
  const rounded = base + kept + (rest > halfway || (rest === halfway && (kept & 1) === 1) ? 1 : 0);
  return sign | rounded;
}

/** Round to nearest, ties to even; NaN stays NaN (quiet). */
function f32BitsToBf16Bits(bits: number): number {
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) | 0x40) & 0xffff;
  // Below 2^32 for every non-NaN pattern, so the unsigned shift sees no wrap-around.
  return ((bits >>> 0) + 0x7fff + ((bits >>> 16) & 1)) >>> 16;
}

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** The value of a float16 bit pattern (0..0xffff). */
export function f16ToF32(bits: number): number {
  scratchU32[0] = f16BitsToF32Bits(bits & 0xffff);
  return scratchF32[0]!;
}

/** The value of a bfloat16 bit pattern (0..0xffff). */
export function bf16ToF32(bits: number): number {
  scratchU32[0] = (bits & 0xffff) << 16;
  return scratchF32[0]!;
}

/** The float16 bit pattern nearest `value` (first rounded to float32), ties to even. */
export function f32ToF16(value: number): number {
  scratchF32[0] = value;
  return f32BitsToF16Bits(scratchU32[0]!);
}

/** The bfloat16 bit pattern nearest `value` (first rounded to float32), ties to even. */
export function f32ToBf16(value: number): number {
  scratchF32[0] = value;
  return f32BitsToBf16Bits(scratchU32[0]!);
}

// Whether this host stores a float32 as little-endian bytes, as safetensors does (every engine
// edge-moq targets does; swapWords serves the others).
const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

/**
 * Reverses the byte order of each 4-byte word of `bytes`, in place: a float32's little-endian
 * bytes to a big-endian host's, and back.
 * @internal
 */
export function swapWords(bytes: Uint8Array): void {
  for (let j = 0; j + 4 <= bytes.length; j += 4) {
    const a = bytes[j]!,
      b = bytes[j + 1]!;
    bytes[j] = bytes[j + 3]!;
    bytes[j + 1] = bytes[j + 2]!;
    bytes[j + 2] = b;
    bytes[j + 3] = a;
  }
}

/**
 * Raw little-endian F32/F16/BF16 bytes as float32 values (into `into` when given).
 * @param raw - the bytes: 4 per value for F32, 2 for F16 and BF16
 * @param dtype - how they are stored
 * @param into - the output to fill, at least as long as the values
 * @returns the values (`into` when given)
 */
export function decodeFloat32(raw: Uint8Array, dtype: FloatDtype, into?: Float32Array): Float32Array {
  const rawBytes = elementsOf(raw, 'Uint8Array');
  if (typeof rawBytes !== 'number') invalid(`raw must be a Uint8Array, got ${rawBytes}`);
  const bytes = DTYPE_BYTES[checkFloatDtype(dtype)];
  const count = (rawBytes as number) / bytes;
  if (!Number.isInteger(count)) invalid(`${rawBytes} bytes are not a whole number of ${dtype} values`);
  const out = into === undefined ? new Float32Array(count) : reusedArray(into, 'Float32Array', count, 'values');
  // Writing bit patterns through a same-buffer Uint32Array keeps host byte order consistent.
  const bits = new Uint32Array(out.buffer, out.byteOffset, count);
  if (dtype === 'F32') {
    // One copy at any alignment (assembling each value from its bytes took 0.8 ns per value, a
    // fifth of a worker's time quantizing a float32 file), byte-swapped on a big-endian host.
    const target = new Uint8Array(out.buffer, out.byteOffset, count * 4);
    target.set(raw);
    if (!LITTLE_ENDIAN) swapWords(target);
  } else if (dtype === 'BF16') {
    for (let i = 0, j = 0; i < count; i++, j += 2) bits[i] = (raw[j]! | (raw[j + 1]! << 8)) << 16;
  } else {
    for (let i = 0, j = 0; i < count; i++, j += 2) bits[i] = f16BitsToF32Bits(raw[j]! | (raw[j + 1]! << 8));
  }
  return out;
}

/**
 * Float32 values as little-endian F32/F16/BF16 bytes (into `into` when given), rounding ties to even.
 * @param values - the values
 * @param dtype - how to store them
 * @param into - the output to fill, at least as long as the bytes
 * @returns the bytes (`into` when given)
 */
export function encodeFloat32(values: Float32Array, dtype: FloatDtype, into?: Uint8Array): Uint8Array {
  const count = elementsOf(values, 'Float32Array');
  if (typeof count !== 'number') invalid(`values must be a Float32Array, got ${count}`);
  const size = (count as number) * DTYPE_BYTES[checkFloatDtype(dtype)];
  const out = into === undefined ? new Uint8Array(size) : reusedArray(into, 'Uint8Array', size, 'bytes');
  const view = viewOf(values, count as number);
  if (dtype === 'F32') {
    out.set(new Uint8Array(view.buffer, view.byteOffset, size));
    if (!LITTLE_ENDIAN) swapWords(out.subarray(0, size));
  } else {
    const bits = new Uint32Array(view.buffer, view.byteOffset, view.length);
    const narrow = dtype === 'F16' ? f32BitsToF16Bits : f32BitsToBf16Bits;
    for (let i = 0, j = 0; i < bits.length; i++, j += 2) {
      const h = narrow(bits[i]!);
      out[j] = h;
      out[j + 1] = h >>> 8;
    }
  }
  return out;
}
