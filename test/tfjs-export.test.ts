// From MoQ training to deployment: a model trained with attachMoq is exported packed from its
// masters (exportTrainedModel), loaded back through packedModel by tf.loadLayersModel, and the
// loaded weights are the training forward weights bit for bit (a -0 loads as +0, counted), so
// predictions are identical. Over a table of schedules: symmetric and asymmetric grids, nearest
// and stochastic rounding, 4, 3, 2 and 1 bits, a mixed-fp16 blend run out, dense and conv layers
// (with a batch norm whose moving statistics MoQ does not track).

import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import type { QuantizerOptions } from '../src/config.js';
import { InvalidInputError } from '../src/errors.js';
import { Quantizer } from '../src/quantizer.js';
import { writePackedTfjsModel } from '../src/formats/tfjs/node-file.js';
import { PACKED_TFJS_FORMAT } from '../src/formats/tfjs/model-json.js';
import { openSafetensors, memorySource } from '../src/formats/safetensors.js';
import { readPackedLayout } from '../src/formats/packed-metadata.js';
import { exportTrainedModel, type ExportedModel } from '../src/tfjs/export.js';
import { attachMoq, packedModel, type MoqTraining } from '../src/tfjs/index.js';
import { randomTensor } from './support/fixtures.js';
import { moqBackendOnTfjsCpu } from './support/tfjs-models.js';

const backend = await moqBackendOnTfjsCpu(tf);

const SAMPLES = 16;
const BATCH = 4;

type Architecture = 'dense' | 'conv';

/** A small classifier; the names are what schedules and model.json see ("encoder/kernel"). */
function buildModel(architecture: Architecture, seed = 1): tf.Sequential {
  const init = (i: number) => ({
    kernelInitializer: tf.initializers.glorotUniform({ seed: seed + i }),
    biasInitializer: tf.initializers.randomUniform({ minval: -0.1, maxval: 0.1, seed: seed + 100 + i }),
  });
  const model = tf.sequential();
  if (architecture === 'conv') {
    model.add(tf.layers.conv2d({ name: 'conv', inputShape: [6, 6, 2], filters: 4, kernelSize: 3, activation: 'relu', ...init(0) }));
    // Its moving mean and variance are weights MoQ does not track (not trainable): exported as the model holds them.
    model.add(tf.layers.batchNormalization({ name: 'norm' }));
    model.add(tf.layers.flatten({ name: 'flatten' }));
  } else {
    model.add(tf.layers.dense({ name: 'encoder', inputShape: [6], units: 16, activation: 'relu', ...init(0) }));
    model.add(tf.layers.dense({ name: 'hidden', units: 8, activation: 'relu', ...init(1) }));
  }
  model.add(tf.layers.dense({ name: 'decoder', units: 4, ...init(2) }));
  model.compile({ optimizer: tf.train.sgd(0.05), loss: 'meanSquaredError' });
  return model;
}

function inputsFor(model: tf.LayersModel, count: number, seed: number): tf.Tensor {
  const shape = [count, ...(model.inputs[0]!.shape.slice(1) as number[])];
  return tf.tensor(
    randomTensor(
      shape.reduce((a, b) => a * b, 1),
      seed,
    ),
    shape,
  );
}

/** `steps` optimizer steps through model.fit, MoQ's callback after each. */
async function train(model: tf.LayersModel, moq: MoqTraining, steps: number, seed = 7): Promise<void> {
  const x = inputsFor(model, SAMPLES, seed);
  const y = tf.tensor2d(randomTensor(SAMPLES * 4, seed + 1), [SAMPLES, 4]);
  const epochs = steps / (SAMPLES / BATCH);
  await model.fit(x, y, { batchSize: BATCH, epochs, shuffle: false, verbose: 0, callbacks: [moq.callback()] });
  x.dispose();
  y.dispose();
}

async function weightValues(model: tf.LayersModel): Promise<{ name: string; values: Float32Array }[]> {
  return Promise.all(model.weights.map(async (w) => ({ name: w.originalName, values: new Float32Array((await w.read().data()) as Float32Array) })));
}

const bitsOf = (values: Float32Array) => new Uint32Array(values.buffer, values.byteOffset, values.length);

/** Where the loaded values differ from the forward ones in bits; a -0 that loaded as +0 is counted apart. */
function bitDifferences(forward: Float32Array, loaded: Float32Array): { differences: number; signedZeros: number } {
  const [a, b] = [bitsOf(forward), bitsOf(loaded)];
  let differences = 0;
  let signedZeros = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i]) continue;
    if (a[i] === 0x80000000 && b[i] === 0) signedZeros++;
    else differences++;
  }
  return { differences, signedZeros };
}

/** The loaded model holds the trained model's forward weights and predicts the same bits. */
async function expectSameModel(trained: tf.LayersModel, loaded: tf.LayersModel, signedZeros: number): Promise<void> {
  const [forward, reloaded] = [await weightValues(trained), await weightValues(loaded)];
  expect(reloaded.map((w) => w.name)).toEqual(forward.map((w) => w.name));
  let zeros = 0;
  forward.forEach((w, i) => {
    const diff = bitDifferences(w.values, reloaded[i]!.values);
    expect(diff.differences, `${w.name}: values whose bits differ`).toBe(0);
    zeros += diff.signedZeros;
  });
  expect(zeros).toBe(signedZeros);
  const x = inputsFor(trained, 32, 99);
  const [want, got] = [trained.predict(x) as tf.Tensor, loaded.predict(x) as tf.Tensor];
  const [a, b] = [new Float32Array((await want.data()) as Float32Array), new Float32Array((await got.data()) as Float32Array)];
  expect(Buffer.from(b.buffer).equals(Buffer.from(a.buffer)), 'predictions bit for bit').toBe(true);
  tf.dispose([x, want, got]);
}

/** Loaded back through packedModel, the export is the trained model (expectSameModel). */
async function expectLoadsAsTrained(trained: tf.LayersModel, exported: ExportedModel, signedZeros = exported.report.signedZeros): Promise<void> {
  const loaded = await tf.loadLayersModel(packedModel({ modelJson: exported.modelJson, weights: exported.weights }));
  await expectSameModel(trained, loaded, signedZeros);
  loaded.dispose();
}

const contextOf = (model: tf.LayersModel, moq: MoqTraining) => ({ tf, model, masters: moq.masterWeights(), quantizer: moq.quantizer, weights: moq.weights });

interface Case {
  label: string;
  architecture: Architecture;
  steps: number;
  quantizer: QuantizerOptions;
  target: number;
  signedZeros: boolean;
}

const CASES: Case[] = [
  { label: 'symmetric, nearest, 8 → 4 bits', architecture: 'dense', steps: 16, target: 4, signedZeros: true, quantizer: { groups: 4, schedules: [{ startBits: 8, targetBits: 4, period: 1 }] } },
  {
    label: 'asymmetric, nearest, 8 → 3 bits',
    architecture: 'dense',
    steps: 32,
    target: 3,
    signedZeros: false,
    quantizer: { groups: 4, type: 'asymmetric', schedules: [{ startBits: 8, targetBits: 3, period: 1 }] },
  },
  {
    label: 'symmetric, stochastic, 6 → 3 bits',
    architecture: 'dense',
    steps: 8,
    target: 3,
    signedZeros: true,
    quantizer: { groups: 2, rounding: 'stochastic', seed: 11, schedules: [{ startBits: 6, targetBits: 3, period: 1 }] },
  },
  {
    label: 'asymmetric, stochastic, 8 → 4 bits',
    architecture: 'dense',
    steps: 16,
    target: 4,
    signedZeros: false,
    quantizer: { groups: 4, type: 'asymmetric', rounding: 'stochastic', seed: 3, schedules: [{ startBits: 8, targetBits: 4, period: 1 }] },
  },
  { label: 'ternary, 4 → 2 bits', architecture: 'dense', steps: 8, target: 2, signedZeros: false, quantizer: { groups: 2, schedules: [{ startBits: 4, targetBits: 2, period: 1 }] } },
  { label: 'binary, 3 → 1 bit', architecture: 'dense', steps: 8, target: 1, signedZeros: false, quantizer: { groups: 2, schedules: [{ startBits: 3, targetBits: 1, period: 1 }] } },
  {
    label: 'conv, batch norm and dense, symmetric, 8 → 4 bits',
    architecture: 'conv',
    steps: 16,
    target: 4,
    signedZeros: true,
    quantizer: { groups: 4, schedules: [{ startBits: 8, targetBits: 4, period: 1 }] },
  },
  {
    label: 'mixed fp16, once the blend has run out',
    architecture: 'dense',
    steps: 4,
    target: 4,
    signedZeros: true,
    quantizer: { groups: 4, mixedFp16: true, changeRatio: 0.5, schedules: [{ startBits: 5, targetBits: 4, period: 1 }] },
  },
];

describe('moq.export() / exportTrainedModel: train, export, load in Node', () => {
  it.each(CASES)('$label: the loaded weights are the forward weights, predictions identical', async ({ architecture, steps, quantizer, target, signedZeros }) => {
    const model = buildModel(architecture);
    const moq = await attachMoq(tf, model, { quantizer, backend });
    await train(model, moq, steps);
    expect([...moq.bitsByWeight().values()].every((bits) => bits === target)).toBe(true);

    const exported = await moq.export();
    expect(exported.modelJson.edgeMoq).toEqual({ format: PACKED_TFJS_FORMAT });
    const quantized = moq.weights.filter((w) => w.quantized).map((w) => w.name);
    expect(exported.report.weights.filter((w) => w.packed).map((w) => [w.name, w.bits])).toEqual(quantized.map((name) => [name, target]));
    expect(exported.report.qsteps).toBe(moq.quantizer.qsteps);
    expect(exported.report.weightsBytes).toBe(exported.weights.length);
    // Symmetric grids write round(x / s) * s, which is -0 for a small negative x: the loaded +0 must not change a prediction.
    expect(exported.report.signedZeros > 0).toBe(signedZeros);

    await expectLoadsAsTrained(model, exported);
    moq.detach();
  });

  it('packs codes, scales and zero points only: the weights file holds what the report says', async () => {
    const model = buildModel('dense', 2);
    const moq = await attachMoq(tf, model, { quantizer: { groups: 4, type: 'asymmetric', schedules: [{ startBits: 8, targetBits: 4, period: 1 }] }, backend });
    await train(model, moq, 16);
    const exported = await exportTrainedModel(contextOf(model, moq));
    const layout = readPackedLayout(await openSafetensors(memorySource(exported.weights)));
    expect(layout.packed.map((p) => [p.name, p.entry.bits, p.entry.type, p.entry.groupSize, p.entry.axis])).toEqual(
      exported.report.weights.filter((w) => w.packed).map((w) => [w.name, 4, 'asymmetric', w.floatBytes / 4 / 4, undefined]),
    );
    expect(layout.plain.map((t) => [t.name, t.dtype])).toEqual(exported.report.weights.filter((w) => !w.packed).map((w) => [w.name, 'F32']));
    for (const w of exported.report.weights.filter((entry) => entry.packed)) {
      // 4-bit codes, and per group of the quantizer's 4 one float32 scale and one zero point.
      expect(w.storedBytes).toBe(w.floatBytes / 8 + 4 * 4 * 2);
    }
    moq.detach();
  });

  it("writes a folder tfjs loads by file path, a fraction of the float model's size", async () => {
    const rows: string[] = [];
    const folder = mkdtempSync(join(tmpdir(), 'edge-moq-export-'));
    try {
      // MNIST-sized: 784 → 256 → 10, the size a demo ships; 32 groups per tensor.
      for (const target of [4, 3, 2]) {
        const fresh = tf.sequential({
          layers: [
            tf.layers.dense({ name: 'encoder', inputShape: [784], units: 256, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
            tf.layers.dense({ name: 'decoder', units: 10, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
          ],
        });
        fresh.compile({ optimizer: tf.train.sgd(0.05), loss: 'meanSquaredError' });
        const moq = await attachMoq(tf, fresh, { quantizer: { groups: 32, schedules: [{ startBits: target + 2, targetBits: target, period: 1 }] }, backend });
        const x = tf.tensor2d(randomTensor(8 * 784, 5), [8, 784]);
        const y = tf.tensor2d(randomTensor(8 * 10, 6), [8, 10]);
        await fresh.fit(x, y, { batchSize: 2, epochs: 2, shuffle: false, verbose: 0, callbacks: [moq.callback()] });
        tf.dispose([x, y]);
        const exported = await exportTrainedModel(contextOf(fresh, moq));
        const path = join(folder, `${target}bit`, 'model.json');
        await writePackedTfjsModel(path, exported);
        const loaded = await tf.loadLayersModel(packedModel(path));
        await expectSameModel(fresh, loaded, exported.report.signedZeros);
        const download = statSync(path).size + statSync(join(folder, `${target}bit`, 'model.moq.safetensors')).size;
        const { floatBytes, weightsBytes } = exported.report;
        // Codes at `target` bits, 32 float32 scales per kernel, the biases as float32.
        const expectedWeights = ((784 * 256 + 256 * 10) * target) / 8 + 2 * 32 * 4 + (256 + 10) * 4;
        expect(weightsBytes - expectedWeights).toBeGreaterThan(0);
        expect(weightsBytes - expectedWeights).toBeLessThan(2048); // the safetensors header and its records
        rows.push(`${target} bits: weights ${weightsBytes} B vs float32 ${floatBytes} B (${(floatBytes / weightsBytes).toFixed(2)}x smaller), download with model.json ${download} B`);
        loaded.dispose();
        moq.detach();
        fresh.dispose();
      }
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
    console.log(`MoQ export of a 784-256-10 MLP (203,530 weights):\n  ${rows.join('\n  ')}`);
  });
});

describe('exportTrainedModel: what it keeps, what it refuses', () => {
  it('before the first quantization keeps every weight float32: the forward weights are the masters', async () => {
    const model = buildModel('dense', 3);
    const moq = await attachMoq(tf, model, { quantizer: { scheduleOffset: 100, schedules: [{ startBits: 8, targetBits: 4, period: 1 }] }, backend });
    await train(model, moq, 4);
    const exported = await exportTrainedModel(contextOf(model, moq));
    expect(exported.report.qsteps).toBe(0);
    expect(exported.report.weights.every((w) => !w.packed && w.storedBytes === w.floatBytes)).toBe(true);
    await expectLoadsAsTrained(model, exported, 0);
    moq.detach();
  });

  it('refuses while the mixed-fp16 blend is active, saying when it becomes exportable', async () => {
    const model = buildModel('dense', 4);
    const moq = await attachMoq(tf, model, { quantizer: { groups: 4, mixedFp16: true, changeRatio: 0.25, schedules: [{ startBits: 5, targetBits: 4, period: 1 }] }, backend });
    await train(model, moq, 4);
    expect(moq.quantizer.ratio).toBe(0.25);
    const refusal = exportTrainedModel(contextOf(model, moq));
    await expect(refusal).rejects.toThrow(InvalidInputError);
    await expect(refusal).rejects.toThrow(/mixed-fp16 blend is still active \(ratio 0\.25\).*the ratio has fallen to 0, in 1 more quantize step/);
    await train(model, moq, 4);
    expect(moq.quantizer.ratio).toBe(0);
    await expectLoadsAsTrained(model, await exportTrainedModel(contextOf(model, moq)));
    moq.detach();
  });

  it("refuses masters that do not quantize to the model's weights; the forward weights packed again are such masters", async () => {
    const model = buildModel('dense', 5);
    const moq = await attachMoq(tf, model, { quantizer: { groups: 4, schedules: [{ startBits: 8, targetBits: 4, period: 1 }] }, backend });
    await train(model, moq, 16);
    // DeepSpeed's grid is not idempotent: Q(Q(master)) moves the levels of a group whose
    // absmax is positive (it is clamped one level down, and the scale with it).
    const forward = new Map((await weightValues(model)).filter((w) => moq.masterWeights().has(w.name)).map((w) => [w.name, w.values]));
    await expect(exportTrainedModel({ ...contextOf(model, moq), masters: forward })).rejects.toThrow(/does not hold the quantization of these masters at the quantizer's last step/);
    const shifted = moq.masterWeights();
    shifted.get('hidden/kernel')![0]! += 0.5;
    await expect(exportTrainedModel({ ...contextOf(model, moq), masters: shifted })).rejects.toThrow(/weight "hidden\/kernel" \[0\]/);
    const short = moq.masterWeights();
    short.set('decoder/kernel', new Float32Array(3));
    await expect(exportTrainedModel({ ...contextOf(model, moq), masters: short })).rejects.toThrow(/masters has 3 values for "decoder\/kernel"/);
    moq.detach();
    await expect(exportTrainedModel(contextOf(model, moq))).rejects.toThrow(/does not hold the quantization of these masters.*before moq\.detach\(\)/);
  });

  it('refuses a 1-bit weight whose master holds an exact 0 (binary codes have no 0)', async () => {
    const model = buildModel('dense', 9);
    // Input 0 is always 0, so the kernel row it feeds gets no gradient and its zeros stay exact.
    const encoder = model.getLayer('encoder');
    const [kernel, bias] = encoder.getWeights() as [tf.Tensor2D, tf.Tensor1D];
    encoder.setWeights([tf.concat([tf.zeros([1, 16]), kernel.slice([1, 0], [5, 16])]), bias]);
    const moq = await attachMoq(tf, model, { quantizer: { groups: 2, schedules: [{ startBits: 3, targetBits: 1, period: 1 }] }, backend });
    const x = tf.concat([tf.zeros([SAMPLES, 1]), tf.tensor2d(randomTensor(SAMPLES * 5, 12), [SAMPLES, 5])], 1);
    const y = tf.tensor2d(randomTensor(SAMPLES * 4, 13), [SAMPLES, 4]);
    await model.fit(x, y, { batchSize: BATCH, epochs: 2, shuffle: false, verbose: 0, callbacks: [moq.callback()] });
    expect(moq.bitsByWeight().get('encoder/kernel')).toBe(1);
    expect(
      moq
        .masterWeights()
        .get('encoder/kernel')!
        .subarray(0, 16)
        .every((v) => v === 0),
    ).toBe(true);
    await expect(exportTrainedModel(contextOf(model, moq))).rejects.toThrow(/weight "encoder\/kernel" \[0\].*1-bit codes have no 0/);
    tf.dispose([x, y, kernel, bias]);
    moq.detach();
  });

  it('refuses after an overflow step that re-quantized the held weights (eigenvalues enabled), and exports after the next good step', async () => {
    const model = buildModel('dense', 10);
    const moq = await attachMoq(tf, model, {
      quantizer: { groups: 4, eigenvalue: { enabled: true }, schedules: [{ startBits: 6, targetBits: 4, period: 1 }] },
      backend,
      eigenvalues: async () => new Map(),
    });
    await train(model, moq, 8);
    const report = await moq.afterStep({ overflow: true });
    expect(report).toMatchObject({ overflow: true, quantized: true });
    await expect(exportTrainedModel(contextOf(model, moq))).rejects.toThrow(/does not hold the quantization of these masters.*overflow step with eigenvalues enabled/);
    await train(model, moq, 4);
    const exported = await exportTrainedModel(contextOf(model, moq));
    await expectLoadsAsTrained(model, exported);
    moq.detach();
  });

  it('names weights as model.json does when tfjs suffixed the variables of a second model with the same layer names', async () => {
    const first = buildModel('dense', 6);
    const second = buildModel('dense', 6);
    expect(second.weights.some((w) => w.name !== w.originalName)).toBe(true);
    const moq = await attachMoq(tf, second, { quantizer: { groups: 4, schedules: [{ startBits: 6, targetBits: 4, period: 1 }] }, backend });
    await train(second, moq, 8);
    const exported = await exportTrainedModel(contextOf(second, moq));
    expect(exported.modelJson.weightsManifest[0]!.weights.map((w) => w.name)).toEqual(second.weights.map((w) => w.originalName));
    await expectLoadsAsTrained(second, exported);
    moq.detach();
    first.dispose();
  });

  it('refuses weights of another model, a quantizer that never saw them, and inputs that are not what MoQ hands out', async () => {
    const model = buildModel('dense', 8);
    const other = buildModel('dense', 8);
    const moq = await attachMoq(tf, model, { quantizer: { groups: 4, schedules: [{ startBits: 6, targetBits: 4, period: 1 }] }, backend });
    const otherMoq = await attachMoq(tf, other, { quantizer: { groups: 4, schedules: [{ startBits: 6, targetBits: 4, period: 1 }] }, backend });
    await train(model, moq, 4);
    await expect(exportTrainedModel({ ...contextOf(model, moq), weights: otherMoq.weights })).rejects.toThrow(/"encoder\/kernel" is not a weight of this model/);
    const stranger = new Quantizer({ schedules: [{ startBits: 6, targetBits: 4, period: 1 }] }, { backend });
    await stranger.step([{ name: 'elsewhere/kernel', shape: [2, 2], data: new Float32Array(4).fill(1) }]);
    await expect(exportTrainedModel({ ...contextOf(model, moq), quantizer: stranger })).rejects.toThrow(/the quantizer has never seen "encoder\/kernel"/);
    const bad = [
      [{ ...contextOf(model, moq), tf: {} }, /tf must be the TensorFlow.js namespace/],
      [{ ...contextOf(model, moq), model: {} }, /model must be the TensorFlow.js layers model/],
      [{ ...contextOf(model, moq), masters: {} }, /masters must be a Map/],
      [{ ...contextOf(model, moq), quantizer: {} }, /quantizer must be the Quantizer/],
    ] as const;
    for (const [context, message] of bad) {
      await expect(exportTrainedModel(context as never)).rejects.toThrow(message);
    }
    moq.detach();
    otherMoq.detach();
  });
});
