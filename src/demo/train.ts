// The demo's training runs. Every run of one seed starts from the same initial weights and sees
// the same batches in the same order (Adam, softmax cross-entropy), so the runs differ only in how
// the weights are quantized: not at all, by MoQ during training, or after training (PTQ). One
// full-precision run serves every PTQ target: PTQ only reads its weights.

import type * as tfjs from '@tensorflow/tfjs';
import type { Backend } from '../backends/backend.js';
import type { QuantizerOptions } from '../config.js';
import { attachMoq, type MoqTraining } from '../tfjs/index.js';
import { layerEigenvalues } from './layer-eigenvalues.js';
import { FLOAT_BITS } from './memory.js';
import { CLASSES, IMAGE_PIXELS, type Digits, type MnistSplit } from './mnist.js';
import { createModel } from './model.js';
import { postTrainingQuantize, type LayerWeights } from './ptq.js';
import { batchOrder } from './random.js';

export interface TrainingSetup {
  tf: typeof tfjs;
  data: MnistSplit;
  hidden: readonly number[];
  steps: number;
  batch: number;
  seed: number;
  learningRate: number;
  /** Test accuracy is measured before the first step, every evalEvery steps and after the last. */
  evalEvery: number;
  /** Called after every optimizer step; `detail` says where the run is (bits, for MoQ). */
  onStep?: (step: number, detail: string) => void;
}

/** One trainable weight as the run ends with it: what would ship. */
export interface AccuracyPoint {
  step: number;
  accuracy: number;
}

export interface RunResult {
  /** Test accuracy of the final weights. */
  accuracy: number;
  curve: AccuracyPoint[];
  weights: LayerWeights[];
}

export interface MoqRunResult extends RunResult {
  /** Bits of each quantized weight after each optimizer step (index 0: step 1). */
  bitsTrace: Record<string, number[]>;
  /** The blend ratio after each optimizer step. */
  ratioTrace: number[];
}

export interface PtqSettings {
  backend: Backend;
  /** The targets, each quantized from the same full-precision weights. */
  bits: readonly number[];
  groups: number;
}

/**
 * Full precision, and post-training quantization of it to each target: at every evaluation the
 * weights reached so far are quantized on the side (training goes on in full precision), so each
 * PTQ curve shows what quantizing would have given had training stopped there.
 */
export async function trainFullPrecision(setup: TrainingSetup, ptq: PtqSettings): Promise<{ full: RunResult; ptq: RunResult[] }> {
  const { tf } = setup;
  const model = createModel(tf, setup.hidden, setup.seed);
  // A second model of the same shape holds the quantized copies, so the trained one is never touched.
  const probe = createModel(tf, setup.hidden, setup.seed);
  const test = testTensors(tf, setup.data.test);
  const full: RunResult = { accuracy: 0, curve: [], weights: [] };
  const quantized: RunResult[] = ptq.bits.map(() => ({ accuracy: 0, curve: [], weights: [] }));
  try {
    await train(setup, model, {
      detail: () => 'full precision',
      evaluate: async (step) => {
        full.weights = await readWeights(model);
        full.curve.push({ step, accuracy: accuracy(tf, model, test) });
        for (const [i, bits] of ptq.bits.entries()) {
          const run = quantized[i]!;
          run.weights = await postTrainingQuantize(ptq.backend, full.weights, { bits, groups: ptq.groups });
          tf.tidy(() => probe.setWeights(run.weights.map((w) => tf.tensor(w.values, w.shape, 'float32'))));
          run.curve.push({ step, accuracy: accuracy(tf, probe, test) });
        }
      },
    });
  } finally {
    tf.dispose([test.images]);
    model.dispose();
    probe.dispose();
  }
  full.accuracy = full.curve.at(-1)!.accuracy;
  for (const run of quantized) run.accuracy = run.curve.at(-1)!.accuracy;
  return { full, ptq: quantized };
}

export interface MoqSettings {
  backend: Backend;
  quantizer: QuantizerOptions;
  /** Stretch each layer's periods by its Hessian eigenvalue (DeepSpeed's eigenvalue-aware schedule). */
  eigenvalues: boolean;
  /** Called after the last step, while MoQ is still attached (what an export needs). */
  onTrained?: (trained: TrainedMoq) => Promise<void>;
}

/** A MoQ run at its end, before MoQ is detached. */
export interface TrainedMoq {
  /** Its variables hold the forward weights the run ended with. */
  model: tfjs.Sequential;
  /** The masters and the quantizer's state. */
  moq: MoqTraining;
  test: TestSet;
  /** The final test accuracy (of the forward weights). */
  accuracy: number;
}

/** MoQ through attachMoq: the forward pass (and so every evaluation) uses the quantized weights. */
export async function trainMoq(setup: TrainingSetup, settings: MoqSettings): Promise<MoqRunResult> {
  const { tf } = setup;
  const model = createModel(tf, setup.hidden, setup.seed);
  const test = testTensors(tf, setup.data.test);
  const result: MoqRunResult = { accuracy: 0, curve: [], weights: [], bitsTrace: {}, ratioTrace: [] };
  const moq = await attachMoq(tf, model, {
    quantizer: settings.quantizer,
    backend: settings.backend,
    ...(settings.eigenvalues ? { eigenvalues: layerEigenvalues(tf, model, setup.data.train, setup.seed) } : {}),
  });
  try {
    await train(setup, model, {
      afterStep: async (loss) => {
        await moq.afterStep({ loss });
      },
      detail: () => `MoQ, ${[...new Set(moq.bitsByWeight().values())].join('/')} bits`,
      evaluate: async (step) => {
        result.curve.push({ step, accuracy: accuracy(tf, model, test) });
      },
    });
    await settings.onTrained?.({ model, moq, test, accuracy: result.curve.at(-1)!.accuracy });
    const bits = moq.bitsByWeight();
    result.weights = (await readWeights(model)).map((w) => ({ ...w, bits: bits.get(w.name) ?? FLOAT_BITS }));
    for (const name of bits.keys()) result.bitsTrace[name] = moq.history.map((h) => h.bits[name]!);
    result.ratioTrace = moq.history.map((h) => h.ratio);
  } finally {
    moq.detach();
    tf.dispose([test.images]);
    model.dispose();
  }
  result.accuracy = result.curve.at(-1)!.accuracy;
  return result;
}

interface TrainHooks {
  afterStep?: (loss: tfjs.Scalar) => Promise<void>;
  detail: () => string;
  evaluate: (step: number) => Promise<void>;
}

async function train(setup: TrainingSetup, model: tfjs.Sequential, hooks: TrainHooks): Promise<void> {
  const { tf, data, batch, steps } = setup;
  const optimizer = tf.train.adam(setup.learningRate);
  const variables = model.trainableWeights.map((w) => w.read() as tfjs.Variable);
  const nextBatch = batchOrder(data.train.count, batch, setup.seed);
  const images = new Float32Array(batch * IMAGE_PIXELS);
  const labels = new Int32Array(batch);
  try {
    await hooks.evaluate(0);
    for (let step = 1; step <= steps; step++) {
      nextBatch().forEach((sample, i) => {
        images.set(data.train.images.subarray(sample * IMAGE_PIXELS, (sample + 1) * IMAGE_PIXELS), i * IMAGE_PIXELS);
        labels[i] = data.train.labels[sample]!;
      });
      const loss = tf.tidy(() => {
        const x = tf.tensor2d(images, [batch, IMAGE_PIXELS]);
        const y = tf.oneHot(tf.tensor1d(labels, 'int32'), CLASSES);
        return optimizer.minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x) as tfjs.Tensor) as tfjs.Scalar, true, variables)!;
      });
      try {
        await hooks.afterStep?.(loss);
      } finally {
        loss.dispose();
      }
      if (step % setup.evalEvery === 0 || step === steps) await hooks.evaluate(step);
      setup.onStep?.(step, hooks.detail());
    }
  } finally {
    optimizer.dispose();
  }
}

/** The test digits as one tensor: built once per run, evaluated many times. */
export interface TestSet {
  images: tfjs.Tensor2D;
  labels: Int32Array;
}

function testTensors(tf: typeof tfjs, test: Digits): TestSet {
  return { images: tf.tensor2d(test.images, [test.count, IMAGE_PIXELS]), labels: test.labels };
}

/** The fraction of test digits whose largest logit is the right class. */
export function accuracy(tf: typeof tfjs, model: tfjs.LayersModel, test: TestSet): number {
  const predicted = tf.tidy(() => tf.argMax(model.apply(test.images) as tfjs.Tensor, -1));
  const classes = predicted.dataSync();
  predicted.dispose();
  let right = 0;
  for (let i = 0; i < test.labels.length; i++) if (classes[i] === test.labels[i]) right++;
  return right / test.labels.length;
}

/** Copies of the model's trainable weights, named as schedules see them ("hidden1/kernel"). */
async function readWeights(model: tfjs.LayersModel): Promise<LayerWeights[]> {
  return Promise.all(
    model.trainableWeights.map(async (w) => {
      const variable = w.read();
      return { name: w.originalName, shape: [...variable.shape], bits: FLOAT_BITS, values: new Float32Array((await variable.data()) as Float32Array) };
    }),
  );
}
