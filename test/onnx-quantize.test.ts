// edge-moq/onnx: MatMul weights to com.microsoft MatMulNBits, checked by the consumer that
// matters: onnxruntime-web (wasm EP, in Node) runs the quantized model, and its outputs equal
// the original graph run with the dequantized weights, within the float32 dot-product bound.
// On every packer present.

import * as ort from 'onnxruntime-web';
import { describe, expect, it } from 'vitest';
import { FormatError, InvalidInputError } from '../src/errors.js';
import { readFields, bytesValue } from '../src/formats/onnx/proto.js';
import { GraphField, ModelField, readModel, readNode, readTensor } from '../src/formats/onnx/model.js';
import { decodeFloat32, encodeFloat32, memorySource } from '../src/formats/safetensors.js';
import { dequantizeMatMulNBits, quantizeOnnx, type QuantizeOnnxOptions } from '../src/onnx.js';
import { randomTensor } from './support/fixtures.js';
import { memorySink } from './support/memory-sink.js';
import { encodeModel, float32Raw, OnnxDataType, type OnnxGraph, type OnnxTensor } from './support/onnx-model.js';
import { usePackers } from './support/packers.js';

ort.env.wasm.numThreads = 1;
ort.env.logLevel = 'error';

const U = 2 ** -24;
const packers = usePackers();

interface Case {
  m: number;
  k: number;
  n: number;
  options: QuantizeOnnxOptions;
  constant?: boolean;
  /** Columns of B: all positive, all negative, constant, zero, then random ones. */
  oneSided?: boolean;
}

function weightsFor(c: Case): Float32Array {
  const b = randomTensor(c.k * c.n, 0x0a + c.k + c.n, 0.5);
  if (c.oneSided) {
    for (let i = 0; i < c.k; i++) {
      b[i * c.n] = Math.abs(b[i * c.n]!) + 0.01;
      b[i * c.n + 1] = -Math.abs(b[i * c.n + 1]!) - 0.01;
      b[i * c.n + 2] = 0.75;
      b[i * c.n + 3] = 0;
    }
  }
  return b;
}

/** Y = A @ B (+ a Relu after, so the graph has more than the one node), B a constant. */
function matMulGraph(c: Case, b: Float32Array, name = 'main'): OnnxGraph {
  const tensor: OnnxTensor = { name: 'proj.weight', dataType: OnnxDataType.FLOAT, dims: [c.k, c.n], raw: float32Raw(b) };
  return {
    name,
    nodes: [
      ...(c.constant ? [{ opType: 'Constant', name: 'const_b', inputs: [], outputs: ['proj.weight'], attributes: { value: { tensor } } }] : []),
      { opType: 'MatMul', name: 'proj', inputs: ['A', 'proj.weight'], outputs: ['H'] },
      { opType: 'Relu', name: 'act', inputs: ['H'], outputs: ['Y'] },
    ],
    initializers: c.constant ? [] : [tensor],
    inputs: [{ name: 'A', elemType: OnnxDataType.FLOAT, shape: [c.m, c.k] }],
    outputs: [{ name: 'Y', elemType: OnnxDataType.FLOAT, shape: [c.m, c.n] }],
  };
}

const model = (graph: OnnxGraph, irVersion = 10, opset = 21) => encodeModel({ irVersion, opsetImports: [{ domain: '', version: opset }], producerName: 'edge-moq tests', graph });

/** The subgraph tests' main graph: an If on `cond` running branch('then') or branch('else'), with `initializers` of its own. */
function ifGraph(c: Case, branch: (name: string) => OnnxGraph, initializers: OnnxGraph['initializers'] = []): OnnxGraph {
  return {
    name: 'main',
    nodes: [{ opType: 'If', name: 'choose', inputs: ['cond'], outputs: ['Y'], attributes: { then_branch: { graph: branch('then') }, else_branch: { graph: branch('else') } } }],
    initializers,
    inputs: [
      { name: 'A', elemType: OnnxDataType.FLOAT, shape: [c.m, c.k] },
      { name: 'cond', elemType: OnnxDataType.BOOL, shape: [] },
    ],
    outputs: [{ name: 'Y', elemType: OnnxDataType.FLOAT, shape: [c.m, c.n] }],
  };
}

async function run(bytes: Uint8Array, a: Float32Array, dims: number[], extra: ort.InferenceSession.SessionOptions = {}, feeds: Record<string, ort.Tensor> = {}): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], ...extra });
  try {
    const { Y } = await session.run({ A: new ort.Tensor('float32', a, dims), ...feeds });
    return Y!.data as Float32Array;
  } finally {
    await session.release();
  }
}

/** The initializers of a model's main graph, by name. */
function initializers(bytes: Uint8Array) {
  const graph = readFields(bytesValue(readModel(bytes).graph, 'graph'), 'graph');
  return new Map(
    graph
      .filter((f) => f.number === GraphField.INITIALIZER)
      .map((f) => {
        const t = readTensor(bytesValue(f, 'initializer'), 'initializer');
        return [t.name, { ...t, raw: t.fields.find((x) => x.number === 9)?.payload ?? null }] as const;
      }),
  );
}

const nodes = (bytes: Uint8Array) =>
  readFields(bytesValue(readModel(bytes).graph, 'graph'), 'graph')
    .filter((f) => f.number === GraphField.NODE)
    .map((f) => readNode(f, 'node'));

/** |y − reference| ≤ 2 γ_{K+2} Σ|a w| for each output: two float32 dot products of the same terms. */
function expectWithinBound(c: Case, y: Float32Array, reference: Float32Array, a: Float32Array, w: Float32Array): void {
  const gamma = ((c.k + 2) * U) / (1 - (c.k + 2) * U);
  let worst = 0;
  for (let row = 0; row < c.m; row++) {
    for (let col = 0; col < c.n; col++) {
      let magnitude = 0;
      for (let i = 0; i < c.k; i++) magnitude += Math.abs(a[row * c.k + i]! * w[i * c.n + col]!);
      const bound = 2 * gamma * magnitude + Number.MIN_VALUE;
      worst = Math.max(worst, Math.abs(y[row * c.n + col]! - reference[row * c.n + col]!) / bound);
    }
  }
  expect(worst, `largest error / bound ${worst}`).toBeLessThanOrEqual(1);
}

const cases: Case[] = [
  { m: 3, k: 64, n: 24, options: {} },
  { m: 3, k: 64, n: 24, options: { blockSize: 16 }, constant: true },
  { m: 2, k: 50, n: 9, options: { blockSize: 32 } }, // K padded to 64
  { m: 3, k: 128, n: 16, options: { bits: 8, blockSize: 64 } },
  { m: 3, k: 96, n: 16, options: { type: 'asymmetric', blockSize: 32 } },
  { m: 3, k: 40, n: 16, options: { bits: 8, type: 'asymmetric', blockSize: 16 } },
  { m: 2, k: 48, n: 6, options: { type: 'asymmetric', blockSize: 16 }, oneSided: true },
  { m: 2, k: 48, n: 6, options: { bits: 8, type: 'asymmetric', blockSize: 16 }, oneSided: true },
  { m: 2, k: 48, n: 6, options: { blockSize: 16 }, oneSided: true },
];

describe('MatMul → MatMulNBits, run by onnxruntime-web', () => {
  it.each(cases)('K $k, N $n, $options (Constant B: $constant, one-sided columns: $oneSided)', async (c) => {
    const b = weightsFor(c);
    const a = randomTensor(c.m * c.k, 0x0b + c.k, 2);
    const original = model(matMulGraph(c, b));
    const bits = c.options.bits ?? 4;
    const blockSize = c.options.blockSize ?? 32;
    for (const { name, packer } of packers) {
      const { model: quantized, report } = await quantizeOnnx(original, c.options, { packer });
      // The structure onnxruntime's own quantizer writes.
      const inits = initializers(quantized);
      const blocks = Math.ceil(c.k / blockSize);
      const asymmetric = c.options.type === 'asymmetric';
      expect([...inits.keys()].sort(), name).toEqual([`proj.weight_Q${bits}`, 'proj.weight_scales', ...(asymmetric ? ['proj.weight_zero_points'] : [])].sort());
      expect(inits.get(`proj.weight_Q${bits}`)!.dims).toEqual([c.n, blocks, (blockSize * bits) / 8]);
      expect(inits.get('proj.weight_scales')!.dims).toEqual([c.n * blocks]);
      const [node, relu, ...rest] = nodes(quantized);
      expect(rest).toEqual([]);
      expect(relu!.opType).toBe('Relu');
      expect(node).toMatchObject({
        opType: 'MatMulNBits',
        domain: 'com.microsoft',
        name: `proj_Q${bits}`,
        outputs: ['H'],
        inputs: ['A', `proj.weight_Q${bits}`, 'proj.weight_scales', ...(asymmetric ? ['proj.weight_zero_points'] : [])],
      });
      expect(readModel(quantized).opsets.get('com.microsoft')).toBe(1);
      expect(report.matmuls).toHaveLength(1);
      expect(report.matmuls[0]).toMatchObject({ node: 'proj', weight: 'proj.weight', shape: [c.k, c.n], bits, blockSize, dtype: 'FLOAT' });

      const zp = inits.get('proj.weight_zero_points');
      const w = dequantizeMatMulNBits({
        k: c.k,
        n: c.n,
        bits,
        blockSize,
        b: inits.get(`proj.weight_Q${bits}`)!.raw!,
        scales: decodeFloat32(inits.get('proj.weight_scales')!.raw!, 'F32'),
        zeroPoints: zp ? zp.raw! : null,
      });
      const errors = Array.from(w, (v, i) => Math.abs(v - b[i]!));
      expect(report.matmuls[0]!.maxAbsError).toBe(Math.max(...errors));
      // Within one step of the grid: a block's range at most doubles when it is re-gridded.
      const step = ((asymmetric ? 2 : 1) * 2 * Math.max(...Array.from(b, Math.abs))) / 2 ** (bits - 1);
      expect(Math.max(...errors), name).toBeLessThanOrEqual(step);
      // A constant column is exact on the asymmetric grid (DeepSpeed's symmetric grid puts +absmax a step low).
      if (c.oneSided && asymmetric) for (let i = 0; i < c.k; i++) expect([w[i * c.n + 2], w[i * c.n + 3]], name).toEqual([0.75, 0]);
      const y = await run(quantized, a, [c.m, c.k]);
      const reference = await run(model(matMulGraph(c, w)), a, [c.m, c.k]);
      expectWithinBound(c, y, reference, a, w);
    }
  });

  it.each([
    { transB: 0, bias: false },
    { transB: 1, bias: false },
    { transB: 1, bias: true },
    { transB: 0, bias: true },
  ])('Gemm (transB $transB, C: $bias) → MatMulNBits (+ Add C)', async ({ transB, bias }) => {
    const c: Case = { m: 3, k: 64, n: 12, options: {} };
    const b = randomTensor(c.k * c.n, 21, 0.5); // [K, N]
    const cValues = randomTensor(c.n, 22);
    const a = randomTensor(c.m * c.k, 23, 2);
    const stored = (w: Float32Array) => (transB ? Float32Array.from({ length: w.length }, (_, i) => w[(i % c.k) * c.n + Math.floor(i / c.k)]!) : w);
    const gemm = (w: Float32Array): OnnxGraph => ({
      name: 'gemm',
      nodes: [{ opType: 'Gemm', name: 'fc', inputs: ['A', 'fc.weight', ...(bias ? ['fc.bias'] : [])], outputs: ['Y'], attributes: { transB } }],
      initializers: [
        { name: 'fc.weight', dataType: OnnxDataType.FLOAT, dims: transB ? [c.n, c.k] : [c.k, c.n], raw: float32Raw(stored(w)) },
        ...(bias ? [{ name: 'fc.bias', dataType: OnnxDataType.FLOAT, dims: [c.n], raw: float32Raw(cValues) }] : []),
      ],
      inputs: [{ name: 'A', elemType: OnnxDataType.FLOAT, shape: [c.m, c.k] }],
      outputs: [{ name: 'Y', elemType: OnnxDataType.FLOAT, shape: [c.m, c.n] }],
    });
    const { model: quantized, report } = await quantizeOnnx(model(gemm(b)), {}, { packer: packers[0]!.packer });
    expect(report.matmuls[0]).toMatchObject({ op: 'Gemm', node: 'fc', weight: 'fc.weight', shape: [c.k, c.n] });
    expect(nodes(quantized).map((n) => n.opType)).toEqual(bias ? ['MatMulNBits', 'Add'] : ['MatMulNBits']);
    const inits = initializers(quantized);
    const w = dequantizeMatMulNBits({
      k: c.k,
      n: c.n,
      bits: 4,
      blockSize: 32,
      b: inits.get('fc.weight_Q4')!.raw!,
      scales: decodeFloat32(inits.get('fc.weight_scales')!.raw!, 'F32'),
      zeroPoints: null,
    });
    const errors = Array.from(w, (v, i) => Math.abs(v - b[i]!));
    expect(report.matmuls[0]!.maxAbsError).toBe(Math.max(...errors));
    const y = await run(quantized, a, [c.m, c.k]);
    const reference = await run(model(gemm(w)), a, [c.m, c.k]);
    // The bias is one more addition of the same value to both sums.
    const withBias = { ...c, k: c.k + 1 };
    const aWithOne = Float32Array.from({ length: c.m * (c.k + 1) }, (_, i) => (i % (c.k + 1) === c.k ? 1 : a[Math.floor(i / (c.k + 1)) * c.k + (i % (c.k + 1))]!));
    const wWithBias = new Float32Array((c.k + 1) * c.n);
    wWithBias.set(w);
    if (bias) wWithBias.set(cValues, c.k * c.n);
    expectWithinBound(withBias, y, reference, aWithOne, wWithBias);
  });

  it.each([
    { bits: 4, blockSize: 16 },
    { bits: 8, blockSize: 32 },
  ])('an embedding Gather → GatherBlockQuantized ($bits bits, blocks of $blockSize): rows as dequantized', async (options) => {
    const [v, d] = [10, 64];
    const table = randomTensor(v * d, 41, 0.5);
    const graph: OnnxGraph = {
      name: 'embed',
      nodes: [{ opType: 'Gather', name: 'embed', inputs: ['embed.weight', 'ids'], outputs: ['Y'] }],
      initializers: [{ name: 'embed.weight', dataType: OnnxDataType.FLOAT, dims: [v, d], raw: float32Raw(table) }],
      inputs: [{ name: 'ids', elemType: OnnxDataType.INT64, shape: [3] }],
      outputs: [{ name: 'Y', elemType: OnnxDataType.FLOAT, shape: [3, d] }],
    };
    for (const { name, packer } of packers) {
      const { model: quantized, report } = await quantizeOnnx(model(graph), options, { packer });
      expect(report.matmuls[0], name).toMatchObject({ op: 'Gather', weight: 'embed.weight', shape: [v, d], bits: options.bits });
      const [node] = nodes(quantized);
      expect(node).toMatchObject({ opType: 'GatherBlockQuantized', domain: 'com.microsoft', name: `embed_Q${options.bits}`, inputs: [`embed.weight_Q${options.bits}`, 'ids', 'embed.weight_scales'] });
      const inits = initializers(quantized);
      expect(inits.get(`embed.weight_Q${options.bits}`)!.dims).toEqual([v, (d * options.bits) / 8]);
      expect(inits.get('embed.weight_scales')!.dims).toEqual([v, d / options.blockSize]);
      // Dequantized as MatMulNBits weights with K = D, N = V: [D, V].
      const w = dequantizeMatMulNBits({
        k: d,
        n: v,
        ...options,
        b: inits.get(`embed.weight_Q${options.bits}`)!.raw!,
        scales: decodeFloat32(inits.get('embed.weight_scales')!.raw!, 'F32'),
        zeroPoints: null,
      });
      const ids = [7, 0, 3];
      const session = await ort.InferenceSession.create(quantized, { executionProviders: ['wasm'] });
      const { Y } = await session.run({ ids: new ort.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [3]) });
      await session.release();
      const expected = ids.flatMap((id) => Array.from({ length: d }, (_, j) => w[j * v + id]!));
      expect(Array.from(Y!.data as Float32Array), name).toEqual(expected);
    }
  });

  it.each([
    { label: 'rows of 40, blocks of 16', d: 40, options: { blockSize: 16 } },
    { label: 'asymmetric', d: 32, options: { blockSize: 16, type: 'asymmetric' } },
  ] as const)('leaves a Gather to float: $label', async ({ d, options }) => {
    const graph: OnnxGraph = {
      name: 'embed',
      nodes: [{ opType: 'Gather', name: 'embed', inputs: ['embed.weight', 'ids'], outputs: ['Y'] }],
      initializers: [{ name: 'embed.weight', dataType: OnnxDataType.FLOAT, dims: [4, d], raw: float32Raw(randomTensor(4 * d, 42)) }],
      inputs: [{ name: 'ids', elemType: OnnxDataType.INT64, shape: [2] }],
      outputs: [{ name: 'Y', elemType: OnnxDataType.FLOAT, shape: [2, d] }],
    };
    const bytes = model(graph);
    expect((await quantizeOnnx(bytes, options, { packer: packers[0]!.packer })).model).toEqual(bytes);
  });

  it('rewrites MatMuls inside subgraphs (If branches), leaving outer nodes as they are', async () => {
    const c: Case = { m: 2, k: 32, n: 8, options: {} };
    const b = randomTensor(c.k * c.n, 7, 0.5);
    const branch = (name: string): OnnxGraph => ({ ...matMulGraph(c, b, name), inputs: [] });
    const graph = ifGraph(c, branch);
    const { model: quantized, report } = await quantizeOnnx(model(graph), {}, { packer: packers[0]!.packer });
    expect(report.matmuls.map((r) => r.weight)).toEqual(['proj.weight', 'proj.weight']);
    const a = randomTensor(c.m * c.k, 8, 2);
    const plain = await quantizeOnnx(model(matMulGraph(c, b)), {}, { packer: packers[0]!.packer });
    expect(await run(quantized, a, [c.m, c.k], {}, { cond: new ort.Tensor('bool', [true], []) })).toEqual(await run(plain.model, a, [c.m, c.k]));
  });
});

describe('B read from an enclosing graph', () => {
  it('quantizes a subgraph MatMul whose B is an initializer of the main graph, and drops the original', async () => {
    const c: Case = { m: 2, k: 32, n: 8, options: {} };
    const b = randomTensor(c.k * c.n, 17, 0.5);
    const branch = (name: string): OnnxGraph => ({ ...matMulGraph(c, b, name), initializers: [], inputs: [] });
    const graph = ifGraph(c, branch, [{ name: 'proj.weight', dataType: OnnxDataType.FLOAT, dims: [c.k, c.n], raw: float32Raw(b) }]);
    const { model: quantized, report } = await quantizeOnnx(model(graph), {}, { packer: packers[0]!.packer });
    expect(report.matmuls.map((r) => r.weight)).toEqual(['proj.weight', 'proj.weight']);
    expect([...initializers(quantized).keys()]).not.toContain('proj.weight');
    const a = randomTensor(c.m * c.k, 18, 2);
    const plain = await quantizeOnnx(model(matMulGraph(c, b)), {}, { packer: packers[0]!.packer });
    expect(await run(quantized, a, [c.m, c.k], {}, { cond: new ort.Tensor('bool', [false], []) })).toEqual(await run(plain.model, a, [c.m, c.k]));
  });

  it('leaves a B alone when the subgraph hides the outer name with a computed value', async () => {
    const c: Case = { m: 2, k: 32, n: 8, options: {} };
    const b = randomTensor(c.k * c.n, 19, 0.5);
    const hidden: OnnxGraph = {
      ...matMulGraph(c, b, 'then'),
      initializers: [],
      inputs: [],
      nodes: [
        { opType: 'Identity', name: 'copy', inputs: ['A'], outputs: ['proj.weight'] },
        { opType: 'MatMul', name: 'proj', inputs: ['A2', 'proj.weight'], outputs: ['Y'] },
      ],
    };
    const graph: OnnxGraph = {
      name: 'main',
      nodes: [{ opType: 'If', name: 'choose', inputs: ['cond'], outputs: ['Y'], attributes: { then_branch: { graph: hidden }, else_branch: { graph: hidden } } }],
      initializers: [{ name: 'proj.weight', dataType: OnnxDataType.FLOAT, dims: [c.k, c.n], raw: float32Raw(b) }],
      inputs: [
        { name: 'A', elemType: OnnxDataType.FLOAT, shape: [c.k, c.n] },
        { name: 'A2', elemType: OnnxDataType.FLOAT, shape: [c.m, c.k] },
        { name: 'cond', elemType: OnnxDataType.BOOL, shape: [] },
      ],
      outputs: [{ name: 'Y', elemType: OnnxDataType.FLOAT, shape: [c.m, c.n] }],
    };
    const { report } = await quantizeOnnx(model(graph), {}, { packer: packers[0]!.packer });
    expect(report.matmuls).toEqual([]);
  });
});

describe('recipes on ONNX weights', () => {
  /** Two MatMuls in a row: attn.weight [32, 16], then mlp.weight [16, 8]. */
  function twoLayers(): Uint8Array {
    const tensor = (name: string, k: number, n: number, seed: number): OnnxTensor => ({ name, dataType: OnnxDataType.FLOAT, dims: [k, n], raw: float32Raw(randomTensor(k * n, seed, 0.5)) });
    return model({
      name: 'main',
      nodes: [
        { opType: 'MatMul', name: 'attn', inputs: ['A', 'attn.weight'], outputs: ['H'] },
        { opType: 'MatMul', name: 'mlp', inputs: ['H', 'mlp.weight'], outputs: ['Y'] },
      ],
      initializers: [tensor('attn.weight', 32, 16, 1), tensor('mlp.weight', 16, 8, 2)],
      inputs: [{ name: 'A', elemType: OnnxDataType.FLOAT, shape: [2, 32] }],
      outputs: [{ name: 'Y', elemType: OnnxDataType.FLOAT, shape: [2, 8] }],
    });
  }

  it('give each weight the first rule that matches its name, and the model still runs', async () => {
    const { model: quantized, report } = await quantizeOnnx(twoLayers(), { bits: 4, recipe: [{ match: '^attn', bits: 8, groupSize: 16, grid: 'full' }] }, { packer: packers[0]!.packer });
    expect(report.matmuls.map((r) => [r.weight, r.bits, r.blockSize, r.rule])).toEqual([
      ['attn.weight', 8, 16, 0],
      ['mlp.weight', 4, 32, undefined],
    ]);
    const y = await run(quantized, randomTensor(64, 3), [2, 32]);
    expect(y.every(Number.isFinite)).toBe(true);
  });

  it('keep a weight a rule keeps', async () => {
    const { report } = await quantizeOnnx(twoLayers(), { recipe: [{ match: 'mlp', keep: true }] }, { packer: packers[0]!.packer });
    expect(report.matmuls.map((r) => r.weight)).toEqual(['attn.weight']);
  });

  it.each([
    [[{ match: 'attn', axis: 1 }], /sets axis, which MatMulNBits cannot hold/],
    [[{ match: 'attn', bits: 3 }], /bits must be 4 or 8 for MatMulNBits/],
    [[{ match: 'attn', groupSize: 24 }], /blockSize must be a power of two/],
  ])('refuse a rule MatMulNBits cannot follow: %j', async (recipe, message) => {
    await expect(quantizeOnnx(twoLayers(), { recipe }, { packer: packers[0]!.packer })).rejects.toThrow(message);
  });
});

describe('reading and writing ONNX', () => {
  it('writes a model with nothing to quantize back byte for byte (unknown fields included)', async () => {
    const c: Case = { m: 2, k: 32, n: 8, options: {} };
    const original = model(matMulGraph(c, randomTensor(c.k * c.n, 9)));
    const { model: out, report } = await quantizeOnnx(original, { exclude: /.*/ }, { packer: packers[0]!.packer });
    expect(report.matmuls).toEqual([]);
    expect(out).toEqual(original);
  });

  it('reads float_data weights as raw_data ones', async () => {
    const c: Case = { m: 2, k: 32, n: 8, options: {} };
    const b = randomTensor(c.k * c.n, 10);
    const typed = matMulGraph(c, b);
    delete typed.initializers[0]!.raw;
    (typed.initializers[0] as unknown as { floats?: number[] }).floats = Array.from(b);
    const packer = packers[0]!.packer;
    const fromTyped = await quantizeOnnx(model(typed), {}, { packer });
    const fromRaw = await quantizeOnnx(model(matMulGraph(c, b)), {}, { packer });
    expect(fromTyped.model).toEqual(fromRaw.model);
  });

  it('keeps external data external: kept tensors copied, quantized B written to the new data file', async () => {
    const c: Case = { m: 2, k: 64, n: 16, options: {} };
    const b = randomTensor(c.k * c.n, 11, 0.5);
    const bias = randomTensor(c.n, 12);
    const data = new Uint8Array([...new Uint8Array(8), ...float32Raw(bias), ...float32Raw(b)]);
    const graph = matMulGraph(c, b);
    const externalGraph: OnnxGraph = {
      ...graph,
      nodes: [graph.nodes[0]!, { opType: 'Add', name: 'bias', inputs: ['H', 'bias'], outputs: ['Y'] }],
      initializers: [
        { name: 'bias', dataType: OnnxDataType.FLOAT, dims: [c.n], external: { location: 'in.data', offset: 8, length: c.n * 4 } },
        { name: 'proj.weight', dataType: OnnxDataType.FLOAT, dims: [c.k, c.n], external: { location: 'in.data', offset: 8 + c.n * 4, length: c.k * c.n * 4 } },
      ],
    };
    const sink = memorySink();
    const { model: out } = await quantizeOnnx(
      model(externalGraph),
      {},
      {
        packer: packers[0]!.packer,
        externalData: (location) => {
          expect(location).toBe('in.data');
          return memorySource(data);
        },
        externalDataOut: { location: 'out.data', sink },
      },
    );
    expect(sink.state).toBe('closed');
    const inits = initializers(out);
    expect(inits.get('bias')!.external).toEqual({ location: 'out.data', offset: 0, length: c.n * 4 });
    expect(inits.get('proj.weight_Q4')!.external).toEqual({ location: 'out.data', offset: c.n * 4, length: c.n * 2 * 16 });
    expect(inits.get('proj.weight_scales')!.external).toBeNull();
    const a = randomTensor(c.m * c.k, 13);
    const y = await run(out, a, [c.m, c.k], { externalData: [{ path: 'out.data', data: sink.bytes() }] });
    const inline = await quantizeOnnx(
      model({ ...graph, nodes: externalGraph.nodes, initializers: [{ name: 'bias', dataType: OnnxDataType.FLOAT, dims: [c.n], raw: float32Raw(bias) }, graph.initializers[0]!] }),
      {},
      { packer: packers[0]!.packer },
    );
    expect(y).toEqual(await run(inline.model, a, [c.m, c.k]));
  });

  it('reads external data past 4 GiB (offsets as exact integers)', async () => {
    const c: Case = { m: 2, k: 32, n: 8, options: {} };
    const b = randomTensor(c.k * c.n, 24, 0.5);
    const bytes = float32Raw(b);
    const offset = 2 ** 32 + 12_345;
    // A 5 GiB data file that is zeros except for B: nothing of that size is allocated.
    const source = {
      size: 5 * 2 ** 30,
      async read(at: number, into: Uint8Array) {
        into.fill(0);
        for (let i = 0; i < into.length; i++) if (at + i >= offset && at + i < offset + bytes.length) into[i] = bytes[at + i - offset]!;
      },
    };
    const graph = matMulGraph(c, b);
    const far = model({ ...graph, initializers: [{ name: 'proj.weight', dataType: OnnxDataType.FLOAT, dims: [c.k, c.n], external: { location: 'big.data', offset, length: bytes.length } }] });
    const sink = memorySink();
    const { model: out } = await quantizeOnnx(far, {}, { packer: packers[0]!.packer, externalData: () => source, externalDataOut: { location: 'out.data', sink } });
    const inline = await quantizeOnnx(model(graph), {}, { packer: packers[0]!.packer });
    expect(sink.bytes()).toEqual(initializers(inline.model).get('proj.weight_Q4')!.raw);
    expect(initializers(out).get('proj.weight_scales')!.raw).toEqual(initializers(inline.model).get('proj.weight_scales')!.raw);
  });

  it('quantizes FLOAT16 weights with FLOAT16 scales', async () => {
    const c: Case = { m: 2, k: 64, n: 8, options: {} };
    const b = decodeFloat32(encodeFloat32(randomTensor(c.k * c.n, 14, 0.5), 'F16'), 'F16');
    const graph = matMulGraph(c, b);
    graph.initializers[0]!.raw = encodeFloat32(b, 'F16');
    (graph.initializers[0] as { dataType: number }).dataType = OnnxDataType.FLOAT16;
    const { model: out, report } = await quantizeOnnx(model(graph), {}, { packer: packers[0]!.packer });
    expect(report.matmuls[0]).toMatchObject({ dtype: 'FLOAT16', bytesIn: c.k * c.n * 2, bytesOut: (c.k * c.n) / 2 + c.n * 2 * 2 });
    expect(initializers(out).get('proj.weight_scales')!.dataType).toBe(OnnxDataType.FLOAT16);
    // onnxruntime-web runs it with a FLOAT16 A.
    const f16Graph = (g: OnnxGraph): OnnxGraph => ({
      ...g,
      inputs: [{ name: 'A', elemType: OnnxDataType.FLOAT16, shape: [c.m, c.k] }],
      outputs: [{ name: 'Y', elemType: OnnxDataType.FLOAT16, shape: [c.m, c.n] }],
    });
    const { model: out16 } = await quantizeOnnx(model(f16Graph(graph)), {}, { packer: packers[0]!.packer });
    const a = encodeFloat32(randomTensor(c.m * c.k, 15), 'F16');
    const session = await ort.InferenceSession.create(out16, { executionProviders: ['wasm'] });
    const { Y } = await session.run({ A: new ort.Tensor('float16', new Uint16Array(a.buffer, a.byteOffset, a.length / 2), [c.m, c.k]) });
    await session.release();
    expect(Y!.dims).toEqual([c.m, c.n]);
  });
});

describe('bad input: typed errors, nothing written', () => {
  const c: Case = { m: 2, k: 32, n: 8, options: {} };
  const good = () => model(matMulGraph(c, randomTensor(c.k * c.n, 15)));

  it.each([
    ['random bytes', Uint8Array.from({ length: 64 }, (_, i) => (i * 97 + 13) & 255), /not a valid protobuf|not an ONNX model/],
    ['a safetensors file', new TextEncoder().encode('\u0008\u0000\u0000\u0000\u0000\u0000\u0000\u0000{}      '), /not a valid protobuf|not an ONNX model/],
    ['IR version 99', model(matMulGraph(c, randomTensor(c.k * c.n, 1)), 99), /IR version is 99/],
    ['opset 99', model(matMulGraph(c, randomTensor(c.k * c.n, 1)), 10, 99), /opset 99/],
  ])('%s → FormatError', async (_, bytes, message) => {
    const error = await quantizeOnnx(bytes, {}, { packer: packers[0]!.packer }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FormatError);
    expect((error as FormatError).code).toBe('MALFORMED_FILE');
    expect(String(error)).toMatch(message);
  });

  it('refuses bits onnxruntime-web does not run, bad block sizes and unknown options', async () => {
    for (const options of [{ bits: 2 }, { bits: 3 }, { blockSize: 24 }, { blockSize: 8 }, { groupSize: 32 }, { type: 'ternary' }, { accuracyLevel: 7 }] as QuantizeOnnxOptions[]) {
      await expect(quantizeOnnx(good(), options, { packer: packers[0]!.packer })).rejects.toBeInstanceOf(InvalidInputError);
    }
  });

  const external = (span: { offset?: number; length?: number }) => {
    const graph = matMulGraph(c, randomTensor(c.k * c.n, 16));
    return model({ ...graph, initializers: [{ name: 'proj.weight', dataType: OnnxDataType.FLOAT, dims: [c.k, c.n], external: { location: 'w.data', ...span } }] });
  };

  it.each([
    ['no resolver', undefined, {}, /pass externalData/],
    ['a span past the end', () => memorySource(new Uint8Array(c.k * c.n * 4)), { offset: 4 }, /beyond the end/],
    ['a wrong length', () => memorySource(new Uint8Array(c.k * c.n * 4)), { length: 12 }, /length is 12/],
  ] as const)('external data: %s → FormatError, the data sink aborted', async (_, externalData, span, message) => {
    const sink = memorySink();
    const error = await quantizeOnnx(external(span), {}, { packer: packers[0]!.packer, ...(externalData ? { externalData } : {}), externalDataOut: { location: 'o.data', sink } }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(FormatError);
    expect(String(error)).toMatch(message);
    expect(sink.state).toBe('aborted');
  });

  it('names an external location outside the model directory as an error', async () => {
    const graph = matMulGraph(c, randomTensor(c.k * c.n, 17));
    const bytes = model({ ...graph, initializers: [{ name: 'proj.weight', dataType: OnnxDataType.FLOAT, dims: [c.k, c.n], external: { location: '../secret' } }] });
    await expect(quantizeOnnx(bytes, {}, { packer: packers[0]!.packer, externalData: () => memorySource(new Uint8Array(0)) })).rejects.toThrow(/outside the model's directory/);
  });

  it('leaves the model given untouched', async () => {
    const bytes = good();
    const copy = bytes.slice();
    await quantizeOnnx(bytes, {}, { packer: packers[0]!.packer });
    expect(bytes).toEqual(copy);
    expect(ModelField.GRAPH).toBe(7);
  });
});
