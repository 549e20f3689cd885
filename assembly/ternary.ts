// Ternary (2 bits, symmetric, nearest), as DeepSpeed's quantize_tenary:
//   m = mean |x|, thr = 0.7 * m, alpha = mean of |x| over |x| > thr,
//   y = +alpha where x > thr, -alpha where x < -thr, 0 elsewhere.
// Both means stay finite where a sum of |x| overflows (stats.ts). An all-zero group (the
// reference divides 0 by 0) is copied unchanged. A group whose mean underflows to 0 is not all
// zero: its threshold is 0 and alpha the mean of its nonzero |x|, as in the reference. Where
// nothing passes a threshold above 0 (at the bottom of the subnormals 0.7 * mean can round up
// past every |x|), alpha is 0 and the group becomes 0. Like the grid, either the second of two
// passes (means from groupAbsMeans, in place) or one fused pass from `src` to `dst` that stops
// at the first non-finite group.

import { aboveThresholdMean, groupMeanAbs, keepWhere } from './stats';
import { blendValue, blend4 } from './blend';
import { THRESHOLD_FACTOR } from './interface';

/** Returns -1, or (fused, means = 0) the index of the first group holding a NaN or ±Inf. */
export function quantizeTernary(src: usize, dst: usize, groupCount: i32, groupSize: i32, means: usize, blend: bool, ratio: f32, rest: f32): i32 {
  return quantizeSigns(src, dst, groupCount, groupSize, means, blend, ratio, rest, false);
}

/**
 * Ternary, or with BINARY the binary quantizer (binary.ts): ternary at threshold 0 with alpha
 * the mean of every |x|, whose all-zero groups become +0 (sign(-0) * mean is 0, not -0).
 */
@inline export function quantizeSigns(src: usize, dst: usize, groupCount: i32, groupSize: i32, means: usize, blend: bool, ratio: f32, rest: f32, BINARY: bool): i32 {
  for (let g = 0; g < groupCount; g++) {
    const offset = <usize>g * <usize>groupSize << 2;
    const from = src + offset, to = dst + offset;
    const mean = groupMeanAbs(from, groupSize, means, g);
    if (mean != mean) return g;
    const threshold: f32 = BINARY ? 0 : THRESHOLD_FACTOR * mean;
    const alpha: f32 = BINARY ? mean : aboveThresholdMean(from, groupSize, threshold);
    // Nothing above a threshold of 0: all zero.
    if (!BINARY && !(alpha > 0) && !(threshold > 0)) {
      if (to != from) memory.copy(to, from, <usize>groupSize << 2);
      continue;
    }
    if (blend) ternaryGroup(from, to, groupSize, threshold, alpha, true, ratio, rest, BINARY);
    else ternaryGroup(from, to, groupSize, threshold, alpha, false, ratio, rest, BINARY);
  }
  return -1;
}

@inline function ternaryGroup(from: usize, to: usize, n: i32, threshold: f32, alpha: f32, BLEND: bool, ratio: f32, rest: f32, BINARY: bool): void {
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    const vPos = f32x4.splat(threshold), vNeg = f32x4.splat(-threshold);
    const vAlpha = f32x4.splat(alpha), vMinusAlpha = f32x4.splat(-alpha);
    const vRatio = f32x4.splat(ratio), vRest = f32x4.splat(rest);
    for (; i + 4 <= n; i += 4) {
      const offset = <usize>i << 2;
      const x = v128.load(from + offset);
      const q = v128.or(v128.and(vAlpha, f32x4.gt(x, vPos)), v128.and(vMinusAlpha, f32x4.lt(x, vNeg)));
      v128.store(to + offset, BLEND ? blend4(x, q, vRatio, vRest) : q);
    }
  }
  for (; i < n; i++) {
    const offset = <usize>i << 2;
    const x = load<f32>(from + offset);
    // x > thr or x < -thr is |x| > thr (thr >= 0); no branch (keepWhere), as a ternary
    // threshold splits random weights unpredictably. Binary's threshold is 0, passed by all
    // but exact zeros: V8's branch for select is then predicted and cheaper (about 10% on 2^24 values).
    const q = BINARY ? select<f32>(copysign<f32>(alpha, x), 0, x != 0) : keepWhere(copysign<f32>(alpha, x), abs<f32>(x) > threshold);
    store<f32>(to + offset, BLEND ? blendValue(x, q, ratio, rest) : q);
  }
}
