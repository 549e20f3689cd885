// MNIST digits from the `mnist` package (10,000 real digits, 28x28, grey levels in [0, 1]), cut
// into a training and a test set. The split is fixed, not drawn from --seed: runs with different
// seeds are then compared on the same test digits.

import { createRequire } from 'node:module';
import { permutation, createRandom } from './random.js';

export const IMAGE_PIXELS = 28 * 28;
export const CLASSES = 10;
export const TEST_DIGITS = 2000;
const SPLIT_SEED = 20240601;

export interface Digits {
  /** count × 784 grey levels, row-major. */
  images: Float32Array;
  labels: Int32Array;
  count: number;
}

export interface MnistSplit {
  train: Digits;
  test: Digits;
}

/** A fixed shuffle of `total` samples: the last `testCount` are the test set, the rest train. */
export function splitIndices(total: number, testCount: number, seed = SPLIT_SEED): { train: Uint32Array; test: Uint32Array } {
  const order = permutation(total, createRandom(seed));
  return { train: order.subarray(0, total - testCount), test: order.subarray(total - testCount) };
}

/** Gathers the samples at `indices` into one set. */
export function gather(images: Float32Array, labels: Int32Array, indices: Uint32Array): Digits {
  const out: Digits = { images: new Float32Array(indices.length * IMAGE_PIXELS), labels: new Int32Array(indices.length), count: indices.length };
  indices.forEach((sample, i) => {
    out.images.set(images.subarray(sample * IMAGE_PIXELS, (sample + 1) * IMAGE_PIXELS), i * IMAGE_PIXELS);
    out.labels[i] = labels[sample]!;
  });
  return out;
}

/**
 * Every digit of the package, split. The package's own helpers draw samples with Math.random;
 * its raw per-digit files are read instead.
 */
export function loadMnist(testCount = TEST_DIGITS): MnistSplit {
  const require = createRequire(import.meta.url);
  const perDigit = Array.from({ length: CLASSES }, (_, digit) => (require(`mnist/src/digits/${digit}.json`) as { data: number[] }).data);
  const total = perDigit.reduce((sum, raw) => sum + raw.length / IMAGE_PIXELS, 0);
  const images = new Float32Array(total * IMAGE_PIXELS);
  const labels = new Int32Array(total);
  let sample = 0;
  perDigit.forEach((raw, digit) => {
    images.set(raw, sample * IMAGE_PIXELS);
    labels.fill(digit, sample, sample + raw.length / IMAGE_PIXELS);
    sample += raw.length / IMAGE_PIXELS;
  });
  const { train, test } = splitIndices(total, testCount);
  return { train: gather(images, labels, train), test: gather(images, labels, test) };
}
