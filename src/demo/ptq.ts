// Post-training quantization: a trained model's weights put on the grid once, with the same
// kernel, bits and groups MoQ ends on. As in MoQ, 1-D weights (biases) stay float32.

import type { Backend } from '../backends/backend.js';
import { FLOAT_BITS } from './memory.js';
import type { LayerWeights } from './train.js';

export async function postTrainingQuantize(backend: Backend, weights: readonly LayerWeights[], options: { bits: number; groups: number }): Promise<LayerWeights[]> {
  return Promise.all(weights.map(async (w) => {
    if (w.shape.length < 2) return { ...w, bits: FLOAT_BITS };
    const values = await backend.fakeQuantize(w.values.slice(), { bits: options.bits, groups: options.groups, type: 'symmetric', rounding: 'nearest' });
    return { ...w, bits: options.bits, values };
  }));
}
