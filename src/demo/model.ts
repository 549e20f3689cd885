// The network the demo trains: a multilayer perceptron on the 784 pixels, ReLU hidden layers, 10
// logits. Its initial weights are a function of the seed alone, so the three runs of one seed
// start from the same point.

import type * as tfjs from '@tensorflow/tfjs';
import { CLASSES, IMAGE_PIXELS } from './mnist.js';

/** Layer names: "hidden1", "hidden2", ..., "output"; their kernels are "hidden1/kernel" and so on. */
export function layerNames(hidden: readonly number[]): string[] {
  return [...hidden.map((_, i) => `hidden${i + 1}`), 'output'];
}

/** Each layer's [kernel shape, bias shape], in model order. */
export function weightShapes(hidden: readonly number[]): { name: string; shape: number[] }[] {
  const widths = [IMAGE_PIXELS, ...hidden, CLASSES];
  return layerNames(hidden).flatMap((layer, i) => [
    { name: `${layer}/kernel`, shape: [widths[i]!, widths[i + 1]!] },
    { name: `${layer}/bias`, shape: [widths[i + 1]!] },
  ]);
}

export function describeModel(hidden: readonly number[]): string {
  return `MLP ${[IMAGE_PIXELS, ...hidden, CLASSES].join('-')} (ReLU)`;
}

export function createModel(tf: typeof tfjs, hidden: readonly number[], seed: number): tfjs.Sequential {
  const names = layerNames(hidden);
  // He initialisation suits ReLU; the logits layer gets Glorot. Each layer has its own seed.
  const layers = [...hidden, CLASSES].map((units, i) =>
    tf.layers.dense({
      name: names[i]!,
      units,
      ...(i === 0 ? { inputShape: [IMAGE_PIXELS] } : {}),
      ...(i < hidden.length ? { activation: 'relu' as const } : {}),
      kernelInitializer: i < hidden.length ? tf.initializers.heNormal({ seed: seed * 16 + i }) : tf.initializers.glorotUniform({ seed: seed * 16 + i }),
    }),
  );
  return tf.sequential({ layers });
}
