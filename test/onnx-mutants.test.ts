// The ONNX format modules (src/formats/onnx/model.ts, quantize.ts, node-file.ts, options.ts)
// without onnxruntime: small models written by the tests' own encoder (test/support/onnx-model.ts),
// each output compared with the model onnxruntime's contrib-op spec says it must be, written out
// by hand: MatMulNBits' K, N, bits and block_size attributes, B as [N, k_blocks, blob] with codes
// low nibble first, scales [N·k_blocks], zero points packed two to a byte per row of N, and the
// initializer names onnxruntime's own quantizer gives. The codes follow from DeepSpeed's grid
// (docs/DESIGN.md section 1) on weights chosen so that every scale is a power of two. Refusals
// are checked by class, code and whole message; quantizeOnnxFile runs in a temporary folder.

import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EdgeMoqError, FormatError, InvalidInputError } from '../src/errors.js';
import { quantizeOnnxFile } from '../src/formats/onnx/node-file.js';
import { onnxOptionsFrom } from '../src/formats/onnx/options.js';
import { bytesValue, MessageWriter, readFields } from '../src/formats/onnx/proto.js';
import { attributeNumber, checkExternalLocation, elementCount, ExternalFiles, externalLocations, readFloatTensor, readModel, readNode, readTensor, valueInfoName } from '../src/formats/onnx/model.js';
import { quantizeOnnx, type QuantizeOnnxOptions } from '../src/formats/onnx/quantize.js';
import type { QuantizeFileOptions } from '../src/formats/quantize-file.js';
import type { PackedTensor, PackOptions } from '../src/packed/layout.js';
import type { Packer } from '../src/packed/packer.js';
import { encodeFloat32, memorySource } from '../src/formats/safetensors.js';
import { memorySink } from './support/memory-sink.js';
import { encodeModel, float32Raw, OnnxDataType, type OnnxGraph, type OnnxModel, type OnnxNode, type OnnxTensor } from './support/onnx-model.js';
import { useWasmSimdPacker } from './support/packers.js';
import { useScratch } from './support/scratch.js';
import { thrown, thrownAsync } from './support/thrown.js';

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
/** A MatMulNBits node; a null name is none. */
const nbits = (name: string | null, inputs: string[], output: string, attributes: Record<string, number>): OnnxNode => ({
  opType: 'MatMulNBits',
  domain: 'com.microsoft',
  ...(name === null ? {} : { name }),
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

/** B4's MatMulNBits initializers. */
const Q4: OnnxTensor[] = [
  { name: 'W_Q4', dataType: OnnxDataType.UINT8, dims: [2, 2, 8], raw: B4_CODES },
  { name: 'W_scales', dataType: OnnxDataType.FLOAT, dims: [4], raw: B4_SCALES },
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
    expect(model).toEqual(encode({ ...graph, nodes: [nbits('proj_Q4', ['A', 'W_Q4', 'W_scales'], 'Y', Q4_ATTRIBUTES)], initializers: Q4 }, withMicrosoft));
    expect(report).toStrictEqual({ matmuls: [{ node: 'proj', op: 'MatMul', ...B4_REPORT }], bytesIn: 256, bytesOut: 48 });
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

  it('FLOAT B: FLOAT scales, not rounded as FLOAT16 ones', async () => {
    // 2^-22 ×16: s = 2^-25 (a FLOAT16 would hold 0), codes 15: 7·2^-25 restored, 2^-25 off.
    const { scales, report } = await quantizeColumns([Array(16).fill(2 ** -22)], { blockSize: 16 });
    expect(scales.raw).toEqual(f32(2 ** -25));
    expect(report).toMatchObject({ maxAbsError: 2 ** -25, rmsError: 2 ** -25 });
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
    expect(model).toEqual(encode({ ...graph, nodes: [nbits('fc_Q4', ['A', 'W_Q4', 'W_scales'], 'Y', Q4_ATTRIBUTES)], initializers: Q4 }, withMicrosoft));
    expect(report.matmuls).toStrictEqual([{ node: 'fc', op: 'Gemm', ...B4_REPORT }]);
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
              { ...nbits(null, ['A', 'W_Q4', 'W_scales'], 'Y_MatMulNBits', Q4_ATTRIBUTES), ...named('_Q4') },
              { opType: 'Add', inputs: ['Y_MatMulNBits', 'C'], outputs: ['Y'], ...named('_bias') },
            ],
            initializers: [C, ...Q4],
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
    // [2, 32]: a B of K 2 for a MatMul, a table of whole blocks for a Gather.
    ['an Add of two 2-D constants', { initializers: [weight('W', [2, 32], B4_T)], nodes: [{ opType: 'Add', inputs: ['W', 'W'], outputs: ['Y'] }] }],
    [
      'a B from a node that is not a Constant, with a value attribute',
      { initializers: [], nodes: [{ opType: 'Fill', domain: 'com.example', inputs: [], outputs: ['W'], attributes: { value: { tensor: weight('W', [32, 2], B4) } } }, matMul('proj', 'W')] },
    ],
    [
      'a B from a ConstantOfShape (its value a one-element tensor)',
      { initializers: [], nodes: [{ opType: 'ConstantOfShape', inputs: ['shape'], outputs: ['W'], attributes: { value: { tensor: weight('W', [1, 1], Float32Array.of(1)) } } }, matMul('proj', 'W')] },
    ],
    [
      'a B from a Constant whose tensor attribute is not its value',
      { initializers: [], nodes: [{ opType: 'Constant', inputs: [], outputs: ['W'], attributes: { sparse: { tensor: weight('W', [32, 2], B4) } } }, matMul('proj', 'W')] },
    ],
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
    expect(report.matmuls).toStrictEqual([{ node: 'embed', op: 'Gather', ...B4_REPORT, weight: 'E', shape: [2, 32] }]);
  });

  it('an unnamed Gather gives an unnamed node; two Gathers of one table share it', async () => {
    const unnamed = (outputs: string[]): OnnxNode => ({ opType: 'Gather', inputs: ['E', 'ids'], outputs });
    const { model, report } = await quantizeOnnx(encode({ ...graph(gather()), nodes: [unnamed(['Y1']), unnamed(['Y2'])] }), { blockSize: 16 }, io());
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

  it.each([
    ['a 1-D table', [weight('E', [64], B4)]],
    ['an INT64 table', [{ name: 'E', dataType: OnnxDataType.INT64, dims: [2, 32], raw: new Uint8Array(512) }]],
    ['an empty table', [weight('E', [0, 32], new Float32Array(0))]],
    ['a table that is no constant', []],
  ] as [string, OnnxTensor[]][])('leaves a Gather of %s as it is', async (_name, initializers) => {
    await expectUnchanged(encode({ ...graph(gather()), initializers }));
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
      const { model } = await quantizeOnnx(encode({ ...oneMatMul([]), nodes: [constant(W, domain ? { domain } : {}), matMul('proj', 'W')] }), { blockSize: 16 }, io());
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

  it('keeps a B that another MatMul reads as its A, or a Gemm as its C', async () => {
    const V = weight('V', [2, 16], new Float32Array(32).fill(1));
    const asA = await quantizeOnnx(encode({ ...oneMatMul([W, V]), nodes: [matMul('proj', 'W', 'H'), { opType: 'MatMul', inputs: ['W', 'V'], outputs: ['Y'] }] }), { blockSize: 16 }, io());
    expect([...initializersOf(asA.model).keys()]).toEqual(['W', 'W_Q4', 'W_scales', 'V_Q4', 'V_scales']);
    const U = weight('U', [32, 2], B4);
    const asC = await quantizeOnnx(encode({ ...oneMatMul([W, U]), nodes: [matMul('proj', 'W', 'H'), { opType: 'Gemm', inputs: ['A', 'U', 'W'], outputs: ['Y'] }] }), { blockSize: 16 }, io());
    expect([...initializersOf(asC.model).keys()]).toEqual(['W', 'W_Q4', 'W_scales', 'U_Q4', 'U_scales']);
  });

  it('a graph that starts with its initializer gets the new ones there, once', async () => {
    const node = new MessageWriter().string(1, 'A').string(1, 'W').string(2, 'Y').string(4, 'MatMul');
    const graph = new MessageWriter().message(5, tensorMessage(W)).message(1, node).string(2, 'g');
    const model = new MessageWriter().int(1, 10).message(7, graph).message(8, new MessageWriter().string(1, '').int(2, 21)).finish();
    const { model: out } = await quantizeOnnx(model, { blockSize: 16 }, io());
    expect(graphFields(out).map((f) => f.number)).toEqual([5, 5, 1, 2]);
    expect([...initializersOf(out).keys()]).toEqual(['W_Q4', 'W_scales']);
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
      expect(model).toEqual(encode({ ...graph, nodes: [MATMULNBITS], initializers: [X, ...Q4] }, withMicrosoft));
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
    expect(model).toEqual(encode({ ...oneMatMul(), nodes: [MATMULNBITS], initializers: Q4 }, [...opsets, withMicrosoft[1]!, ml]));
    const already = await quantizeOnnx(encode(oneMatMul(), [...opsets, { domain: 'com.microsoft', version: 1 }]), { blockSize: 16 }, io());
    expect(already.model).toEqual(encode({ ...oneMatMul(), nodes: [MATMULNBITS], initializers: Q4 }, withMicrosoft));
    await expectUnchanged(encode(oneMatMul(), [...opsets, ml]), { exclude: 'W' });
  });
});

describe('quantizeOnnx: subgraphs', () => {
  const W = weight('W', [32, 2], B4);
  const COND = { name: 'cond', elemType: OnnxDataType.BOOL, shape: [] } as const;
  const branch = (name: string, nodes: OnnxNode[], initializers: OnnxTensor[] = []): OnnxGraph => ({ name, nodes, initializers, inputs: [], outputs: [Y] });
  const ifModel = (then: OnnxGraph, otherwise: OnnxGraph, initializers: OnnxTensor[], name: string | null = 'choose') =>
    encode({
      name: 'main',
      nodes: [{ opType: 'If', ...(name === null ? {} : { name }), inputs: ['cond'], outputs: ['Y'], attributes: { then_branch: { graph: then }, else_branch: { graph: otherwise } } }],
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
              attributes: { then_branch: { graph: branch('then', [MATMULNBITS], Q4) }, else_branch: { graph: otherwise } },
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
    const input = ifModel(then, branch('else', [identity('A')]), [W]);
    const { model } = await quantizeOnnx(input, { blockSize: 16 }, io());
    // The main graph: the If, its name, inputs and output; no initializer left.
    expect(graphFields(model).map((f) => f.number)).toEqual([1, 2, 11, 11, 12]);
    const [ifNode] = nodesOf(model);
    expect(ifNode!.attributes.map((a) => a.name)).toEqual(['then_branch', 'else_branch']);
    // The else branch as it was.
    expect(ifNode!.attributes[1]!.field.raw).toEqual(nodesOf(input)[0]!.attributes[1]!.field.raw);
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

  it('keeps a node whose output nothing reads, named as a B quantized elsewhere', async () => {
    // The then branch quantizes the main graph's W; the else branch computes a W of its own
    // that nothing reads, which stays, beside a MatMul of its own V (so the branch is rewritten).
    const otherwise = branch('else', [{ opType: 'Identity', inputs: ['A'], outputs: ['W'] }, matMul('v', 'V')], [weight('V', [32, 2], B4)]);
    const { model } = await quantizeOnnx(ifModel(branch('then', [matMul('proj', 'W')]), otherwise, [W]), { blockSize: 16 }, io());
    const elseGraph = readFields(nodesOf(model)[0]!.attributes[1]!.fields[1]!.payload, 'else');
    expect(
      elseGraph
        .filter((f) => f.number === 1)
        .map((f) => readNode(f, 'n'))
        .map((n) => [n.opType, n.outputs]),
    ).toEqual([
      ['Identity', ['W']],
      ['MatMulNBits', ['Y']],
    ]);
  });

  it('rewrites a branch’s Gather', async () => {
    const E = weight('E', [2, 32], B4_T);
    const then = { ...branch('then', [{ opType: 'Gather', inputs: ['E', 'ids'], outputs: ['Y'] }], [E]) };
    const { model } = await quantizeOnnx(ifModel(then, branch('else', [identity('A')]), []), { blockSize: 16 }, io());
    const thenGraph = readFields(nodesOf(model)[0]!.attributes[0]!.fields[1]!.payload, 'then');
    expect(thenGraph.filter((f) => f.number === 1).map((f) => readNode(f, 'n').opType)).toEqual(['GatherBlockQuantized']);
  });

  it('writes a node whose subgraphs did not change back as it was read, lengths of more bytes than needed included', async () => {
    // A length as a three-byte varint (protobuf allows any length of varint).
    const long = (field: number, payload: Uint8Array) => u8((field << 3) | 2, (payload.length & 0x7f) | 0x80, ((payload.length >> 7) & 0x7f) | 0x80, payload.length >> 14, ...payload);
    const body = (name: string) => readModel(encodeModel({ irVersion: 10, opsetImports: opsets, graph: branch(name, [identity('A')]) })).graph.payload;
    const attribute = (name: string) =>
      new MessageWriter()
        .string(1, name)
        .raw(long(6, body(name)))
        .int(20, 5)
        .finish();
    const ifNode = new MessageWriter()
      .string(1, 'cond')
      .string(2, 'Y')
      .string(4, 'If')
      .raw(long(5, attribute('then_branch')))
      .raw(long(5, attribute('else_branch')));
    const graph = new MessageWriter().message(1, ifNode).string(2, 'main').message(5, tensorMessage(W));
    await expectUnchanged(new MessageWriter().int(1, 10).message(7, graph).message(8, new MessageWriter().string(1, '').int(2, 21)).finish());
  });

  it('names the subgraph by its path in errors: the node’s name, or its op type', async () => {
    // The branch's node has a domain "x" (field 7: 0x3a 0x01 0x78), made a second op_type that
    // is a varint (field 4: 0x20 0x81 0x01) of the same length.
    const damaged = { opType: 'Identity', inputs: ['A'], outputs: ['Y'], domain: 'x' };
    for (const [name, path] of [
      ['choose', 'main/choose.then_branch'],
      [null, 'main/If.then_branch'],
    ] as const) {
      const bytes = ifModel(branch('then', [damaged]), branch('else', [identity('A')]), [], name);
      const at = bytes.findIndex((b, i) => b === 0x3a && bytes[i + 1] === 0x01 && bytes[i + 2] === 0x78);
      bytes.set([0x20, 0x81, 0x01], at);
      const error = await thrownAsync(() => quantizeOnnx(bytes, {}, io()));
      expect(error).toBeInstanceOf(FormatError);
      expect(error).toMatchObject({ message: `a node of graph ${path} op_type (field 4) has wire type 0, expected 2: the file is not ONNX or is damaged.` });
    }
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
          ] as NonNullable<QuantizeOnnxOptions['recipe']>,
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

describe('quantizeOnnx: external data', () => {
  // data.bin: 8 bytes of C (INT64 [1] = 7), then B4 as float32.
  const DATA = u8(7, 0, 0, 0, 0, 0, 0, 0, ...float32Raw(B4));
  const C: OnnxTensor = { name: 'C', dataType: OnnxDataType.INT64, dims: [1], external: { location: 'data.bin', offset: 0, length: 8 } };
  const W: OnnxTensor = { name: 'W', dataType: OnnxDataType.FLOAT, dims: [32, 2], external: { location: 'data.bin', offset: 8 } };
  const graph = (initializers: OnnxTensor[] = [C, W]) => encode(oneMatMul(initializers));

  function setup(data = DATA) {
    const opened: string[] = [];
    const sink = memorySink();
    return {
      opened,
      sink,
      io: {
        ...io(),
        externalData: (location: string) => {
          opened.push(location);
          return memorySource(data);
        },
        externalDataOut: { location: 'out.bin', sink },
      },
    };
  }

  it('kept tensors are copied to the output data file, the new B follows them, scales stay inline; each file opened once', async () => {
    const { opened, sink, io: given } = setup();
    const { model } = await quantizeOnnx(graph(), { blockSize: 16 }, given);
    expect(opened).toEqual(['data.bin']);
    expect(sink.state).toBe('closed');
    expect(sink.bytes()).toEqual(u8(7, 0, 0, 0, 0, 0, 0, 0, ...B4_CODES));
    const inits = [...graphFields(model)].filter((f) => f.number === 5).map((f) => readTensor(f.payload, 't'));
    expect(inits.map((t) => [t.name, t.dataType, t.dims, t.external, t.fields.map((f) => f.number)])).toEqual([
      ['C', OnnxDataType.INT64, [1], { location: 'out.bin', offset: 0, length: 8 }, [1, 2, 8, 14, 13, 13, 13]],
      ['W_Q4', OnnxDataType.UINT8, [2, 2, 8], { location: 'out.bin', offset: 8, length: 32 }, [1, 2, 8, 14, 13, 13, 13]],
      ['W_scales', OnnxDataType.FLOAT, [4], null, [1, 2, 8, 9]],
    ]);
  });

  it('an external FLOAT16 B and a kept external FLOAT tensor', async () => {
    const data = u8(...f32(1.5), ...encodeFloat32(B4, 'F16'));
    const { sink, io: given } = setup(data);
    const { report } = await quantizeOnnx(
      graph([
        { name: 'C', dataType: OnnxDataType.FLOAT, dims: [1], external: { location: 'data.bin', length: 4 } },
        { name: 'W', dataType: OnnxDataType.FLOAT16, dims: [32, 2], external: { location: 'data.bin', offset: 4, length: 128 } },
      ]),
      { blockSize: 16 },
      given,
    );
    expect(sink.bytes()).toEqual(u8(...f32(1.5), ...B4_CODES));
    expect(report.matmuls[0]).toMatchObject({ dtype: 'FLOAT16', maxAbsError: 0.25 });
  });

  it('an external Constant value is read from its file', async () => {
    const { sink, io: given } = setup();
    const { report } = await quantizeOnnx(
      encode({ ...oneMatMul([]), nodes: [{ opType: 'Constant', inputs: [], outputs: ['W'], attributes: { value: { tensor: W } } }, matMul('proj', 'W')] }),
      { blockSize: 16 },
      given,
    );
    expect(report.matmuls).toHaveLength(1);
    expect(sink.bytes()).toEqual(B4_CODES);
  });

  it('copies a large kept tensor in parts of 16 MiB', async () => {
    // big: 2^22 + 1 float32 values, 16 MiB and 4 bytes: two reads and two writes. even: 2^22
    // values, exactly 16 MiB: one.
    const length = 2 ** 24 + 4;
    const reads: [number, number][] = [];
    const sink = memorySink();
    const big: OnnxTensor = { name: 'big', dataType: OnnxDataType.FLOAT, dims: [2 ** 22 + 1], external: { location: 'big.bin', offset: 4 } };
    const even: OnnxTensor = { name: 'even', dataType: OnnxDataType.FLOAT, dims: [2 ** 22], external: { location: 'big.bin', offset: 4 + length } };
    const source = {
      size: 4 + length + 2 ** 24,
      async read(offset: number, into: Uint8Array) {
        reads.push([offset, into.length]);
        into.fill(offset === 4 ? 1 : 2);
      },
    };
    await quantizeOnnx(encode(oneMatMul([big, even, weight('W', [32, 2], B4)])), { blockSize: 16 }, { ...io(), externalData: () => source, externalDataOut: { location: 'o.bin', sink } });
    expect(reads).toEqual([
      [4, 2 ** 24],
      [4 + 2 ** 24, 4],
      [4 + length, 2 ** 24],
    ]);
    const out = sink.bytes();
    expect([out.length, out[0], out[2 ** 24 - 1], out[2 ** 24], out[length - 1], out[length]]).toEqual([length + 2 ** 24, 1, 1, 2, 2, 2]);
  });

  async function refusedWith(model: Uint8Array, given: Parameters<typeof quantizeOnnx>[2], type: typeof FormatError | typeof InvalidInputError, code: string, message: string) {
    const error = await thrownAsync(() => quantizeOnnx(model, { blockSize: 16 }, given));
    expect(error).toBeInstanceOf(type);
    expect(error).toMatchObject({ code, message });
  }

  it('needs externalData to read it, and externalDataOut to write it; aborts the sink on any error', async () => {
    const sink = memorySink();
    await refusedWith(
      graph(),
      { ...io(), externalDataOut: { location: 'o.bin', sink } },
      FormatError,
      'MALFORMED_FILE',
      "tensor 'W' keeps its data in the external file 'data.bin'; pass externalData (a function from the location to a ByteSource: in Node, fileSource of the path beside the model).",
    );
    expect(sink.state).toBe('aborted');
    await refusedWith(
      graph(),
      { ...io(), externalData: () => memorySource(DATA) },
      InvalidInputError,
      'INVALID_ARGUMENT',
      "the model keeps weights in external data, and so will the output: pass externalDataOut ({ location, sink }: the data file's name beside the output model, and a sink that writes it).",
    );
  });

  it.each([
    [
      'a length that is not the shape’s',
      { ...W, external: { location: 'data.bin', offset: 8, length: 12 } },
      "tensor 'W' [32, 2] needs 256 bytes, but its external data length is 12: the file is damaged.",
    ],
    ['a length of 0', { ...W, external: { location: 'data.bin', offset: 8, length: 0 } }, "tensor 'W' [32, 2] needs 256 bytes, but its external data length is 0: the file is damaged."],
    [
      'a span past the end of the file',
      { ...W, external: { location: 'data.bin', offset: 9 } },
      "tensor 'W': external data [9, 265) lies beyond the end of 'data.bin' (264 bytes): the data file is truncated or belongs to another model.",
    ],
    [
      'a location outside the model’s folder',
      { ...W, external: { location: 'sub/../../data.bin' } },
      "tensor 'W' names the external file 'sub/../../data.bin', outside the model's directory; ONNX locations are relative to the model.",
    ],
    [
      'an external STRING tensor',
      { name: 'S', dataType: 8, dims: [1], external: { location: 'data.bin' } } as unknown as OnnxTensor,
      "tensor 'S' keeps data type 8 in external data, which this tool does not copy.",
    ],
  ])('refuses %s', async (_name, tensor, message) => {
    const { sink, io: given } = setup();
    await refusedWith(graph([C, tensor]), given, FormatError, 'MALFORMED_FILE', message);
    expect(sink.state).toBe('aborted');
  });

  it('a span that ends at the end of the file is read', async () => {
    const { io: given } = setup(DATA.subarray(0, 264));
    await expect(quantizeOnnx(graph(), { blockSize: 16 }, given)).resolves.toMatchObject({ report: { bytesIn: 256 } });
  });
});

describe('model.ts: tensors', () => {
  const entry = (key: string, value: string) => new MessageWriter().string(1, key).string(2, value);
  /** A TensorProto: dims, data_type, name, then `more` fields. */
  const tensor = (dims: number[], dataType: number, name: string, more: (w: MessageWriter) => MessageWriter = (w) => w) =>
    more(new MessageWriter().ints(1, dims).int(2, dataType).string(8, name)).finish();
  const external = (entries: [string, string][]) => (w: MessageWriter) => {
    for (const [k, v] of entries) w.message(13, entry(k, v));
    return w.int(14, 1);
  };

  it('readTensor reads name, data type, dims and the external data entries', () => {
    expect(readTensor(tensor([3, 0, 2], 10, 'w'), 't')).toMatchObject({ name: 'w', dataType: 10, dims: [3, 0, 2], external: null });
    // dims one per field too; data_location DEFAULT (0) with entries is not external.
    const unpacked = new MessageWriter().int(1, 4).int(1, 5).int(14, 0).message(13, entry('location', 'x')).finish();
    expect(readTensor(unpacked, 't')).toMatchObject({ name: '', dataType: 0, dims: [4, 5], external: null });
    expect(readTensor(tensor([2], 1, 'w', external([['location', 'd/w.bin']])), 't').external).toEqual({ location: 'd/w.bin', offset: 0, length: -1 });
    expect(
      readTensor(
        tensor(
          [2],
          1,
          'w',
          external([
            ['location', 'a'],
            ['checksum', 'x'],
            ['offset', '4294967296'],
            ['length', '0'],
            ['location', 'w.bin'],
          ]),
        ),
        't',
      ).external,
    ).toEqual({ location: 'w.bin', offset: 2 ** 32, length: 0 });
    // An entry's key and value in either order, unknown fields skipped.
    const swapped = new MessageWriter().message(13, new MessageWriter().string(2, 'w.bin').int(3, 1).string(1, 'location')).int(14, 1).finish();
    expect(readTensor(swapped, 't').external).toEqual({ location: 'w.bin', offset: 0, length: -1 });
  });

  it.each([
    ['a negative dimension', tensor([2, -1], 1, 'w'), "tensor 'w' has a negative dimension in [2, -1]: the file is damaged."],
    ['no location', tensor([2], 1, 'w', external([['offset', '0']])), "tensor 'w' keeps its data externally but names no location: the file is damaged."],
    ['an empty location', tensor([2], 1, 'w', external([['location', '']])), "tensor 'w' keeps its data externally but names no location: the file is damaged."],
    [
      'a negative offset',
      tensor(
        [2],
        1,
        'w',
        external([
          ['location', 'a'],
          ['offset', '-1'],
        ]),
      ),
      'tensor \'w\': external data offset is "-1", not a byte count.',
    ],
    [
      'a length with a sign',
      tensor(
        [2],
        1,
        'w',
        external([
          ['location', 'a'],
          ['length', '+8'],
        ]),
      ),
      'tensor \'w\': external data length is "+8", not a byte count.',
    ],
    [
      'a length with a suffix',
      tensor(
        [2],
        1,
        'w',
        external([
          ['location', 'a'],
          ['length', '8 '],
        ]),
      ),
      'tensor \'w\': external data length is "8 ", not a byte count.',
    ],
    [
      'an empty offset',
      tensor(
        [2],
        1,
        'w',
        external([
          ['location', 'a'],
          ['offset', ''],
        ]),
      ),
      'tensor \'w\': external data offset is "", not a byte count.',
    ],
    [
      'an offset past 2^53',
      tensor(
        [2],
        1,
        'w',
        external([
          ['location', 'a'],
          ['offset', '9007199254740993'],
        ]),
      ),
      'tensor \'w\': external data offset is "9007199254740993", not a byte count.',
    ],
    ['a damaged entry', new MessageWriter().message(13, new MessageWriter().int(1, 3)).finish(), 'w external_data key (field 1) has wire type 0, expected 2: the file is not ONNX or is damaged.'],
  ])('readTensor refuses %s', (_name, bytes, message) => {
    const error = thrown(() => readTensor(bytes, 'w'));
    expect(error).toBeInstanceOf(FormatError);
    expect(error).toMatchObject({ code: 'MALFORMED_FILE', message });
  });

  it('elementCount multiplies the dims; a scalar holds one', () => {
    expect([elementCount([]), elementCount([3]), elementCount([2, 3, 4]), elementCount([5, 0])]).toEqual([1, 3, 24, 0]);
  });

  it.each(['/etc/w.bin', 'C:w.bin', 'c:\\w.bin', '..', '../w.bin', 'sub/../../w.bin', 'sub\\..\\w.bin', 'a/b/..'])('checkExternalLocation refuses %s', (location) => {
    const error = thrown(() => checkExternalLocation(location, 'w'));
    expect(error).toBeInstanceOf(FormatError);
    expect(error).toMatchObject({ message: `tensor 'w' names the external file '${location.replaceAll('\\', '\\\\')}', outside the model's directory; ONNX locations are relative to the model.` });
  });

  it.each(['w.bin', 'sub/w.bin', '..w.bin', 'w..', 'sub/..w/x', '1:w', 'ab:w'])('checkExternalLocation accepts %s', (location) => {
    expect(checkExternalLocation(location, 'w')).toBeUndefined();
  });

  describe('readFloatTensor', () => {
    const header = (bytes: Uint8Array) => readTensor(bytes, 't');
    const none = new ExternalFiles(undefined);

    it('reads raw_data FLOAT and FLOAT16, float_data and int32_data', async () => {
      expect(await readFloatTensor(header(tensor([2], 1, 'w', (w) => w.bytes(9, f32(1.5, -2)))), none)).toEqual(Float32Array.from([1.5, -2]));
      expect(await readFloatTensor(header(tensor([2], 10, 'w', (w) => w.bytes(9, u8(0x00, 0x3c, 0x00, 0xc0)))), none)).toEqual(Float32Array.from([1, -2]));
      // float_data (4), packed and not; an int32_data field beside it is not read.
      const floats = tensor([1, 3], 1, 'w', (w) =>
        w
          .bytes(4, f32(0.5, 3))
          .raw(u8(0x25, ...f32(-1)))
          .ints(5, [7]),
      );
      expect(await readFloatTensor(header(floats), none)).toEqual(Float32Array.from([0.5, 3, -1]));
      // FLOAT16 in int32_data (5): each value's bit pattern; float_data beside it is not read.
      const halves = tensor([3], 10, 'w', (w) => w.ints(5, [0x3c00, 0xc000]).int(5, 0x3800).bytes(4, f32(9)));
      expect(await readFloatTensor(header(halves), none)).toEqual(Float32Array.from([1, -2, 0.5]));
      // A scalar holds one value.
      expect(await readFloatTensor(header(tensor([], 1, 's', (w) => w.bytes(9, f32(4)))), none)).toEqual(Float32Array.from([4]));
    });

    it.each([
      ['a DOUBLE', tensor([1], 11, 'w', (w) => w.bytes(9, new Uint8Array(8))), "tensor 'w' has data type 11, not FLOAT (1) or FLOAT16 (10)."],
      ['an INT8', tensor([1], 3, 'w', (w) => w.bytes(9, new Uint8Array(1))), "tensor 'w' has data type 3, not FLOAT (1) or FLOAT16 (10)."],
      ['raw_data one byte short', tensor([2], 1, 'w', (w) => w.bytes(9, new Uint8Array(7))), "tensor 'w' [2] needs 8 bytes of raw_data, found 7: the file is damaged."],
      ['FLOAT16 raw_data a value long', tensor([2, 1], 10, 'w', (w) => w.bytes(9, new Uint8Array(6))), "tensor 'w' [2, 1] needs 4 bytes of raw_data, found 6: the file is damaged."],
      ['float_data one value short', tensor([3], 1, 'w', (w) => w.bytes(4, f32(1, 2))), "tensor 'w' [3] holds 2 values, not 3: the file is damaged."],
      ['FLOAT16 with float_data only', tensor([1], 10, 'w', (w) => w.bytes(4, f32(1))), "tensor 'w' [1] holds 0 values, not 1: the file is damaged."],
      ['no data', tensor([2], 1, 'w'), "tensor 'w' [2] holds 0 values, not 2: the file is damaged."],
    ])('refuses %s', async (_name, bytes, message) => {
      const error = await thrownAsync(() => readFloatTensor(header(bytes), none));
      expect(error).toBeInstanceOf(FormatError);
      expect(error).toMatchObject({ code: 'MALFORMED_FILE', message });
    });

    it('reads external data through ExternalFiles, one source per file', async () => {
      const opened: string[] = [];
      const files = new ExternalFiles((location) => {
        opened.push(location);
        return memorySource(u8(0, 0, ...f32(2, -0.5), 0x00, 0x3c));
      });
      const a = header(
        tensor(
          [2],
          1,
          'a',
          external([
            ['location', 'd.bin'],
            ['offset', '2'],
            ['length', '8'],
          ]),
        ),
      );
      const b = header(
        tensor(
          [1],
          10,
          'b',
          external([
            ['location', 'd.bin'],
            ['offset', '10'],
          ]),
        ),
      );
      expect(await readFloatTensor(a, files)).toEqual(Float32Array.from([2, -0.5]));
      expect(await readFloatTensor(b, files)).toEqual(Float32Array.from([1]));
      expect(opened).toEqual(['d.bin']);
      await expect(files.span(b, 2)).resolves.toMatchObject({ offset: 10, length: 2 });
    });

    it('passes on what the resolver throws, and refuses a location outside the folder before resolving it', async () => {
      const failing = new ExternalFiles(() => {
        throw new Error('no such file');
      });
      const t = header(tensor([1], 1, 'w', external([['location', 'w.bin']])));
      await expect(readFloatTensor(t, failing)).rejects.toThrow('no such file');
      let called = false;
      const outside = new ExternalFiles(() => {
        called = true;
        return memorySource(new Uint8Array(4));
      });
      await expect(outside.get('../w.bin', 'w')).rejects.toBeInstanceOf(FormatError);
      expect(called).toBe(false);
    });
  });
});

describe('model.ts: nodes and the model', () => {
  const nodeField = (w: MessageWriter) => readFields(new MessageWriter().message(1, w).finish(), 'g')[0]!;

  it('readNode reads inputs, outputs, name, op_type, domain and attributes by name and type', () => {
    const field = nodeField(
      new MessageWriter()
        .string(1, 'x')
        .string(1, '')
        .string(2, 'y')
        .string(3, 'n')
        .string(4, 'Op')
        .string(7, 'd')
        .message(5, new MessageWriter().int(20, 2).string(1, 'k').int(3, 5))
        .message(5, new MessageWriter().string(21, 'doc'))
        .string(6, 'doc string'),
    );
    const node = readNode(field, 'node');
    expect(node).toMatchObject({ inputs: ['x', ''], outputs: ['y'], name: 'n', opType: 'Op', domain: 'd' });
    expect(node.field).toBe(field);
    expect(node.fields.map((f) => f.number)).toEqual([1, 1, 2, 3, 4, 7, 5, 5, 6]);
    expect(node.attributes.map((a) => [a.name, a.type, a.fields.map((f) => f.number), a.field.number])).toEqual([
      ['k', 2, [20, 1, 3], 5],
      ['', 0, [21], 5],
    ]);
    expect(attributeNumber(node, 'k')).toBe(5);
    expect(attributeNumber(node, 'missing')).toBeUndefined();
  });

  it('attributeNumber reads a FLOAT attribute’s f', () => {
    const node = readNode(nodeField(new MessageWriter().string(3, 'n').message(5, attributeF('alpha', 0.25))), 'node');
    expect(attributeNumber(node, 'alpha')).toBe(0.25);
  });

  it('valueInfoName reads a ValueInfoProto’s name, or none', () => {
    const info = (w: MessageWriter) => readFields(new MessageWriter().message(11, w).finish(), 'g')[0]!;
    expect(valueInfoName(info(new MessageWriter().message(2, new MessageWriter().int(1, 1)).string(1, 'A')), 'input')).toBe('A');
    expect(valueInfoName(info(new MessageWriter().message(2, new MessageWriter())), 'input')).toBe('');
  });

  /** A ModelProto: ir_version (unless null), a graph (unless absent), the opset imports. */
  const modelOf = (ir: number | null, imports: [string | null, number | null][], graph = true) => {
    const w = new MessageWriter();
    if (ir !== null) w.int(1, ir);
    if (graph) w.message(7, new MessageWriter().string(2, 'g'));
    for (const [domain, version] of imports) {
      const o = new MessageWriter();
      if (domain !== null) o.string(1, domain);
      if (version !== null) o.int(2, version);
      w.message(8, o);
    }
    return w.finish();
  };

  it('readModel reads the IR version, the opsets (ai.onnx as the default domain) and the graph', () => {
    const header = readModel(
      modelOf(3, [
        ['ai.onnx', 1],
        ['com.microsoft', 1],
      ]),
    );
    expect([header.irVersion, [...header.opsets], [...header.graph.payload]]).toEqual([
      3,
      [
        ['', 1],
        ['com.microsoft', 1],
      ],
      [0x12, 1, 0x67],
    ]);
    expect(readModel(modelOf(11, [[null, 23]])).opsets).toEqual(new Map([['', 23]]));
    expect(readModel(Buffer.from(modelOf(10, [['', 21]]))).irVersion).toBe(10);
    // Fields it does not read are skipped: producer_name (2), and an opset import's field 3.
    const more = new MessageWriter().string(2, 'edge-moq tests').int(1, 9).message(8, new MessageWriter().string(3, 'x').int(2, 17).string(1, '')).message(7, new MessageWriter()).finish();
    expect([readModel(more).irVersion, [...readModel(more).opsets]]).toEqual([9, [['', 17]]]);
  });

  const tail = 'Convert it with onnx.version_converter, or export it again.';
  it.each([
    ['no ir_version', modelOf(null, [['', 21]]), 'the file is not an ONNX model: it has no ir_version. Give the .onnx file the exporter wrote.'],
    ['no graph', modelOf(10, [['', 21]], false), 'the file is not an ONNX model: it has no graph. Give the .onnx file the exporter wrote.'],
    ['IR version 2', modelOf(2, [['', 21]]), `the model's IR version is 2; this quantizer writes models for onnxruntime 1.23, which loads IR versions 3 to 11. ${tail}`],
    ['IR version 12', modelOf(12, [['', 21]]), `the model's IR version is 12; this quantizer writes models for onnxruntime 1.23, which loads IR versions 3 to 11. ${tail}`],
    ['no default opset', modelOf(10, [['com.microsoft', 1]]), `the model imports no default-domain opset; onnxruntime 1.23 runs opsets 1 to 23. ${tail}`],
    ['opset 0', modelOf(10, [['', null]]), `the model imports default-domain opset 0; onnxruntime 1.23 runs opsets 1 to 23. ${tail}`],
    ['opset 24', modelOf(10, [['', 24]]), `the model imports default-domain opset 24; onnxruntime 1.23 runs opsets 1 to 23. ${tail}`],
    ['an ir_version of the wrong wire type', new MessageWriter().string(1, 'x').finish(), 'ir_version (field 1) has wire type 2, expected 0: the file is not ONNX or is damaged.'],
  ])('readModel refuses %s', (_name, bytes, message) => {
    const error = thrown(() => readModel(bytes));
    expect(error).toBeInstanceOf(FormatError);
    expect(error).toMatchObject({ code: 'MALFORMED_FILE', message });
  });

  it('readModel refuses what is not a Uint8Array', () => {
    for (const given of [new ArrayBuffer(8), [8, 10], 'model.onnx']) {
      expect(thrown(() => readModel(given as unknown as Uint8Array))).toMatchObject({ code: 'MALFORMED_FILE', message: 'an ONNX model must be given as a Uint8Array of the .onnx file.' });
    }
  });

  it('externalLocations lists each file once: initializers, Constant values and subgraphs (graph and graphs attributes)', () => {
    const ext = (name: string, location: string): OnnxTensor => ({ name, dataType: OnnxDataType.FLOAT, dims: [1], external: { location } });
    const sub = (name: string, initializers: OnnxTensor[]): OnnxGraph => ({ name, nodes: [], initializers, inputs: [], outputs: [] });
    const bytes = encode({
      name: 'main',
      nodes: [
        { opType: 'Constant', inputs: [], outputs: ['c'], attributes: { value: { tensor: ext('c', 'c.bin') } } },
        { opType: 'Constant', inputs: [], outputs: ['d'], attributes: { value: { tensor: { name: 'd', dataType: OnnxDataType.FLOAT, dims: [1], raw: f32(1) } } } },
        { opType: 'If', inputs: ['cond'], outputs: ['y'], attributes: { then_branch: { graph: sub('then', [ext('t', 'sub/t.bin'), ext('t2', 'a.bin')]) }, else_branch: { graph: sub('else', []) } } },
      ],
      initializers: [ext('a', 'a.bin'), { name: 'inline', dataType: OnnxDataType.FLOAT, dims: [1], raw: f32(1) }, ext('b', 'a.bin')],
      inputs: [],
      outputs: [],
    });
    expect(externalLocations(readModel(bytes))).toEqual(['c.bin', 'sub/t.bin', 'a.bin']);
    // A graphs attribute (type 10, field 11) holding a graph with an external initializer.
    const inner = new MessageWriter().message(
      5,
      tensorMessage({ name: 'g', dataType: 1, dims: [1] })
        .message(13, new MessageWriter().string(1, 'location').string(2, 'g.bin'))
        .int(14, 1),
    );
    const node = new MessageWriter().string(4, 'Custom').message(5, new MessageWriter().string(1, 'bodies').message(11, inner).int(20, 10));
    const model = new MessageWriter().int(1, 10).message(7, new MessageWriter().message(1, node)).message(8, new MessageWriter().int(2, 21)).finish();
    expect(externalLocations(readModel(model))).toEqual(['g.bin']);
    expect(externalLocations(readModel(encode(oneMatMul())))).toEqual([]);
  });

  it.each([
    ['an initializer', { initializers: [{ name: 'w', dataType: OnnxDataType.FLOAT, dims: [1], external: { location: '/w.bin' } }] }],
    [
      'a Constant value',
      { nodes: [{ opType: 'Constant', inputs: [], outputs: ['w'], attributes: { value: { tensor: { name: 'w', dataType: OnnxDataType.FLOAT, dims: [1], external: { location: '/w.bin' } } } } }] },
    ],
  ] as [string, Partial<OnnxGraph>][])('externalLocations refuses %s outside the model’s folder', (_name, change) => {
    const error = thrown(() => externalLocations(readModel(encode({ ...oneMatMul([]), nodes: [], ...change }))));
    expect(error).toBeInstanceOf(FormatError);
    expect(error).toMatchObject({ message: "tensor 'w' names the external file '/w.bin', outside the model's directory; ONNX locations are relative to the model." });
  });
});

describe('onnxOptionsFrom', () => {
  it.each([
    ['bits alone', { bits: 8 }, { bits: 8 }],
    [
      'everything MatMulNBits takes',
      { bits: 4, groupSize: 64, type: 'symmetric', grid: 'full', include: 'a', exclude: /b/, recipe: [{ match: 'c', keep: true }] },
      { bits: 4, blockSize: 64, type: 'symmetric', grid: 'full', include: 'a', exclude: /b/, recipe: [{ match: 'c', keep: true }] },
    ],
    ['a grid with no type', { bits: 4, grid: 'deepspeed' }, { bits: 4, grid: 'deepspeed' }],
    ['no grid for asymmetric', { bits: 4, type: 'asymmetric', grid: 'full' }, { bits: 4, type: 'asymmetric' }],
    ['what MatMulNBits cannot hold left out', { bits: 4, axis: 0, rounding: 'stochastic', seed: 3, groups: 2 }, { bits: 4 }],
  ] as [string, QuantizeFileOptions, QuantizeOnnxOptions][])('%s', (_name, options, expected) => {
    expect(onnxOptionsFrom(options)).toStrictEqual(expected);
  });
});

describe('quantizeOnnxFile', () => {
  const scratch = useScratch('edge-moq-onnx-mutants-');
  const C: OnnxTensor = { name: 'C', dataType: OnnxDataType.INT64, dims: [1], external: { location: 'm.data', offset: 0, length: 8 } };
  const W: OnnxTensor = { name: 'W', dataType: OnnxDataType.FLOAT, dims: [32, 2], external: { location: 'w/w.data' } };
  const files = (folder: string, weights = B4, more: OnnxTensor[] = []) => {
    mkdirSync(join(folder, 'w'));
    writeFileSync(join(folder, 'm.onnx'), encode(oneMatMul([C, W, ...more])));
    writeFileSync(join(folder, 'm.data'), u8(7, 0, 0, 0, 0, 0, 0, 0));
    writeFileSync(join(folder, 'w', 'w.data'), float32Raw(weights));
  };
  const listing = (folder: string) => readdirSync(folder, { recursive: true }).map(String).sort();
  /** The WebAssembly packer, counting its calls and running `during` at each. */
  function watchedPacker(during: () => void = () => undefined): Packer & { calls: number } {
    const { packer } = wasm;
    const watched = {
      calls: 0,
      kind: packer.kind,
      pack(data: Float32Array, options: PackOptions) {
        watched.calls++;
        during();
        return packer.pack(data, options);
      },
      unpack: (packed: PackedTensor) => packer.unpack(packed),
      measure: (original: Float32Array, packed: PackedTensor, totals: Float64Array, first?: number) => packer.measure(original, packed, totals, first),
      dispose: () => undefined,
    };
    return watched;
  }
  const openFiles = () => readdirSync('/proc/self/fd').length;

  it('writes the model and <output>.data beside it, each external file read from beside the model and closed', async () => {
    const folder = scratch.newFolder();
    files(folder);
    mkdirSync(join(folder, 'out'));
    const output = join(folder, 'out', 'q.onnx');
    const before = openFiles();
    const result = await quantizeOnnxFile(join(folder, 'm.onnx'), output, wasm.packer, { blockSize: 16 });
    expect(openFiles()).toBe(before);
    expect(result).toStrictEqual({ report: { matmuls: [{ node: 'proj', op: 'MatMul', ...B4_REPORT }], bytesIn: 256, bytesOut: 48 }, externalData: `${output}.data` });
    expect(listing(join(folder, 'out'))).toEqual(['q.onnx', 'q.onnx.data']);
    expect(new Uint8Array(readFileSync(`${output}.data`))).toEqual(u8(7, 0, 0, 0, 0, 0, 0, 0, ...B4_CODES));
    const inits = initializersOf(new Uint8Array(readFileSync(output)));
    expect([...inits.values()].map((t) => [t.name, t.external])).toEqual([
      ['C', { location: 'q.onnx.data', offset: 0, length: 8 }],
      ['W_Q4', { location: 'q.onnx.data', offset: 8, length: 32 }],
      ['W_scales', null],
    ]);
  });

  it('an inline model: the output alone, with default options', async () => {
    const folder = scratch.newFolder();
    writeFileSync(join(folder, 'm.onnx'), encode(oneMatMul()));
    const result = await quantizeOnnxFile(join(folder, 'm.onnx'), join(folder, 'q.onnx'), wasm.packer);
    expect(result.externalData).toBeNull();
    expect(result.report.matmuls.map((r) => r.blockSize)).toEqual([32]);
    expect(listing(folder)).toEqual(['m.onnx', 'q.onnx']);
  });

  /** quantizeOnnxFile(folder/m.onnx → output) fails with `code` and `message`, leaving the folder as it was and the inputs closed. */
  async function refusedFile(folder: string, output: string, code: string, message: RegExp, packer: Packer = wasm.packer): Promise<void> {
    const before = listing(folder);
    const weights = readFileSync(join(folder, 'w', 'w.data'));
    const open = openFiles();
    const error = await thrownAsync(() => quantizeOnnxFile(join(folder, 'm.onnx'), output, packer, { blockSize: 16 }));
    expect(error).toBeInstanceOf(EdgeMoqError);
    expect(error).toMatchObject({ code });
    expect((error as Error).message).toMatch(message);
    // Nothing new: no output, no data file, no temporary file.
    expect(listing(folder)).toEqual(before);
    expect(readFileSync(join(folder, 'w', 'w.data'))).toEqual(weights);
    expect(openFiles()).toBe(open);
  }

  it('refuses an output that is the model, or whose data file would be an input’s, before any work', async () => {
    const folder = scratch.newFolder();
    files(folder);
    const packer = watchedPacker();
    await refusedFile(folder, join(folder, 'm.onnx'), 'IO', /^the output .*m\.onnx is the input .*m\.onnx \(the same file\)/, packer);
    // <output>.data = m.data, the model's own data file.
    await refusedFile(folder, join(folder, 'm'), 'IO', /^the output .*m\.data is the input .*m\.data \(the same file\)/, packer);
    expect(packer.calls).toBe(0);
  });

  it('refuses a missing data file, and a data file that is not beside the model', async () => {
    const folder = scratch.newFolder();
    files(folder);
    rmSync(join(folder, 'w', 'w.data'));
    writeFileSync(join(folder, 'w.data'), float32Raw(B4));
    const before = listing(folder);
    const error = await thrownAsync(() => quantizeOnnxFile(join(folder, 'm.onnx'), join(folder, 'q.onnx'), wasm.packer));
    expect(error).toMatchObject({ code: 'IO', message: expect.stringMatching(/^cannot open .*w\/w\.data for reading/) });
    expect(listing(folder)).toEqual(before);
  });

  it('leaves nothing behind when quantizing fails: before the data file is written, or after', async () => {
    const folder = scratch.newFolder();
    const bad = B4.slice();
    bad[5] = Number.NaN;
    files(folder, bad);
    await refusedFile(folder, join(folder, 'q.onnx'), 'NON_FINITE', /^MatMul 'proj' \(B 'W', \[32, 2\]\): B holds NaN at element 5/);
    // C is copied to the data file before the STRING tensor after it is refused.
    const later = scratch.newFolder();
    files(later, B4, [{ name: 'S', dataType: 8, dims: [1], external: { location: 'm.data' } } as unknown as OnnxTensor]);
    await refusedFile(later, join(later, 'q.onnx'), 'MALFORMED_FILE', /^tensor 'S' keeps data type 8 in external data/);
  });

  it('refuses an output that is a folder before any work', async () => {
    const folder = scratch.newFolder();
    files(folder);
    mkdirSync(join(folder, 'q.onnx'));
    const packer = watchedPacker();
    await refusedFile(folder, join(folder, 'q.onnx'), 'IO', /^the output .*q\.onnx is a directory/, packer);
    expect(packer.calls).toBe(0);
  });

  it('leaves no data file when the model cannot be written at the end', async () => {
    // The output's name is taken by a folder while the weights are packed, after the checks.
    const folder = scratch.newFolder();
    files(folder);
    const output = join(folder, 'q.onnx');
    const packer = watchedPacker(() => mkdirSync(output, { recursive: true }));
    const before = listing(folder);
    const error = await thrownAsync(() => quantizeOnnxFile(join(folder, 'm.onnx'), output, packer, { blockSize: 16 }));
    expect(error).toMatchObject({ code: 'IO', message: expect.stringMatching(/^the output .*q\.onnx is a directory/) });
    expect(listing(folder)).toEqual([...before, 'q.onnx'].sort());
    // An inline model has no data file to abort.
    const inline = scratch.newFolder();
    writeFileSync(join(inline, 'm.onnx'), encode(oneMatMul()));
    const taken = join(inline, 'q.onnx');
    const inlineError = await thrownAsync(() =>
      quantizeOnnxFile(
        join(inline, 'm.onnx'),
        taken,
        watchedPacker(() => mkdirSync(taken, { recursive: true })),
      ),
    );
    expect(inlineError).toMatchObject({ code: 'IO', message: expect.stringMatching(/^the output .*q\.onnx is a directory/) });
    expect(listing(inline)).toEqual(['m.onnx', 'q.onnx']);
  });
});
