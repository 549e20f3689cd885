// Binary (1 bit, symmetric, nearest), as DeepSpeed's quantize_binary: y = sign(x) * mean |x|,
// with sign(0) = 0; the mean stays finite where the sum of |x| overflows (stats.ts). That is
// ternary at threshold 0 with alpha the mean of every |x|, so ternary.ts runs both. Like the
// grid, either the second of two passes (means from groupAbsMeans, in place) or one fused pass
// from `src` to `dst` that stops at the first non-finite group.

import { quantizeSigns } from './ternary';

/** Returns -1, or (fused, means = 0) the index of the first group holding a NaN or ±Inf. */
export function quantizeBinary(src: usize, dst: usize, groupCount: i32, groupSize: i32, means: usize, blend: bool, ratio: f32, rest: f32): i32 {
  return quantizeSigns(src, dst, groupCount, groupSize, means, blend, ratio, rest, true);
}
