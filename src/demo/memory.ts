// What a model's weights take once packed (edge-moq.packed/1): per quantized tensor its codes and
// one float32 scale per group (and a zero point per group when asymmetric); tensors kept in
// float (1-D ones, which MoQ never quantizes, and every weight of a full-precision model) count
// 4 bytes an element.

import type { QuantizationType } from '../kernel-plan.js';
import { planPack } from '../packed/layout.js';

export interface WeightSize {
  name: string;
  shape: readonly number[];
  /** 32: kept as float32. */
  bits: number;
}

export const FLOAT_BITS = 32;

export function packedBytes(weights: readonly WeightSize[], options: { groups: number; type?: QuantizationType }): number {
  return weights.reduce((total, w) => {
    const length = w.shape.reduce((a, b) => a * b, 1);
    if (w.bits >= FLOAT_BITS || w.shape.length < 2) return total + 4 * length;
    const plan = planPack(length, { bits: w.bits, groups: options.groups, type: options.type ?? 'symmetric' }, w.name);
    const perGroup = plan.type === 'asymmetric' ? 8 : 4;
    return total + plan.codeBytes + plan.groupCount * perGroup;
  }, 0);
}
