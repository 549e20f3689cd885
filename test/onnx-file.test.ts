// quantizeOnnxFile: files in, files out. A model with external data comes out with its own data
// file beside it, which onnxruntime-web loads; on any error nothing is left behind.

import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-web';
import { afterAll, describe, expect, it } from 'vitest';
import { EdgeMoqError, FormatError } from '../src/errors.js';
import { quantizeOnnxFile } from '../src/formats/onnx/node-file.js';
import { quantizeOnnx } from '../src/onnx.js';
import { randomTensor } from './support/fixtures.js';
import { encodeModel, float32Raw, OnnxDataType, type OnnxGraph } from './support/onnx-model.js';
import { usePackers } from './support/packers.js';

ort.env.wasm.numThreads = 1;
ort.env.logLevel = 'error';

const packers = usePackers();
const dir = mkdtempSync(join(tmpdir(), 'edge-moq-onnx-file-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const K = 64;
const N = 16;
const weights = randomTensor(K * N, 31, 0.5);
const bias = randomTensor(N, 32);

function graph(external: boolean, location = 'model.onnx.data'): OnnxGraph {
  return {
    name: 'file',
    nodes: [
      { opType: 'MatMul', name: 'proj', inputs: ['A', 'w'], outputs: ['H'] },
      { opType: 'Add', name: 'bias', inputs: ['H', 'b'], outputs: ['Y'] },
    ],
    initializers: external
      ? [
          { name: 'w', dataType: OnnxDataType.FLOAT, dims: [K, N], external: { location, offset: 0, length: K * N * 4 } },
          { name: 'b', dataType: OnnxDataType.FLOAT, dims: [N], external: { location, offset: K * N * 4, length: N * 4 } },
        ]
      : [
          { name: 'w', dataType: OnnxDataType.FLOAT, dims: [K, N], raw: float32Raw(weights) },
          { name: 'b', dataType: OnnxDataType.FLOAT, dims: [N], raw: float32Raw(bias) },
        ],
    inputs: [{ name: 'A', elemType: OnnxDataType.FLOAT, shape: [2, K] }],
    outputs: [{ name: 'Y', elemType: OnnxDataType.FLOAT, shape: [2, N] }],
  };
}

const encode = (g: OnnxGraph) => encodeModel({ irVersion: 10, opsetImports: [{ domain: '', version: 21 }], graph: g });

async function run(model: Uint8Array, externalData?: { path: string; data: Uint8Array }[]): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(model, { executionProviders: ['wasm'], ...(externalData ? { externalData } : {}) });
  try {
    const { Y } = await session.run({ A: new ort.Tensor('float32', randomTensor(2 * K, 33), [2, K]) });
    return Y!.data as Float32Array;
  } finally {
    await session.release();
  }
}

describe('quantizeOnnxFile', () => {
  it('writes a model with external data and its own data file, which onnxruntime-web runs as the inline one', async () => {
    const input = join(dir, 'model.onnx');
    writeFileSync(input, encode(graph(true)));
    writeFileSync(join(dir, 'model.onnx.data'), new Uint8Array([...float32Raw(weights), ...float32Raw(bias)]));
    const output = join(dir, 'model.q4.onnx');
    const { report, externalData } = await quantizeOnnxFile(input, output, packers[0]!.packer);
    expect(externalData).toBe(`${output}.data`);
    expect(report.matmuls.map((r) => r.weight)).toEqual(['w']);
    const inline = await quantizeOnnx(encode(graph(false)), {}, { packer: packers[0]!.packer });
    expect(await run(readFileSync(output), [{ path: 'model.q4.onnx.data', data: readFileSync(externalData!) }])).toEqual(await run(inline.model));
  });

  it('writes an inline model with no data file', async () => {
    const input = join(dir, 'inline.onnx');
    writeFileSync(input, encode(graph(false)));
    const output = join(dir, 'inline.q4.onnx');
    const { externalData } = await quantizeOnnxFile(input, output, packers[0]!.packer, { bits: 8 });
    expect(externalData).toBeNull();
    expect(existsSync(`${output}.data`)).toBe(false);
    expect(readFileSync(output)).toEqual(Buffer.from((await quantizeOnnx(encode(graph(false)), { bits: 8 }, { packer: packers[0]!.packer })).model));
  });

  it.each([
    ['the output is the input', (input: string) => input, EdgeMoqError],
    [
      'a missing data file',
      (_input: string) => {
        rmSync(join(dir, 'bad', 'model.onnx.data'));
        return join(dir, 'bad', 'out.onnx');
      },
      EdgeMoqError,
    ],
  ] as const)('%s: a typed error, no output, no temporary files', async (_, outputOf, type) => {
    const bad = join(dir, 'bad');
    rmSync(bad, { recursive: true, force: true });
    mkdirSync(bad);
    const input = join(bad, 'model.onnx');
    writeFileSync(input, encode(graph(true)));
    writeFileSync(join(bad, 'model.onnx.data'), new Uint8Array([...float32Raw(weights), ...float32Raw(bias)]));
    const before = readFileSync(input);
    const output = outputOf(input);
    await expect(quantizeOnnxFile(input, output, packers[0]!.packer)).rejects.toBeInstanceOf(type);
    expect(readFileSync(input)).toEqual(before);
    expect(readdirSync(bad).filter((f) => f.startsWith('out') || f.includes('partial'))).toEqual([]);
  });

  it('refuses an external location outside the model directory before opening it', async () => {
    const input = join(dir, 'escape.onnx');
    writeFileSync(input, encode(graph(true, '../escape.data')));
    await expect(quantizeOnnxFile(input, join(dir, 'escape.q4.onnx'), packers[0]!.packer)).rejects.toBeInstanceOf(FormatError);
    expect(existsSync(join(dir, 'escape.q4.onnx'))).toBe(false);
  });
});
