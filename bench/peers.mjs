// The JavaScript peers of the core benchmark (bench/run.mjs), doing the same work on the same
// data: symmetric 8-bit fake quantization per group of GROUP values, the scale computed from
// each group's absolute maximum. Both peers are given DeepSpeed's grid, which is also what
// their own int8 operators compute once the scale is absMax·2/256 instead of int8's usual
// absMax/127: round half to even of x/scale, saturated to [-128, 127], times scale. So each
// peer's output is checked against that formula here, and compared with edge-moq's result,
// before it is timed: a peer that did nothing would fail the check.
//
// onnxruntime-web: a QDQ graph (Abs, ReduceMax over each group, Mul by 2/256, QuantizeLinear and
// DequantizeLinear per axis 0 of [groups, GROUP]) on its wasm execution provider, one thread.
// tfjs: the same sequence of ops on tfjs-backend-wasm, threads off.

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { MessageWriter } from '../dist/formats/onnx/proto.js';
import { AttributeField, GraphField, ModelField, NodeField, OpsetField, TensorField, ValueInfoField } from '../dist/formats/onnx/model.js';

const SCALE_FACTOR = 2 / 256;
const QMIN = -128,
  QMAX = 127;

/**
 * Round half to even, as both peers' rounding does.
 * @param {number} v
 */
function roundHalfEven(v) {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * The formula both peers evaluate, for one group, float32 at every step. With `integerCodes`
 * (onnxruntime's int8 tensor between the two operators) zero has no sign, so -0.00001 comes
 * back as +0; tfjs rounds in float32 and keeps -0, as edge-moq and PyTorch do.
 * @param {Float32Array} data
 * @param {number} start
 * @param {number} length
 * @param {boolean} integerCodes
 */
function expectedGroup(data, start, length, integerCodes) {
  let absMax = 0;
  for (let i = start; i < start + length; i++) absMax = Math.max(absMax, Math.abs(data[i]));
  const scale = Math.fround(absMax * Math.fround(SCALE_FACTOR));
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) {
    const q = Math.min(Math.max(roundHalfEven(Math.fround(data[start + i] / scale)), QMIN), QMAX);
    out[i] = Math.fround((integerCodes ? q | 0 : q) * scale);
  }
  return out;
}

const sameBits = (/** @type {number} */ a, /** @type {number} */ b) => Object.is(a, b);

/**
 * Checks `output` against the formula on a few groups (first, middle, last) and counts the
 * elements that differ from edge-moq's `reference`; throws if the formula check fails.
 * Returns a line for the table's notes.
 * @param {string} name
 * @param {Float32Array} input
 * @param {Float32Array} output
 * @param {Float32Array} reference
 * @param {number} group
 * @param {boolean} integerCodes
 */
function verify(name, input, output, reference, group, integerCodes) {
  if (output.length !== input.length) throw new Error(`${name}: ${output.length} values back for ${input.length} in`);
  const groups = input.length / group;
  for (const g of [0, Math.floor(groups / 2), groups - 1]) {
    const expected = expectedGroup(input, g * group, group, integerCodes);
    for (let i = 0; i < group; i++) {
      const got = output[g * group + i];
      if (!sameBits(got, expected[i])) {
        throw new Error(`${name}: group ${g} element ${i} is ${got}, the formula gives ${expected[i]} (input ${input[g * group + i]}); not timing a peer that computes something else`);
      }
    }
  }
  let differ = 0,
    signedZeros = 0;
  for (let i = 0; i < output.length; i++) {
    if (output[i] !== reference[i]) differ++;
    else if (!sameBits(output[i], reference[i])) signedZeros++;
  }
  return (
    `${name}: groups 0, ${Math.floor(groups / 2)} and ${groups - 1} equal the formula bit for bit; ` +
    `${differ === 0 ? 'every one' : `${(output.length - differ).toLocaleString('en-US')}`} of the ${output.length.toLocaleString('en-US')} values equals edge-moq's` +
    `${differ === 0 ? '' : ` (${differ.toLocaleString('en-US')} differ)`}` +
    `${signedZeros === 0 ? '' : `, ${signedZeros.toLocaleString('en-US')} of them +0 where edge-moq has -0`}.`
  );
}

// ---- onnxruntime-web --------------------------------------------------------------------------

const ONNX_FLOAT = 1,
  ONNX_INT8 = 3;
const ATTRIBUTE_INTS = 7,
  ATTRIBUTE_INT = 2,
  ATTRIBUTE_INTS_FIELD = 8;
// The field numbers of a ValueInfoProto's type, message by message.
const TypeField = { TENSOR: 1 }; // TypeProto.tensor_type
const TensorTypeField = { ELEM_TYPE: 1, SHAPE: 2 }; // TypeProto.Tensor
const ShapeField = { DIM: 1, DIM_VALUE: 1 }; // TensorShapeProto.dim, Dimension.dim_value
const VALUE_INFO_TYPE = 2; // ValueInfoProto.type

/**
 * @param {string} name
 * @param {number} elemType
 * @param {readonly number[]} shape
 */
function valueInfo(name, elemType, shape) {
  const dims = new MessageWriter();
  for (const d of shape) dims.message(ShapeField.DIM, new MessageWriter().int(ShapeField.DIM_VALUE, d));
  const tensorType = new MessageWriter().int(TensorTypeField.ELEM_TYPE, elemType).message(TensorTypeField.SHAPE, dims);
  return new MessageWriter().string(ValueInfoField.NAME, name).message(VALUE_INFO_TYPE, new MessageWriter().message(TypeField.TENSOR, tensorType));
}

/**
 * @param {string} name
 * @param {number} dataType
 * @param {readonly number[]} dims
 * @param {Uint8Array} raw
 */
function tensor(name, dataType, dims, raw) {
  const t = new MessageWriter();
  if (dims.length) t.ints(TensorField.DIMS, dims);
  return t.int(TensorField.DATA_TYPE, dataType).string(TensorField.NAME, name).bytes(TensorField.RAW_DATA, raw);
}

/**
 * @param {string} opType
 * @param {readonly string[]} inputs
 * @param {readonly string[]} outputs
 * @param {Record<string, number | number[]>} [attributes]
 */
function node(opType, inputs, outputs, attributes = {}) {
  const n = new MessageWriter();
  for (const i of inputs) n.string(NodeField.INPUT, i);
  for (const o of outputs) n.string(NodeField.OUTPUT, o);
  n.string(NodeField.OP_TYPE, opType);
  for (const [name, value] of Object.entries(attributes)) {
    const a = new MessageWriter().string(AttributeField.NAME, name);
    if (Array.isArray(value)) a.ints(ATTRIBUTE_INTS_FIELD, value).int(AttributeField.TYPE, ATTRIBUTE_INTS);
    else a.int(AttributeField.I, value).int(AttributeField.TYPE, ATTRIBUTE_INT);
    n.message(NodeField.ATTRIBUTE, a);
  }
  return n;
}

/**
 * X [groups, group] → Y: symmetric per-group QDQ with the scale computed in the graph (opset 13).
 * @param {number} groups
 * @param {number} group
 */
export function qdqModel(groups, group) {
  const factor = new Uint8Array(new Float32Array([SCALE_FACTOR]).buffer);
  const graph = new MessageWriter()
    .message(GraphField.NODE, node('Abs', ['X'], ['absX']))
    .message(GraphField.NODE, node('ReduceMax', ['absX'], ['absMax'], { axes: [1], keepdims: 0 }))
    .message(GraphField.NODE, node('Mul', ['absMax', 'factor'], ['scale']))
    .message(GraphField.NODE, node('QuantizeLinear', ['X', 'scale', 'zero'], ['q'], { axis: 0 }))
    .message(GraphField.NODE, node('DequantizeLinear', ['q', 'scale', 'zero'], ['Y'], { axis: 0 }))
    .string(GraphField.NAME, 'symmetric-8-bit-per-group')
    .message(GraphField.INITIALIZER, tensor('factor', ONNX_FLOAT, [], factor))
    .message(GraphField.INITIALIZER, tensor('zero', ONNX_INT8, [groups], new Uint8Array(groups)))
    .message(GraphField.INPUT, valueInfo('X', ONNX_FLOAT, [groups, group]))
    .message(GraphField.OUTPUT, valueInfo('Y', ONNX_FLOAT, [groups, group]));
  return new MessageWriter()
    .int(ModelField.IR_VERSION, 8)
    .message(ModelField.OPSET_IMPORT, new MessageWriter().string(OpsetField.DOMAIN, '').int(OpsetField.VERSION, 13))
    .message(ModelField.GRAPH, graph)
    .finish();
}

/**
 * The peers as benchmark cases on `original` (GROUP-sized groups), each checked first against
 * the formula and edge-moq's `reference`. Returns the cases, a line per peer saying what the
 * check found and how it ran, and `dispose` for when the timing is done.
 * @param {Float32Array} original
 * @param {number} group
 * @param {Float32Array} reference
 * @returns {Promise<{ cases: import('./workload.mjs').Case[], notes: string[], dispose: () => Promise<void> }>}
 */
export async function peerCases(original, group, reference) {
  const groups = original.length / group;
  const shape = [groups, group];
  /** @type {import('./workload.mjs').Case[]} */
  const cases = [];
  const notes = [];

  const ort = await import('onnxruntime-web');
  ort.env.wasm.numThreads = 1;
  ort.env.logLevel = 'error';
  const session = await ort.InferenceSession.create(qdqModel(groups, group), { executionProviders: ['wasm'] });
  const input = new ort.Tensor('float32', original, shape);
  const ortOut = /** @type {import('onnxruntime-web').Tensor} */ ((await session.run({ X: input })).Y);
  notes.push(verify(`onnxruntime-web ${ort.env.versions.web} (wasm execution provider, numThreads 1)`, original, /** @type {Float32Array} */ (ortOut.data), reference, group, true));
  ortOut.dispose();
  const ortName = `onnxruntime-web ${ort.env.versions.web} QuantizeLinear+DequantizeLinear`;
  cases.push({
    name: `${ortName}, in-graph only`,
    run: async () => {
      (await session.run({ X: input })).Y?.dispose();
    },
  });
  cases.push({
    name: `${ortName}, end to end`,
    run: async () => {
      const { Y } = await session.run({ X: new ort.Tensor('float32', original, shape) });
      await Y?.getData(true);
    },
  });

  const tf = await import('@tensorflow/tfjs');
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  wasm.setWasmPaths(join(dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm')), '/'));
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  wasm.setThreadsCount(1);
  await tf.setBackend('wasm');
  /** @param {import('@tensorflow/tfjs').Tensor} x */
  const quantize = (x) =>
    tf.tidy(() => {
      const scale = tf.mul(tf.max(tf.abs(x), 1, true), SCALE_FACTOR);
      return tf.mul(tf.clipByValue(tf.round(tf.div(x, scale)), QMIN, QMAX), scale);
    });
  const x = tf.tensor2d(original, [groups, group]);
  const tfOut = quantize(x);
  notes.push(verify(`tfjs ${tf.version.tfjs} on tfjs-backend-wasm (${wasm.getThreadsCount()} thread, SIMD build)`, original, /** @type {Float32Array} */ (tfOut.dataSync()), reference, group, false));
  tfOut.dispose();
  const tfName = `tfjs ${tf.version.tfjs} ops on tfjs-backend-wasm`;
  cases.push({ name: `${tfName}, in-graph only`, run: () => quantize(x).dispose() });
  cases.push({
    name: `${tfName}, end to end`,
    run: () => {
      const fresh = tf.tensor2d(original, [groups, group]);
      const out = quantize(fresh);
      out.dataSync();
      out.dispose();
      fresh.dispose();
    },
  });

  return {
    cases,
    notes,
    dispose: async () => {
      x.dispose();
      await session.release();
    },
  };
}
