// tfjs models written to folders the way tfjs's converter and model.save lay them out: a
// model.json and its weights manifest's shard files. A layers model built with tfjs itself, a
// graph model written by hand (MatMul, one read transposed, a Reshape with an int32 constant),
// and a manifest holding every kind of weight tfjs stores (for the bytes, not for running).

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type * as tfNamespace from '@tensorflow/tfjs';
import { afterAll, beforeAll } from 'vitest';
import { WasmBackend } from '../../src/backends/wasm/backend.js';
import { encodeFloat32 } from '../../src/formats/safetensors.js';
import { randomTensor } from './fixtures.js';

type Tf = typeof tfNamespace;

export interface WrittenModel {
  folder: string;
  json: string;
}

/** A wasm-simd backend for MoQ on tfjs's cpu backend, for the whole test file: tfjs switches to cpu before the tests and the backend is disposed after them. */
export async function moqBackendOnTfjsCpu(tf: Tf): Promise<WasmBackend> {
  const backend = await WasmBackend.create('simd');
  beforeAll(() => tf.setBackend('cpu'));
  afterAll(() => backend.dispose());
  return backend;
}

/** Splits `data` into shards of `shardBytes` named as the converter names them. */
function writeShards(folder: string, data: Uint8Array, shardBytes: number, prefix = 'group1'): string[] {
  const count = Math.max(1, Math.ceil(data.length / shardBytes));
  const paths = Array.from({ length: count }, (_, i) => `${prefix}-shard${i + 1}of${count}.bin`);
  paths.forEach((path, i) => writeFileSync(join(folder, path), data.subarray(i * shardBytes, (i + 1) * shardBytes)));
  return paths;
}

/** A small CNN (conv, depthwise conv, dense) with seeded weights, saved as a layers model. */
export function convModel(tf: Tf): tfNamespace.Sequential {
  const model = tf.sequential();
  model.add(tf.layers.conv2d({ inputShape: [8, 8, 3], filters: 8, kernelSize: 3, activation: 'relu', name: 'conv', kernelInitializer: tf.initializers.glorotNormal({ seed: 1 }) }));
  model.add(tf.layers.depthwiseConv2d({ kernelSize: 3, name: 'dw', depthwiseInitializer: tf.initializers.glorotNormal({ seed: 2 }) }));
  model.add(tf.layers.flatten());
  model.add(tf.layers.dense({ units: 10, name: 'fc', kernelInitializer: tf.initializers.glorotNormal({ seed: 3 }) }));
  return model;
}

/** Saves a layers model into `folder` as `name`, its weights in shards of `shardBytes`. */
export async function saveLayersModel(tf: Tf, model: tfNamespace.LayersModel, folder: string, name = 'model.json', shardBytes = 4 << 20): Promise<WrittenModel> {
  mkdirSync(folder, { recursive: true });
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const data = new Uint8Array(artifacts.weightData as ArrayBuffer);
      const paths = writeShards(folder, data, shardBytes);
      const json = {
        format: 'layers-model',
        generatedBy: artifacts.generatedBy,
        convertedBy: null,
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths, weights: artifacts.weightSpecs }],
      };
      writeFileSync(join(folder, name), JSON.stringify(json));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return { folder, json: join(folder, name) };
}

const dims = (shape: readonly number[]) => ({ dim: shape.map((size) => ({ size: String(size) })) });
const constNode = (name: string, shape: readonly number[], dtype: 'DT_FLOAT' | 'DT_INT32') => ({
  name,
  op: 'Const',
  attr: { value: { tensor: { dtype, tensorShape: dims(shape) } }, dtype: { type: dtype } },
});

/**
 * A graph model y = reshape(relu(x · w1) · w2ᵀ, [-1, 4]), x [batch, 6]: w1 [6, 5] is read as
 * a MatMul's B (output channels last), w2 [4, 5] with transpose_b (output channels first).
 */
export function writeGraphModel(folder: string, seed = 7, name = 'model.json'): WrittenModel & { w1: Float32Array; w2: Float32Array } {
  mkdirSync(folder, { recursive: true });
  const w1 = randomTensor(30, seed, 0.5);
  const w2 = randomTensor(20, seed + 1, 0.5);
  const shape = new Int32Array([-1, 4]);
  const data = new Uint8Array(w1.length * 4 + w2.length * 4 + shape.byteLength);
  data.set(encodeFloat32(w1, 'F32'), 0);
  data.set(encodeFloat32(w2, 'F32'), w1.length * 4);
  data.set(new Uint8Array(shape.buffer), (w1.length + w2.length) * 4);
  const paths = writeShards(folder, data, 64);
  const json = {
    format: 'graph-model',
    generatedBy: '2.15.0',
    convertedBy: 'hand-written test fixture',
    modelTopology: {
      node: [
        { name: 'x', op: 'Placeholder', attr: { dtype: { type: 'DT_FLOAT' }, shape: { shape: dims([-1, 6]) } } },
        constNode('w1', [6, 5], 'DT_FLOAT'),
        constNode('w2', [4, 5], 'DT_FLOAT'),
        constNode('shape', [2], 'DT_INT32'),
        { name: 'h', op: 'MatMul', input: ['x', 'w1'], attr: { transpose_a: { b: false }, transpose_b: { b: false }, T: { type: 'DT_FLOAT' } } },
        { name: 'r', op: 'Relu', input: ['h'], attr: { T: { type: 'DT_FLOAT' } } },
        { name: 'h2', op: 'MatMul', input: ['r', 'w2:0'], attr: { transpose_a: { b: false }, transpose_b: { b: true }, T: { type: 'DT_FLOAT' } } },
        { name: 'y', op: 'Reshape', input: ['h2', 'shape'], attr: { T: { type: 'DT_FLOAT' }, Tshape: { type: 'DT_INT32' } } },
      ],
      library: {},
      versions: { producer: 1 },
    },
    weightsManifest: [
      {
        paths,
        weights: [
          { name: 'w1', shape: [6, 5], dtype: 'float32' },
          { name: 'w2', shape: [4, 5], dtype: 'float32' },
          { name: 'shape', shape: [2], dtype: 'int32' },
        ],
      },
    ],
  };
  writeFileSync(join(folder, name), JSON.stringify(json));
  return { folder, json: join(folder, name), w1, w2 };
}

/** One weight of every kind tfjs stores, each with its bytes. */
export function everyKindOfWeight(): { spec: Record<string, unknown>; bytes: Uint8Array }[] {
  const f32 = randomTensor(64, 11);
  const f16 = new Uint16Array(64).map((_, i) => 0x3c00 + (i % 7) * 0x40); // 1.0, 1.0625, ...
  const u8 = new Uint8Array(24).map((_, i) => i * 9);
  const u16 = new Uint16Array(12).map((_, i) => i * 4000);
  const i32 = new Int32Array([1, -2, 3, 2147483647]);
  const bool = new Uint8Array([1, 0, 0, 1, 1, 0]);
  const strings = ['edge', 'moq', ''].map((s) => new TextEncoder().encode(s));
  const stringBytes = new Uint8Array(strings.reduce((n, s) => n + 4 + s.length, 0));
  let at = 0;
  for (const s of strings) {
    new DataView(stringBytes.buffer).setUint32(at, s.length, true);
    stringBytes.set(s, at + 4);
    at += 4 + s.length;
  }
  const complex = randomTensor(8, 12);
  const view = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  return [
    { spec: { name: 'dense/kernel', shape: [8, 8], dtype: 'float32' }, bytes: view(f32) },
    { spec: { name: 'half/kernel', shape: [8, 8], dtype: 'float32', quantization: { dtype: 'float16' } }, bytes: view(f16) },
    { spec: { name: 'q8/kernel', shape: [4, 6], dtype: 'float32', quantization: { dtype: 'uint8', scale: 0.01, min: -1.2 } }, bytes: u8 },
    { spec: { name: 'q16/ids', shape: [3, 4], dtype: 'int32', quantization: { dtype: 'uint16', scale: 1, min: 0 } }, bytes: view(u16) },
    { spec: { name: 'ids', shape: [2, 2], dtype: 'int32' }, bytes: view(i32) },
    { spec: { name: 'mask', shape: [2, 3], dtype: 'bool' }, bytes: bool },
    { spec: { name: 'vocab', shape: [3], dtype: 'string' }, bytes: stringBytes },
    { spec: { name: 'rotation', shape: [2, 2], dtype: 'complex64' }, bytes: view(complex) },
    { spec: { name: 'dense/bias', shape: [8], dtype: 'float32' }, bytes: view(randomTensor(8, 13)) },
    { spec: { name: 'scale', shape: [], dtype: 'float32' }, bytes: view(new Float32Array([0.5])) },
  ];
}

/** A model.json (graph-model topology with no ops: never run) whose manifest holds `weights`. */
export function writeManifestModel(folder: string, weights: { spec: Record<string, unknown>; bytes: Uint8Array }[], shardBytes = 100): WrittenModel {
  mkdirSync(folder, { recursive: true });
  const data = new Uint8Array(weights.reduce((n, w) => n + w.bytes.length, 0));
  let at = 0;
  for (const w of weights) {
    data.set(w.bytes, at);
    at += w.bytes.length;
  }
  const paths = writeShards(folder, data, shardBytes);
  const json = { format: 'graph-model', modelTopology: { node: [] }, weightsManifest: [{ paths, weights: weights.map((w) => w.spec) }] };
  writeFileSync(join(folder, 'model.json'), JSON.stringify(json));
  return { folder, json: join(folder, 'model.json') };
}
