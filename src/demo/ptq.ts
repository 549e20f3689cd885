// Post-training quantization: a trained model's weights put on the grid once, with the same
// kernel, bits and groups MoQ ends on. As in MoQ, 1-D weights (biases) stay float32.

import type { Backend } from '../backends/backend.js';
import { FLOAT_BITS } from './memory.js';

/** One layer's weights, as the demo reads them from the model or writes them after quantizing. */
export interface LayerWeights {
  name: string;
  shape: number[];
  /** FLOAT_BITS (32) when kept as float32. */
  bits: number;
  values: Float32Array;
}

export async function postTrainingQuantize(backend: Backend, weights: readonly LayerWeights[], options: { bits: number; groups: number }): Promise<LayerWeights[]> {
  return Promise.all(
    weights.map(async (w) => {
      if (w.shape.length < 2) return { ...w, bits: FLOAT_BITS };
      const values = await backend.fakeQuantize(w.values.slice(), { bits: options.bits, groups: options.groups, type: 'symmetric', rounding: 'nearest' });
      return { ...w, bits: options.bits, values };
    }),
  );
}
