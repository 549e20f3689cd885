// ONNX messages, from onnx.proto's field numbers (facts of the format), read as far as the
// quantizer needs: the model's versions, graphs, nodes, attributes and tensors. Everything else
// is carried through as the bytes it was read from (see proto.ts).

import { describeName } from '../../describe.js';
import { FormatError } from '../../errors.js';
import { decodeFloat32, type ByteSource } from '../safetensors.js';
import { bytesValue, intValue, readFields, readFloats, readInts, stringValue, type Field } from './proto.js';

/** Field numbers, message by message. */
export const ModelField = { IR_VERSION: 1, OPSET_IMPORT: 8, GRAPH: 7 } as const;
export const OpsetField = { DOMAIN: 1, VERSION: 2 } as const;
export const GraphField = { NODE: 1, NAME: 2, INITIALIZER: 5, INPUT: 11, OUTPUT: 12 } as const;
export const NodeField = { INPUT: 1, OUTPUT: 2, NAME: 3, OP_TYPE: 4, ATTRIBUTE: 5, DOMAIN: 7 } as const;
export const AttributeField = { NAME: 1, F: 2, I: 3, T: 5, G: 6, GRAPHS: 11, TYPE: 20 } as const;
export const AttributeType = { FLOAT: 1, INT: 2, TENSOR: 4, GRAPH: 5, GRAPHS: 10 } as const;
export const TensorField = {
  DIMS: 1,
  DATA_TYPE: 2,
  FLOAT_DATA: 4,
  INT32_DATA: 5,
  NAME: 8,
  RAW_DATA: 9,
  EXTERNAL_DATA: 13,
  DATA_LOCATION: 14,
} as const;
export const EntryField = { KEY: 1, VALUE: 2 } as const;
export const DATA_LOCATION_EXTERNAL = 1;
export const ValueInfoField = { NAME: 1 } as const;

/** TensorProto.DataType values this code reads or writes. */
export const DataType = { FLOAT: 1, UINT8: 2, FLOAT16: 10 } as const;

/** IR versions onnxruntime 1.23 loads (3 introduced opset imports; 11 is onnx 1.18's). */
export const IR_VERSIONS = { min: 3, max: 11 } as const;
/** Default-domain opsets onnxruntime 1.23 implements. */
export const MAX_DEFAULT_OPSET = 23;

export interface ExternalLocation {
  readonly location: string;
  readonly offset: number;
  readonly length: number;
}

export interface TensorHeader {
  readonly fields: Field[];
  readonly name: string;
  readonly dataType: number;
  readonly dims: number[];
  readonly external: ExternalLocation | null;
}

export function readTensor(bytes: Uint8Array, what: string): TensorHeader {
  const fields = readFields(bytes, what);
  let name = '';
  let dataType = 0;
  const dims: number[] = [];
  let location = 0;
  const entries = new Map<string, string>();
  for (const f of fields) {
    if (f.number === TensorField.NAME) name = stringValue(f, `${what} name`);
    else if (f.number === TensorField.DATA_TYPE) dataType = intValue(f, `${what} data_type`);
    else if (f.number === TensorField.DIMS) readInts(f, `${what} dims`, dims);
    else if (f.number === TensorField.DATA_LOCATION) location = intValue(f, `${what} data_location`);
    else if (f.number === TensorField.EXTERNAL_DATA) {
      let key = '';
      let value = '';
      for (const e of readFields(bytesValue(f, `${what} external_data`), `${what} external_data`)) {
        if (e.number === EntryField.KEY) key = stringValue(e, `${what} external_data key`);
        else if (e.number === EntryField.VALUE) value = stringValue(e, `${what} external_data value`);
      }
      entries.set(key, value);
    }
  }
  const label = `tensor ${describeName(name)}`;
  if (dims.some((d) => d < 0)) throw new FormatError(`${label} has a negative dimension in [${dims.join(', ')}]: the file is damaged.`);
  let external: ExternalLocation | null = null;
  if (location === DATA_LOCATION_EXTERNAL) {
    const file = entries.get('location');
    if (!file) throw new FormatError(`${label} keeps its data externally but names no location: the file is damaged.`);
    const number = (key: string, fallback: number) => {
      const text = entries.get(key);
      if (text === undefined) return fallback;
      if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) throw new FormatError(`${label}: external data ${key} is "${text}", not a byte count.`);
      return Number(text);
    };
    external = { location: file, offset: number('offset', 0), length: number('length', -1) };
  }
  return { fields, name, dataType, dims, external };
}

export const elementCount = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);

/** Opens the external data file a tensor names (relative to the model, as ONNX has it). */
export type ExternalDataResolver = (location: string) => ByteSource | Promise<ByteSource>;

/** ONNX locations are relative to the model's directory; one that leaves it is refused. */
export function checkExternalLocation(location: string, tensor: string): void {
  if (location.startsWith('/') || /^[a-zA-Z]:/.test(location) || location.split(/[\\/]/).includes('..')) {
    throw new FormatError(`tensor ${describeName(tensor)} names the external file ${describeName(location)}, outside the model's directory; ONNX locations are relative to the model.`);
  }
}

/** Caches one source per external file. */
export class ExternalFiles {
  private readonly open = new Map<string, Promise<ByteSource>>();
  constructor(private readonly resolver: ExternalDataResolver | undefined) {}

  get(location: string, tensor: string): Promise<ByteSource> {
    if (!this.resolver) {
      return Promise.reject(
        new FormatError(
          `tensor ${describeName(tensor)} keeps its data in the external file ${describeName(location)}; ` +
            'pass externalData (a function from the location to a ByteSource: in Node, fileSource of the path beside the model).',
        ),
      );
    }
    try {
      checkExternalLocation(location, tensor);
    } catch (error) {
      return Promise.reject(error);
    }
    let source = this.open.get(location);
    if (!source) {
      source = Promise.resolve().then(() => this.resolver!(location));
      this.open.set(location, source);
    }
    return source;
  }

  /** The span a tensor's external data occupies, checked against its file. */
  async span(tensor: TensorHeader, elementBytes: number): Promise<{ source: ByteSource; offset: number; length: number }> {
    const ext = tensor.external!;
    const source = await this.get(ext.location, tensor.name);
    const expected = elementCount(tensor.dims) * elementBytes;
    const length = ext.length < 0 ? expected : ext.length;
    if (length !== expected) {
      throw new FormatError(`tensor ${describeName(tensor.name)} [${tensor.dims.join(', ')}] needs ${expected} bytes, but its external data length is ${length}: the file is damaged.`);
    }
    if (ext.offset + length > source.size) {
      throw new FormatError(
        `tensor ${describeName(tensor.name)}: external data [${ext.offset}, ${ext.offset + length}) lies beyond the end of ${describeName(ext.location)} ` +
          `(${source.size} bytes): the data file is truncated or belongs to another model.`,
      );
    }
    return { source, offset: ext.offset, length };
  }
}

/** Bytes per element of the float types the quantizer reads. */
export const FLOAT_BYTES: Readonly<Record<number, number>> = { [DataType.FLOAT]: 4, [DataType.FLOAT16]: 2 };

/** A float tensor's values (FLOAT or FLOAT16; raw_data, typed fields or external data) as float32. */
export async function readFloatTensor(tensor: TensorHeader, files: ExternalFiles): Promise<Float32Array> {
  const label = `tensor ${describeName(tensor.name)}`;
  const bytes = FLOAT_BYTES[tensor.dataType];
  if (bytes === undefined) throw new FormatError(`${label} has data type ${tensor.dataType}, not FLOAT (1) or FLOAT16 (10).`);
  const dtype = bytes === 4 ? 'F32' : 'F16';
  const count = elementCount(tensor.dims);
  if (tensor.external) {
    const { source, offset, length } = await files.span(tensor, bytes);
    const raw = new Uint8Array(length);
    await source.read(offset, raw);
    return decodeFloat32(raw, dtype);
  }
  const rawField = tensor.fields.find((f) => f.number === TensorField.RAW_DATA);
  if (rawField) {
    const raw = bytesValue(rawField, `${label} raw_data`);
    if (raw.length !== count * bytes) throw new FormatError(`${label} [${tensor.dims.join(', ')}] needs ${count * bytes} bytes of raw_data, found ${raw.length}: the file is damaged.`);
    return decodeFloat32(raw, dtype);
  }
  // Typed fields: float_data for FLOAT; int32_data holding each FLOAT16's bit pattern.
  const values: number[] = [];
  for (const f of tensor.fields) {
    if (dtype === 'F32' && f.number === TensorField.FLOAT_DATA) readFloats(f, `${label} float_data`, values);
    if (dtype === 'F16' && f.number === TensorField.INT32_DATA) readInts(f, `${label} int32_data`, values);
  }
  if (values.length !== count) throw new FormatError(`${label} [${tensor.dims.join(', ')}] holds ${values.length} values, not ${count}: the file is damaged.`);
  if (dtype === 'F32') return Float32Array.from(values);
  const raw = new Uint8Array(count * 2);
  const view = new DataView(raw.buffer);
  values.forEach((v, i) => view.setUint16(i * 2, v, true));
  return decodeFloat32(raw, 'F16');
}

export interface AttributeInfo {
  readonly field: Field;
  readonly fields: Field[];
  readonly name: string;
  readonly type: number;
}

export interface NodeInfo {
  readonly field: Field;
  readonly fields: Field[];
  readonly inputs: string[];
  readonly outputs: string[];
  readonly name: string;
  readonly opType: string;
  readonly domain: string;
  readonly attributes: AttributeInfo[];
}

export function readNode(field: Field, what: string): NodeInfo {
  const fields = readFields(bytesValue(field, what), what);
  const inputs: string[] = [];
  const outputs: string[] = [];
  let name = '';
  let opType = '';
  let domain = '';
  const attributes: AttributeInfo[] = [];
  for (const f of fields) {
    if (f.number === NodeField.INPUT) inputs.push(stringValue(f, `${what} input`));
    else if (f.number === NodeField.OUTPUT) outputs.push(stringValue(f, `${what} output`));
    else if (f.number === NodeField.NAME) name = stringValue(f, `${what} name`);
    else if (f.number === NodeField.OP_TYPE) opType = stringValue(f, `${what} op_type`);
    else if (f.number === NodeField.DOMAIN) domain = stringValue(f, `${what} domain`);
    else if (f.number === NodeField.ATTRIBUTE) {
      const af = readFields(bytesValue(f, `${what} attribute`), `${what} attribute`);
      let aname = '';
      let type = 0;
      for (const a of af) {
        if (a.number === AttributeField.NAME) aname = stringValue(a, `${what} attribute name`);
        else if (a.number === AttributeField.TYPE) type = intValue(a, `${what} attribute type`);
      }
      attributes.push({ field: f, fields: af, name: aname, type });
    }
  }
  return { field, fields, inputs, outputs, name, opType, domain, attributes };
}

/** A FLOAT or INT attribute's value, or undefined when the node does not set it. */
export function attributeNumber(node: NodeInfo, name: string): number | undefined {
  const attribute = node.attributes.find((a) => a.name === name);
  if (!attribute) return undefined;
  const what = `attribute ${name} of node ${describeName(node.name)}`;
  const float = attribute.type === AttributeType.FLOAT;
  const value = attribute.fields.find((f) => f.number === (float ? AttributeField.F : AttributeField.I));
  if (!value) throw new FormatError(`${what} has no ${float ? 'float' : 'integer'} value: the file is damaged.`);
  if (!float) return intValue(value, what);
  const floats: number[] = [];
  readFloats(value, what, floats);
  return floats[0];
}

/** The name a ValueInfoProto (a graph input or output) declares. */
export function valueInfoName(field: Field, what: string): string {
  for (const f of readFields(bytesValue(field, what), what)) if (f.number === ValueInfoField.NAME) return stringValue(f, `${what} name`);
  return '';
}

export interface ModelHeader {
  readonly fields: Field[];
  readonly irVersion: number;
  readonly opsets: Map<string, number>;
  readonly graph: Field;
}

/** The model's top level, checked: an ONNX model onnxruntime can load. */
export function readModel(bytes: Uint8Array): ModelHeader {
  if (!(bytes instanceof Uint8Array)) throw new FormatError('an ONNX model must be given as a Uint8Array of the .onnx file.');
  const fields = readFields(bytes, 'the model (ModelProto)');
  let irVersion: number | null = null;
  let graph: Field | null = null;
  const opsets = new Map<string, number>();
  for (const f of fields) {
    if (f.number === ModelField.IR_VERSION) irVersion = intValue(f, 'ir_version');
    else if (f.number === ModelField.GRAPH) graph = f;
    else if (f.number === ModelField.OPSET_IMPORT) {
      let domain = '';
      let version = 0;
      for (const o of readFields(bytesValue(f, 'opset_import'), 'opset_import')) {
        if (o.number === OpsetField.DOMAIN) domain = stringValue(o, 'opset_import domain');
        else if (o.number === OpsetField.VERSION) version = intValue(o, 'opset_import version');
      }
      opsets.set(domain === 'ai.onnx' ? '' : domain, version);
    }
  }
  if (irVersion === null || graph === null) {
    throw new FormatError(`the file is not an ONNX model: it has no ${irVersion === null ? 'ir_version' : 'graph'}. Give the .onnx file the exporter wrote.`);
  }
  if (irVersion < IR_VERSIONS.min || irVersion > IR_VERSIONS.max) {
    throw new FormatError(
      `the model's IR version is ${irVersion}; this quantizer writes models for onnxruntime 1.23, which loads IR versions ${IR_VERSIONS.min} to ${IR_VERSIONS.max}. ` +
        'Convert it with onnx.version_converter, or export it again.',
    );
  }
  const opset = opsets.get('');
  if (opset === undefined || opset < 1 || opset > MAX_DEFAULT_OPSET) {
    throw new FormatError(
      `the model imports ${opset === undefined ? 'no default-domain opset' : `default-domain opset ${opset}`}; onnxruntime 1.23 runs opsets 1 to ${MAX_DEFAULT_OPSET}. ` +
        'Convert it with onnx.version_converter, or export it again.',
    );
  }
  return { fields, irVersion, opsets, graph };
}

/** The external data files a model's tensors name (initializers and Constant values, subgraphs included). */
export function externalLocations(model: ModelHeader): string[] {
  const found = new Set<string>();
  const graph = (bytes: Uint8Array) => {
    for (const f of readFields(bytes, 'a graph')) {
      if (f.number === GraphField.INITIALIZER) {
        const t = readTensor(bytesValue(f, 'initializer'), 'an initializer');
        if (t.external) {
          checkExternalLocation(t.external.location, t.name);
          found.add(t.external.location);
        }
      } else if (f.number === GraphField.NODE) {
        for (const a of readNode(f, 'a node').attributes) {
          for (const v of a.fields) {
            if (v.number === AttributeField.G || v.number === AttributeField.GRAPHS) graph(bytesValue(v, 'a subgraph'));
            if (v.number === AttributeField.T) {
              const t = readTensor(bytesValue(v, 'a tensor attribute'), 'a tensor attribute');
              if (t.external) {
                checkExternalLocation(t.external.location, t.name);
                found.add(t.external.location);
              }
            }
          }
        }
      }
    }
  };
  graph(bytesValue(model.graph, 'graph'));
  return [...found];
}
