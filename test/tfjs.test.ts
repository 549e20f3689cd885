// MoQ training on TensorFlow.js models (tfjs's CPU backend, then its WebAssembly backend): the
// forward pass sees the quantized weights, the optimizer trains full-precision masters
// (straight-through), the schedule runs as a standalone Quantizer's would, overflow steps are
// skipped, and model.fit and a hand-written loop end on the same weights.

import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { QuantizerOptions } from '../src/config.js';
import { ConfigError, InvalidInputError } from '../src/errors.js';
import { Quantizer, type Parameter } from '../src/quantizer.js';
import { attachMoq, type MoqStepReport, type MoqTraining } from '../src/tfjs/index.js';
import { randomTensor } from './support/fixtures.js';
import { moqBackendOnTfjsCpu } from './support/tfjs-models.js';

const backend = await moqBackendOnTfjsCpu(tf);

const SAMPLES = 16;
const BATCH = 4;
const LEARNING_RATE = 0.05;

/** Dense layers only; the names are what schedules' module patterns see ("encoder/kernel"). */
function denseModel(layers: readonly [name: string, units: number][], inputs = 6, seed = 1): tf.Sequential {
  const model = tf.sequential();
  layers.forEach(([name, units], i) =>
    model.add(
      tf.layers.dense({
        name,
        units,
        ...(i === 0 ? { inputShape: [inputs] } : {}),
        kernelInitializer: tf.initializers.glorotUniform({ seed: seed + i }),
        biasInitializer: tf.initializers.randomUniform({ minval: -0.1, maxval: 0.1, seed: seed + 100 + i }),
      }),
    ),
  );
  return model;
}

const TWO_LAYERS = [
  ['encoder', 8],
  ['decoder', 4],
] as const satisfies readonly [string, number][];

function dataset(inputs = 6, outputs = 4, seed = 7): { x: tf.Tensor2D; y: tf.Tensor2D } {
  return {
    x: tf.tensor2d(randomTensor(SAMPLES * inputs, seed), [SAMPLES, inputs]),
    y: tf.tensor2d(randomTensor(SAMPLES * outputs, seed + 1), [SAMPLES, outputs]),
  };
}

const meanSquaredError = (yTrue: tf.Tensor, yPred: tf.Tensor): tf.Scalar => tf.mean(tf.square(tf.sub(yPred, yTrue)));

async function values(tensor: tf.Tensor): Promise<Float32Array> {
  return new Float32Array((await tensor.data()) as Float32Array);
}

async function modelValues(model: tf.LayersModel): Promise<Map<string, Float32Array>> {
  return new Map(await Promise.all(model.trainableWeights.map(async (w) => [w.originalName, await values(w.read())] as const)));
}

function variablesOf(model: tf.LayersModel): tf.Variable[] {
  return model.trainableWeights.map((w) => w.read() as tf.Variable);
}

/** One SGD step on batch `index` with optimizer.minimize, the way a custom loop takes it; returns the loss tensor. */
function minimizeOn(model: tf.LayersModel, optimizer: tf.Optimizer, x: tf.Tensor2D, y: tf.Tensor2D, index: number): tf.Scalar {
  return tf.tidy(() => {
    const xb = x.slice([index * BATCH, 0], [BATCH, x.shape[1]]);
    const yb = y.slice([index * BATCH, 0], [BATCH, y.shape[1]]);
    return optimizer.minimize(() => meanSquaredError(yb, model.apply(xb, { training: true }) as tf.Tensor), true, variablesOf(model))!;
  });
}

/** One custom-loop step on batch `step`: the weights as the optimizer left them, afterStep's report, and the weights after it. */
async function observedStep(
  model: tf.LayersModel,
  moq: MoqTraining,
  optimizer: tf.Optimizer,
  data: { x: tf.Tensor2D; y: tf.Tensor2D },
  step: number,
  overflow = false,
): Promise<{ optimized: Map<string, Float32Array>; report: MoqStepReport; now: Map<string, Float32Array> }> {
  const loss = minimizeOn(model, optimizer, data.x, data.y, step % (SAMPLES / BATCH));
  const optimized = await modelValues(model);
  const report = await moq.afterStep({ loss, overflow });
  loss.dispose();
  return { optimized, report, now: await modelValues(model) };
}

/** `steps` custom-loop steps, each followed by afterStep. */
async function train(model: tf.LayersModel, moq: MoqTraining, steps: number, data = dataset()): Promise<void> {
  const optimizer = tf.train.sgd(LEARNING_RATE);
  for (let step = 0; step < steps; step++) {
    const loss = minimizeOn(model, optimizer, data.x, data.y, step % (SAMPLES / BATCH));
    await moq.afterStep({ loss });
    loss.dispose();
  }
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

describe('attachMoq on tfjs (cpu backend)', () => {
  it('feeds the forward pass quantized weights: fakeQuantize of the masters, on the grid of the current bits; biases untouched', async () => {
    const model = denseModel(TWO_LAYERS);
    const moq = await attachMoq(tf, model, { quantizer: { groups: 2, schedules: [{ startBits: 5, targetBits: 3, period: 2 }] }, backend });
    expect(moq.weights.map((w) => [w.name, w.quantized])).toEqual([
      ['encoder/kernel', true],
      ['encoder/bias', false],
      ['decoder/kernel', true],
      ['decoder/bias', false],
    ]);
    // As in DeepSpeed, the first forward pass uses the model's own weights: nothing is quantized at attach.
    const initial = await modelValues(model);
    expect([...moq.masterWeights()].every(([name, master]) => sameBits(master, initial.get(name)!))).toBe(true);

    const data = dataset();
    const optimizer = tf.train.sgd(LEARNING_RATE);
    const seenBits: number[] = [];
    for (let step = 0; step < 6; step++) {
      const { optimized, now } = await observedStep(model, moq, optimizer, data, step);
      for (const [name, master] of moq.masterWeights()) {
        const bits = moq.bitsByWeight().get(name)!;
        const expected = await backend.fakeQuantize(master.slice(), { bits, groups: 2 });
        const actual = now.get(name)!;
        expect(sameBits(actual, expected), `${name} at step ${step + 1}`).toBe(true);
        for (const group of [actual.subarray(0, actual.length / 2), actual.subarray(actual.length / 2)]) {
          expect(new Set(group).size).toBeLessThanOrEqual(2 ** bits);
        }
        seenBits.push(bits);
      }
      for (const name of ['encoder/bias', 'decoder/bias']) expect(sameBits(now.get(name)!, optimized.get(name)!)).toBe(true);
    }
    expect(new Set(seenBits)).toEqual(new Set([5, 4, 3]));
  });

  it("trains the masters straight through: initial weights plus the sum of the optimizer's changes", async () => {
    const model = denseModel(TWO_LAYERS, 6, 3);
    const moq = await attachMoq(tf, model, { quantizer: { schedules: [{ startBits: 3, targetBits: 3, period: 1 }] }, backend });
    const expected = moq.masterWeights();
    const data = dataset();
    const optimizer = tf.train.sgd(LEARNING_RATE);
    for (let step = 0; step < 5; step++) {
      const before = await modelValues(model);
      const loss = minimizeOn(model, optimizer, data.x, data.y, step % 4);
      const after = await modelValues(model);
      // The gradients were taken at the quantized weights; their effect goes to the master.
      for (const [name, master] of expected) {
        const change = after.get(name)!.map((v, i) => v - before.get(name)![i]!);
        expected.set(
          name,
          master.map((m, i) => m + (after.get(name)![i]! - before.get(name)![i]!)),
        );
        expect(change.some((c) => c !== 0)).toBe(true);
      }
      await moq.afterStep({ loss });
      loss.dispose();
    }
    const masters = moq.masterWeights();
    const forward = await modelValues(model);
    for (const [name, master] of expected) {
      expect(sameBits(masters.get(name)!, master), name).toBe(true);
      expect(sameBits(forward.get(name)!, master)).toBe(false);
    }
  });

  it('steps bits down exactly as a standalone Quantizer driven with the masters', async () => {
    const options: QuantizerOptions = {
      groups: 4,
      mixedFp16: true,
      changeRatio: 0.25,
      rounding: 'stochastic',
      seed: 9,
      schedules: [
        { startBits: 8, targetBits: 4, period: 2, modules: ['encoder'] },
        { startBits: 6, targetBits: 5, period: 3, modules: ['decoder'] },
      ],
    };
    const model = denseModel(TWO_LAYERS, 6, 5);
    const moq = await attachMoq(tf, model, { quantizer: options, backend });
    const standalone = new Quantizer(options, { backend });
    const data = dataset();
    const optimizer = tf.train.sgd(LEARNING_RATE);
    for (let step = 0; step < 12; step++) {
      const loss = minimizeOn(model, optimizer, data.x, data.y, step % 4);
      const report = await moq.afterStep({ loss });
      loss.dispose();
      const params: Parameter[] = [...moq.masterWeights()].map(([name, data]) => ({
        name,
        data,
        shape: moq.weights.find((w) => w.name === name)!.shape,
      }));
      const expected = await standalone.step([params]);
      expect(report).toMatchObject({ qsteps: expected.qsteps, ratio: expected.ratio, switches: expected.switches, parameters: expected.parameters });
      expect(report.bits).toEqual(Object.fromEntries(params.map((p) => [p.name, standalone.bitsOf(p.name)])));
      const now = await modelValues(model);
      for (const p of params) expect(sameBits(now.get(p.name)!, p.data), `${p.name} at step ${step + 1}`).toBe(true);
    }
    expect(moq.bitsByWeight()).toEqual(
      new Map([
        ['encoder/kernel', 5],
        ['decoder/kernel', 5],
      ]),
    );
  });

  it('skips an overflow step: weights restored, masters unchanged, the schedule not advanced', async () => {
    const model = denseModel(TWO_LAYERS);
    const moq = await attachMoq(tf, model, { quantizer: { schedules: [{ startBits: 6, targetBits: 3, period: 1 }] }, backend });
    await train(model, moq, 3);
    const { x, y } = dataset();
    const poisoned = tf.tidy(() => x.mul(tf.scalar(Number.NaN)) as tf.Tensor2D);
    for (const overflow of ['loss', 'flag'] as const) {
      const weights = await modelValues(model);
      const masters = moq.masterWeights();
      const { qsteps } = moq.quantizer;
      const loss = minimizeOn(model, tf.train.sgd(LEARNING_RATE), overflow === 'loss' ? poisoned : x, y, 0);
      const report = await moq.afterStep(overflow === 'loss' ? { loss } : { loss, overflow: true });
      loss.dispose();
      expect(report).toMatchObject({ overflow: true, quantized: false, qsteps });
      expect(moq.quantizer.qsteps).toBe(qsteps);
      const restored = await modelValues(model);
      for (const [name, value] of weights) expect(sameBits(restored.get(name)!, value), name).toBe(true);
      for (const [name, master] of masters) expect(sameBits(moq.masterWeights().get(name)!, master)).toBe(true);
    }
    await train(model, moq, 1);
    expect(moq.quantizer.qsteps).toBe(4);
    expect(moq.history.map((h) => h.overflow)).toEqual([false, false, false, true, true, false]);
  });

  it('honours scheduleOffset: full precision until the offset has passed, overflow steps not counted', async () => {
    const model = denseModel(TWO_LAYERS);
    const moq = await attachMoq(tf, model, { quantizer: { scheduleOffset: 3, schedules: [{ startBits: 4, targetBits: 4, period: 1 }] }, backend });
    const data = dataset();
    const optimizer = tf.train.sgd(LEARNING_RATE);
    const quantizedAt: boolean[] = [];
    for (let step = 0; step < 6; step++) {
      const { optimized, report, now } = await observedStep(model, moq, optimizer, data, step, step === 1);
      quantizedAt.push(report.quantized);
      if (!report.quantized && !report.overflow) {
        for (const [name, value] of optimized) expect(sameBits(now.get(name)!, value)).toBe(true);
        for (const [name, master] of moq.masterWeights()) expect(sameBits(master, now.get(name)!)).toBe(true);
      }
    }
    // Step 2 overflowed, so the three offset steps are 1, 3 and 4; quantization starts at step 5.
    expect(quantizedAt).toEqual([false, false, false, false, true, true]);
    expect(moq.quantizer.qsteps).toBe(2);
    const kernel = (await modelValues(model)).get('encoder/kernel')!;
    expect(new Set(kernel).size).toBeLessThanOrEqual(16);
  });

  it('takes a DeepSpeed config as it is, its different_groups regexes matched against tfjs weight names', async () => {
    const config = {
      train_batch_size: BATCH,
      fp16: { enabled: false },
      optimizer: { type: 'SGD', params: { lr: LEARNING_RATE } },
      compression_training: {
        weight_quantization: {
          shared_parameters: { enabled: true, quantize_groups: 2, quantization_type: 'asymmetric', schedule_offset: 0 },
          different_groups: {
            wq1: { params: { start_bits: 8, target_bits: 6, quantization_period: 2 }, modules: ['encoder'] },
            wq2: { params: { start_bits: 12, target_bits: 10, quantization_period: 3 }, modules: ['^decoder/'] },
          },
        },
      },
    };
    const model = denseModel([
      ['encoder', 8],
      ['decoder', 4],
      ['head', 4],
    ]);
    for (const quantizer of [config, JSON.stringify(config)]) {
      const moq = await attachMoq(tf, model, { quantizer, backend });
      expect(moq.weights.filter((w) => w.quantized).map((w) => w.name)).toEqual(['encoder/kernel', 'decoder/kernel']);
      expect(moq.bitsByWeight()).toEqual(
        new Map([
          ['encoder/kernel', 8],
          ['decoder/kernel', 12],
        ]),
      );
      moq.detach();
    }
    const moq = await attachMoq(tf, model, { quantizer: config, backend });
    const data = dataset();
    const optimizer = tf.train.sgd(LEARNING_RATE);
    for (let step = 0; step < 3; step++) {
      const loss = minimizeOn(model, optimizer, data.x, data.y, step);
      const head = await values(model.getLayer('head').getWeights()[0]!);
      await moq.afterStep({ loss });
      loss.dispose();
      expect(sameBits(await values(model.getLayer('head').getWeights()[0]!), head)).toBe(true);
    }
    expect(moq.bitsByWeight()).toEqual(
      new Map([
        ['encoder/kernel', 7],
        ['decoder/kernel', 11],
      ]),
    );

    const legacy = { quantize_training: { enabled: true, quantize_bits: { start_bits: 8, target_bits: 4 }, quantize_schedule: { quantize_period: 10, schedule_offset: 0 } } };
    const all = await attachMoq(tf, denseModel(TWO_LAYERS), { quantizer: legacy, backend });
    expect(all.bitsByWeight()).toEqual(
      new Map([
        ['encoder/kernel', 8],
        ['decoder/kernel', 8],
      ]),
    );
  });

  it('ends on the same weights with model.fit and the callback as with a custom loop and afterStep', async () => {
    const quantizer: QuantizerOptions = { groups: 2, schedules: [{ startBits: 8, targetBits: 4, period: 2 }] };
    const data = dataset();
    const fitted = denseModel(TWO_LAYERS, 6, 11);
    const looped = denseModel(TWO_LAYERS, 6, 12);
    looped.setWeights(fitted.getWeights());

    fitted.compile({ optimizer: tf.train.sgd(LEARNING_RATE), loss: meanSquaredError });
    const viaFit = await attachMoq(tf, fitted, { quantizer, backend });
    await fitted.fit(data.x, data.y, { batchSize: BATCH, epochs: 3, shuffle: false, verbose: 0, callbacks: [viaFit.callback()] });

    const viaLoop = await attachMoq(tf, looped, { quantizer, backend });
    await train(looped, viaLoop, (3 * SAMPLES) / BATCH, data);

    expect(viaFit.history.length).toBe(12);
    expect(viaFit.history.map(({ bits, qsteps }) => ({ bits, qsteps }))).toEqual(viaLoop.history.map(({ bits, qsteps }) => ({ bits, qsteps })));
    const [a, b] = [await modelValues(fitted), await modelValues(looped)];
    for (const [name, value] of a) expect(sameBits(value, b.get(name)!), name).toBe(true);
    for (const [name, master] of viaFit.masterWeights()) expect(sameBits(master, viaLoop.masterWeights().get(name)!), name).toBe(true);
  });

  it('skips a batch whose loss is NaN inside model.fit', async () => {
    const model = denseModel(TWO_LAYERS);
    model.compile({ optimizer: tf.train.sgd(LEARNING_RATE), loss: meanSquaredError });
    const moq = await attachMoq(tf, model, { quantizer: { schedules: [{ startBits: 6, targetBits: 4, period: 1 }] }, backend });
    const { x, y } = dataset();
    const mask = tf.tensor2d(
      Array.from({ length: SAMPLES }, (_, i) => (i >= BATCH && i < 2 * BATCH ? Number.NaN : 1)),
      [SAMPLES, 1],
    );
    await model.fit(x.mul(mask), y, { batchSize: BATCH, epochs: 1, shuffle: false, verbose: 0, callbacks: [moq.callback()] });
    expect(moq.history.map((h) => [h.overflow, h.qsteps])).toEqual([
      [false, 1],
      [true, 1],
      [false, 2],
      [false, 3],
    ]);
    for (const value of (await modelValues(model)).values()) expect(value.every(Number.isFinite)).toBe(true);
  });

  it("calls the eigenvalue provider only when a switch is due, at the weights the step's gradients were taken at", async () => {
    const model = denseModel(TWO_LAYERS);
    const calls: number[] = [];
    const options: QuantizerOptions = { schedules: [{ startBits: 8, targetBits: 6, period: 2 }], eigenvalue: { enabled: true } };
    let forward = new Map<string, Float32Array>();
    const moq = await attachMoq(tf, model, {
      quantizer: options,
      backend,
      eigenvalues: async (context) => {
        calls.push(context.step);
        expect(context.weights.map((w) => w.name)).toEqual(['encoder/kernel', 'decoder/kernel']);
        const seen = await modelValues(context.model);
        for (const [name, value] of forward) expect(sameBits(seen.get(name)!, value), name).toBe(true);
        return new Map<string, [number, number]>([
          ['encoder/kernel', [0.5, 0]],
          ['decoder/kernel', [0, 1]],
        ]);
      },
    });
    const data = dataset();
    const optimizer = tf.train.sgd(LEARNING_RATE);
    for (let step = 0; step < 5; step++) {
      forward = await modelValues(model);
      const loss = minimizeOn(model, optimizer, data.x, data.y, step % 4);
      await moq.afterStep({ loss });
      loss.dispose();
    }
    // Switch at qsteps 2: encoder's period 2 * 2 * (1 + floor(4 * 0.5)) = 12, decoder's 4; decoder's next at 4 (period 8).
    expect(calls).toEqual([2, 4]);
    expect([moq.quantizer.periodOf('encoder/kernel'), moq.quantizer.periodOf('decoder/kernel')]).toEqual([12, 8]);
    // With eigenvalues enabled an overflow step still counts, as in DeepSpeed.
    await moq.afterStep({ overflow: true });
    expect(moq.quantizer.qsteps).toBe(6);

    await expect(attachMoq(tf, denseModel(TWO_LAYERS), { quantizer: options, backend })).rejects.toThrow(/eigenvalues provider/);
  });

  it('detach writes the full-precision masters back', async () => {
    const model = denseModel(TWO_LAYERS);
    const moq = await attachMoq(tf, model, { quantizer: { schedules: [{ startBits: 3, targetBits: 3, period: 1 }] }, backend });
    await train(model, moq, 3);
    const masters = moq.masterWeights();
    moq.detach();
    const now = await modelValues(model);
    for (const [name, master] of masters) expect(sameBits(now.get(name)!, master)).toBe(true);
    await expect(moq.afterStep()).rejects.toThrow(InvalidInputError);
  });

  it('holds no tensors beyond one per weight, and none after detach', async () => {
    const model = denseModel(TWO_LAYERS);
    const data = dataset();
    const optimizer = tf.train.sgd(LEARNING_RATE);
    const before = tf.memory().numTensors;
    const moq = await attachMoq(tf, model, { quantizer: { schedules: [{ startBits: 6, targetBits: 4, period: 1 }] }, backend });
    const steps = async (count: number) => {
      for (let step = 0; step < count; step++) {
        const loss = minimizeOn(model, optimizer, data.x, data.y, step % 4);
        await moq.afterStep({ loss });
        loss.dispose();
      }
    };
    await steps(2);
    const held = tf.memory().numTensors;
    expect(held - before).toBe(model.trainableWeights.length);
    await steps(6);
    await moq.afterStep({ overflow: true });
    expect(tf.memory().numTensors).toBe(held);
    moq.detach();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects bad input with typed errors', async () => {
    const model = denseModel(TWO_LAYERS);
    const quantizer = { schedules: [{ startBits: 8, targetBits: 4, period: 2 }] };
    const cases: [string, () => Promise<unknown>, new (...args: never[]) => Error, RegExp][] = [
      ['not a tfjs model', () => attachMoq(tf, {} as tf.LayersModel, { quantizer, backend }), InvalidInputError, /layers model/],
      ['a tensor for a model', () => attachMoq(tf, tf.zeros([2, 2]) as never, { quantizer, backend }), InvalidInputError, /layers model/],
      ['an unbuilt model', () => attachMoq(tf, tf.sequential(), { quantizer, backend }), InvalidInputError, /no trainable weights/],
      ['not the tf namespace', () => attachMoq({} as typeof tf, model, { quantizer, backend }), InvalidInputError, /TensorFlow.js namespace/],
      ['an unknown quantizer key', () => attachMoq(tf, model, { quantizer: { ...quantizer, bitz: 4 } as QuantizerOptions, backend }), ConfigError, /options\.bitz: unknown key/],
      [
        'an unknown DeepSpeed key',
        () => attachMoq(tf, model, { quantizer: { quantize_training: { enabled: true, quantize_bitz: {} } }, backend }),
        ConfigError,
        /quantize_training\.quantize_bitz: unknown key/,
      ],
      ['an unknown attach option', () => attachMoq(tf, model, { quantizer, backend, optimiser: 'sgd' } as never), InvalidInputError, /unknown key "optimiser"/],
      ['groups that do not divide a weight', () => attachMoq(tf, model, { quantizer: { ...quantizer, groups: 5 }, backend }), InvalidInputError, /encoder\/kernel.*48 elements/],
      [
        'patterns that match no weight',
        () => attachMoq(tf, model, { quantizer: { schedules: [{ ...quantizer.schedules[0]!, modules: ['attention'] }] }, backend }),
        InvalidInputError,
        /no weight of the model is quantized/,
      ],
      ['a Quantizer and a backend', () => attachMoq(tf, model, { quantizer: new Quantizer(quantizer), backend }), InvalidInputError, /belong to the Quantizer/],
    ];
    for (const [what, run, type, message] of cases) {
      await expect(run(), what).rejects.toThrow(type);
      await expect(run(), what).rejects.toThrow(message);
    }
    const moq = await attachMoq(tf, model, { quantizer, backend });
    await expect(moq.afterStep({ loss: 'low' as never })).rejects.toThrow(/loss must be a number/);
    await expect(moq.afterStep({ overflow: 1 as never })).rejects.toThrow(/overflow must be true or false/);
    expect(moq.history).toEqual([]);
  });
});

describe('attachMoq on tfjs-backend-wasm', () => {
  beforeAll(async () => {
    setWasmPaths(fileURLToPath(new URL('../node_modules/@tensorflow/tfjs-backend-wasm/dist/', import.meta.url)));
    await tf.setBackend('wasm');
  });
  afterAll(async () => {
    await tf.setBackend('cpu');
  });

  it('trains with model.fit: quantized forward weights, masters straight through', async () => {
    expect(tf.getBackend()).toBe('wasm');
    const model = denseModel(TWO_LAYERS);
    model.compile({ optimizer: tf.train.sgd(LEARNING_RATE), loss: meanSquaredError });
    const moq = await attachMoq(tf, model, { quantizer: { groups: 2, schedules: [{ startBits: 6, targetBits: 4, period: 2 }] }, backend });
    const { x, y } = dataset();
    await model.fit(x, y, { batchSize: BATCH, epochs: 2, shuffle: false, verbose: 0, callbacks: [moq.callback()] });
    expect(moq.history.length).toBe(8);
    const now = await modelValues(model);
    for (const [name, master] of moq.masterWeights()) {
      const expected = await backend.fakeQuantize(master.slice(), { bits: moq.bitsByWeight().get(name)!, groups: 2 });
      expect(sameBits(now.get(name)!, expected), name).toBe(true);
    }
    expect(moq.bitsByWeight()).toEqual(
      new Map([
        ['encoder/kernel', 4],
        ['decoder/kernel', 4],
      ]),
    );
  });
});
