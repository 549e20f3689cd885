// Ternary (2 bits, symmetric, nearest), as DeepSpeed's quantize_tenary:
//   m = mean |x|, thr = 0.7 * m, alpha = mean of |x| over |x| > thr,
//   y = +alpha where x > thr, -alpha where x < -thr, 0 elsewhere.
// An all-zero group (the reference divides 0 by 0) is left unchanged.

import { absSum, absSumCount } from './stats';
import { blendValue, blend4 } from './blend';

const THRESHOLD_FACTOR: f32 = 0.7;

/** `means` holds each group's mean |x| (groupAbsMeans in stats.ts). */
export function quantizeTernary(data: usize, groupCount: i32, groupSize: i32, means: usize, blend: bool, ratio: f32, rest: f32): void {
  for (let g = 0; g < groupCount; g++) {
    const base = data + (<usize>g * <usize>groupSize << 2);
    const mean = load<f32>(means + (<usize>g << 2));
    if (!(mean > 0)) continue;
    const threshold = THRESHOLD_FACTOR * mean;
    const alpha = absSum(base, groupSize, threshold, true) / <f32>absSumCount;
    if (blend) ternaryGroup(base, groupSize, threshold, alpha, true, ratio, rest);
    else ternaryGroup(base, groupSize, threshold, alpha, false, ratio, rest);
  }
}

@inline function ternaryGroup(base: usize, n: i32, threshold: f32, alpha: f32, BLEND: bool, ratio: f32, rest: f32): void {
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    const vPos = f32x4.splat(threshold), vNeg = f32x4.splat(-threshold);
    const vAlpha = f32x4.splat(alpha), vMinusAlpha = f32x4.splat(-alpha);
    const vRatio = f32x4.splat(ratio), vRest = f32x4.splat(rest);
    for (; i + 4 <= n; i += 4) {
      const p = base + (<usize>i << 2);
      const x = v128.load(p);
      const q = v128.or(v128.and(vAlpha, f32x4.gt(x, vPos)), v128.and(vMinusAlpha, f32x4.lt(x, vNeg)));
      v128.store(p, BLEND ? blend4(x, q, vRatio, vRest) : q);
    }
  }
  for (; i < n; i++) {
    const p = base + (<usize>i << 2);
    const x = load<f32>(p);
    const q: f32 = x > threshold ? alpha : x < -threshold ? -alpha : 0;
    store<f32>(p, BLEND ? blendValue(x, q, ratio, rest) : q);
  }
}
