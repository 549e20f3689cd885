// Binary (1 bit, symmetric, nearest), as DeepSpeed's quantize_binary: y = sign(x) * mean |x|,
// with sign(0) = 0; the mean stays finite where the sum of |x| overflows (stats.ts). Like the
// grid, either the second of two passes (means from groupAbsMeans, in place) or one fused pass
// from `src` to `dst` that stops at the first non-finite group.

import { groupMeanAbs } from './stats';
import { blendValue, blend4 } from './blend';

/** Returns -1, or (fused, means = 0) the index of the first group holding a NaN or ±Inf. */
export function quantizeBinary(src: usize, dst: usize, groupCount: i32, groupSize: i32, means: usize, blend: bool, ratio: f32, rest: f32): i32 {
  for (let g = 0; g < groupCount; g++) {
    const offset = <usize>g * <usize>groupSize << 2;
    const from = src + offset, to = dst + offset;
    const mean = groupMeanAbs(from, groupSize, means, g);
    if (mean != mean) return g;
    if (blend) binaryGroup(from, to, groupSize, mean, true, ratio, rest);
    else binaryGroup(from, to, groupSize, mean, false, ratio, rest);
  }
  return -1;
}

@inline function binaryGroup(from: usize, to: usize, n: i32, mean: f32, BLEND: bool, ratio: f32, rest: f32): void {
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    const zero = f32x4.splat(0);
    const vMean = f32x4.splat(mean), vMinusMean = f32x4.splat(-mean);
    const vRatio = f32x4.splat(ratio), vRest = f32x4.splat(rest);
    for (; i + 4 <= n; i += 4) {
      const offset = <usize>i << 2;
      const x = v128.load(from + offset);
      const q = v128.or(v128.and(vMean, f32x4.gt(x, zero)), v128.and(vMinusMean, f32x4.lt(x, zero)));
      v128.store(to + offset, BLEND ? blend4(x, q, vRatio, vRest) : q);
    }
  }
  for (; i < n; i++) {
    const offset = <usize>i << 2;
    const x = load<f32>(from + offset);
    // select, not branches: signs of real weights are unpredictable.
    const q = select<f32>(copysign<f32>(mean, x), 0, x != 0);
    store<f32>(to + offset, BLEND ? blendValue(x, q, ratio, rest) : q);
  }
}
