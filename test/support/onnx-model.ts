// A minimal ONNX ModelProto encoder: just enough protobuf to state a graph of a few nodes with
// initializers, so tests can hand our packed bytes to a real ONNX runtime without a Python
// toolchain. Written from the field numbers of onnx.proto (a fact, not code); anything the
// tests do not need (sparse tensors, functions) is left out on purpose.

/** TensorProto.DataType values the tests use. */
export const OnnxDataType = { FLOAT: 1, UINT8: 2, INT64: 7, BOOL: 9, FLOAT16: 10 } as const;
export type OnnxDataType = (typeof OnnxDataType)[keyof typeof OnnxDataType];

/** AttributeProto.AttributeType values the tests set. */
const AttributeType = { INT: 2, TENSOR: 4, GRAPH: 5 } as const;

export interface OnnxTensor {
  name: string;
  dataType: OnnxDataType;
  dims: readonly number[];
  /** The elements in little-endian order (TensorProto.raw_data). */
  raw?: Uint8Array;
  /** float_data instead of raw_data (FLOAT only). */
  floats?: readonly number[];
  /** data_location EXTERNAL with these external_data entries instead. */
  external?: { location: string; offset?: number; length?: number };
}

export interface OnnxValueInfo {
  name: string;
  elemType: OnnxDataType;
  shape: readonly number[];
}

/** Attributes by name: integers, tensors (a Constant's value) or graphs (an If's branches). */
export type OnnxAttributes = Record<string, number | { tensor: OnnxTensor } | { graph: OnnxGraph }>;

export interface OnnxNode {
  opType: string;
  domain?: string;
  name?: string;
  inputs: readonly string[];
  outputs: readonly string[];
  attributes?: OnnxAttributes;
}

export interface OnnxGraph {
  name: string;
  nodes: readonly OnnxNode[];
  initializers: readonly OnnxTensor[];
  inputs: readonly OnnxValueInfo[];
  outputs: readonly OnnxValueInfo[];
}

export interface OnnxModel {
  irVersion: number;
  opsetImports: readonly { domain: string; version: number }[];
  producerName?: string;
  graph: OnnxGraph;
}

/** Protobuf wire types (the low three bits of a field's tag). */
const Wire = { VARINT: 0, LENGTH_DELIMITED: 2 } as const;

/** Appends protobuf fields to a growing byte list; `finish()` is the encoded message. */
class ProtoWriter {
  private readonly chunks: number[] = [];

  private varint(value: bigint): void {
    // int64 fields carry negatives as 10-byte two's complement.
    let v = BigInt.asUintN(64, value);
    do {
      const low = Number(v & 0x7fn);
      v >>= 7n;
      this.chunks.push(v === 0n ? low : low | 0x80);
    } while (v !== 0n);
  }

  private tag(field: number, wire: number): void {
    this.varint(BigInt((field << 3) | wire));
  }

  int(field: number, value: number): this {
    if (!Number.isSafeInteger(value)) throw new RangeError(`field ${field}: ${value} is not an integer`);
    this.tag(field, Wire.VARINT);
    this.varint(BigInt(value));
    return this;
  }

  bytes(field: number, value: Uint8Array): this {
    this.tag(field, Wire.LENGTH_DELIMITED);
    this.varint(BigInt(value.length));
    for (const byte of value) this.chunks.push(byte);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value));
  }

  message(field: number, encode: (w: ProtoWriter) => void): this {
    const inner = new ProtoWriter();
    encode(inner);
    return this.bytes(field, inner.finish());
  }

  /** A repeated int64, packed (protobuf parsers accept packed or not for any repeated scalar). */
  packedInts(field: number, values: readonly number[]): this {
    const inner = new ProtoWriter();
    for (const v of values) inner.varint(BigInt(v));
    return this.bytes(field, inner.finish());
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.chunks);
  }
}

// Field numbers from onnx.proto, message by message.

function writeTensor(w: ProtoWriter, tensor: OnnxTensor): void {
  w.packedInts(1, tensor.dims) // dims
    .int(2, tensor.dataType) // data_type
    .string(8, tensor.name); // name
  if (tensor.raw) w.bytes(9, tensor.raw); // raw_data
  if (tensor.floats) w.bytes(4, float32Raw(Float32Array.from(tensor.floats))); // float_data, packed
  if (tensor.external) {
    const entries: [string, string | number | undefined][] = [
      ['location', tensor.external.location],
      ['offset', tensor.external.offset],
      ['length', tensor.external.length],
    ];
    for (const [key, value] of entries) {
      if (value !== undefined) w.message(13, (e) => e.string(1, key).string(2, String(value))); // external_data: key, value
    }
    w.int(14, 1); // data_location: EXTERNAL
  }
}

function writeValueInfo(w: ProtoWriter, info: OnnxValueInfo): void {
  w.string(1, info.name) // name
    .message(
      2,
      (
        type, // type: TypeProto
      ) =>
        type.message(
          1,
          (
            tensor, // tensor_type: TypeProto.Tensor
          ) =>
            tensor
              .int(1, info.elemType) // elem_type
              .message(2, (shape) => {
                // shape: TensorShapeProto
                for (const dim of info.shape) shape.message(1, (d) => d.int(1, dim)); // dim: dim_value
              }),
        ),
    );
}

function writeAttribute(w: ProtoWriter, name: string, value: OnnxAttributes[string]): void {
  w.string(1, name); // name
  if (typeof value === 'number')
    w.int(3, value).int(20, AttributeType.INT); // i, type
  else if ('tensor' in value)
    w.message(5, (t) => writeTensor(t, value.tensor)).int(20, AttributeType.TENSOR); // t, type
  else w.message(6, (g) => writeGraph(g, value.graph)).int(20, AttributeType.GRAPH); // g, type
}

function writeNode(w: ProtoWriter, node: OnnxNode): void {
  for (const input of node.inputs) w.string(1, input); // input
  for (const output of node.outputs) w.string(2, output); // output
  if (node.name !== undefined) w.string(3, node.name); // name
  w.string(4, node.opType); // op_type
  for (const [name, value] of Object.entries(node.attributes ?? {})) {
    w.message(5, (a) => writeAttribute(a, name, value)); // attribute
  }
  if (node.domain !== undefined) w.string(7, node.domain); // domain
}

function writeGraph(w: ProtoWriter, graph: OnnxGraph): void {
  for (const node of graph.nodes) w.message(1, (n) => writeNode(n, node)); // node
  w.string(2, graph.name); // name
  for (const tensor of graph.initializers) w.message(5, (t) => writeTensor(t, tensor)); // initializer
  for (const input of graph.inputs) w.message(11, (v) => writeValueInfo(v, input)); // input
  for (const output of graph.outputs) w.message(12, (v) => writeValueInfo(v, output)); // output
}

/** The serialized ModelProto, ready for InferenceSession.create. */
export function encodeModel(model: OnnxModel): Uint8Array {
  const w = new ProtoWriter().int(1, model.irVersion); // ir_version
  if (model.producerName !== undefined) w.string(2, model.producerName); // producer_name
  w.message(7, (g) => writeGraph(g, model.graph)); // graph
  for (const opset of model.opsetImports) {
    w.message(8, (o) => o.string(1, opset.domain).int(2, opset.version)); // opset_import: domain, version
  }
  return w.finish();
}

/** A model of one graph at IR version 10 with the default opset 21, what the tests' hand-written graphs use. */
export function encodeGraph(graph: OnnxGraph): Uint8Array {
  return encodeModel({ irVersion: 10, opsetImports: [{ domain: '', version: 21 }], graph });
}

/** Little-endian bytes of a Float32Array (raw_data is little-endian whatever the host). */
export function float32Raw(values: Float32Array): Uint8Array {
  const raw = new Uint8Array(values.length * 4);
  const view = new DataView(raw.buffer);
  values.forEach((v, i) => view.setFloat32(i * 4, v, true));
  return raw;
}

export interface MatMulNBitsModelOptions {
  /** Rows of A (fixed, so the runtime sees a plain [M, K] input). */
  m: number;
  k: number;
  n: number;
  bits: number;
  blockSize: number;
  /** B: [N, ceil(K / blockSize), blockSize * bits / 8] bytes. */
  weight: Uint8Array;
  /** One scale per (row of B, block), row-major: N * ceil(K / blockSize) values. */
  scales: Float32Array;
  /** The dims given to the scales initializer; (N, k_blocks) is the contrib schema's. */
  scalesDims?: readonly number[];
}

/**
 * Y = A @ dequantize(B)^T as one com.microsoft MatMulNBits node, B and scales as initializers
 * and no zero_points input (so the default zero point 2^(bits-1) applies).
 */
export function matMulNBitsModel(options: MatMulNBitsModelOptions): Uint8Array {
  const { m, k, n, bits, blockSize, weight, scales } = options;
  const blocks = Math.ceil(k / blockSize);
  const blobSize = (blockSize * bits) / 8;
  return encodeModel({
    irVersion: 10,
    producerName: 'edge-moq tests',
    opsetImports: [
      { domain: '', version: 21 },
      { domain: 'com.microsoft', version: 1 },
    ],
    graph: {
      name: 'matmul_nbits',
      nodes: [
        {
          opType: 'MatMulNBits',
          domain: 'com.microsoft',
          name: 'matmul',
          inputs: ['A', 'B', 'scales'],
          outputs: ['Y'],
          attributes: { K: k, N: n, bits, block_size: blockSize },
        },
      ],
      initializers: [
        { name: 'B', dataType: OnnxDataType.UINT8, dims: [n, blocks, blobSize], raw: weight },
        { name: 'scales', dataType: OnnxDataType.FLOAT, dims: options.scalesDims ?? [n, blocks], raw: float32Raw(scales) },
      ],
      inputs: [{ name: 'A', elemType: OnnxDataType.FLOAT, shape: [m, k] }],
      outputs: [{ name: 'Y', elemType: OnnxDataType.FLOAT, shape: [m, n] }],
    },
  });
}
