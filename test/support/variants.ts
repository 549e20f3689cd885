// One set of options per kernel path (both grids and the full one, stochastic rounding, the
// mixed-fp16 blend, 16 bits, ternary, binary), each in groups of a few dozen elements: tensors
// of a few groups reach every path, and a test that needs larger groups scales groupSize.

import type { FakeQuantizeOptions } from '../../src/kernel-plan.js';

export const KERNEL_VARIANTS: [string, FakeQuantizeOptions][] = [
  ['symmetric 8-bit', { bits: 8, groupSize: 32 }],
  ['asymmetric 4-bit', { bits: 4, groupSize: 48, type: 'asymmetric' }],
  ['full grid 3-bit', { bits: 3, groupSize: 16, grid: 'full' }],
  ['stochastic 6-bit', { bits: 6, groupSize: 24, rounding: 'stochastic', seed: 9, step: 4, tensorId: 2 }],
  ['blended 8-bit', { bits: 8, groupSize: 40, blendRatio: 0.3 }],
  ['16-bit', { bits: 16, groupSize: 64 }],
  ['ternary', { bits: 2, groupSize: 32 }],
  ['binary', { bits: 1, groupSize: 20 }],
];
