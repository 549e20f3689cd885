// The tfjs format modules without tfjs (src/formats/tfjs/model-json.ts, quantize.ts,
// artifacts.ts, node-file.ts): model.json files and weight shards built by hand, the packed
// weights file read back by a header reader written here, values worked out by hand from the
// packed layout's formula, and every refusal checked by class, code and whole message.

import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WasmBackend } from '../src/backends/wasm/backend.js';
import { WasmPacker } from '../src/backends/wasm/packer.js';
import { EdgeMoqError, FormatError, InvalidInputError } from '../src/errors.js';
import { encodeSafetensors, memorySource, openSafetensors, type TensorBytes } from '../src/formats/safetensors.js';
import { type ArtifactsLike, checkWeightsFile, joinBuffers, packArtifacts, plainArtifacts, unpackModel, weightsFileFor } from '../src/formats/tfjs/artifacts.js';
import {
  checkShardPath,
  checkTfjsModel,
  isPackedTfjsModel,
  looksLikeTfjsModel,
  originalSpec,
  PACKED_QUANTIZATION,
  PACKED_TFJS_FORMAT,
  parseTfjsModel,
  type TfjsModelJson,
  type TfjsWeightSpec,
  weightSpecs,
} from '../src/formats/tfjs/model-json.js';
import { dequantizeTfjsFile, quantizeTfjsFile, readTfjsModelFile, SHARD_BYTES, writePackedTfjsModel } from '../src/formats/tfjs/node-file.js';
import { checkWeightsPath, openGroups, packedModelJson, quantizeTfjsModel } from '../src/formats/tfjs/quantize.js';
import type { PackedTensor } from '../src/packed/layout.js';
import { memorySink } from './support/memory-sink.js';
import { useScratch } from './support/scratch.js';
import { thrown, thrownAsync } from './support/thrown.js';

let backend: WasmBackend;
let packer: WasmPacker;
beforeAll(async () => {
  backend = await WasmBackend.create('simd');
  packer = new WasmPacker(backend);
});
afterAll(() => backend.dispose());

const scratch = useScratch('edge-moq-tfjs-format-');

function expectError(error: unknown, type: new (...args: never[]) => EdgeMoqError, code: string, message: string): void {
  expect(error).toBeInstanceOf(type);
  expect((error as EdgeMoqError).code).toBe(code);
  expect((error as Error).message).toBe(message);
}
const expectFormatError = (error: unknown, message: string) => expectError(error, FormatError, 'MALFORMED_FILE', message);
const expectInvalid = (error: unknown, message: string) => expectError(error, InvalidInputError, 'INVALID_ARGUMENT', message);

const f32 = (...values: number[]) => new Uint8Array(Float32Array.from(values).buffer);
const i32 = (...values: number[]) => new Uint8Array(Int32Array.from(values).buffer);
const concat = (...parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => [...p]));
/** tfjs's string weights: each a uint32 little-endian byte count, then the bytes. */
function strings(...values: string[]): Uint8Array {
  return concat(...values.map((v) => concat(new Uint8Array(new Uint32Array([v.length]).buffer), new TextEncoder().encode(v))));
}

/** A safetensors file read without edge-moq: the 8-byte header length, the JSON header, then each tensor's bytes. */
function readSafetensors(file: Uint8Array): { metadata: Record<string, string> | undefined; tensors: { name: string; dtype: string; shape: number[]; data: number[] }[] } {
  const length = Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(file.subarray(8, 8 + length)));
  const data = file.subarray(8 + length);
  const tensors = Object.entries(header)
    .filter(([name]) => name !== '__metadata__')
    .map(([name, t]) => {
      const {
        dtype,
        shape,
        data_offsets: [begin, end],
      } = t as { dtype: string; shape: number[]; data_offsets: [number, number] };
      return { name, dtype, shape, data: [...data.subarray(begin, end)], begin };
    })
    .sort((a, b) => a.begin - b.begin)
    .map(({ begin: _begin, ...t }) => t);
  return { metadata: header.__metadata__, tensors };
}

const spec = (name: string, shape: number[], dtype = 'float32', quantization?: object): TfjsWeightSpec => ({ name, shape, dtype, ...(quantization ? { quantization } : {}) }) as TfjsWeightSpec;
const plainModel = (...weightsManifest: { paths: string[]; weights: TfjsWeightSpec[] }[]): TfjsModelJson => ({ modelTopology: {}, weightsManifest });

const WHAT = 'a TensorFlow.js model.json has "modelTopology" and a "weightsManifest" of { paths, weights } groups';

describe('model.json checks', () => {
  const f = spec('w', [2]);
  const packedSpec = { name: 'w', shape: [2], dtype: 'float32', quantization: { dtype: 'edge-moq' } };
  it.each([
    ['null', null, `m is not a TensorFlow.js model: it is null, not a JSON object; ${WHAT}.`],
    ['an array', [], `m is not a TensorFlow.js model: it is [], not a JSON object; ${WHAT}.`],
    ['no topology', { weightsManifest: [] }, `m is not a TensorFlow.js model: it has no "modelTopology" object; ${WHAT}.`],
    ['a topology that is not an object', { modelTopology: 5, weightsManifest: [] }, `m is not a TensorFlow.js model: it has no "modelTopology" object; ${WHAT}.`],
    ['no manifest', { modelTopology: {} }, `m has no "weightsManifest" array, so its weights cannot be found; ${WHAT}.`],
    ['a manifest that is an object', { modelTopology: {}, weightsManifest: {} }, `m has no "weightsManifest" array, so its weights cannot be found; ${WHAT}.`],
    ['a group that is a number', { modelTopology: {}, weightsManifest: [{ paths: [], weights: [] }, 5] }, 'm weightsManifest[1] must be an object { paths: [...], weights: [...] }, got 5.'],
    [
      'a group whose paths are not an array',
      { modelTopology: {}, weightsManifest: [{ paths: 'a', weights: [] }] },
      'm weightsManifest[0] must be an object { paths: [...], weights: [...] }, got {"paths":"a","weights":[]}.',
    ],
    [
      'a group whose weights are not an array',
      { modelTopology: {}, weightsManifest: [{ paths: [], weights: {} }] },
      'm weightsManifest[0] must be an object { paths: [...], weights: [...] }, got {"paths":[],"weights":{}}.',
    ],
    [
      'a bad shard path',
      {
        modelTopology: {},
        weightsManifest: [
          { paths: [], weights: [] },
          { paths: ['a', '../b'], weights: [] },
        ],
      },
      'm weightsManifest[1].paths[1] is "../b": shard paths must be relative names inside the model\'s folder (no absolute path, "..", "//", "\\", "%", "?", "#" or scheme).',
    ],
    ['weights without shards', { modelTopology: {}, weightsManifest: [{ paths: [], weights: [f, spec('v', [1])] }] }, 'm weightsManifest[0] lists 2 weight(s) but no shard file.'],
    [
      'a bad spec',
      {
        modelTopology: {},
        weightsManifest: [
          { paths: ['a'], weights: [f] },
          { paths: ['b'], weights: [spec('v', [1]), 5] },
        ],
      },
      'm weightsManifest[1].weights[1] must be an object { name, shape, dtype }, got 5.',
    ],
    [
      'a weight listed twice',
      {
        modelTopology: {},
        weightsManifest: [
          { paths: ['a'], weights: [f] },
          { paths: ['b'], weights: [spec('w', [3])] },
        ],
      },
      'm weightsManifest[1].weights[0]: the weight "w" is listed twice; export the model again.',
    ],
    [
      'an edgeMoq field of another format',
      { modelTopology: {}, weightsManifest: [], edgeMoq: { format: 'edge-moq.tfjs/2' } },
      'm has an "edgeMoq" field but not {"format": "edge-moq.tfjs/1"}: it was written by another version of edge-moq, or edited.',
    ],
    [
      'an edgeMoq field that is null',
      { modelTopology: {}, weightsManifest: [], edgeMoq: null },
      'm has an "edgeMoq" field but not {"format": "edge-moq.tfjs/1"}: it was written by another version of edge-moq, or edited.',
    ],
    [
      'a packed model with a plain weight',
      { modelTopology: {}, edgeMoq: { format: 'edge-moq.tfjs/1' }, weightsManifest: [{ paths: ['w.st'], weights: [packedSpec, spec('v', [1])] }] },
      'm says it is packed by edge-moq, but weight "v" has no edge-moq quantization: the file was edited; quantize the original model again.',
    ],
    [
      'a plain model with a packed weight',
      { modelTopology: {}, weightsManifest: [{ paths: ['w.st'], weights: [packedSpec] }] },
      'm: weight "w" has edge-moq quantization, but the model lacks "edgeMoq": {"format": "edge-moq.tfjs/1"}: the file was edited.',
    ],
    [
      'a packed model with two groups',
      {
        modelTopology: {},
        edgeMoq: { format: 'edge-moq.tfjs/1' },
        weightsManifest: [
          { paths: ['w.st'], weights: [packedSpec] },
          { paths: ['v.st'], weights: [] },
        ],
      },
      'm is packed by edge-moq, so its weightsManifest must be one group naming one weights file; it was edited.',
    ],
    [
      'a packed model with no group',
      { modelTopology: {}, edgeMoq: { format: 'edge-moq.tfjs/1' }, weightsManifest: [] },
      'm is packed by edge-moq, so its weightsManifest must be one group naming one weights file; it was edited.',
    ],
    [
      'a packed model with two files',
      { modelTopology: {}, edgeMoq: { format: 'edge-moq.tfjs/1' }, weightsManifest: [{ paths: ['w.st', 'v.st'], weights: [packedSpec] }] },
      'm is packed by edge-moq, so its weightsManifest must be one group naming one weights file; it was edited.',
    ],
  ])('refuses %s', (_name, value, message) => {
    expectFormatError(
      thrown(() => checkTfjsModel(value, 'm')),
      message,
    );
  });

  it('accepts plain and packed models, and returns them as they are', () => {
    const plain = {
      modelTopology: { node: [] },
      weightsManifest: [
        { paths: [], weights: [] },
        { paths: ['a', 'b'], weights: [f, spec('v', [])] },
      ],
      format: 'graph-model',
    };
    expect(checkTfjsModel(plain, 'm')).toBe(plain);
    const packed = {
      modelTopology: {},
      edgeMoq: { format: PACKED_TFJS_FORMAT },
      weightsManifest: [{ paths: ['w.st'], weights: [packedSpec, { ...packedSpec, name: 'v', quantization: { dtype: 'edge-moq', original: { dtype: 'uint8', scale: 1, min: 0 } } }] }],
    };
    expect(checkTfjsModel(packed, 'm')).toBe(packed);
    expect(PACKED_QUANTIZATION).toBe('edge-moq');
    expect(PACKED_TFJS_FORMAT).toBe('edge-moq.tfjs/1');
  });

  const at = 'm weightsManifest[0].weights[0]';
  it.each([
    ['a spec that is null', null, `${at} must be an object { name, shape, dtype }, got null.`],
    ['a spec without a name', { shape: [1], dtype: 'float32' }, `${at}.name must be a non-empty string, got undefined.`],
    ['an empty name', { name: '', shape: [1], dtype: 'float32' }, `${at}.name must be a non-empty string, got "".`],
    ['a shape that is not an array', { name: 'w', shape: 4, dtype: 'float32' }, `${at} ("w").shape must be an array of non-negative integers, got 4.`],
    ['a fractional dimension', { name: 'w', shape: [2, 1.5], dtype: 'float32' }, `${at} ("w").shape must be an array of non-negative integers, got [2,1.5].`],
    ['a negative dimension', { name: 'w', shape: [-1], dtype: 'float32' }, `${at} ("w").shape must be an array of non-negative integers, got [-1].`],
    ['an unsafe dimension', { name: 'w', shape: [2 ** 53], dtype: 'float32' }, `${at} ("w").shape must be an array of non-negative integers, got [9007199254740992].`],
    ['2^50 elements', { name: 'w', shape: [2 ** 50], dtype: 'float32' }, `${at} ("w").shape [1125899906842624] holds more elements than any file can.`],
    ['2^25 × 2^25 elements', { name: 'w', shape: [2 ** 25, 2 ** 25], dtype: 'int32' }, `${at} ("w").shape [33554432, 33554432] holds more elements than any file can.`],
    ['an unknown dtype', { name: 'w', shape: [1], dtype: 'float64' }, `${at} ("w").dtype is "float64", which TensorFlow.js does not have (it has float32, int32, bool, string, complex64).`],
    ['no dtype', { name: 'w', shape: [1] }, `${at} ("w").dtype is undefined, which TensorFlow.js does not have (it has float32, int32, bool, string, complex64).`],
    ['a quantization that is null', { name: 'w', shape: [1], dtype: 'float32', quantization: null }, `${at} ("w").quantization must be an object, got null.`],
    ['a quantization that is an array', { name: 'w', shape: [1], dtype: 'float32', quantization: [] }, `${at} ("w").quantization must be an object, got [].`],
    [
      'a bad original under edge-moq',
      { name: 'w', shape: [1], dtype: 'float32', quantization: { dtype: 'edge-moq', original: { dtype: 'int4' } } },
      `${at} ("w").quantization.original.quantization.dtype is "int4"; tfjs quantizes to uint8, uint16 or float16.`,
    ],
    ['float16 of int32', { name: 'w', shape: [1], dtype: 'int32', quantization: { dtype: 'float16' } }, `${at} ("w"): float16 quantization applies to float32 weights only, not int32.`],
    [
      'an unknown quantization',
      { name: 'w', shape: [1], dtype: 'float32', quantization: { dtype: 'int8', scale: 1, min: 0 } },
      `${at} ("w").quantization.dtype is "int8"; tfjs quantizes to uint8, uint16 or float16.`,
    ],
    [
      'uint8 of bool',
      { name: 'w', shape: [1], dtype: 'bool', quantization: { dtype: 'uint8', scale: 1, min: 0 } },
      `${at} ("w"): uint8 quantization applies to float32 and int32 weights only, not bool.`,
    ],
    [
      'uint16 of a string',
      { name: 'w', shape: [1], dtype: 'string', quantization: { dtype: 'uint16', scale: 1, min: 0 } },
      `${at} ("w"): uint16 quantization applies to float32 and int32 weights only, not string.`,
    ],
    ['no scale', { name: 'w', shape: [1], dtype: 'float32', quantization: { dtype: 'uint8', min: 0 } }, `${at} ("w"): uint8 quantization needs finite "scale" and "min", got undefined and 0.`],
    [
      'an infinite min',
      { name: 'w', shape: [1], dtype: 'int32', quantization: { dtype: 'uint16', scale: 0.5, min: -Infinity } },
      `${at} ("w"): uint16 quantization needs finite "scale" and "min", got 0.5 and -Infinity.`,
    ],
  ])('refuses %s', (_name, weight, message) => {
    expectFormatError(
      thrown(() => checkTfjsModel({ modelTopology: {}, weightsManifest: [{ paths: ['a'], weights: [weight] }] }, 'm')),
      message,
    );
  });

  it.each([
    ['a scalar', { name: 'w', shape: [], dtype: 'float32' }],
    ['an empty weight', { name: 'w', shape: [3, 0], dtype: 'bool' }],
    ['2^50 - 1 elements', { name: 'w', shape: [2 ** 50 - 1], dtype: 'bool' }],
    ['a string', { name: 'w', shape: [2], dtype: 'string' }],
    ['complex64', { name: 'w', shape: [2], dtype: 'complex64' }],
    ['int32', { name: 'w', shape: [2], dtype: 'int32' }],
    ['float16 of float32', { name: 'w', shape: [1], dtype: 'float32', quantization: { dtype: 'float16' } }],
    ['uint8 of float32', { name: 'w', shape: [1], dtype: 'float32', quantization: { dtype: 'uint8', scale: 0.1, min: -1 } }],
    ['uint16 of int32', { name: 'w', shape: [1], dtype: 'int32', quantization: { dtype: 'uint16', scale: 2, min: 0, original_dtype: 'int32' } }],
  ])('accepts %s', (_name, weight) => {
    const value = { modelTopology: {}, weightsManifest: [{ paths: ['a'], weights: [weight] }] };
    expect(checkTfjsModel(value, 'm')).toBe(value);
  });

  it.each([
    [5, 'must be a non-empty file name, got 5.'],
    ['', 'must be a non-empty file name, got "".'],
    ...['/a.bin', 'a\\b', 'a\0b', '%2e%2e/a', 'a%20b', 'a?b', 'a#b', 'http:a', 'C:a', 'x+y.z-1:a', '..', '../a', 'a/../b', 'a//b', 'a/', 'a/..'].map(
      (path) => [path, `is ${JSON.stringify(path)}: shard paths must be relative names inside the model's folder (no absolute path, "..", "//", "\\", "%", "?", "#" or scheme).`] as [unknown, string],
    ),
  ])('refuses the shard path %j', (path, message) => {
    expectFormatError(
      thrown(() => checkShardPath(path, 'p')),
      `p ${message}`,
    );
  });

  it.each(['a.bin', 'sub/a.bin', '..a', 'a..', '.a', '1a:b', '+a:b', 'x/y:z', 'group1-shard1of2.bin'])('accepts the shard path %j', (path) => {
    expect(checkShardPath(path, 'p')).toBeUndefined();
  });

  it('parses a model.json from text or bytes, invalid UTF-8 replaced', () => {
    const text = '{"modelTopology": {"a": "x"}, "weightsManifest": []}';
    expect(parseTfjsModel(text, 'm')).toEqual({ modelTopology: { a: 'x' }, weightsManifest: [] });
    const bytes = new TextEncoder().encode(text);
    bytes[25] = 0xff;
    expect(parseTfjsModel(bytes, 'm')).toEqual({ modelTopology: { a: '\ufffd' }, weightsManifest: [] });
  });

  it('refuses text that is not JSON, and JSON that is not a model, naming the file', () => {
    expectFormatError(
      thrown(() => parseTfjsModel('{"modelTopology": {}, "modelTopology": {}}', 'm.json')),
      `m.json is not valid JSON: has the key "modelTopology" twice in one object (at character 22); ${WHAT}.`,
    );
    expectFormatError(
      thrown(() => parseTfjsModel(new TextEncoder().encode('[1]'), 'm.json')),
      `m.json is not a TensorFlow.js model: it is [1], not a JSON object; ${WHAT}.`,
    );
  });

  it.each([
    [{ modelTopology: {}, weightsManifest: [] }, true],
    [{ modelTopology: null, edgeMoq: 1 }, true],
    [{ modelTopology: {} }, false],
    [{ weightsManifest: [] }, false],
    [{ edgeMoq: {}, weightsManifest: [] }, false],
    [null, false],
    [[{ modelTopology: {}, weightsManifest: [] }], false],
    ['modelTopology weightsManifest', false],
  ])('looksLikeTfjsModel(%j) is %s', (value, expected) => {
    expect(looksLikeTfjsModel(value)).toBe(expected);
  });

  it.each([
    [{ format: 'edge-moq.tfjs/1' }, true],
    [{ format: 'edge-moq.tfjs/2' }, false],
    [null, false],
    [undefined, false],
    ['edge-moq.tfjs/1', false],
  ])('isPackedTfjsModel with edgeMoq %j is %s', (edgeMoq, expected) => {
    expect(isPackedTfjsModel({ modelTopology: {}, weightsManifest: [], edgeMoq })).toBe(expected);
  });

  it('lists the specs across groups in order, and the original spec of a packed one', () => {
    const [a, b, c] = [spec('a', [1]), spec('b', [2], 'int32'), spec('c', [])];
    expect(weightSpecs(plainModel({ paths: ['1'], weights: [a, b] }, { paths: [], weights: [] }, { paths: ['2'], weights: [c] }))).toEqual([a, b, c]);
    const quantized = spec('q', [2], 'float32', { dtype: 'uint8', scale: 1, min: 0 });
    expect(originalSpec(quantized)).toBe(quantized);
    expect(originalSpec(a)).toBe(a);
    expect(originalSpec({ name: 'p', shape: [3], dtype: 'float32', quantization: { dtype: 'edge-moq' } })).toStrictEqual({ name: 'p', shape: [3], dtype: 'float32' });
    expect(originalSpec({ name: 'p', shape: [3], dtype: 'int32', quantization: { dtype: 'edge-moq', original: { dtype: 'uint16', scale: 2, min: 1 } } })).toStrictEqual({
      name: 'p',
      shape: [3],
      dtype: 'int32',
      quantization: { dtype: 'uint16', scale: 2, min: 1 },
    });
  });
});

describe('packed model.json and weights file names', () => {
  // A model.json's name → its packed weights file's: a final ".json" in any case is dropped.
  const weightsFiles: Record<string, string> = {
    'model.json': 'model.moq.safetensors',
    'net.JSON': 'net.moq.safetensors',
    'a.json.json': 'a.json.moq.safetensors',
    json: 'json.moq.safetensors',
    modeljson: 'modeljson.moq.safetensors',
    model: 'model.moq.safetensors',
    'model.json5': 'model.json5.moq.safetensors',
  };
  it.each(Object.entries(weightsFiles))('weightsFileFor(%j) is %j', (json, weights) => {
    expect(weightsFileFor(json)).toBe(weights);
  });

  it.each([['w.bin'], ['...'], ['.w'], ['a..b']])('checkWeightsPath accepts %j', (path) => {
    expect(checkWeightsPath(path)).toBeUndefined();
  });

  it.each([[''], ['.'], ['..'], ['a/b'], ['/w'], ['a\\b'], [5], [null]])('checkWeightsPath refuses %j', (path) => {
    expectInvalid(
      thrown(() => checkWeightsPath(path as string)),
      `the weights file must be a plain file name beside model.json, got ${JSON.stringify(path)}.`,
    );
  });

  it('packedModelJson keeps the input fields, names one weights file and marks every spec', () => {
    const model = { modelTopology: { node: [1] }, format: 'graph-model', generatedBy: 'x', weightsManifest: [{ paths: ['1', '2'], weights: [] }] } as TfjsModelJson;
    const specs = [spec('a', [2]), spec('b', [1], 'int32', { dtype: 'uint8', scale: 1, min: 0 })];
    expect(packedModelJson(model, specs, 'out.st')).toStrictEqual({
      modelTopology: { node: [1] },
      format: 'graph-model',
      generatedBy: 'x',
      edgeMoq: { format: 'edge-moq.tfjs/1' },
      weightsManifest: [
        {
          paths: ['out.st'],
          weights: [
            { name: 'a', shape: [2], dtype: 'float32', quantization: { dtype: 'edge-moq' } },
            { name: 'b', shape: [1], dtype: 'int32', quantization: { dtype: 'edge-moq', original: { dtype: 'uint8', scale: 1, min: 0 } } },
          ],
        },
      ],
    });
    expect(model.edgeMoq).toBeUndefined();
  });

  it("openGroups opens every group's shards by path, in order", async () => {
    const opened: string[] = [];
    const groups = await openGroups(plainModel({ paths: ['a', 'b'], weights: [spec('x', [1])] }, { paths: ['c'], weights: [] }), async (path) => {
      opened.push(path);
      return memorySource(new TextEncoder().encode(path));
    });
    expect(opened).toEqual(['a', 'b', 'c']);
    expect(groups.map((g) => [g.specs.map((s) => s.name), g.paths, g.shards.map((s) => s.size)])).toEqual([
      [['x'], ['a', 'b'], [1, 1]],
      [[], ['c'], [1]],
    ]);
  });
});

describe('joinBuffers', () => {
  it('joins ArrayBuffers in order, and passes a Uint8Array or one buffer through without copying', () => {
    const bytes = Uint8Array.of(1, 2);
    expect(joinBuffers(bytes)).toBe(bytes);
    const buffer = Uint8Array.of(3, 4, 5).buffer;
    expect(joinBuffers(buffer).buffer).toBe(buffer);
    expect([...joinBuffers(buffer)]).toEqual([3, 4, 5]);
    expect([...joinBuffers([Uint8Array.of(1).buffer, new ArrayBuffer(0), Uint8Array.of(2, 3).buffer])]).toEqual([1, 2, 3]);
    expect(joinBuffers([]).length).toBe(0);
  });

  it.each([
    ['a string', 'x'],
    ['an array holding a Uint8Array', [new Uint8Array(1)]],
    ['an array holding something else', [new ArrayBuffer(1), 5]],
    ['null', null],
  ])('refuses %s', (_name, data) => {
    expectInvalid(
      thrown(() => joinBuffers(data as unknown as ArrayBuffer)),
      'weightData must be an ArrayBuffer or an array of them (tf.io.ModelArtifacts).',
    );
  });
});

/**
 * A layers model of every weight kind in two groups, the first group's bytes split across two
 * shards mid-weight. Packed at 8 bits, "dense/kernel" [4, 2] gets one group per output channel
 * (a column, axis 0): column 0 is -1, -0.5, 0, 0.5 (scale 2·1/256 = 2^-7, codes q + 128 = 0,
 * 64, 128, 192), column 1 is -2, 1, -1, 0 (scale 2·2/256 = 2^-6, codes 0, 192, 64, 128); the
 * stream holds column 0, then column 1.
 */
function everyKind() {
  const kernel = f32(-1, -2, -0.5, 1, 0, -1, 0.5, 0);
  const group1 = concat(kernel, f32(0.25, -0.25));
  const group2 = concat(i32(3, -4), Uint8Array.of(1, 2, 3, 4), Uint8Array.of(1, 0, 1), strings('ab', ''));
  const model: TfjsModelJson = {
    modelTopology: { class_name: 'Sequential' },
    format: 'layers-model',
    generatedBy: 'hand',
    convertedBy: null,
    weightsManifest: [
      { paths: ['g1a.bin', 'g1b.bin'], weights: [spec('dense/kernel', [4, 2]), spec('dense/bias', [2])] },
      {
        paths: ['g2.bin'],
        weights: [spec('steps', [2], 'int32'), spec('q', [2, 2], 'float32', { dtype: 'uint8', scale: 0.5, min: -1 }), spec('flag', [3], 'bool'), spec('names', [2], 'string')],
      },
    ],
  };
  const shards = new Map([
    ['g1a.bin', group1.subarray(0, 20)],
    ['g1b.bin', group1.subarray(20)],
    ['g2.bin', group2],
  ]);
  return { model, shards, group1, group2 };
}

const KERNEL_CODES = [0, 64, 128, 192, 0, 192, 64, 128];
const KERNEL_SCALES = f32(2 ** -7, 2 ** -6);
/** The "edge-moq" metadata record of "dense/kernel" packed as above. */
const KERNEL_RECORD = { bits: 8, type: 'symmetric', groupSize: 4, shape: [4, 2], dtype: 'F32', axis: 0 };

describe('quantizeTfjsModel', () => {
  it('packs float weights per output channel, keeps the rest, and reports each weight by its tfjs spec', async () => {
    const { model, shards, group2 } = everyKind();
    const opened: string[] = [];
    const sink = memorySink();
    const { modelJson, report } = await quantizeTfjsModel(
      model,
      async (path) => {
        opened.push(path);
        return memorySource(shards.get(path)!);
      },
      sink,
      packer,
      { bits: 8 },
      'w.st',
    );
    expect(opened).toEqual(['g1a.bin', 'g1b.bin', 'g2.bin']);
    expect(sink.state).toBe('closed');
    const file = readSafetensors(sink.bytes());
    expect(file.tensors).toEqual([
      { name: 'dense/kernel.q', dtype: 'U8', shape: [8], data: KERNEL_CODES },
      { name: 'dense/kernel.scale', dtype: 'F32', shape: [2], data: [...KERNEL_SCALES] },
      { name: 'dense/bias', dtype: 'F32', shape: [2], data: [...f32(0.25, -0.25)] },
      { name: 'steps', dtype: 'I32', shape: [2], data: [...group2.subarray(0, 8)] },
      { name: 'q', dtype: 'U8', shape: [2, 2], data: [1, 2, 3, 4] },
      { name: 'flag', dtype: 'BOOL', shape: [3], data: [1, 0, 1] },
      { name: 'names', dtype: 'U8', shape: [10], data: [...strings('ab', '')] },
    ]);
    expect(file.metadata!.format).toBe('edge-moq.packed/2');
    expect(JSON.parse(file.metadata!['edge-moq']!)).toEqual({ 'dense/kernel': KERNEL_RECORD });
    expect(report.tensors.map((t) => [t.name, t.dtype, t.shape, t.packed, t.reason])).toEqual([
      ['dense/kernel', 'float32', [4, 2], true, undefined],
      ['dense/bias', 'float32', [2], false, '1-D (pass --include-vectors to pack it)'],
      ['steps', 'int32', [2], false, 'int32 is not a float type'],
      ['q', 'float32 (tfjs uint8)', [2, 2], false, 'already quantized by tfjs (uint8)'],
      ['flag', 'bool', [3], false, 'bool is not a float type'],
      ['names', 'string', [2], false, 'string is not a float type'],
    ]);
    expect(report.tensors.map((t) => 'reason' in t)).toEqual([false, true, true, true, true, true]);
    expect([report.packed, report.skipped]).toEqual([1, 5]);
    expect(modelJson).toStrictEqual(packedModelJson(model, weightSpecs(model), 'w.st'));
    expect(modelJson.weightsManifest[0]!.weights[3]).toStrictEqual({
      name: 'q',
      shape: [2, 2],
      dtype: 'float32',
      quantization: { dtype: 'edge-moq', original: { dtype: 'uint8', scale: 0.5, min: -1 } },
    });
  });

  it('reads a packed model from its weights file, carrying its packed weights over', async () => {
    const { model, shards } = everyKind();
    const first = memorySink();
    const { modelJson } = await quantizeTfjsModel(model, async (path) => memorySource(shards.get(path)!), first, packer, { bits: 8 }, 'w.st');
    const opened: string[] = [];
    const second = memorySink();
    const again = await quantizeTfjsModel(
      modelJson,
      async (path) => {
        opened.push(path);
        return memorySource(first.bytes());
      },
      second,
      packer,
      { bits: 4 },
      'v.st',
    );
    expect(opened).toEqual(['w.st']);
    // Nothing new to pack: the same tensors and records, byte for byte.
    expect(second.bytes()).toEqual(first.bytes());
    expect(again.report.tensors.map((t) => [t.name, t.dtype, t.packed, t.reason])).toEqual([
      ['dense/kernel', 'float32', false, 'already packed (symmetric 8-bit, groups of 4): carried over'],
      ['dense/bias', 'float32', false, '1-D (pass --include-vectors to pack it)'],
      ['steps', 'int32', false, 'int32 is not a float type'],
      ['q', 'float32 (tfjs uint8)', false, 'already quantized by tfjs (uint8)'],
      ['flag', 'bool', false, 'bool is not a float type'],
      ['names', 'string', false, 'string is not a float type'],
    ]);
    expect(again.modelJson.weightsManifest).toStrictEqual([{ paths: ['v.st'], weights: modelJson.weightsManifest[0]!.weights }]);
  });

  it('aborts the sink and opens nothing for a bad weights file name', async () => {
    const { model } = everyKind();
    const sink = memorySink();
    const error = await thrownAsync(() =>
      quantizeTfjsModel(
        model,
        async () => {
          throw new Error('opened');
        },
        sink,
        packer,
        { bits: 8 },
        'a/w.st',
      ),
    );
    expectInvalid(error, 'the weights file must be a plain file name beside model.json, got "a/w.st".');
    expect(sink.state).toBe('aborted');
  });

  it('aborts the sink when a shard cannot be opened or does not match, even if aborting fails', async () => {
    const { model, shards } = everyKind();
    const failure = new Error('no such shard');
    const sink = { ...memorySink(), aborted: 0 };
    sink.abort = async () => {
      sink.aborted++;
      throw new Error('abort failed');
    };
    const error = await thrownAsync(() =>
      quantizeTfjsModel(
        model,
        async (path) => {
          if (path === 'g2.bin') throw failure;
          return memorySource(shards.get(path)!);
        },
        sink,
        packer,
        { bits: 8 },
        'w.st',
      ),
    );
    expect(error).toBe(failure);
    expect(sink.aborted).toBe(1);
    const short = memorySink();
    const mismatch = await thrownAsync(() => quantizeTfjsModel(model, async (path) => memorySource(shards.get(path)!.subarray(1)), short, packer, { bits: 8 }, 'w.st'));
    expectFormatError(mismatch, 'weight "dense/bias" needs 8 bytes but its group\'s shards hold only 6 from where it starts: a shard is short or missing.');
    expect(short.state).toBe('aborted');
  });
});

/** The metadata of a packed file in which no tensor is packed. */
const PACKED_NOTHING = { format: 'edge-moq.packed/1', 'edge-moq': '{}' };

/** A PackedTensor written out by hand: 8-bit symmetric codes, one scale per group. */
const packed8 = (codes: number[], scales: number[], groupSize: number): PackedTensor => ({
  bits: 8,
  type: 'symmetric',
  length: codes.length,
  groupSize,
  codes: Uint8Array.from(codes),
  scales: Float32Array.from(scales),
  zeros: null,
});

describe('packArtifacts and unpackModel', () => {
  /**
   * "kernel" [2, 2] packed along axis 0: column 0 has codes 192, 64 at scale 0.5 (32, -32),
   * column 1 codes 128, 0 at scale 0.25 (0, -32); row-major that is 32, 0, -32, -32.
   */
  // Every model.json field the artifacts carry besides the weights: copied as they are.
  const carried = {
    modelTopology: { class_name: 'Sequential' },
    format: 'layers-model',
    generatedBy: 'hand',
    convertedBy: null,
    trainingConfig: { loss: 'mse' },
    signature: { s: 1 },
    userDefinedMetadata: { u: 2 },
    modelInitializer: { i: 3 },
    initializerSignature: { j: 4 },
  };
  const artifacts = (): ArtifactsLike => ({
    ...structuredClone(carried),
    weightSpecs: [spec('kernel', [2, 2]), spec('steps', [2], 'int32'), spec('names', [2], 'string'), spec('q', [2], 'float32', { dtype: 'uint16', scale: 1, min: 0 })],
    weightData: [concat(f32(9, 9, 9, 9), i32(7)).buffer, concat(i32(-7), strings('ab', ''), Uint8Array.of(5, 0, 6, 0)).buffer],
  });
  const kernel = () => new Map([['kernel', { packed: packed8([192, 64, 128, 0], [0.5, 0.25], 2), axis: 0 }]]);

  it('stores packed weights as their codes and the rest as they are, carrying the model.json fields', async () => {
    const { modelJson, weights } = await packArtifacts(artifacts(), kernel());
    const file = readSafetensors(weights);
    expect(file.tensors).toEqual([
      { name: 'kernel.q', dtype: 'U8', shape: [4], data: [192, 64, 128, 0] },
      { name: 'kernel.scale', dtype: 'F32', shape: [2], data: [...f32(0.5, 0.25)] },
      { name: 'steps', dtype: 'I32', shape: [2], data: [...i32(7, -7)] },
      { name: 'names', dtype: 'U8', shape: [10], data: [...strings('ab', '')] },
      { name: 'q', dtype: 'U16', shape: [2], data: [5, 0, 6, 0] },
    ]);
    expect(file.metadata!.format).toBe('edge-moq.packed/2');
    expect(JSON.parse(file.metadata!['edge-moq']!)).toEqual({ kernel: { bits: 8, type: 'symmetric', groupSize: 2, shape: [2, 2], dtype: 'F32', axis: 0 } });
    expect(modelJson).toStrictEqual({
      ...carried,
      edgeMoq: { format: 'edge-moq.tfjs/1' },
      weightsManifest: [
        {
          paths: ['model.moq.safetensors'],
          weights: [
            { name: 'kernel', shape: [2, 2], dtype: 'float32', quantization: { dtype: 'edge-moq' } },
            { name: 'steps', shape: [2], dtype: 'int32', quantization: { dtype: 'edge-moq' } },
            { name: 'names', shape: [2], dtype: 'string', quantization: { dtype: 'edge-moq' } },
            { name: 'q', shape: [2], dtype: 'float32', quantization: { dtype: 'edge-moq', original: { dtype: 'uint16', scale: 1, min: 0 } } },
          ],
        },
      ],
    });

    const back = await unpackModel(modelJson, memorySource(weights), packer);
    expect(back.weightSpecs).toStrictEqual(artifacts().weightSpecs);
    expect([...new Uint8Array(back.weightData as ArrayBuffer)]).toEqual([...f32(32, 0, -32, -32), ...i32(7, -7), ...strings('ab', ''), 5, 0, 6, 0]);
    const { weightSpecs: _specs, weightData: _data, ...fields } = back;
    const { weightSpecs: _s, weightData: _d, ...expected } = artifacts();
    expect(fields).toStrictEqual(expected);
  });

  it('leaves out the fields the artifacts do not have, and packs along the last axis by default', async () => {
    const { modelJson, weights } = await packArtifacts(
      { modelTopology: undefined, weightSpecs: [spec('w', [1, 4])], weightData: f32(1, 2, 3, 4).buffer },
      new Map([['w', { packed: packed8([0, 64, 128, 255], [1, 2], 2) }]]),
      { weightsPath: 'x.st' },
    );
    expect(modelJson).toStrictEqual({
      modelTopology: undefined,
      edgeMoq: { format: 'edge-moq.tfjs/1' },
      weightsManifest: [{ paths: ['x.st'], weights: [{ name: 'w', shape: [1, 4], dtype: 'float32', quantization: { dtype: 'edge-moq' } }] }],
    });
    const file = readSafetensors(weights);
    expect(file.metadata!.format).toBe('edge-moq.packed/1');
    expect(JSON.parse(file.metadata!['edge-moq']!)).toEqual({ w: { bits: 8, type: 'symmetric', groupSize: 2, shape: [1, 4], dtype: 'F32' } });
    // Codes 0, 64 at scale 1 and 128, 255 at scale 2: -128, -64, 0, 254.
    const back = await unpackModel(modelJson, memorySource(weights), packer);
    expect([...new Float32Array(back.weightData as ArrayBuffer)]).toEqual([-128, -64, 0, 254]);
    expect(Object.keys(back)).toEqual(['modelTopology', 'weightSpecs', 'weightData']);
  });

  it('unpacks a weight larger than one 16 MiB chunk, keeping every chunk', async () => {
    // 5 Mi values in two groups of 2.5 Mi (10 MiB unpacked each, one chunk each): codes 129 then
    // 127 at scale 1, so 1 in the first half and -1 in the second.
    const length = 5 * 2 ** 20;
    const codes = new Uint8Array(length).fill(129, 0, length / 2).fill(127, length / 2);
    const weight: PackedTensor = { bits: 8, type: 'symmetric', length, groupSize: length / 2, codes, scales: Float32Array.of(1, 1), zeros: null };
    const { modelJson, weights } = await packArtifacts({ modelTopology: {}, weightSpecs: [spec('w', [2, length / 2])], weightData: new ArrayBuffer(length * 4) }, new Map([['w', { packed: weight }]]));
    const values = new Float32Array((await unpackModel(modelJson, memorySource(weights), packer)).weightData as ArrayBuffer);
    expect(values.length).toBe(length);
    expect(values.subarray(0, length / 2).every((v) => v === 1)).toBe(true);
    expect(values.subarray(length / 2).every((v) => v === -1)).toBe(true);
  });

  it('stores the zero points of asymmetric codes', async () => {
    // Codes 0 and 10 at scale 0.5 from zero point -1: -1 and 4.
    const asymmetric: PackedTensor = { bits: 8, type: 'asymmetric', length: 2, groupSize: 2, codes: Uint8Array.of(0, 10), scales: Float32Array.of(0.5), zeros: Float32Array.of(-1) };
    const { modelJson, weights } = await packArtifacts({ modelTopology: {}, weightSpecs: [spec('a', [1, 2])], weightData: f32(0, 0).buffer }, new Map([['a', { packed: asymmetric }]]));
    expect(readSafetensors(weights).tensors).toEqual([
      { name: 'a.q', dtype: 'U8', shape: [2], data: [0, 10] },
      { name: 'a.scale', dtype: 'F32', shape: [1], data: [...f32(0.5)] },
      { name: 'a.zero', dtype: 'F32', shape: [1], data: [...f32(-1)] },
    ]);
    expect(JSON.parse(readSafetensors(weights).metadata!['edge-moq']!)).toEqual({ a: { bits: 8, type: 'asymmetric', groupSize: 2, shape: [1, 2], dtype: 'F32' } });
    expect([...new Float32Array((await unpackModel(modelJson, memorySource(weights), packer)).weightData as ArrayBuffer)]).toEqual([-1, 4]);
  });

  it('packs a model without weights, and a scalar along its only axis', async () => {
    const empty = await packArtifacts({ modelTopology: {}, weightSpecs: [], weightData: new ArrayBuffer(0) }, new Map());
    expect(readSafetensors(empty.weights).tensors).toEqual([]);
    const back = await unpackModel(empty.modelJson, memorySource(empty.weights), packer);
    expect((back.weightData as ArrayBuffer).byteLength).toBe(0);
    expect(back.weightSpecs).toEqual([]);
    const scalar = await packArtifacts({ modelTopology: {}, weightSpecs: [spec('s', [])], weightData: f32(3).buffer }, new Map([['s', { packed: packed8([130], [1.5], 1) }]]));
    expect(JSON.parse(readSafetensors(scalar.weights).metadata!['edge-moq']!)).toEqual({ s: { bits: 8, type: 'symmetric', groupSize: 1, shape: [], dtype: 'F32' } });
    expect([...new Float32Array((await unpackModel(scalar.modelJson, memorySource(scalar.weights), packer)).weightData as ArrayBuffer)]).toEqual([3]);
  });

  it.each([
    [
      'names no weight',
      new Map([
        ['x', { packed: packed8([0], [1], 1) }],
        ['kernel', { packed: packed8([0, 0, 0, 0], [1, 1], 2) }],
        ['y', { packed: packed8([0], [1], 1) }],
      ]),
      'packed tensors "x", "y" name no weight of the model.',
    ],
    [
      'packs an int32 weight',
      new Map([['steps', { packed: packed8([0, 0], [1], 2) }]]),
      'packed "steps" holds 2 values, but the weight is int32 [2]: only a float32 weight\'s own values can be packed.',
    ],
    [
      'packs a tfjs-quantized weight',
      new Map([['q', { packed: packed8([0, 0], [1], 2) }]]),
      'packed "q" holds 2 values, but the weight is float32 (tfjs uint16) [2]: only a float32 weight\'s own values can be packed.',
    ],
    [
      'has too few values',
      new Map([['kernel', { packed: packed8([0, 0], [1], 2) }]]),
      'packed "kernel" holds 2 values, but the weight is float32 [2, 2]: only a float32 weight\'s own values can be packed.',
    ],
    [
      'has too many values',
      new Map([['kernel', { packed: packed8([0, 0, 0, 0, 0, 0], [1, 1, 1], 2) }]]),
      'packed "kernel" holds 6 values, but the weight is float32 [2, 2]: only a float32 weight\'s own values can be packed.',
    ],
    [
      'has groups across columns',
      new Map([['kernel', { packed: packed8([0, 0, 0, 0], [1], 4), axis: 0 }]]),
      'packed "kernel": groups of 4 along axis 0 of [2, 2] would cross columns: the group size must divide 2 (the product of dimensions 0..0).',
    ],
    ['has an axis the weight lacks', new Map([['kernel', { packed: packed8([0, 0, 0, 0], [1, 1], 2), axis: 2 }]]), 'packed "kernel": axis must be an integer in 0..1 (a dimension of [2, 2]), got 2.'],
    [
      'is not a valid packed tensor',
      new Map([['kernel', { packed: { ...packed8([0, 0, 0, 0], [1, 1], 2), scales: new Float32Array(1) } }]]),
      'packed "kernel": scales must be a Float32Array of 2 values (one per group).',
    ],
  ])('refuses a packed tensor that %s', async (_name, packed, message) => {
    const base = artifacts();
    expectInvalid(await thrownAsync(() => packArtifacts(base, packed as Map<string, { packed: PackedTensor; axis?: number }>)), message);
  });

  it('refuses artifacts tfjs would misread, and a weights file name with a folder', async () => {
    expectFormatError(
      await thrownAsync(() => packArtifacts({ modelTopology: {}, weightSpecs: [spec('w', [2], 'float64')], weightData: new ArrayBuffer(8) }, new Map())),
      'artifacts weightsManifest[0].weights[0] ("w").dtype is "float64", which TensorFlow.js does not have (it has float32, int32, bool, string, complex64).',
    );
    expectFormatError(
      await thrownAsync(() => packArtifacts({ modelTopology: {}, weightSpecs: [spec('w', [2])], weightData: new ArrayBuffer(12) }, new Map())),
      'the shards "weightData" hold 12 bytes but their weights in the manifest take 8: the shards belong to another model or were changed; convert the model again.',
    );
    expectInvalid(await thrownAsync(() => packArtifacts(artifacts(), new Map(), { weightsPath: '../w.st' })), 'the weights file must be a plain file name beside model.json, got "../w.st".');
  });

  it("unpackModel refuses a plain model, and a weights file that is not the model's", async () => {
    expectInvalid(await thrownAsync(() => unpackModel(plainModel(), memorySource(new Uint8Array(0)), packer)), 'the model is not packed by edge-moq; load it with tfjs directly.');
    const { modelJson } = await packArtifacts(artifacts(), kernel());
    const other = encodeSafetensors([{ name: 'kernel', dtype: 'F32', shape: [2, 2], data: new Uint8Array(16) }], PACKED_NOTHING);
    expectFormatError(
      await thrownAsync(() => unpackModel(modelJson, memorySource(other), packer)),
      '"model.moq.safetensors" does not match the model.json beside it: it holds 1 weights, the manifest lists 4. The files come from different runs; quantize the model again.',
    );
  });
});

describe('plainArtifacts', () => {
  it("joins every group's shards in manifest order, with the model.json fields", async () => {
    const { model, shards, group1, group2 } = everyKind();
    const artifacts = await plainArtifacts(model, shards);
    expect(artifacts.weightSpecs).toStrictEqual(weightSpecs(model));
    expect([...new Uint8Array(artifacts.weightData as ArrayBuffer)]).toEqual([...group1, ...group2]);
    expect(Object.keys(artifacts)).toEqual(['modelTopology', 'weightSpecs', 'weightData', 'format', 'generatedBy', 'convertedBy']);
    expect([artifacts.modelTopology, artifacts.format, artifacts.generatedBy, artifacts.convertedBy]).toEqual([{ class_name: 'Sequential' }, 'layers-model', 'hand', null]);
  });

  it("refuses shards that do not hold their group's weights", async () => {
    const { model, shards } = everyKind();
    shards.set('g2.bin', concat(shards.get('g2.bin')!, Uint8Array.of(0)));
    expectFormatError(
      await thrownAsync(() => plainArtifacts(model, shards)),
      'the shards "g2.bin" hold 26 bytes but their weights in the manifest take 25: the shards belong to another model or were changed; convert the model again.',
    );
  });
});

describe('checkWeightsFile', () => {
  const fileOf = (...tensors: TensorBytes[]) => openSafetensors(memorySource(encodeSafetensors(tensors, PACKED_NOTHING)));
  const t = (name: string, dtype: TensorBytes['dtype'], shape: number[], data: Uint8Array): TensorBytes => ({ name, dtype, shape, data });
  const disagree = (what: string) => `"w.st" does not match the model.json beside it: ${what}. The files come from different runs; quantize the model again.`;

  it('accepts one tensor per weight in manifest order, stored as tfjs holds it', async () => {
    const file = await fileOf(
      t('a', 'F32', [2], f32(1, 2)),
      t('s', 'U8', [10], strings('ab', '')),
      t('c', 'U8', [16], new Uint8Array(16)),
      t('q', 'U8', [3], new Uint8Array(3)),
      t('e', 'U8', [0], new Uint8Array(0)),
    );
    const specs = [spec('a', [2]), spec('s', [2], 'string'), spec('c', [2], 'complex64'), spec('q', [3], 'float32', { dtype: 'uint8', scale: 1, min: 0 }), spec('e', [0], 'string')];
    expect(await checkWeightsFile(file, specs, 'w.st')).toBeUndefined();
  });

  it.each([
    ['a missing weight', [t('a', 'F32', [2], f32(1, 2))], [spec('a', [2]), spec('b', [1])], 'it holds 1 weights, the manifest lists 2'],
    ['an extra weight', [t('a', 'F32', [1], f32(1)), t('b', 'F32', [1], f32(1))], [spec('a', [1])], 'it holds 2 weights, the manifest lists 1'],
    ['another name', [t('a', 'F32', [1], f32(1)), t('x', 'F32', [1], f32(1))], [spec('a', [1]), spec('b', [1])], 'it has no weight "b"'],
    ['another order', [t('b', 'F32', [1], f32(1)), t('a', 'F32', [1], f32(1))], [spec('a', [1]), spec('b', [1])], 'weight "b" is out of the manifest\'s order'],
    ['another dtype', [t('a', 'I32', [2], i32(1, 2))], [spec('a', [2])], 'weight "a" is I32 [2] there but float32 [2] in the manifest'],
    ['another rank', [t('a', 'F32', [1, 2], f32(1, 2))], [spec('a', [2])], 'weight "a" is F32 [1, 2] there but float32 [2] in the manifest'],
    ['a shorter rank', [t('a', 'F32', [2], f32(1, 2))], [spec('a', [2, 1])], 'weight "a" is F32 [2] there but float32 [2, 1] in the manifest'],
    ['another dimension', [t('a', 'F32', [3], f32(1, 2, 3))], [spec('a', [2])], 'weight "a" is F32 [3] there but float32 [2] in the manifest'],
    ['strings of other lengths', [t('s', 'U8', [10], strings('ab', ''))], [spec('s', [1], 'string')], 'weight "s" (string [1]) is not what its 10 bytes there hold'],
    ['strings past their bytes', [t('s', 'U8', [6], strings('ab'))], [spec('s', [2], 'string')], 'weight "s" (string [2]) is not what its 6 bytes there hold'],
    ['complex pairs of another count', [t('c', 'U8', [8], new Uint8Array(8))], [spec('c', [2], 'complex64')], 'weight "c" (complex64 [2]) is not what its 8 bytes there hold'],
    ['a string in 1 byte', [t('s', 'U8', [1], Uint8Array.of(0))], [spec('s', [1], 'string')], 'weight "s" (string [1]) is not what its 1 bytes there hold'],
  ])('refuses %s', async (_name, tensors, specs, what) => {
    expectFormatError(await thrownAsync(async () => checkWeightsFile(await fileOf(...tensors), specs, 'w.st')), disagree(what));
  });

  it('checks a packed weight by its record, in the place of its codes', async () => {
    const { weights } = await packArtifacts(
      { modelTopology: {}, weightSpecs: [spec('a', [1]), spec('k', [2, 2]), spec('z', [1])], weightData: f32(1, 9, 9, 9, 9, 2).buffer },
      new Map([['k', { packed: packed8([0, 0, 0, 0], [1, 1], 2) }]]),
    );
    const file = await openSafetensors(memorySource(weights));
    expect(await checkWeightsFile(file, [spec('a', [1]), spec('k', [2, 2]), spec('z', [1])], 'w.st')).toBeUndefined();
    expectFormatError(
      await thrownAsync(() => checkWeightsFile(file, [spec('a', [1]), spec('k', [4]), spec('z', [1])], 'w.st')),
      disagree('weight "k" is F32 [2, 2] there but float32 [4] in the manifest'),
    );
    expectFormatError(
      await thrownAsync(() => checkWeightsFile(file, [spec('a', [1]), spec('k', [2, 2], 'int32'), spec('z', [1])], 'w.st')),
      disagree('weight "k" is F32 [2, 2] there but int32 [2, 2] in the manifest'),
    );
    expectFormatError(await thrownAsync(() => checkWeightsFile(file, [spec('k', [2, 2]), spec('a', [1]), spec('z', [1])], 'w.st')), disagree('weight "a" is out of the manifest\'s order'));
    expectFormatError(await thrownAsync(() => checkWeightsFile(file, [spec('a', [1]), spec('z', [1]), spec('k', [2, 2])], 'w.st')), disagree('weight "k" is out of the manifest\'s order'));
  });
});

describe('tfjs model files', () => {
  /** everyKind's model.json and shards written into `folder`. */
  function writeEveryKind(folder: string, name = 'model.json') {
    const written = everyKind();
    mkdirSync(folder, { recursive: true });
    for (const [path, bytes] of written.shards) writeFileSync(join(folder, path), bytes);
    writeFileSync(join(folder, name), JSON.stringify(written.model));
    return { ...written, json: join(folder, name) };
  }

  /** A packed model written as the library writes one, from packArtifacts. */
  async function writePacked(folder: string, artifacts: ArtifactsLike, packed: Map<string, { packed: PackedTensor; axis?: number }>, name = 'model.json') {
    const model = await packArtifacts(artifacts, packed, { weightsPath: weightsFileFor(name) });
    await writePackedTfjsModel(join(folder, name), model);
    return { ...model, json: join(folder, name) };
  }

  it('readTfjsModelFile reads and checks a model.json, naming it in errors', async () => {
    const folder = scratch.newFolder();
    const { json, model } = writeEveryKind(folder);
    const read = await readTfjsModelFile(json);
    expect(read.model).toEqual(model);
    expect(read.source.size).toBe(readFileSync(json).length);
    await read.source.close();
    writeFileSync(join(folder, 'bad.json'), '{"modelTopology": {}, "weightsManifest": [1]}');
    expectFormatError(
      await thrownAsync(() => readTfjsModelFile(join(folder, 'bad.json'))),
      `${join(folder, 'bad.json')} weightsManifest[0] must be an object { paths: [...], weights: [...] }, got 1.`,
    );
    const missing = await thrownAsync(() => readTfjsModelFile(join(folder, 'none.json')));
    expect(missing).toBeInstanceOf(EdgeMoqError);
    expect((missing as EdgeMoqError).code).toBe('IO');
    expect((missing as Error).message).toMatch(/^cannot open .*none\.json for reading: ENOENT/);
  });

  it('quantizeTfjsFile writes the packed model.json and its weights file into new folders', async () => {
    const root = scratch.newFolder();
    const { json, model } = writeEveryKind(join(root, 'in'));
    const output = join(root, 'out', 'a', 'net.json');
    const result = await quantizeTfjsFile(json, output, packer, { bits: 8 });
    expect(result.weightsPath).toBe(join(root, 'out', 'a', 'net.moq.safetensors'));
    expect(readdirSync(join(root, 'out', 'a')).sort()).toEqual(['net.json', 'net.moq.safetensors']);
    expect(JSON.parse(readFileSync(output, 'utf8'))).toEqual(JSON.parse(JSON.stringify(packedModelJson(model, weightSpecs(model), 'net.moq.safetensors'))));
    expect(result.modelJson).toEqual(packedModelJson(model, weightSpecs(model), 'net.moq.safetensors'));
    const file = readSafetensors(new Uint8Array(readFileSync(result.weightsPath)));
    expect(file.tensors.map((t) => [t.name, t.data.length])).toEqual([
      ['dense/kernel.q', 8],
      ['dense/kernel.scale', 8],
      ['dense/bias', 8],
      ['steps', 8],
      ['q', 4],
      ['flag', 3],
      ['names', 10],
    ]);
    expect(file.tensors[0]!.data).toEqual(KERNEL_CODES);
    expect(result.report.tensors.map((t) => [t.name, t.packed])).toEqual([
      ['dense/kernel', true],
      ['dense/bias', false],
      ['steps', false],
      ['q', false],
      ['flag', false],
      ['names', false],
    ]);

    // A packed model in: its packed weight is carried over, its weights file read once.
    const again = await quantizeTfjsFile(output, join(root, 'again.json'), packer, { bits: 4 });
    expect(readFileSync(join(root, 'again.moq.safetensors'))).toEqual(readFileSync(result.weightsPath));
    expect(again.report.tensors[0]!.reason).toBe('already packed (symmetric 8-bit, groups of 4): carried over');
    expect(JSON.parse(readFileSync(join(root, 'again.json'), 'utf8')).weightsManifest[0].paths).toEqual(['again.moq.safetensors']);
  });

  it('quantizeTfjsFile writes nothing, and removes the folders it created, when a shard is missing', async () => {
    const root = scratch.newFolder();
    const { json } = writeEveryKind(join(root, 'in'));
    writeFileSync(join(root, 'in', 'g2.bin'), new Uint8Array(0));
    const short = await thrownAsync(() => quantizeTfjsFile(json, join(root, 'new', 'deeper', 'model.json'), packer, { bits: 8 }));
    expectFormatError(short, 'weight "steps" needs 8 bytes but its group\'s shards hold only 0 from where it starts: a shard is short or missing.');
    expect(readdirSync(root)).toEqual(['in']);
    mkdirSync(join(root, 'kept'));
    rmSync(join(root, 'in', 'g2.bin'));
    const missing = await thrownAsync(() => quantizeTfjsFile(json, join(root, 'kept', 'model.json'), packer, { bits: 8 }));
    expect((missing as EdgeMoqError).code).toBe('IO');
    expect((missing as Error).message).toMatch(/^cannot open .*g2\.bin for reading: ENOENT/);
    expect(readdirSync(root).sort()).toEqual(['in', 'kept']);
    expect(readdirSync(join(root, 'kept'))).toEqual([]);
  });

  it('quantizeTfjsFile refuses to write over its inputs', async () => {
    const root = scratch.newFolder();
    const { json } = writeEveryKind(root);
    expectError(
      await thrownAsync(() => quantizeTfjsFile(json, json, packer, { bits: 8 })),
      EdgeMoqError,
      'IO',
      `the output ${json} is the input ${json} (the same file); writing it would destroy the input, so choose another output name`,
    );
    // A packed model whose weights file is where the output's weights file would go.
    const packed = join(root, 'packed.json');
    await quantizeTfjsFile(json, packed, packer, { bits: 8 });
    const weights = join(root, 'packed.moq.safetensors');
    expectError(
      await thrownAsync(() => quantizeTfjsFile(packed, join(root, 'packed.JSON'), packer, { bits: 8 })),
      EdgeMoqError,
      'IO',
      `the output ${weights} is the input ${weights} (the same file); writing it would destroy the input, so choose another output name`,
    );
    expect(readdirSync(root).sort()).toEqual(['g1a.bin', 'g1b.bin', 'g2.bin', 'model.json', 'packed.json', 'packed.moq.safetensors']);
  });

  it('refuses an output that is one of the inputs before any work, and closes every file it opened', async () => {
    const root = scratch.newFolder();
    const { json } = writeEveryKind(root);
    const openFiles = () => readdirSync('/proc/self/fd').length;
    const before = openFiles();
    const progress: string[] = [];
    const options = { bits: 8, onProgress: (p: { tensor: string }) => progress.push(p.tensor) };
    for (const output of [json, join(root, 'g1b.bin')]) {
      expectError(
        await thrownAsync(() => quantizeTfjsFile(json, output, packer, options)),
        EdgeMoqError,
        'IO',
        `the output ${output} is the input ${output} (the same file); writing it would destroy the input, so choose another output name`,
      );
      expect(progress).toEqual([]);
      expect(openFiles()).toBe(before);
    }
    await quantizeTfjsFile(json, join(root, 'packed.json'), packer, options);
    expect(progress.length).toBeGreaterThan(0);
    expect(openFiles()).toBe(before);
    await quantizeTfjsFile(join(root, 'packed.json'), join(root, 'again.json'), packer, { bits: 8 });
    expect(openFiles()).toBe(before);
    const packed = join(root, 'packed.json');
    expectError(
      await thrownAsync(() => dequantizeTfjsFile(packed, packed, packer)),
      EdgeMoqError,
      'IO',
      `the output ${packed} is the input ${packed} (the same file); writing it would destroy the input, so choose another output name`,
    );
    expect(openFiles()).toBe(before);
    await dequantizeTfjsFile(packed, join(root, 'float.json'), packer);
    expect(openFiles()).toBe(before);
    await thrownAsync(() => dequantizeTfjsFile(json, join(root, 'float.json'), packer));
    expect(openFiles()).toBe(before);
    // A packed model whose weights file has the name of the first shard dequantizing would write.
    const model = await packArtifacts({ modelTopology: {}, weightSpecs: [spec('w', [1])], weightData: f32(1).buffer }, new Map(), { weightsPath: 'o.group1-shard1of1.bin' });
    await writePackedTfjsModel(join(root, 'o.json'), model);
    const weights = join(root, 'o.group1-shard1of1.bin');
    expectError(
      await thrownAsync(() => dequantizeTfjsFile(join(root, 'o.json'), join(root, 'o.JSON'), packer)),
      EdgeMoqError,
      'IO',
      `the output ${weights} is the input ${weights} (the same file); writing it would destroy the input, so choose another output name`,
    );
    expect(openFiles()).toBe(before);
    expect(readFileSync(weights)).toEqual(Buffer.from(model.weights));
  });

  it('quantizeTfjsFile refuses a packed model whose weights file is not its own', async () => {
    const root = scratch.newFolder();
    const { json } = writeEveryKind(root);
    await quantizeTfjsFile(json, join(root, 'packed.json'), packer, { bits: 8 });
    writeFileSync(join(root, 'packed.moq.safetensors'), encodeSafetensors([{ name: 'dense/kernel', dtype: 'F32', shape: [4, 2], data: new Uint8Array(32) }], PACKED_NOTHING));
    expectFormatError(
      await thrownAsync(() => quantizeTfjsFile(join(root, 'packed.json'), join(root, 'new', 'out.json'), packer, { bits: 8 })),
      '"packed.moq.safetensors" does not match the model.json beside it: it holds 1 weights, the manifest lists 6. The files come from different runs; quantize the model again.',
    );
    expect(existsSync(join(root, 'new'))).toBe(false);
  });

  it('dequantizeTfjsFile gives back the float model: its fields, its specs and its bytes in one shard', async () => {
    const root = scratch.newFolder();
    const { json, model, group1, group2 } = writeEveryKind(join(root, 'in'));
    await quantizeTfjsFile(json, join(root, 'packed', 'model.json'), packer, { bits: 8 });
    const result = await dequantizeTfjsFile(join(root, 'packed', 'model.json'), join(root, 'out', 'x', 'Float.JSON'), packer);
    expect(result.shards).toEqual(['Float.group1-shard1of1.bin']);
    expect([result.unpacked, result.copied]).toEqual([1, 5]);
    expect(readdirSync(join(root, 'out', 'x')).sort()).toEqual(['Float.JSON', 'Float.group1-shard1of1.bin']);
    const { weightsManifest: _manifest, ...fields } = model;
    expect(JSON.parse(readFileSync(join(root, 'out', 'x', 'Float.JSON'), 'utf8'))).toEqual({ ...fields, weightsManifest: [{ paths: ['Float.group1-shard1of1.bin'], weights: weightSpecs(model) }] });
    // The kernel's values are on the 8-bit grid, so unpacking gives them back exactly.
    expect([...readFileSync(join(root, 'out', 'x', 'Float.group1-shard1of1.bin'))]).toEqual([...group1, ...group2]);
  });

  it('dequantizeTfjsFile splits weights past 4 MiB into shards of 4 MiB, counting packed weights at their unpacked size', async () => {
    const root = scratch.newFolder();
    expect(SHARD_BYTES).toBe(4 * 1024 * 1024);
    // "big" is 2^20 values packed to 1 MiB of codes (129 at scale 1: the value 1), 4 MiB unpacked:
    // one shard's worth, so the 24 bytes of the weights kept as they are make a second shard.
    const big = SHARD_BYTES / 4;
    await writePacked(
      root,
      {
        modelTopology: {},
        weightSpecs: [spec('k', [2, 2]), spec('big', [2, big / 2]), spec('tail', [2], 'int32')],
        weightData: concat(f32(32, 0, -32, -32), new Uint8Array(SHARD_BYTES), i32(5, 6)).buffer,
      },
      new Map([['big', { packed: packed8(new Array(big).fill(129), [1, 1], big / 2) }]]),
    );
    const result = await dequantizeTfjsFile(join(root, 'model.json'), join(root, 'big.json'), packer);
    expect(result.shards).toEqual(['big.group1-shard1of2.bin', 'big.group1-shard2of2.bin']);
    const first = readFileSync(join(root, 'big.group1-shard1of2.bin'));
    const second = readFileSync(join(root, 'big.group1-shard2of2.bin'));
    expect([first.length, second.length]).toEqual([SHARD_BYTES, 24]);
    // The kernel's 16 bytes, then 2^20 - 4 ones fill the first shard; the last 4 ones and the tail the second.
    expect([...first.subarray(0, 24)]).toEqual([...f32(32, 0, -32, -32, 1, 1)]);
    expect(new Float32Array(first.buffer.slice(first.byteOffset + 16, first.byteOffset + SHARD_BYTES)).every((v) => v === 1)).toBe(true);
    expect([...second]).toEqual([...f32(1, 1, 1, 1), ...i32(5, 6)]);
  });

  it('dequantizeTfjsFile writes no shard for no weights, and one empty shard for empty weights', async () => {
    const root = scratch.newFolder();
    await writePacked(root, { modelTopology: {}, weightSpecs: [], weightData: new ArrayBuffer(0) }, new Map(), 'none.json');
    expect((await dequantizeTfjsFile(join(root, 'none.json'), join(root, 'out', 'none.json'), packer)).shards).toEqual([]);
    expect(readdirSync(join(root, 'out'))).toEqual(['none.json']);
    expect(JSON.parse(readFileSync(join(root, 'out', 'none.json'), 'utf8')).weightsManifest).toEqual([{ paths: [], weights: [] }]);
    await writePacked(root, { modelTopology: {}, weightSpecs: [spec('e', [0, 3])], weightData: new ArrayBuffer(0) }, new Map(), 'empty.json');
    // Only a final ".json" is dropped from the shards' names.
    expect((await dequantizeTfjsFile(join(root, 'empty.json'), join(root, 'out', 'empty.json5'), packer)).shards).toEqual(['empty.json5.group1-shard1of1.bin']);
    expect(readFileSync(join(root, 'out', 'empty.json5.group1-shard1of1.bin')).length).toBe(0);
  });

  it('dequantizeTfjsFile refuses a plain model and a mismatched weights file, writing nothing', async () => {
    const root = scratch.newFolder();
    const { json } = writeEveryKind(join(root, 'in'));
    expectInvalid(
      await thrownAsync(() => dequantizeTfjsFile(json, join(root, 'new', 'out.json'), packer)),
      `${json} is a plain tfjs model, not one packed by edge-moq: it loads in tfjs as it is, so there is nothing to dequantize.`,
    );
    expect(readdirSync(root)).toEqual(['in']);
    await quantizeTfjsFile(json, join(root, 'in', 'packed.json'), packer, { bits: 8 });
    writeFileSync(join(root, 'in', 'packed.moq.safetensors'), encodeSafetensors([], PACKED_NOTHING));
    expectFormatError(
      await thrownAsync(() => dequantizeTfjsFile(join(root, 'in', 'packed.json'), join(root, 'new', 'out.json'), packer)),
      '"packed.moq.safetensors" does not match the model.json beside it: it holds 0 weights, the manifest lists 6. The files come from different runs; quantize the model again.',
    );
    expect(readdirSync(root)).toEqual(['in']);
  });

  it('dequantizeTfjsFile discards every output when a shard cannot be written or a packed weight is damaged', async () => {
    const root = scratch.newFolder();
    const { json } = writeEveryKind(join(root, 'in'));
    await quantizeTfjsFile(json, join(root, 'in', 'packed.json'), packer, { bits: 8 });
    mkdirSync(join(root, 'out', 'f.group1-shard1of1.bin'), { recursive: true });
    const blocked = await thrownAsync(() => dequantizeTfjsFile(join(root, 'in', 'packed.json'), join(root, 'out', 'f.json'), packer));
    expectError(
      blocked,
      EdgeMoqError,
      'IO',
      `the output ${join(root, 'out', 'f.group1-shard1of1.bin')} is a directory; edge-moq writes only regular files (it replaces them whole), so give a file name`,
    );
    expect(readdirSync(join(root, 'out'))).toEqual(['f.group1-shard1of1.bin']);

    // A scale of NaN: the codes cannot be unpacked, after the header and the shard were started.
    const weights = new Uint8Array(readFileSync(join(root, 'in', 'packed.moq.safetensors')));
    const headerLength = Number(new DataView(weights.buffer).getBigUint64(0, true));
    const scale = JSON.parse(new TextDecoder().decode(weights.subarray(8, 8 + headerLength)))['dense/kernel.scale'].data_offsets[0];
    new DataView(weights.buffer).setFloat32(8 + headerLength + scale, Number.NaN, true);
    writeFileSync(join(root, 'in', 'packed.moq.safetensors'), weights);
    const damaged = await thrownAsync(() => dequantizeTfjsFile(join(root, 'in', 'packed.json'), join(root, 'new', 'sub', 'f.json'), packer));
    expect(damaged).toBeInstanceOf(FormatError);
    expect((damaged as Error).message).toContain('dense/kernel');
    expect(readdirSync(root).sort()).toEqual(['in', 'out']);
  });

  it('writePackedTfjsModel writes a packed model held in memory, and refuses anything else', async () => {
    const root = scratch.newFolder();
    const model = await packArtifacts({ modelTopology: {}, weightSpecs: [spec('w', [1, 2])], weightData: f32(1, 2).buffer }, new Map(), { weightsPath: 'w.st' });
    expect(await writePackedTfjsModel(join(root, 'a', 'b', 'm.json'), model)).toEqual({ weightsPath: join(root, 'a', 'b', 'w.st') });
    expect(readdirSync(join(root, 'a', 'b')).sort()).toEqual(['m.json', 'w.st']);
    expect(new Uint8Array(readFileSync(join(root, 'a', 'b', 'w.st')))).toEqual(model.weights);
    expect(JSON.parse(readFileSync(join(root, 'a', 'b', 'm.json'), 'utf8'))).toEqual(model.modelJson);

    const refusal = 'writePackedTfjsModel takes a packed model { modelJson, weights } (from moq.export or packArtifacts).';
    expectInvalid(await thrownAsync(() => writePackedTfjsModel(join(root, 'c', 'm.json'), { modelJson: plainModel({ paths: ['w.st'], weights: [] }), weights: new Uint8Array(0) })), refusal);
    expectInvalid(await thrownAsync(() => writePackedTfjsModel(join(root, 'c', 'm.json'), { modelJson: { ...model.modelJson, weightsManifest: [] }, weights: new Uint8Array(0) })), refusal);
    expectInvalid(
      await thrownAsync(() =>
        writePackedTfjsModel(join(root, 'c', 'm.json'), { modelJson: { ...model.modelJson, weightsManifest: [{ paths: ['../w.st'], weights: [] }] }, weights: new Uint8Array(0) }),
      ),
      'the weights file must be a plain file name beside model.json, got "../w.st".',
    );
    expect(existsSync(join(root, 'c'))).toBe(false);

    // An output that is a folder: nothing written, a folder created for it removed again.
    mkdirSync(join(root, 'd', 'm.json'), { recursive: true });
    expectError(
      await thrownAsync(() => writePackedTfjsModel(join(root, 'd', 'm.json'), model)),
      EdgeMoqError,
      'IO',
      `the output ${join(root, 'd', 'm.json')} is a directory; edge-moq writes only regular files (it replaces them whole), so give a file name`,
    );
    expect(readdirSync(join(root, 'd'))).toEqual(['m.json']);
    // A model.json that is not JSON (a BigInt in it): the weights file written first is removed, and so are the new folders.
    const unwritable = await thrownAsync(() => writePackedTfjsModel(join(root, 'e', 'f', 'm.json'), { ...model, modelJson: { ...model.modelJson, modelTopology: { n: 1n } } }));
    expect(unwritable).toBeInstanceOf(TypeError);
    expect(readdirSync(root).sort()).toEqual(['a', 'd']);
    // A folder that cannot be created: the output check says why.
    writeFileSync(join(root, 'file'), '');
    const notFolder = await thrownAsync(() => writePackedTfjsModel(join(root, 'file', 'm.json'), model));
    expect((notFolder as EdgeMoqError).code).toBe('IO');
    expect((notFolder as Error).message).toBe(`cannot examine the output ${join(root, 'file', 'm.json')}: ENOTDIR: not a directory, lstat '${join(root, 'file', 'm.json')}'`);
  });
});
