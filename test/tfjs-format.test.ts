// TensorFlow.js models in and out: `edge-moq quantize model.json` packs a graph or layers model
// (found by content, whatever the file is called) with groups per output channel, the packed
// folder loads through packedModel() in tf.loadLayersModel / tf.loadGraphModel from a path, a
// file: URL, an http URL or memory, `dequantize` gives back a stock model tfjs loads as is, and
// bad models are refused with nothing written and nothing half-loaded.

import { createServer, type Server } from 'node:http';
import { existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EdgeMoqError, FormatError } from '../src/errors.js';
import { readPackedLayout } from '../src/formats/packed-metadata.js';
import { memorySource, openSafetensors } from '../src/formats/safetensors.js';
import { packArtifacts } from '../src/formats/tfjs/artifacts.js';
import { writePackedTfjsModel } from '../src/formats/tfjs/node-file.js';
import { packedModel } from '../src/tfjs/handler.js';
import { runCli } from './support/cli.js';
import { convModel, everyKindOfWeight, saveLayersModel, writeGraphModel, writeManifestModel } from './support/tfjs-models.js';

let root: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  root = mkdtempSync(join(tmpdir(), 'edge-moq-tfjs-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

let counter = 0;
const fresh = (name: string) => join(root, `${name}-${counter++}`);

async function quantize(input: string, output: string, ...flags: string[]) {
  const result = await runCli(['quantize', input, '-o', output, '--quiet', ...flags]);
  expect(result.stderr, result.stdout).toBe('');
  expect(result.code).toBe(0);
  return result;
}

/** The packed records of a packed model's weights file. */
async function recordsOf(folder: string, weightsFile = 'model.moq.safetensors') {
  const file = await openSafetensors(memorySource(new Uint8Array(readFileSync(join(folder, weightsFile)))));
  return new Map(readPackedLayout(file).packed.map((p) => [p.name, p.entry]));
}

/** A tfjs IOHandler for a plain model's files, as tfjs's own file loaders read them (stock decoding). */
function stockFiles(json: string): tf.io.IOHandler {
  return {
    async load() {
      const model = JSON.parse(readFileSync(json, 'utf8'));
      const folder = json.slice(0, json.lastIndexOf('/') + 1);
      const buffers = model.weightsManifest.flatMap((g: { paths: string[] }) => g.paths.map((p) => new Uint8Array(readFileSync(folder + p))));
      const data = new Uint8Array(buffers.reduce((n: number, b: Uint8Array) => n + b.length, 0));
      let at = 0;
      for (const b of buffers) {
        data.set(b, at);
        at += b.length;
      }
      return {
        modelTopology: model.modelTopology,
        format: model.format,
        weightData: data.buffer,
        weightSpecs: model.weightsManifest.flatMap((g: { weights: unknown[] }) => g.weights),
      };
    },
  };
}

const input = () => tf.randomNormal([3, 8, 8, 3], 0, 1, 'float32', 5);

async function predictLayers(handler: tf.io.IOHandler): Promise<Float32Array> {
  const model = await tf.loadLayersModel(handler);
  const x = input();
  const y = model.predict(x) as tf.Tensor;
  const values = (await y.data()) as Float32Array;
  tf.dispose([x, y]);
  model.dispose();
  return values;
}

const maxDifference = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

describe('layers models', () => {
  let float: { folder: string; json: string };
  let floatOut: Float32Array;
  beforeAll(async () => {
    // A name tfjs users give model.json files, shards small enough to make several.
    float = await saveLayersModel(tf, convModel(tf), fresh('layers'), 'classifier-v2.config', 1024);
    floatOut = await predictLayers(stockFiles(float.json));
  });

  it.each([8, 4])('packs at %i bits per output channel, loads through the handler, and predicts close to the float model', async (bits) => {
    const out = fresh('packed');
    const { stdout } = await quantize(float.json, join(out, 'model.json'), '--bits', String(bits));
    expect(stdout).toMatch(/conv\/kernel.*groups of 27/);
    expect(readdirSync(out).sort()).toEqual(['model.json', 'model.moq.safetensors']);
    const records = await recordsOf(out);
    // conv [3, 3, 3, 8]: everything but the output channels (axis 2); depthwise [3, 3, 8, 1]:
    // kh × kw per channel (axis 1); dense [128, 10]: per output column (axis 0).
    expect([...records].map(([name, r]) => [name, r.axis, r.groupSize, r.bits])).toEqual([
      ['conv/kernel', 2, 27, bits],
      ['dw/depthwise_kernel', 1, 9, bits],
      ['fc/kernel', 0, 128, bits],
    ]);
    const packedBytes = statSync(join(out, 'model.moq.safetensors')).size;
    const floatBytes = readdirSync(float.folder)
      .filter((f) => f.endsWith('.bin'))
      .reduce((n, f) => n + statSync(join(float.folder, f)).size, 0);
    // Small tensors: the header and the per-channel scales weigh more than in a real model.
    expect(packedBytes).toBeLessThan(floatBytes * (bits === 8 ? 0.5 : 0.35));
    const packedOut = await predictLayers(packedModel(join(out, 'model.json')));
    const scale = floatOut.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    expect(maxDifference(packedOut, floatOut) / scale).toBeLessThan(bits === 8 ? 0.02 : 0.25);
  });

  it('loads the same weights from a path, a file: URL, an http URL and memory; what crosses the network is the packed file', async () => {
    const out = fresh('sources');
    await quantize(float.json, join(out, 'model.json'), '--bits', '4');
    const served: string[] = [];
    let bytesServed = 0;
    const server: Server = createServer((request, response) => {
      const file = join(out, decodeURIComponent(new URL(request.url!, 'http://x').pathname));
      served.push(request.url!);
      if (!existsSync(file)) return void response.writeHead(404).end();
      const body = readFileSync(file);
      bytesServed += body.length;
      response.writeHead(200).end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const port = (server.address() as { port: number }).port;
      const fromPath = await predictLayers(packedModel(join(out, 'model.json')));
      const fromFileUrl = await predictLayers(packedModel(pathToFileURL(join(out, 'model.json'))));
      const fromHttp = await predictLayers(packedModel(`http://127.0.0.1:${port}/model.json`));
      const fromMemory = await predictLayers(
        packedModel({
          modelJson: readFileSync(join(out, 'model.json'), 'utf8'),
          weights: new Uint8Array(readFileSync(join(out, 'model.moq.safetensors'))),
        }),
      );
      for (const other of [fromFileUrl, fromHttp, fromMemory]) expect(other).toEqual(fromPath);
      expect(served).toEqual(['/model.json', '/model.moq.safetensors']);
      expect(bytesServed).toBe(statSync(join(out, 'model.json')).size + statSync(join(out, 'model.moq.safetensors')).size);
    } finally {
      server.close();
    }
  });

  it("dequantizes to a stock float model that tfjs loads as it is, with the handler's values; stock tfjs refuses the packed one", async () => {
    const out = fresh('packed');
    await quantize(float.json, join(out, 'model.json'), '--bits', '4');
    const plain = fresh('plain');
    const result = await runCli(['dequantize', join(out, 'model.json'), '-o', join(plain, 'model.json'), '--quiet']);
    expect(result.code, result.stderr).toBe(0);
    const json = JSON.parse(readFileSync(join(plain, 'model.json'), 'utf8'));
    expect(json.edgeMoq).toBeUndefined();
    expect(json.weightsManifest[0].weights.every((w: { quantization?: unknown }) => w.quantization === undefined)).toBe(true);
    expect(await predictLayers(stockFiles(join(plain, 'model.json')))).toEqual(await predictLayers(packedModel(join(out, 'model.json'))));
    await expect(tf.loadLayersModel(stockFiles(join(out, 'model.json')))).rejects.toThrow(/unknown quantization dtype edge-moq/);
  });

  it('takes --group-size, --axis, --grid, --recipe, --include and --exclude as for the other formats', async () => {
    const recipe = `${fresh('recipe')}.json`;
    writeFileSync(
      recipe,
      JSON.stringify({
        rules: [
          { match: '^fc/kernel', bits: 8, type: 'asymmetric' },
          { match: 'depthwise', keep: true },
        ],
      }),
    );
    const cases: [string[], [string, number | undefined, number, number, string | undefined][]][] = [
      [
        ['--bits', '4', '--group-size', '9'],
        [
          ['conv/kernel', 2, 9, 4, undefined],
          ['dw/depthwise_kernel', 1, 9, 4, undefined],
        ],
      ], // 9 does not divide fc's 128 rows: kept
      [['--bits', '4', '--group-size', '32'], [['fc/kernel', 0, 32, 4, undefined]]],
      [
        ['--bits', '4', '--axis', '-1'],
        [
          ['conv/kernel', undefined, 8, 4, undefined],
          ['dw/depthwise_kernel', undefined, 8, 4, undefined],
          ['fc/kernel', undefined, 10, 4, undefined],
        ],
      ],
      [['--bits', '3', '--grid', 'deepspeed', '--include', 'conv'], [['conv/kernel', 2, 27, 3, undefined]]],
      [['--bits', '4', '--exclude', 'conv|fc'], [['dw/depthwise_kernel', 1, 9, 4, undefined]]],
      [
        ['--bits', '4', '--recipe', recipe],
        [
          ['conv/kernel', 2, 27, 4, undefined],
          ['fc/kernel', 0, 128, 8, 'asymmetric'],
        ],
      ],
    ];
    for (const [flags, expected] of cases) {
      const out = fresh('options');
      await quantize(float.json, join(out, 'model.json'), ...flags);
      const records = await recordsOf(out);
      // The last column: the grid of symmetric codes (full unless asked), or 'asymmetric'.
      expect(
        [...records].map(([name, r]) => [name, r.axis, r.groupSize, r.bits, r.type === 'asymmetric' ? 'asymmetric' : (r.grid ?? 'deepspeed')]),
        flags.join(' '),
      ).toEqual(expected.map(([n, a, g, b, kind]) => [n, a, g, b, kind ?? (flags.includes('deepspeed') ? 'deepspeed' : 'full')]));
      expect((await predictLayers(packedModel(join(out, 'model.json')))).every(Number.isFinite)).toBe(true);
    }
  });

  it('inspect finds the model by content and lists each weight with its packing', async () => {
    const out = fresh('inspect');
    await quantize(float.json, join(out, 'weights-config.txt'), '--bits', '4');
    const { code, stdout } = await runCli(['inspect', join(out, 'weights-config.txt')]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/TensorFlow.js layers-model, 6 weight\(s\) in 1 file\(s\), packed by edge-moq \(3 packed\)/);
    expect(stdout).toMatch(/dw\/depthwise_kernel +\[3, 3, 8, 1\] +float32 +symmetric 4-bit, groups of 9 along axis 1, full grid/);
    expect(stdout).toMatch(/fc\/bias +\[10\] +float32 *\n/);
  });

  it('quantizes a packed model again: packed weights are carried over, so runs compose', async () => {
    const first = fresh('first');
    await quantize(float.json, join(first, 'model.json'), '--bits', '8', '--include', '^fc/');
    const second = fresh('second');
    const { stdout } = await quantize(join(first, 'model.json'), join(second, 'model.json'), '--bits', '4');
    expect(stdout).toMatch(/fc\/kernel.*already packed/);
    const records = await recordsOf(second);
    expect(Object.fromEntries([...records].map(([name, r]) => [name, r.bits]))).toEqual({ 'fc/kernel': 8, 'conv/kernel': 4, 'dw/depthwise_kernel': 4 });
    expect((await predictLayers(packedModel(join(second, 'model.json')))).every(Number.isFinite)).toBe(true);
  });
});

describe('graph models', () => {
  it('packs a MatMul weight per output column and a transposed one per row, keeps the int32 shape, and runs in tf.loadGraphModel', async () => {
    const model = writeGraphModel(fresh('graph'));
    const x = tf.tensor2d(
      Array.from({ length: 18 }, (_, i) => Math.sin(i)),
      [3, 6],
    );
    const floatModel = await tf.loadGraphModel(stockFiles(model.json));
    const expected = (await (floatModel.execute(x) as tf.Tensor).data()) as Float32Array;
    const out = fresh('graph-packed');
    const { stdout } = await quantize(model.json, join(out, 'model.json'), '--bits', '8');
    expect(stdout).toMatch(/shape .*int32 is not a float type/);
    const records = await recordsOf(out);
    expect([...records].map(([name, r]) => [name, r.axis, r.groupSize])).toEqual([
      ['w1', 0, 6],
      ['w2', undefined, 5],
    ]);
    const packed = await tf.loadGraphModel(packedModel(join(out, 'model.json')));
    const got = (await (packed.execute(x) as tf.Tensor).data()) as Float32Array;
    expect(got.length).toBe(expected.length);
    expect(maxDifference(got, expected)).toBeLessThan(0.02);
  });
});

describe('every kind of tfjs weight', () => {
  it('keeps int32, bool, string, complex64, tfjs-quantized uint8/uint16 weights, vectors and scalars byte for byte; packs float32 and float16', async () => {
    const weights = everyKindOfWeight();
    const model = writeManifestModel(fresh('kinds'), weights);
    const out = fresh('kinds-packed');
    const { stdout } = await quantize(model.json, join(out, 'model.json'), '--bits', '8');
    expect(stdout).toMatch(/q8\/kernel.*already quantized by tfjs \(uint8\)/);
    expect([...(await recordsOf(out)).keys()]).toEqual(['dense/kernel', 'half/kernel']);
    const artifacts = await packedModel(join(out, 'model.json')).load();
    expect(artifacts.weightSpecs).toEqual(weights.map((w) => w.spec));
    const data = new Uint8Array(artifacts.weightData as ArrayBuffer);
    let at = 0;
    for (const w of weights) {
      const got = data.subarray(at, at + w.bytes.length);
      at += w.bytes.length;
      if (w.spec.name === 'dense/kernel' || w.spec.name === 'half/kernel') continue;
      expect(got, String(w.spec.name)).toEqual(w.bytes);
    }
    expect(at).toBe(data.length);
    // tfjs decodes the kept ones as it would have from the original files.
    const decoded = tf.io.decodeWeights(artifacts.weightData!, artifacts.weightSpecs!);
    expect(Array.from(decoded.vocab!.dataSync())).toEqual(['edge', 'moq', '']);
    expect(Array.from(decoded.ids!.dataSync())).toEqual([1, -2, 3, 2147483647]);
    // The float16 weight comes back as float16 bytes, its 8-bit values exactly representable there.
    const plain = fresh('kinds-plain');
    expect((await runCli(['dequantize', join(out, 'model.json'), '-o', join(plain, 'model.json'), '--quiet'])).code).toBe(0);
    const stock = await stockFiles(join(plain, 'model.json')).load!();
    expect(new Uint8Array(stock.weightData as ArrayBuffer)).toEqual(data);
  });
});

describe('bad models: typed errors, nothing written, nothing half-loaded', () => {
  /** A fresh copy of the graph model with `edit` applied to its folder. */
  function broken(edit: (folder: string, json: Record<string, any>) => void): string {
    const model = writeGraphModel(fresh('bad'));
    const json = JSON.parse(readFileSync(model.json, 'utf8'));
    edit(model.folder, json);
    writeFileSync(model.json, JSON.stringify(json));
    return model.json;
  }

  const cases: [string, () => string, RegExp][] = [
    [
      'a JSON file that is no tfjs model',
      () => {
        const file = join(fresh('notmodel'), 'model.json');
        writeManifestModel(file.slice(0, -'/model.json'.length), []);
        writeFileSync(file, JSON.stringify({ modelTopology: 'no', weightsManifest: [] }));
        return file;
      },
      /no "modelTopology" object/,
    ],
    ['a shard the manifest names is missing', () => broken((folder, json) => rmSync(join(folder, json.weightsManifest[0].paths[1]))), /group1-shard2of4\.bin/],
    [
      'a shard is short',
      () =>
        broken((folder, json) => {
          const path = join(folder, json.weightsManifest[0].paths.at(-1));
          writeFileSync(path, readFileSync(path).subarray(0, 3));
        }),
      /short or missing/,
    ],
    [
      'a shard is too long',
      () => broken((folder, json) => writeFileSync(join(folder, json.weightsManifest[0].paths.at(-1)), new Uint8Array(100))),
      /hold \d+ bytes but their weights in the manifest take/,
    ],
    [
      'a dtype tfjs does not have',
      () =>
        broken((_, json) => {
          json.weightsManifest[0].weights[2].dtype = 'int64';
        }),
      /"int64", which TensorFlow.js does not have/,
    ],
    [
      'a shard path leaving the folder',
      () =>
        broken((_, json) => {
          json.weightsManifest[0].paths[0] = '../secret.bin';
        }),
      /relative names inside the model's folder/,
    ],
    [
      'a weight listed twice',
      () =>
        broken((_, json) => {
          json.weightsManifest[0].weights[1].name = 'w1';
        }),
      /listed twice/,
    ],
    [
      'a shard path leaving the folder once URL-decoded',
      () =>
        broken((_, json) => {
          json.weightsManifest[0].paths[0] = '%2e%2e/secret.bin';
        }),
      /no absolute path, "\.\.", .*"%"/,
    ],
    [
      'more strings than their shard could hold a length for',
      () => {
        const model = writeManifestModel(fresh('strings'), [{ spec: { name: 'vocab', shape: [1e12], dtype: 'string' }, bytes: new Uint8Array(64) }]);
        return model.json;
      },
      /needs 4000000000000 bytes but its group's shards hold only 64/,
    ],
  ];
  it.each(cases)('%s', async (_, make, message) => {
    const json = make();
    const out = join(fresh('never'), 'sub', 'model.json');
    const result = await runCli(['quantize', json, '-o', out, '--bits', '4', '--quiet']);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(message);
    expect(existsSync(join(out, '..', '..'))).toBe(false);
    await expect(packedModel(json).load()).rejects.toThrow(message.source.includes('modelTopology') ? /modelTopology/ : message);
  });

  it("a packed model whose weights file is another model's: refused by the handler, quantize and dequantize alike", async () => {
    const float = writeGraphModel(fresh('a'));
    const a = fresh('a-packed');
    const b = fresh('b-packed');
    await quantize(float.json, join(a, 'model.json'), '--bits', '4');
    await quantize(writeManifestModel(fresh('kinds'), everyKindOfWeight()).json, join(b, 'model.json'), '--bits', '4');
    renameSync(join(b, 'model.moq.safetensors'), join(a, 'model.moq.safetensors'));
    const error = await packedModel(join(a, 'model.json'))
      .load()
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FormatError);
    expect((error as Error).message).toMatch(/does not match the model.json beside it/);
    for (const command of ['quantize', 'dequantize']) {
      const out = join(fresh('never'), 'model.json');
      const result = await runCli([command, join(a, 'model.json'), '-o', out, ...(command === 'quantize' ? ['--bits', '4'] : []), '--quiet']);
      expect(result.stderr).toMatch(/does not match the model.json beside it/);
      expect(existsSync(out)).toBe(false);
    }
  });

  it('an edited packed model.json (edge-moq specs without the marker) is refused', async () => {
    const out = fresh('edited');
    await quantize(writeGraphModel(fresh('g')).json, join(out, 'model.json'), '--bits', '4');
    const json = JSON.parse(readFileSync(join(out, 'model.json'), 'utf8'));
    delete json.edgeMoq;
    writeFileSync(join(out, 'model.json'), JSON.stringify(json));
    const error = await packedModel(join(out, 'model.json'))
      .load()
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EdgeMoqError);
    expect((error as Error).message).toMatch(/has edge-moq quantization, but the model lacks/);
  });

  it('an output that is the input model.json, or a shard of it, or not a regular file: refused, the input untouched', async () => {
    const model = writeGraphModel(fresh('self'));
    const before = readFileSync(model.json);
    const shard = JSON.parse(before.toString()).weightsManifest[0].paths[0] as string;
    for (const output of [model.json, join(model.folder, shard), '/dev/null']) {
      const result = await runCli(['quantize', model.json, '-o', output, '--bits', '4', '--quiet']);
      expect(result.code, output).toBe(2);
      expect(result.stderr).toMatch(/is the input|edge-moq writes only regular files|cannot be created/);
    }
    expect(readFileSync(model.json)).toEqual(before);
    expect(readdirSync(model.folder).filter((f) => f.includes('.partial-') || f.endsWith('.moq.safetensors'))).toEqual([]);
  });

  it('a missing file through the handler is an IO error naming it; dequantize refuses a plain model', async () => {
    await expect(packedModel(join(root, 'nowhere', 'model.json')).load()).rejects.toThrow(/cannot read .*nowhere/);
    const plain = writeGraphModel(fresh('plain'));
    const result = await runCli(['dequantize', plain.json, '-o', join(fresh('never'), 'model.json'), '--quiet']);
    expect(result.stderr).toMatch(/plain tfjs model.*nothing to dequantize/);
  });
});

describe('unpacking on WebGPU (Dawn on SwiftShader)', async () => {
  const { webgpuAvailable, testDevice } = await import('./support/webgpu.js');
  const available = await webgpuAvailable();
  it.skipIf(!available)('packedModel({ device }) unpacks on that device, to the weights WebAssembly unpacks', async () => {
    const float = await saveLayersModel(tf, convModel(tf), fresh('gpu-float'));
    const out = fresh('gpu-packed');
    await quantize(float.json, join(out, 'model.json'), '--bits', '4', '--type', 'asymmetric');
    const device = await testDevice(false);
    try {
      const onGpu = await packedModel(join(out, 'model.json'), { device }).load();
      const onWasm = await packedModel(join(out, 'model.json')).load();
      expect(onGpu.weightSpecs).toEqual(onWasm.weightSpecs);
      expect(new Uint8Array(onGpu.weightData as ArrayBuffer)).toEqual(new Uint8Array(onWasm.weightData as ArrayBuffer));
    } finally {
      device.destroy();
    }
  });
});

describe('packed models that must not be written or loaded wrong', () => {
  it('dequantize and quantize refuse a packed model.json whose kept string or complex weights disagree with their bytes', async () => {
    const out = fresh('kinds-packed');
    await quantize(writeManifestModel(fresh('kinds'), everyKindOfWeight()).json, join(out, 'model.json'), '--bits', '8');
    const json = JSON.parse(readFileSync(join(out, 'model.json'), 'utf8'));
    json.weightsManifest[0].weights.find((w: { name: string }) => w.name === 'rotation').shape = [2, 3];
    writeFileSync(join(out, 'model.json'), JSON.stringify(json));
    for (const command of ['dequantize', 'quantize']) {
      const target = join(fresh('never'), 'model.json');
      const result = await runCli([command, join(out, 'model.json'), '-o', target, ...(command === 'quantize' ? ['--bits', '4'] : []), '--quiet']);
      expect(result.stderr).toMatch(/weight "rotation" \(complex64 \[2, 3\]\) is not what its 32 bytes there hold/);
      expect(existsSync(target)).toBe(false);
    }
  });

  it('a model whose weights are all empty dequantizes to one empty shard that loads', async () => {
    const model = writeManifestModel(fresh('empty'), [{ spec: { name: 'nothing', shape: [0, 4], dtype: 'float32' }, bytes: new Uint8Array(0) }]);
    const out = fresh('empty-packed');
    await quantize(model.json, join(out, 'model.json'), '--bits', '4');
    const plain = fresh('empty-plain');
    expect((await runCli(['dequantize', join(out, 'model.json'), '-o', join(plain, 'model.json'), '--quiet'])).code).toBe(0);
    const artifacts = await packedModel(join(plain, 'model.json')).load();
    expect(artifacts.weightSpecs).toEqual([{ name: 'nothing', shape: [0, 4], dtype: 'float32' }]);
    expect((artifacts.weightData as ArrayBuffer).byteLength).toBe(0);
  });

  it('a weights path outside the folder is refused by packArtifacts and writePackedTfjsModel', async () => {
    const artifacts = await packedModel(writeGraphModel(fresh('g')).json).load();
    await expect(packArtifacts(artifacts as never, new Map(), { weightsPath: '../escaped.bin' })).rejects.toThrow(/plain file name beside model.json/);
    const packed = await packArtifacts(artifacts as never, new Map());
    packed.modelJson.weightsManifest[0]!.paths[0] = '../escaped.bin';
    const folder = fresh('written');
    await expect(writePackedTfjsModel(join(folder, 'model.json'), packed)).rejects.toThrow(/plain file name beside model.json/);
    expect(existsSync(join(folder, '..', 'escaped.bin'))).toBe(false);
  });
});
