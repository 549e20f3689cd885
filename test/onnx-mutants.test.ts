// The ONNX format modules (src/formats/onnx/model.ts, quantize.ts, node-file.ts, options.ts)
// without onnxruntime: small models written by the tests' own encoder (test/support/onnx-model.ts),
// each output compared with the model onnxruntime's contrib-op spec says it must be, written out
// by hand: MatMulNBits' K, N, bits and block_size attributes, B as [N, k_blocks, blob] with codes
// low nibble first, scales [N·k_blocks], zero points packed two to a byte per row of N, and the
// initializer names onnxruntime's own quantizer gives. The codes follow from DeepSpeed's grid
// (docs/DESIGN.md section 1) on weights chosen so that every scale is a power of two.

import { describe, expect, it } from 'vitest';
import { FormatError, InvalidInputError } from '../src/errors.js';
import { bytesValue, MessageWriter, readFields } from '../src/formats/onnx/proto.js';
import { readModel, readNode, readTensor } from '../src/formats/onnx/model.js';
import { quantizeOnnx, type QuantizeOnnxOptions } from '../src/formats/onnx/quantize.js';
import { encodeFloat32 } from '../src/formats/safetensors.js';
import { encodeModel, float32Raw, OnnxDataType, type OnnxGraph, type OnnxModel, type OnnxNode, type OnnxTensor } from './support/onnx-model.js';
import { useWasmSimdPacker } from './support/packers.js';
import { thrownAsync } from './support/thrown.js';

const wasm = useWasmSimdPacker();

// Our decoder, used only to read the output's fields; what they must hold is written out below.
const graphFields = (model: Uint8Array) => readFields(bytesValue(readModel(model).graph, 'graph'), 'graph');
const nodesOf = (model: Uint8Array) =>
  graphFields(model)
    .filter((f) => f.number === 1)
    .map((f) => readNode(f, 'node'));
/** The main graph's initializers by name: header fields and raw_data. */
function initializersOf(model: Uint8Array) {
  const tensors = graphFields(model)
    .filter((f) => f.number === 5)
    .map((f) => readTensor(bytesValue(f, 'initializer'), 'initializer'));
  return new Map(tensors.map((t) => [t.name, { name: t.name, dataType: t.dataType, dims: t.dims, external: t.external, raw: t.fields.find((f) => f.number === 9)?.payload }]));
}
const io = () => ({ packer: wasm.packer });

const u8 = (...values: number[]) => Uint8Array.from(values);
const f32 = (...values: number[]) => float32Raw(Float32Array.from(values));
/** B [K, N] row-major from its N columns of K. */
const fromColumns = (columns: number[][]) => {
  const k = columns[0]!.length;
  return Float32Array.from({ length: k * columns.length }, (_, i) => columns[i % columns.length]![Math.floor(i / columns.length)]!);
};
const range = (length: number, f: (i: number) => number) => Array.from({ length }, (_, i) => f(i));

const A = { name: 'A', elemType: OnnxDataType.FLOAT, shape: [1, 32] } as const;
const Y = { name: 'Y', elemType: OnnxDataType.FLOAT, shape: [1, 2] } as const;
const opsets = [{ domain: '', version: 21 }];
const withMicrosoft = [...opsets, { domain: 'com.microsoft', version: 1 }];
const encode = (graph: OnnxGraph, opsetImports = opsets) => encodeModel({ irVersion: 10, opsetImports, graph } satisfies OnnxModel);
const weight = (name: string, dims: number[], values: Float32Array): OnnxTensor => ({ name, dataType: OnnxDataType.FLOAT, dims, raw: float32Raw(values) });
const matMul = (name: string, b: string, output = 'Y'): OnnxNode => ({ opType: 'MatMul', name, inputs: ['A', b], outputs: [output] });
const nbits = (name: string, inputs: string[], output: string, attributes: Record<string, number>): OnnxNode => ({
  opType: 'MatMulNBits',
  domain: 'com.microsoft',
  name,
  inputs,
  outputs: [output],
  attributes,
});

// Symmetric 4-bit blocks of 16 on DeepSpeed's grid: s = 2·absmax/16, code = round(x/s) + 8
// clamped to 0..15. Column 0: [-8..7] (s 1) then [-4..3.5] (s 0.5), codes 0..15 both; column 1:
// [2, 0 ×15] (s 0.25: 2/s = 8 clamps to 7, code 15) then [-1 ×16] (s 0.125, code 0).
const B4 = fromColumns([range(32, (i) => (i < 16 ? i - 8 : (i - 24) / 2)), range(32, (i) => (i === 0 ? 2 : i < 16 ? 0 : -1))]);
const RAMP = [0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe];
const B4_CODES = u8(...RAMP, ...RAMP, 0x8f, ...Array(7).fill(0x88), ...Array(8).fill(0));
const B4_SCALES = f32(1, 0.5, 0.25, 0.125);

const Q4 = (name = 'W') => [
  { name: `${name}_Q4`, dataType: OnnxDataType.UINT8, dims: [2, 2, 8], raw: B4_CODES },
  { name: `${name}_scales`, dataType: OnnxDataType.FLOAT, dims: [4], raw: B4_SCALES },
];
const Q4_ATTRIBUTES = { K: 32, N: 2, bits: 4, block_size: 16 };
/** The report of B4, quantized: one error, 2 restored as 7·0.25 = 1.75. */
const B4_REPORT = { weight: 'W', shape: [32, 2], dtype: 'FLOAT', bits: 4, blockSize: 16, type: 'symmetric', bytesIn: 256, bytesOut: 48, maxAbsError: 0.25, rmsError: 0.25 / 8 };
const oneMatMul = (initializers: OnnxTensor[] = [weight('W', [32, 2], B4)]): OnnxGraph => ({ name: 'g', nodes: [matMul('proj', 'W')], initializers, inputs: [A], outputs: [Y] });

async function expectUnchanged(bytes: Uint8Array, options: QuantizeOnnxOptions = { blockSize: 16 }): Promise<void> {
  const { model, report } = await quantizeOnnx(bytes, options, io());
  expect(report).toEqual({ matmuls: [], bytesIn: 0, bytesOut: 0 });
  expect(model).toEqual(bytes);
}

describe('quantizeOnnx: MatMul → MatMulNBits', () => {
  it('writes B, scales and the node as onnxruntime reads them, drops the float B, adds the com.microsoft opset', async () => {
    const graph = oneMatMul();
    const { model, report } = await quantizeOnnx(encode(graph), { blockSize: 16 }, io());
    expect(model).toEqual(encode({ ...graph, nodes: [nbits('proj_Q4', ['A', 'W_Q4', 'W_scales'], 'Y', Q4_ATTRIBUTES)], initializers: Q4() }, withMicrosoft));
    expect(report).toEqual({ matmuls: [{ node: 'proj', op: 'MatMul', ...B4_REPORT }], bytesIn: 256, bytesOut: 48 });
  });

  it('defaults to 4 bits in blocks of 32, and writes accuracy_level when given', async () => {
    // One block of 32 per column: absmax 8 (s 1) and 2 (s 0.25). Column 0's [-4..3.5] rounds
    // half to even (-3.5 → 4, -2.5 → 6, ... 3.5 → 12), half of them off by 0.5; column 1's -1s are codes 4.
    const { model, report } = await quantizeOnnx(encode(oneMatMul()), { accuracyLevel: 4 }, io());
    const codes = u8(...RAMP, 0x44, 0x65, 0x66, 0x87, 0x88, 0xa9, 0xaa, 0xcb, 0x8f, ...Array(7).fill(0x88), ...Array(8).fill(0x44));
    expect(model).toEqual(
      encode(
        {
          ...oneMatMul(),
          nodes: [nbits('proj_Q4', ['A', 'W_Q4', 'W_scales'], 'Y', { K: 32, N: 2, bits: 4, block_size: 32, accuracy_level: 4 })],
          initializers: [
            { name: 'W_Q4', dataType: OnnxDataType.UINT8, dims: [2, 1, 16], raw: codes },
            { name: 'W_scales', dataType: OnnxDataType.FLOAT, dims: [2], raw: f32(1, 0.25) },
          ],
        },
        withMicrosoft,
      ),
    );
    expect(report.matmuls[0]).toMatchObject({ bits: 4, blockSize: 32, bytesOut: 40, maxAbsError: 0.5 });
  });
});

/** One MatMul of B [K, N] (given as its columns), quantized with `options`: the output's B, scales and zero points initializers, and the report. */
async function quantizeColumns(columns: number[][], options: QuantizeOnnxOptions, dataType: OnnxDataType = OnnxDataType.FLOAT) {
  const k = columns[0]!.length;
  const values = fromColumns(columns);
  const raw = dataType === OnnxDataType.FLOAT ? float32Raw(values) : encodeFloat32(values, 'F16');
  const graph: OnnxGraph = { ...oneMatMul([{ name: 'W', dataType, dims: [k, columns.length], raw }]), inputs: [{ ...A, shape: [1, k] }] };
  const { model, report } = await quantizeOnnx(encode(graph), options, io());
  const bits = options.bits ?? 4;
  const init = initializersOf(model);
  const names = ['A', `W_Q${bits}`, 'W_scales', ...(options.type === 'asymmetric' ? ['W_zero_points'] : [])];
  expect(nodesOf(model).map((n) => [n.opType, n.inputs])).toEqual([['MatMulNBits', names]]);
  expect([...init.keys()]).toEqual(names.slice(1));
  return { b: init.get(names[1]!)!, scales: init.get('W_scales')!, zeroPoints: init.get('W_zero_points'), report: report.matmuls[0]! };
}

describe('quantizeOnnx: codes, scales and zero points', () => {
  it('pads K to whole blocks with zeros (code 8), and says K', async () => {
    // Block 1 holds [4, -4, 2, 0] and 12 zeros of padding: s 0.5, codes 15 (8 clamped), 0, 12, 8.
    const { b, scales, report } = await quantizeColumns([[...range(16, (i) => i - 8), 4, -4, 2, 0]], { blockSize: 16 });
    expect(b).toMatchObject({ dims: [1, 2, 8], raw: u8(...RAMP, 0x0f, 0x8c, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88) });
    expect(scales).toMatchObject({ dims: [2], raw: f32(1, 0.5) });
    expect(report).toMatchObject({ shape: [20, 1], maxAbsError: 0.5, rmsError: Math.sqrt(0.25 / 20), bytesIn: 80, bytesOut: 24 });
  });

  it('asymmetric 4-bit: zero points two to a byte, a row of N padded to whole bytes; one-sided and constant blocks', async () => {
    // s = (max − min)/16, zero point −round(min/s). Column 0: [-8..6, 8] (s 1, zp 8, 8 clamps to
    // code 15); [1..16], which misses 0 and is packed beside 16 zeros ([0, 16]: s 1, zp 0);
    // [-1..-8, -1..-8], which misses 0 and reaches it beside zeros only at code 16, so is packed
    // beside its negation ([-8, 8]: s 1, zp 8). Column 1: 0.75 ×16, a constant (codes 0, zp 1,
    // scale −0.75: (0 − 1)·−0.75); [-4..10, 12] (s 1, zp 4); zeros (codes 0, zp 1, scale −0).
    const columns = [
      [...range(15, (i) => i - 8), 8, ...range(16, (i) => i + 1), ...range(16, (i) => -((i % 8) + 1))],
      [...Array(16).fill(0.75), ...range(15, (i) => i - 4), 12, ...Array(16).fill(0)],
    ];
    const { b, scales, zeroPoints, report } = await quantizeColumns(columns, { blockSize: 16, type: 'asymmetric' });
    const falling = [0x67, 0x45, 0x23, 0x01];
    expect(b).toMatchObject({ dims: [2, 3, 8], raw: u8(...RAMP, 0x21, 0x43, 0x65, 0x87, 0xa9, 0xcb, 0xed, 0xff, ...falling, ...falling, ...Array(8).fill(0), ...RAMP, ...Array(8).fill(0)) });
    expect(scales).toMatchObject({ dims: [6], raw: f32(1, 1, 1, -0.75, 1, -0) });
    // Three blocks of 4 bits: two bytes a column. Column 0: 8, 0, 8; column 1: 1, 4, 1.
    expect(zeroPoints).toMatchObject({ name: 'W_zero_points', dataType: OnnxDataType.UINT8, dims: [4], raw: u8(0x08, 0x08, 0x41, 0x01) });
    // Three values a step off: 8 → 7, 16 → 15, 12 → 11.
    expect(report).toMatchObject({ type: 'asymmetric', maxAbsError: 1, rmsError: Math.sqrt(3 / 96), bytesIn: 384, bytesOut: 48 + 24 + 4 });
  });

  it('8 bits: a byte a code, zero points a byte a block', async () => {
    // Symmetric: s = 2·absmax/256; [-8..7] → s 1/16, codes 16·i; 1 ×16 → s 1/128, 256 clamped to 255.
    const symmetric = await quantizeColumns([[...range(16, (i) => i - 8), ...Array(16).fill(1)]], { bits: 8, blockSize: 16 });
    expect(symmetric.b).toMatchObject({ name: 'W_Q8', dims: [1, 2, 16], raw: u8(...range(16, (i) => 16 * i), ...Array(16).fill(255)) });
    expect(symmetric.scales.raw).toEqual(f32(1 / 16, 1 / 128));
    expect(symmetric.report).toMatchObject({ bits: 8, maxAbsError: 1 / 128 });
    // Asymmetric: [0, 16 .. 224, 256] → s 1, zp 0 (256 clamped to 255); [-1 ×8, -2 ×8] misses 0
    // and reaches it beside zeros only at code 256: beside its negation, s 1/64, zp 128.
    const asymmetric = await quantizeColumns([[...range(15, (i) => 16 * i), 256, ...Array(8).fill(-1), ...Array(8).fill(-2)]], { bits: 8, blockSize: 16, type: 'asymmetric' });
    expect(asymmetric.b.raw).toEqual(u8(...range(15, (i) => 16 * i), 255, ...Array(8).fill(64), ...Array(8).fill(0)));
    expect(asymmetric.scales.raw).toEqual(f32(1, 1 / 64));
    expect(asymmetric.zeroPoints).toMatchObject({ dims: [2], raw: u8(0, 128) });
    expect(asymmetric.report).toMatchObject({ maxAbsError: 1 });
  });

  it('passes the grid on: full is exact where DeepSpeed clamps', async () => {
    // [8, 0 ×15]: DeepSpeed's s 1 clamps 8 to 7; the full grid's s = 8/−8 = −1 codes 8 as 0.
    const column = [[8, ...Array(15).fill(0)]];
    const deepspeed = await quantizeColumns(column, { blockSize: 16, grid: 'deepspeed' });
    expect([deepspeed.b.raw, deepspeed.scales.raw, deepspeed.report.maxAbsError]).toEqual([u8(0x8f, ...Array(7).fill(0x88)), f32(1), 1]);
    const full = await quantizeColumns(column, { blockSize: 16, grid: 'full' });
    expect([full.b.raw, full.scales.raw, full.report.maxAbsError]).toEqual([u8(0x80, ...Array(7).fill(0x88)), f32(-1), 0]);
  });

  it('FLOAT16 B: FLOAT16 scales, and the error is that of the scales stored', async () => {
    // Column 1 is 2^-22 ×16: s = 2^-25, which FLOAT16 rounds to 0 (half of its least subnormal,
    // to even), so the stored block restores as zeros.
    const { scales, b, report } = await quantizeColumns([range(16, (i) => i - 8), Array(16).fill(2 ** -22)], { blockSize: 16 }, OnnxDataType.FLOAT16);
    expect(scales).toMatchObject({ dataType: OnnxDataType.FLOAT16, dims: [2], raw: u8(0x00, 0x3c, 0x00, 0x00) });
    expect(b.raw).toEqual(u8(...RAMP, ...Array(8).fill(0xff)));
    expect(report).toMatchObject({ dtype: 'FLOAT16', bytesIn: 64, bytesOut: 16 + 4, maxAbsError: 2 ** -22, rmsError: Math.sqrt(2 ** -45) });
  });

  it.each([
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['-Infinity', Number.NEGATIVE_INFINITY],
  ])('refuses a B holding %s, naming the node, B, its shape and the element', async (shown, value) => {
    const values = B4.slice();
    values[37] = value;
    for (const [node, label] of [
      [matMul('proj', 'W'), "MatMul 'proj'"],
      [matMul('', 'W'), "MatMul 'Y'"],
    ] as const) {
      const error = await thrownAsync(() => quantizeOnnx(encode({ ...oneMatMul([weight('W', [32, 2], values)]), nodes: [node] }), { blockSize: 16 }, io()));
      expect(error).toBeInstanceOf(InvalidInputError);
      expect(error).toMatchObject({ code: 'NON_FINITE', message: `${label} (B 'W', [32, 2]): B holds ${shown} at element 37; fix the model's weights or exclude it.` });
    }
  });
});

/** B4 stored transposed, [N, K]: its columns one after the other. */
const B4_T = Float32Array.from({ length: 64 }, (_, i) => B4[(i % 32) * 2 + Math.floor(i / 32)]!);

describe('quantizeOnnx: Gemm', () => {
  const gemm = (inputs: string[], attributes: Record<string, number>, name = 'fc'): OnnxNode => ({ opType: 'Gemm', name, inputs, outputs: ['Y'], attributes });
  const C: OnnxTensor = { name: 'C', dataType: OnnxDataType.FLOAT, dims: [2], raw: f32(1, 2) };

  it.each([
    ['B [K, N]', {}, [32, 2], B4],
    ['transB 0', { transB: 0, alpha: 1, transA: 0 }, [32, 2], B4],
    ['transB 1: B [N, K]', { transB: 1 }, [2, 32], B4_T],
    ['beta 2, with no C', { transB: 1, beta: 2 }, [2, 32], B4_T],
  ])('%s → MatMulNBits', async (_name, attributes, dims, values) => {
    const graph: OnnxGraph = { ...oneMatMul([weight('W', dims, values)]), nodes: [gemm(['A', 'W'], attributes)] };
    const { model, report } = await quantizeOnnx(encode(graph), { blockSize: 16 }, io());
    expect(model).toEqual(encode({ ...graph, nodes: [nbits('fc_Q4', ['A', 'W_Q4', 'W_scales'], 'Y', Q4_ATTRIBUTES)], initializers: Q4() }, withMicrosoft));
    expect(report.matmuls).toEqual([{ node: 'fc', op: 'Gemm', ...B4_REPORT }]);
  });

  it('C is added after by an Add node, named after the Gemm; an unnamed Gemm gives unnamed nodes', async () => {
    for (const [name, attributes] of [
      ['fc', { transB: 1, beta: 1 }],
      ['', { transB: 1 }],
    ] as const) {
      const graph: OnnxGraph = { ...oneMatMul([weight('W', [2, 32], B4_T), C]), nodes: [gemm(['A', 'W', 'C'], attributes, name)] };
      const { model } = await quantizeOnnx(encode(graph), { blockSize: 16 }, io());
      const named = (suffix: string) => (name ? { name: `${name}${suffix}` } : {});
      expect(model).toEqual(
        encode(
          {
            ...graph,
            nodes: [
              { ...nbits('', ['A', 'W_Q4', 'W_scales'], 'Y_MatMulNBits', Q4_ATTRIBUTES), name: undefined, ...named('_Q4') },
              { opType: 'Add', inputs: ['Y_MatMulNBits', 'C'], outputs: ['Y'], ...named('_bias') },
            ],
            initializers: [C, ...Q4()],
          },
          withMicrosoft,
        ),
      );
    }
  });

  it('an empty C name is no C', async () => {
    const graph: OnnxGraph = { ...oneMatMul([weight('W', [2, 32], B4_T)]), nodes: [gemm(['A', 'W', ''], { transB: 1 })] };
    const { model } = await quantizeOnnx(encode(graph), { blockSize: 16 }, io());
    expect(nodesOf(model).map((n) => [n.opType, n.inputs, n.outputs])).toEqual([['MatMulNBits', ['A', 'W_Q4', 'W_scales'], ['Y']]]);
  });

  it.each([
    ['alpha 2', ['A', 'W'], { alpha: 2 }],
    ['transA 1', ['A', 'W'], { transA: 1 }],
    ['beta 2 with C', ['A', 'W', 'C'], { beta: 2 }],
    ['one input', ['A'], {}],
  ])('leaves a Gemm with %s as it is', async (_name, inputs, attributes) => {
    await expectUnchanged(encode({ ...oneMatMul([weight('W', [32, 2], B4), C]), nodes: [gemm(inputs, attributes)] }));
  });
});

// Nodes and graphs the tests' encoder cannot state (float and graph-list attributes, typed
// tensor fields), written with the library's protobuf writer from onnx.proto's field numbers.
const attributeF = (name: string, value: number) => {
  const f = new Uint8Array(4);
  new DataView(f.buffer).setFloat32(0, value, true);
  // name 1, f 2 (fixed32: tag 0x15), type 20 = FLOAT (1)
  return new MessageWriter()
    .string(1, name)
    .raw(u8(0x15, ...f))
    .int(20, 1);
};
const tensorMessage = (t: OnnxTensor) => {
  const w = new MessageWriter().ints(1, t.dims).int(2, t.dataType).string(8, t.name);
  return t.raw ? w.bytes(9, t.raw) : w;
};
/** A model of one graph from written nodes: initializers, then A as input and Y as output (names only). */
function writtenModel(nodes: MessageWriter[], initializers: OnnxTensor[]): Uint8Array {
  const graph = new MessageWriter();
  for (const n of nodes) graph.message(1, n);
  graph.string(2, 'g');
  for (const t of initializers) graph.message(5, tensorMessage(t));
  graph.message(11, new MessageWriter().string(1, 'A')).message(12, new MessageWriter().string(1, 'Y'));
  return new MessageWriter().int(1, 10).message(7, graph).message(8, new MessageWriter().string(1, '').int(2, 21)).finish();
}

describe('quantizeOnnx: float attributes', () => {
  const gemm = (attributes: MessageWriter[], inputs = ['A', 'W', 'C']) => {
    const node = new MessageWriter();
    for (const i of inputs) node.string(1, i);
    node.string(2, 'Y').string(3, 'fc').string(4, 'Gemm');
    for (const a of attributes) node.message(5, a);
    return node;
  };
  const C: OnnxTensor = { name: 'C', dataType: OnnxDataType.FLOAT, dims: [2], raw: f32(1, 2) };

  it('reads alpha and beta as floats: 1.0 is converted', async () => {
    const { report } = await quantizeOnnx(writtenModel([gemm([attributeF('alpha', 1), attributeF('beta', 1)])], [weight('W', [32, 2], B4), C]), { blockSize: 16 }, io());
    expect(report.matmuls.map((r) => [r.op, r.weight])).toEqual([['Gemm', 'W']]);
  });

  it.each([
    ['alpha 0.5', [attributeF('alpha', 0.5)]],
    ['beta 0.5', [attributeF('beta', 0.5)]],
  ])('leaves a Gemm with %s as it is', async (_name, attributes) => {
    await expectUnchanged(writtenModel([gemm(attributes)], [weight('W', [32, 2], B4), C]));
  });

  it.each([
    ['a FLOAT attribute with no f', new MessageWriter().string(1, 'alpha').int(20, 1), "attribute alpha of node 'fc' has no float value: the file is damaged."],
    ['an INT attribute with no i', new MessageWriter().string(1, 'transB').int(20, 2), "attribute transB of node 'fc' has no integer value: the file is damaged."],
  ])('refuses %s', async (_name, attribute, message) => {
    const error = await thrownAsync(() => quantizeOnnx(writtenModel([gemm([attribute])], [weight('W', [32, 2], B4), C]), {}, io()));
    expect(error).toBeInstanceOf(FormatError);
    expect(error).toMatchObject({ code: 'MALFORMED_FILE', message });
  });
});

describe('quantizeOnnx: which MatMuls', () => {
  it.each([
    ['a MatMul of another domain', { nodes: [{ ...matMul('proj', 'W'), domain: 'com.example' }] }],
    ['a MatMul with three inputs', { nodes: [{ ...matMul('proj', 'W'), inputs: ['A', 'W', 'X'] }] }],
    ['a 1-D B', { initializers: [weight('W', [64], B4)] }],
    ['a 3-D B', { initializers: [weight('W', [2, 16, 2], B4)] }],
    ['an empty B', { initializers: [weight('W', [0, 2], new Float32Array(0))] }],
    ['a DOUBLE B', { initializers: [{ name: 'W', dataType: 11, dims: [32, 1], raw: new Uint8Array(256) } as unknown as OnnxTensor] }],
    ['an INT64 B', { initializers: [{ name: 'W', dataType: OnnxDataType.INT64, dims: [32, 1], raw: new Uint8Array(256) }] }],
    ['a B that is also a graph input', { inputs: [A, { name: 'W', elemType: OnnxDataType.FLOAT, shape: [32, 2] }] }],
    ['a B no initializer or Constant gives', { initializers: [] }],
    ['a B computed by a node', { initializers: [], nodes: [{ opType: 'Identity', inputs: ['A'], outputs: ['W'] }, matMul('proj', 'W')] }],
  ] as [string, Partial<OnnxGraph>][])('leaves %s as it is', async (_name, change) => {
    await expectUnchanged(encode({ ...oneMatMul(), ...change }));
  });

  it('takes a MatMul of the ai.onnx domain', async () => {
    const { report } = await quantizeOnnx(encode({ ...oneMatMul(), nodes: [{ ...matMul('proj', 'W'), domain: 'ai.onnx' }] }), { blockSize: 16 }, io());
    expect(report.matmuls).toEqual([{ node: 'proj', op: 'MatMul', ...B4_REPORT }]);
  });

  it('include and exclude match B by name', async () => {
    const two: OnnxGraph = {
      ...oneMatMul([weight('attn.W', [32, 2], B4), weight('mlp.W', [32, 2], B4)]),
      nodes: [matMul('attn', 'attn.W', 'H'), matMul('mlp', 'mlp.W')],
    };
    const weights = async (options: QuantizeOnnxOptions) => (await quantizeOnnx(encode(two), { blockSize: 16, ...options }, io())).report.matmuls.map((r) => r.weight);
    expect(await weights({})).toEqual(['attn.W', 'mlp.W']);
    expect(await weights({ include: '^attn' })).toEqual(['attn.W']);
    expect(await weights({ exclude: /^ATTN/i })).toEqual(['mlp.W']);
    expect(await weights({ include: '\\.W$', exclude: 'mlp' })).toEqual(['attn.W']);
    await expectUnchanged(encode(two), { include: 'nothing' });
  });
});

describe('quantizeOnnx: Gather → GatherBlockQuantized', () => {
  /** B4's columns as the rows of a [V 2, D 32] table. */
  const table = weight('E', [2, 32], B4_T);
  const gather = (attributes: Record<string, number> = {}, extra: Partial<OnnxNode> = {}): OnnxNode => ({
    opType: 'Gather',
    name: 'embed',
    inputs: ['E', 'ids'],
    outputs: ['Y'],
    attributes,
    ...extra,
  });
  const graph = (node: OnnxNode): OnnxGraph => ({ name: 'g', nodes: [node], initializers: [table], inputs: [{ name: 'ids', elemType: OnnxDataType.INT64, shape: [1] }], outputs: [Y] });

  it.each([
    ['no axis', {}],
    ['axis 0', { axis: 0 }],
  ])('%s: the table packed as MatMulNBits packs B [K = D, N = V], [V, D·bits/8] bytes and [V, D/block] scales', async (_name, attributes) => {
    const { model, report } = await quantizeOnnx(encode(graph(gather(attributes))), { blockSize: 16 }, io());
    expect(model).toEqual(
      encode(
        {
          ...graph(gather()),
          nodes: [
            {
              opType: 'GatherBlockQuantized',
              domain: 'com.microsoft',
              name: 'embed_Q4',
              inputs: ['E_Q4', 'ids', 'E_scales'],
              outputs: ['Y'],
              attributes: { gather_axis: 0, quantize_axis: 1, block_size: 16, bits: 4 },
            },
          ],
          initializers: [
            { name: 'E_Q4', dataType: OnnxDataType.UINT8, dims: [2, 16], raw: B4_CODES },
            { name: 'E_scales', dataType: OnnxDataType.FLOAT, dims: [2, 2], raw: B4_SCALES },
          ],
        },
        withMicrosoft,
      ),
    );
    expect(report.matmuls).toEqual([{ node: 'embed', op: 'Gather', ...B4_REPORT, weight: 'E', shape: [2, 32] }]);
  });

  it('an unnamed Gather gives an unnamed node; two Gathers of one table share it', async () => {
    const { model, report } = await quantizeOnnx(
      encode({ ...graph(gather()), nodes: [gather({}, { name: undefined, outputs: ['Y1'] }), gather({}, { name: undefined, outputs: ['Y2'] })] }),
      { blockSize: 16 },
      io(),
    );
    expect(nodesOf(model).map((n) => [n.name, n.inputs, n.outputs])).toEqual([
      ['', ['E_Q4', 'ids', 'E_scales'], ['Y1']],
      ['', ['E_Q4', 'ids', 'E_scales'], ['Y2']],
    ]);
    expect([...initializersOf(model).keys()]).toEqual(['E_Q4', 'E_scales']);
    expect(report.matmuls).toHaveLength(1);
  });

  it.each([
    ['axis 1', gather({ axis: 1 }), {}],
    ['another domain', gather({}, { domain: 'com.example' }), {}],
    ['three inputs', gather({}, { inputs: ['E', 'ids', 'x'] }), {}],
    ['D not a whole number of blocks', gather(), { blockSize: 64 }],
    ['asymmetric', gather(), { blockSize: 16, type: 'asymmetric' }],
    ['excluded', gather(), { blockSize: 16, exclude: 'E' }],
  ] as [string, OnnxNode, QuantizeOnnxOptions][])('leaves a Gather with %s as it is', async (_name, node, options) => {
    await expectUnchanged(encode(graph(node)), options);
  });

  it('takes a Gather of the ai.onnx domain, and a recipe rule’s block size', async () => {
    const { report } = await quantizeOnnx(encode(graph(gather({}, { domain: 'ai.onnx' }))), { blockSize: 64, recipe: [{ match: 'E', groupSize: 16 }] }, io());
    expect(report.matmuls.map((r) => [r.op, r.blockSize, r.rule])).toEqual([['Gather', 16, 0]]);
  });

  it('a table read by a Gather and a MatMul is packed once for each', async () => {
    const { model } = await quantizeOnnx(
      encode({ ...graph(gather()), nodes: [gather(), { opType: 'MatMul', name: 'head', inputs: ['A', 'E'], outputs: ['Z'] }], initializers: [weight('E', [2, 32], B4_T)] }),
      { blockSize: 16 },
      io(),
    );
    expect(nodesOf(model).map((n) => [n.opType, n.inputs])).toEqual([
      ['GatherBlockQuantized', ['E_Q4', 'ids', 'E_scales']],
      ['MatMulNBits', ['A', 'E_Q4_1', 'E_scales_1']],
    ]);
  });
});

describe('quantizeOnnx: the graph around the MatMul', () => {
  const constant = (tensor: OnnxTensor, extra: Partial<OnnxNode> = {}): OnnxNode => ({
    opType: 'Constant',
    name: 'c',
    inputs: [],
    outputs: [tensor.name],
    attributes: { value: { tensor } },
    ...extra,
  });
  const W = weight('W', [32, 2], B4);
  const MATMULNBITS = nbits('proj_Q4', ['A', 'W_Q4', 'W_scales'], 'Y', Q4_ATTRIBUTES);

  it('a Constant B: the Constant goes, the new initializers close the graph', async () => {
    for (const domain of [undefined, 'ai.onnx']) {
      const { model } = await quantizeOnnx(encode({ ...oneMatMul([]), nodes: [constant(W, { domain }), matMul('proj', 'W')] }), { blockSize: 16 }, io());
      expect(nodesOf(model).map((n) => n.opType)).toEqual(['MatMulNBits']);
      // node, name, input, output, then the two initializers.
      expect(graphFields(model).map((f) => f.number)).toEqual([1, 2, 11, 12, 5, 5]);
      expect([...initializersOf(model).values()].map((t) => [t.name, t.raw])).toEqual([
        ['W_Q4', B4_CODES],
        ['W_scales', B4_SCALES],
      ]);
    }
  });

  it.each([
    ['of another domain', constant(W, { domain: 'com.example' })],
    ['with two outputs', constant(W, { outputs: ['W', 'W2'] })],
    ['with a value_float', { opType: 'Constant', inputs: [], outputs: ['W'], attributes: { value_float: 1 } }],
  ] as [string, OnnxNode][])('leaves a MatMul of a Constant %s as it is', async (_name, node) => {
    await expectUnchanged(encode({ ...oneMatMul([]), nodes: [node, matMul('proj', 'W')] }));
  });

  it('keeps a B that something else still reads: a node, or the graph output', async () => {
    const identity: OnnxNode = { opType: 'Identity', inputs: ['W'], outputs: ['Z'] };
    const read = await quantizeOnnx(encode({ ...oneMatMul(), nodes: [matMul('proj', 'W'), identity] }), { blockSize: 16 }, io());
    expect([...initializersOf(read.model).keys()]).toEqual(['W', 'W_Q4', 'W_scales']);
    const output = await quantizeOnnx(encode({ ...oneMatMul(), outputs: [Y, { name: 'W', elemType: OnnxDataType.FLOAT, shape: [32, 2] }] }), { blockSize: 16 }, io());
    expect([...initializersOf(output.model).keys()]).toEqual(['W', 'W_Q4', 'W_scales']);
    const kept = await quantizeOnnx(encode({ ...oneMatMul([]), nodes: [constant(W), matMul('proj', 'W'), identity] }), { blockSize: 16 }, io());
    expect(nodesOf(kept.model).map((n) => n.opType)).toEqual(['Constant', 'MatMulNBits', 'Identity']);
  });

  it('new initializers follow the last initializer, kept ones stay where they were', async () => {
    const X: OnnxTensor = { name: 'X', dataType: OnnxDataType.INT64, dims: [1], raw: new Uint8Array(8) };
    for (const initializers of [
      [X, W],
      [W, X],
    ]) {
      const graph = oneMatMul(initializers);
      const { model } = await quantizeOnnx(encode(graph), { blockSize: 16 }, io());
      expect(model).toEqual(encode({ ...graph, nodes: [MATMULNBITS], initializers: [X, ...Q4()] }, withMicrosoft));
    }
  });

  it('one B read by two MatMuls is quantized once; read plain and transposed, twice under fresh names', async () => {
    const twice = await quantizeOnnx(encode({ ...oneMatMul(), nodes: [matMul('a', 'W', 'H'), matMul('b', 'W')] }), { blockSize: 16 }, io());
    expect(nodesOf(twice.model).map((n) => n.inputs)).toEqual([
      ['A', 'W_Q4', 'W_scales'],
      ['A', 'W_Q4', 'W_scales'],
    ]);
    expect([...initializersOf(twice.model).keys()]).toEqual(['W_Q4', 'W_scales']);
    expect(twice.report.matmuls).toHaveLength(1);

    const square = weight('W', [32, 32], new Float32Array(1024).fill(1));
    const both = await quantizeOnnx(
      encode({ ...oneMatMul([square]), nodes: [matMul('a', 'W', 'H'), { opType: 'Gemm', name: 'b', inputs: ['A', 'W'], outputs: ['Y'], attributes: { transB: 1 } }] }),
      { blockSize: 16 },
      io(),
    );
    expect(nodesOf(both.model).map((n) => n.inputs)).toEqual([
      ['A', 'W_Q4', 'W_scales'],
      ['A', 'W_Q4_1', 'W_scales_1'],
    ]);
    expect(both.report.matmuls.map((r) => r.op)).toEqual(['MatMul', 'Gemm']);
  });

  it('new names do not take a name the model uses (an initializer, a node output)', async () => {
    const taken = (name: string): OnnxTensor => ({ name, dataType: OnnxDataType.INT64, dims: [1], raw: new Uint8Array(8) });
    const graph: OnnxGraph = {
      ...oneMatMul([W, taken('W_Q4'), taken('W_Q4_1')]),
      nodes: [matMul('proj', 'W'), { opType: 'Identity', inputs: ['W_Q4'], outputs: ['W_scales'] }],
    };
    const { model } = await quantizeOnnx(encode(graph), { blockSize: 16 }, io());
    expect(nodesOf(model)[0]!.inputs).toEqual(['A', 'W_Q4_2', 'W_scales_1']);
    expect([...initializersOf(model).keys()]).toEqual(['W_Q4', 'W_Q4_1', 'W_Q4_2', 'W_scales_1']);
  });

  it('adds the com.microsoft opset after the first opset import, once, and only when something was converted', async () => {
    const ml = { domain: 'ai.onnx.ml', version: 3 };
    const { model } = await quantizeOnnx(encode(oneMatMul(), [...opsets, ml]), { blockSize: 16 }, io());
    expect(model).toEqual(encode({ ...oneMatMul(), nodes: [MATMULNBITS], initializers: Q4() }, [...opsets, withMicrosoft[1]!, ml]));
    const already = await quantizeOnnx(encode(oneMatMul(), [...opsets, { domain: 'com.microsoft', version: 1 }]), { blockSize: 16 }, io());
    expect(already.model).toEqual(encode({ ...oneMatMul(), nodes: [MATMULNBITS], initializers: Q4() }, withMicrosoft));
    await expectUnchanged(encode(oneMatMul(), [...opsets, ml]), { exclude: 'W' });
  });
});

describe('quantizeOnnx: subgraphs', () => {
  const W = weight('W', [32, 2], B4);
  const COND = { name: 'cond', elemType: OnnxDataType.BOOL, shape: [] } as const;
  const branch = (name: string, nodes: OnnxNode[], initializers: OnnxTensor[] = []): OnnxGraph => ({ name, nodes, initializers, inputs: [], outputs: [Y] });
  const ifModel = (then: OnnxGraph, otherwise: OnnxGraph, initializers: OnnxTensor[]) =>
    encode({
      name: 'main',
      nodes: [{ opType: 'If', name: 'choose', inputs: ['cond'], outputs: ['Y'], attributes: { then_branch: { graph: then }, else_branch: { graph: otherwise } } }],
      initializers,
      inputs: [A, COND],
      outputs: [Y],
    });
  const identity = (input: string): OnnxNode => ({ opType: 'Identity', inputs: [input], outputs: ['Y'] });
  const MATMULNBITS = nbits('proj_Q4', ['A', 'W_Q4', 'W_scales'], 'Y', Q4_ATTRIBUTES);

  it('rewrites a branch’s MatMul of its own B in the branch, the other branch kept as it was', async () => {
    const otherwise = branch('else', [identity('A')]);
    const { model } = await quantizeOnnx(ifModel(branch('then', [matMul('proj', 'W')], [W]), otherwise, []), { blockSize: 16 }, io());
    expect(model).toEqual(
      encodeModel({
        irVersion: 10,
        opsetImports: withMicrosoft,
        graph: {
          name: 'main',
          nodes: [
            {
              opType: 'If',
              name: 'choose',
              inputs: ['cond'],
              outputs: ['Y'],
              attributes: { then_branch: { graph: branch('then', [MATMULNBITS], Q4()) }, else_branch: { graph: otherwise } },
            },
          ],
          initializers: [],
          inputs: [A, COND],
          outputs: [Y],
        },
      }),
    );
  });

  it('a B of the enclosing graph is quantized in the branch and dropped from the main graph, unless read there', async () => {
    const then = branch('then', [matMul('proj', 'W')]);
    const { model } = await quantizeOnnx(ifModel(then, branch('else', [identity('A')]), [W]), { blockSize: 16 }, io());
    // The main graph: the If, its name, inputs and output; no initializer left.
    expect(graphFields(model).map((f) => f.number)).toEqual([1, 2, 11, 11, 12]);
    const [ifNode] = nodesOf(model);
    expect(ifNode!.attributes.map((a) => a.name)).toEqual(['then_branch', 'else_branch']);
    expect(ifNode!.attributes[1]!.field.raw).toEqual(
      readNode(readFields(bytesValue(readModel(ifModel(then, branch('else', [identity('A')]), [W])).graph, 'g'), 'g')[0]!, 'n').attributes[1]!.field.raw,
    );
    // The branch: its node, name and output, then the new initializers (it had none).
    const thenGraph = readFields(ifNode!.attributes[0]!.fields[1]!.payload, 'then');
    expect(thenGraph.map((f) => f.number)).toEqual([1, 2, 12, 5, 5]);
    expect(readNode(thenGraph[0]!, 'n')).toMatchObject({ opType: 'MatMulNBits', name: 'proj_Q4', inputs: ['A', 'W_Q4', 'W_scales'], outputs: ['Y'] });
    expect(
      thenGraph
        .slice(3)
        .map((f) => readTensor(f.payload, 't'))
        .map((t) => [t.name, t.dims, t.fields.find((x) => x.number === 9)!.payload]),
    ).toEqual([
      ['W_Q4', [2, 2, 8], B4_CODES],
      ['W_scales', [4], B4_SCALES],
    ]);
    const readElsewhere = await quantizeOnnx(ifModel(then, branch('else', [identity('W')]), [W]), { blockSize: 16 }, io());
    expect([...initializersOf(readElsewhere.model).keys()]).toEqual(['W']);
  });

  it.each([
    ['a node output', branch('then', [{ opType: 'Identity', inputs: ['A'], outputs: ['W'] }, matMul('proj', 'W')])],
    ['a graph input', { ...branch('then', [matMul('proj', 'W')]), inputs: [{ name: 'W', elemType: OnnxDataType.FLOAT, shape: [32, 2] }] }],
  ])('leaves a branch MatMul whose B is hidden by %s as it is', async (_name, then) => {
    await expectUnchanged(ifModel(then, branch('else', [identity('A')]), [W]));
  });

  it('takes B from two graphs out, and rewrites graph-list attributes', async () => {
    // A node with one GRAPHS attribute (type 10, graphs field 11) of two graphs, the first an If
    // whose branch reads W from the main graph.
    const inner = encodeModel({ irVersion: 10, opsetImports: opsets, graph: branch('inner', [matMul('proj', 'W')]) });
    const innerGraph = readFields(bytesValue(readModel(inner).graph, 'graph'), 'graph');
    const graphOf = (fields: typeof innerGraph) => {
      const w = new MessageWriter();
      for (const f of fields) w.raw(f.raw);
      return w;
    };
    const ifNode = new MessageWriter()
      .string(1, 'cond')
      .string(2, 'Y')
      .string(4, 'If')
      .message(5, new MessageWriter().string(1, 'then_branch').message(6, graphOf(innerGraph)).int(20, 5));
    const outer = new MessageWriter().message(1, ifNode).string(2, 'outer');
    const empty = new MessageWriter().string(2, 'empty');
    const custom = new MessageWriter()
      .string(2, 'Y')
      .string(3, 'loop')
      .string(4, 'Bodies')
      .string(7, 'com.example')
      .message(5, new MessageWriter().string(1, 'bodies').message(11, outer).message(11, empty).int(20, 10));
    const main = new MessageWriter().message(1, custom).string(2, 'main').message(5, tensorMessage(W));
    const model = new MessageWriter().int(1, 10).message(7, main).message(8, new MessageWriter().string(1, '').int(2, 21)).finish();
    const { model: out, report } = await quantizeOnnx(model, { blockSize: 16 }, io());
    expect(report.matmuls.map((r) => r.weight)).toEqual(['W']);
    expect(graphFields(out).map((f) => f.number)).toEqual([1, 2]);
    const [node] = nodesOf(out);
    const [bodies] = node!.attributes;
    expect([node!.name, bodies!.name, bodies!.type, bodies!.fields.map((f) => f.number)]).toEqual(['loop', 'bodies', 10, [1, 11, 11, 20]]);
    expect(bodies!.fields[2]!.raw).toEqual(new MessageWriter().message(11, empty).finish());
    const [ifOut] = readFields(bodies!.fields[1]!.payload, 'outer').map((f) => (f.number === 1 ? readNode(f, 'if') : null));
    const thenGraph = readFields(ifOut!.attributes[0]!.fields[1]!.payload, 'then');
    const rewritten = thenGraph.filter((f) => f.number === 1).map((f) => readNode(f, 'n'));
    expect(rewritten.map((n) => [n.opType, n.inputs])).toEqual([['MatMulNBits', ['A', 'W_Q4', 'W_scales']]]);
    expect(thenGraph.filter((f) => f.number === 5).map((f) => readTensor(f.payload, 't').name)).toEqual(['W_Q4', 'W_scales']);
  });
});

describe('quantizeOnnx: options', () => {
  async function refused(options: unknown, message: string, ...ioGiven: unknown[]): Promise<void> {
    const given = ioGiven.length > 0 ? ioGiven[0] : io();
    const error = await thrownAsync(() => quantizeOnnx(encode(oneMatMul()), options as QuantizeOnnxOptions, given as ReturnType<typeof io>));
    expect(error).toBeInstanceOf(InvalidInputError);
    expect(error).toMatchObject({ code: 'INVALID_ARGUMENT', message });
  }

  it.each([
    [null, 'quantizeOnnx options must be an object.'],
    ['4', 'quantizeOnnx options must be an object.'],
    [{ bits: 4, groupSize: 32, axis: 0 }, "unknown quantizeOnnx option 'groupSize', 'axis'; known: bits, blockSize, type, grid, accuracyLevel, include, exclude, recipe."],
    [{ bits: 2 }, 'bits must be 4 or 8 for MatMulNBits, got 2: onnxruntime-web 1.23 runs no other width (its wasm build refuses 2-bit MatMulNBits models).'],
    [{ bits: 6 }, 'bits must be 4 or 8 for MatMulNBits, got 6: onnxruntime-web 1.23 runs no other width (its wasm build refuses 2-bit MatMulNBits models).'],
    [{ blockSize: 8 }, "blockSize must be a power of two of at least 16 (MatMulNBits' rule), got 8."],
    [{ blockSize: 48 }, "blockSize must be a power of two of at least 16 (MatMulNBits' rule), got 48."],
    [{ blockSize: 16.5 }, "blockSize must be a power of two of at least 16 (MatMulNBits' rule), got 16.5."],
    [{ type: 'ternary' }, 'type must be "symmetric" or "asymmetric", got ternary.'],
    [{ grid: 'half' }, 'grid must be "deepspeed" or "full", got half.'],
    [{ accuracyLevel: -1 }, "accuracyLevel must be 0..4 (MatMulNBits' accuracy_level), got -1."],
    [{ accuracyLevel: 5 }, "accuracyLevel must be 0..4 (MatMulNBits' accuracy_level), got 5."],
    [{ accuracyLevel: 1.5 }, "accuracyLevel must be 0..4 (MatMulNBits' accuracy_level), got 1.5."],
  ])('refuses %j', async (options, message) => {
    await refused(options, message);
  });

  it('accepts the bounds: blocks of 16 and 256, accuracy levels 0 and 4, either grid', async () => {
    for (const options of [{ blockSize: 16, accuracyLevel: 0 }, { blockSize: 256, accuracyLevel: 4 }, { grid: 'full' }, { grid: 'deepspeed', type: 'symmetric', bits: 8 }] as QuantizeOnnxOptions[]) {
      const { report } = await quantizeOnnx(encode(oneMatMul()), options, io());
      expect(
        report.matmuls.map((r) => [r.bits, r.blockSize]),
        JSON.stringify(options),
      ).toEqual([[options.bits ?? 4, options.blockSize ?? 32]]);
    }
  });

  it.each([
    [undefined, 'quantizeOnnx needs { packer } (from createPacker).'],
    [{}, 'quantizeOnnx needs { packer } (from createPacker).'],
    [{ packer: { pack: 1 } }, 'quantizeOnnx needs { packer } (from createPacker).'],
  ])('refuses io %j', async (given, message) => {
    await refused({}, message, given);
  });

  it('checks the options before the model', async () => {
    const error = await thrownAsync(() => quantizeOnnx(u8(0xff), { bits: 3 }, io()));
    expect(error).toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});

describe('quantizeOnnx: recipes', () => {
  const two = () =>
    encode({
      ...oneMatMul([weight('attn.W', [32, 2], B4), weight('mlp.W', [32, 2], B4)]),
      nodes: [matMul('attn', 'attn.W', 'H'), matMul('mlp', 'mlp.W')],
    });

  it('the first matching rule sets bits, block size, type and grid; the options the rest', async () => {
    const { model, report } = await quantizeOnnx(
      two(),
      {
        blockSize: 16,
        accuracyLevel: 2,
        recipe: {
          rules: [
            { match: 'nothing', bits: 4 },
            { match: '^attn', bits: 8, groupSize: 32, type: 'asymmetric' },
            { match: 'W', type: 'symmetric' },
          ],
        },
      },
      io(),
    );
    expect(report.matmuls.map((r) => [r.weight, r.bits, r.blockSize, r.type, r.rule])).toEqual([
      ['attn.W', 8, 32, 'asymmetric', 1],
      ['mlp.W', 4, 16, 'symmetric', 2],
    ]);
    expect(nodesOf(model).map((n) => n.inputs)).toEqual([
      ['A', 'attn.W_Q8', 'attn.W_scales', 'attn.W_zero_points'],
      ['A', 'mlp.W_Q4', 'mlp.W_scales'],
    ]);
  });

  it('a rule without a grid keeps the options’ grid; a rule’s grid replaces it', async () => {
    // [8, 0 ×15] as in the grid test: DeepSpeed's scale 1, the full grid's −1.
    const one = encode(oneMatMul([weight('W', [16, 1], Float32Array.from([8, ...Array(15).fill(0)]))]));
    const scaleOf = async (options: QuantizeOnnxOptions) => initializersOf((await quantizeOnnx(one, { blockSize: 16, ...options }, io())).model).get('W_scales')!.raw;
    expect(await scaleOf({ grid: 'full', recipe: [{ match: 'W', bits: 4 }] })).toEqual(f32(-1));
    expect(await scaleOf({ recipe: [{ match: 'W', grid: 'full' }] })).toEqual(f32(-1));
    expect(await scaleOf({ grid: 'full', recipe: [{ match: 'W', grid: 'deepspeed' }] })).toEqual(f32(1));
    expect(await scaleOf({ recipe: [{ match: 'W', bits: 4 }] })).toEqual(f32(1));
  });

  it('a rule that keeps a weight leaves it as it is', async () => {
    const { report } = await quantizeOnnx(two(), { recipe: [{ match: 'mlp', keep: true }] }, io());
    expect(report.matmuls.map((r) => r.weight)).toEqual(['attn.W']);
  });

  it.each([
    ['axis', { axis: 0 }],
    ['groups', { groups: 2 }],
    ['rounding', { rounding: 'nearest' }],
  ])('refuses a rule that sets %s', async (key, setting) => {
    const error = await thrownAsync(() =>
      quantizeOnnx(
        two(),
        {
          recipe: [
            { match: 'mlp', keep: true },
            { match: 'attn', ...setting },
          ] as QuantizeOnnxOptions['recipe'],
        },
        io(),
      ),
    );
    expect(error).toBeInstanceOf(InvalidInputError);
    expect(error).toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: `recipe rule 2 ('attn') sets ${key}, which MatMulNBits cannot hold (blocks of groupSize run along K, nearest rounding); remove it for ONNX models.`,
    });
  });

  it('refuses a rule’s bits or block size that MatMulNBits cannot take', async () => {
    for (const [rule, message] of [
      [{ match: 'attn', bits: 3 }, /^bits must be 4 or 8 for MatMulNBits, got 3/],
      [{ match: 'attn', groupSize: 24 }, /^blockSize must be a power of two of at least 16 \(MatMulNBits' rule\), got 24\.$/],
    ] as const) {
      const error = await thrownAsync(() => quantizeOnnx(two(), { recipe: [rule] }, io()));
      expect(error).toBeInstanceOf(InvalidInputError);
      expect((error as Error).message).toMatch(message);
    }
  });
});
