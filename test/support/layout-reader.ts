// The packed layout read as its text states it, bit by bit and in float32: what the pack tests
// on every backend compare the kernels against.

import type { PackedTensor } from '../../src/packed/layout.js';

/** Element i's code: stream bits [i*b, (i+1)*b), stream bit j being bit j mod 8 of byte j/8. */
export function codeAt(codes: Uint8Array, bits: number, i: number): number {
  let code = 0;
  for (let k = 0; k < bits; k++) {
    const j = i * bits + k;
    code |= ((codes[j >> 3]! >> (j & 7)) & 1) << k;
  }
  return code;
}

/** Element i's value, dequantized in float32. */
export function valueAt(packed: PackedTensor, i: number): number {
  const code = codeAt(packed.codes, packed.bits, i);
  const g = Math.floor(i / packed.groupSize);
  const s = packed.scales[g]!;
  switch (packed.type) {
    case 'symmetric': return Math.fround((code - 2 ** (packed.bits - 1)) * s);
    case 'asymmetric': return Math.fround(Math.fround(code * s) + packed.zeros![g]!);
    case 'ternary': return Math.fround((code - 1) * s);
    case 'binary': return Math.fround((2 * code - 1) * s);
  }
}
