// A reader for `edge-moq.packed/1` safetensors files written only from the published layout
// text (the README's statement of the layout, quoted in the comments below), the way an
// outside tool would be. It imports nothing from src/ on purpose: if the library and this
// file agree, the layout text is enough to read the files, and a change to either that
// breaks the text shows up as a disagreement.

/** @typedef {{ dtype: string, shape: number[], bytes: Uint8Array }} StoredTensor */
/**
 * One tensor's entry in the "edge-moq" metadata.
 * @typedef {{ bits: number, type: string, groupSize: number, shape: number[], dtype: string, axis?: number, grid?: 'full' | 'deepspeed' }} PackedEntry
 */
/**
 * @typedef {{ shape: number[], dtype: string, values: Float32Array | null, packed: PackedEntry | null, bytes?: Uint8Array }} DecodedTensor
 */

export const PACKED_FORMATS = ['edge-moq.packed/1', 'edge-moq.packed/2'];

/**
 * Element sizes of the float dtypes this reader turns into numbers.
 * @type {Record<string, number>}
 */
const FLOAT_BYTES = { F32: 4, F16: 2, BF16: 2 };

/**
 * Splits a safetensors file: an 8-byte little-endian u64 header length, the JSON header
 * ({ name: { dtype, shape, data_offsets: [begin, end] }, __metadata__ }), then the data.
 * Returns the tensors' entries, the metadata (or {}), and the bytes of each tensor.
 * @param {ArrayBufferView | ArrayBuffer} file
 * @returns {{ tensors: Map<string, StoredTensor>, metadata: Record<string, string> }}
 */
export function readSafetensors(file) {
  // A plain Uint8Array view (a Node Buffer is a subclass; callers compare plain views).
  const bytes = ArrayBuffer.isView(file) ? new Uint8Array(file.buffer, file.byteOffset, file.byteLength) : new Uint8Array(file);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
  const dataStart = 8 + headerLength;
  const { __metadata__: metadata = {}, ...entries } = header;
  const tensors = new Map();
  for (const [name, entry] of Object.entries(entries)) {
    const [begin, end] = entry.data_offsets;
    tensors.set(name, { dtype: entry.dtype, shape: entry.shape, bytes: bytes.subarray(dataStart + begin, dataStart + end) });
  }
  return { tensors, metadata };
}

/**
 * IEEE half-precision bits to a number (exact: every half is a float32).
 * @param {number} bits
 */
export function halfToNumber(bits) {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction === 0 ? sign * Infinity : NaN;
  return sign * (1024 + fraction) * 2 ** (exponent - 25);
}

const widening = new DataView(new ArrayBuffer(4));

/**
 * bfloat16 bits to a number: they are the high half of the float32's bits.
 * @param {number} bits
 */
export function bfloat16ToNumber(bits) {
  widening.setUint32(0, (bits << 16) >>> 0);
  return widening.getFloat32(0);
}

/**
 * A stored float tensor's values as float32 (F32 as is; F16 and BF16 widen exactly).
 * @param {{ dtype: string, bytes: Uint8Array }} tensor
 */
export function floatValues({ dtype, bytes }) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (!Object.hasOwn(FLOAT_BYTES, dtype)) throw new Error(`not a float dtype: ${dtype}`);
  const size = FLOAT_BYTES[dtype];
  const out = new Float32Array(bytes.byteLength / size);
  for (let i = 0; i < out.length; i++) {
    if (dtype === 'F32') out[i] = view.getFloat32(i * 4, true);
    else if (dtype === 'F16') out[i] = halfToNumber(view.getUint16(i * 2, true));
    else out[i] = bfloat16ToNumber(view.getUint16(i * 2, true));
  }
  return out;
}

/**
 * Element i's code: stream bits [i*b, (i+1)*b), stream bit j being bit j mod 8 of byte floor(j/8).
 * @param {Uint8Array} codes
 * @param {number} i
 * @param {number} bits
 */
export function readCode(codes, i, bits) {
  let code = 0;
  for (let k = 0; k < bits; k++) {
    const j = i * bits + k;
    code |= ((codes[Math.floor(j / 8)] >> (j % 8)) & 1) << k;
  }
  return code;
}

/**
 * Dequantizes in float32 (Math.fround after each operation: a float32 product or sum of
 * float32 values computed in float64 and rounded once is the float32 result):
 * symmetric (code - 2^(b-1)) * s; asymmetric code * s + zero; ternary (code - 1) * alpha;
 * binary (2 * code - 1) * m.
 * @param {{ codes: Uint8Array, scales: Float32Array, zeros: Float32Array | null, bits: number, type: string, groupSize: number, length: number }} packed
 */
export function dequantize({ codes, scales, zeros, bits, type, groupSize, length }) {
  const f = Math.fround;
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) {
    const code = readCode(codes, i, bits);
    const group = Math.floor(i / groupSize);
    const s = scales[group];
    switch (type) {
      case 'symmetric':
        out[i] = f((code - 2 ** (bits - 1)) * s);
        break;
      case 'asymmetric':
        out[i] = f(f(code * s) + /** @type {Float32Array} */ (zeros)[group]);
        break;
      case 'ternary':
        out[i] = f((code - 1) * s);
        break;
      case 'binary':
        out[i] = f((2 * code - 1) * s);
        break;
      default:
        throw new Error(`unknown packed type ${type}`);
    }
  }
  return out;
}

const product = (/** @type {number[]} */ shape) => shape.reduce((a, b) => a * b, 1);

/**
 * "axis a: the codes follow the tensor read as the matrix [A, B], A = d0·…·da and
 * B = d(a+1)·…·d(n−1), transposed: stream element c·A + r is the tensor's element r·B + c."
 * Absent: the last dimension (B = 1, stream order is the tensor's order).
 * @param {Float32Array} stream
 * @param {number[]} shape
 * @param {number | undefined} axis
 */
function fromStreamOrder(stream, shape, axis) {
  if (axis === undefined) return stream;
  const rows = product(shape.slice(0, axis + 1));
  const columns = product(shape.slice(axis + 1));
  const out = new Float32Array(stream.length);
  for (let c = 0; c < columns; c++) {
    for (let r = 0; r < rows; r++) out[r * columns + c] = stream[c * rows + r];
  }
  return out;
}

/**
 * Reads a whole packed file: every tensor by its original name, with shape, original dtype and
 * float32 values (dequantized for packed tensors, widened for stored float ones, null for other
 * stored ones); packed tensors carry their "edge-moq" metadata entry, stored ones their bytes.
 * @param {ArrayBufferView | ArrayBuffer} file
 * @returns {Map<string, DecodedTensor>}
 */
export function decodePackedFile(file) {
  const { tensors, metadata } = readSafetensors(file);
  if (!PACKED_FORMATS.includes(metadata.format)) throw new Error(`__metadata__.format is ${metadata.format}, not one of ${PACKED_FORMATS.join(', ')}`);
  /** @type {Record<string, PackedEntry>} */
  const packedEntries = JSON.parse(metadata['edge-moq']);
  /** @type {Map<string, DecodedTensor>} */
  const out = new Map();
  const consumed = new Set();
  for (const [name, entry] of Object.entries(packedEntries)) {
    // "grid" changes how codes were chosen, not how they decode: it needs nothing here.
    const { bits, type, groupSize, shape, dtype, axis } = entry;
    const length = product(shape);
    const q = tensors.get(`${name}.q`);
    const scale = tensors.get(`${name}.scale`);
    const zero = tensors.get(`${name}.zero`);
    /** @type {(ok: unknown, what: string) => asserts ok} */
    const expect = (ok, what) => {
      if (!ok) throw new Error(`${name}: ${what}`);
    };
    expect(q?.dtype === 'U8' && q.shape.length === 1 && q.shape[0] === Math.ceil((length * bits) / 8), `${name}.q must be U8 [ceil(n*b/8)]`);
    expect(scale?.dtype === 'F32' && scale.shape.length === 1 && scale.shape[0] === length / groupSize, `${name}.scale must be F32 [n/G]`);
    expect((type === 'asymmetric') === (zero !== undefined), `${name}.zero must exist exactly for asymmetric`);
    if (zero) expect(zero.dtype === 'F32' && zero.shape[0] === length / groupSize, `${name}.zero must be F32 [n/G]`);
    const stream = dequantize({
      codes: q.bytes,
      scales: floatValues(scale),
      zeros: zero ? floatValues(zero) : null,
      bits,
      type,
      groupSize,
      length,
    });
    const values = fromStreamOrder(stream, shape, axis);
    out.set(name, { shape, dtype, values, packed: entry });
    for (const part of ['q', 'scale', 'zero']) consumed.add(`${name}.${part}`);
  }
  for (const [name, tensor] of tensors) {
    if (consumed.has(name)) continue;
    const values = Object.hasOwn(FLOAT_BYTES, tensor.dtype) ? floatValues(tensor) : null;
    out.set(name, { shape: tensor.shape, dtype: tensor.dtype, values, packed: null, bytes: tensor.bytes });
  }
  return out;
}
