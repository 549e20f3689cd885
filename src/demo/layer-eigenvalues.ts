// The eigenvalue provider for `--eigenvalues`: each dense layer (kernel and bias) is one block, as
// each transformer layer is in DeepSpeed, and the loss is taken on a fixed batch of training
// digits so that the power iteration sees the same function at every product.

import type * as tfjs from '@tensorflow/tfjs';
import { computeBlockEigenvalues } from '../tfjs/eigenvalues.js';
import type { EigenvalueProvider } from '../tfjs/index.js';
import { CLASSES, IMAGE_PIXELS, type Digits } from './mnist.js';

export const EIGENVALUE_SAMPLES = 256;

export function layerEigenvalues(tf: typeof tfjs, model: tfjs.Sequential, train: Digits, seed: number): EigenvalueProvider {
  return async ({ weights, options }) => {
    // Blocks are keyed by the names MoQ uses, which tfjs's variable names may carry a suffix past.
    const nameOf = new Map<tfjs.Variable, string>(weights.map((w) => [w.variable, w.name]));
    const blocks = model.layers.map((layer, id) => {
      const variables = layer.trainableWeights.map((w) => w.read() as tfjs.Variable);
      return { id, weights: variables, parameterNames: variables.map((v, i) => nameOf.get(v) ?? layer.trainableWeights[i]!.originalName) };
    });
    const count = Math.min(EIGENVALUE_SAMPLES, train.count);
    const x = tf.tensor2d(train.images.subarray(0, count * IMAGE_PIXELS), [count, IMAGE_PIXELS]);
    const y = tf.tidy(() => tf.oneHot(tf.tensor1d(train.labels.subarray(0, count), 'int32'), CLASSES));
    try {
      return await computeBlockEigenvalues(tf, {
        loss: () => tf.losses.softmaxCrossEntropy(y, model.apply(x) as tfjs.Tensor) as tfjs.Scalar,
        blocks,
        options,
        seed,
      });
    } finally {
      tf.dispose([x, y]);
    }
  };
}
