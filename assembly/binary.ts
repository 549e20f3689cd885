// Binary (1 bit, symmetric, nearest), as DeepSpeed's quantize_binary: y = sign(x) * mean |x|,
// with sign(0) = 0.

import { blendValue, blend4 } from './blend';

/** `means` holds each group's mean |x| (groupAbsMeans in stats.ts). */
export function quantizeBinary(data: usize, groupCount: i32, groupSize: i32, means: usize, blend: bool, ratio: f32, rest: f32): void {
  for (let g = 0; g < groupCount; g++) {
    const base = data + (<usize>g * <usize>groupSize << 2);
    const mean = load<f32>(means + (<usize>g << 2));
    if (blend) binaryGroup(base, groupSize, mean, true, ratio, rest);
    else binaryGroup(base, groupSize, mean, false, ratio, rest);
  }
}

@inline function binaryGroup(base: usize, n: i32, mean: f32, BLEND: bool, ratio: f32, rest: f32): void {
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    const zero = f32x4.splat(0);
    const vMean = f32x4.splat(mean), vMinusMean = f32x4.splat(-mean);
    const vRatio = f32x4.splat(ratio), vRest = f32x4.splat(rest);
    for (; i + 4 <= n; i += 4) {
      const p = base + (<usize>i << 2);
      const x = v128.load(p);
      const q = v128.or(v128.and(vMean, f32x4.gt(x, zero)), v128.and(vMinusMean, f32x4.lt(x, zero)));
      v128.store(p, BLEND ? blend4(x, q, vRatio, vRest) : q);
    }
  }
  for (; i < n; i++) {
    const p = base + (<usize>i << 2);
    const x = load<f32>(p);
    const q: f32 = x > 0 ? mean : x < 0 ? -mean : 0;
    store<f32>(p, BLEND ? blendValue(x, q, ratio, rest) : q);
  }
}
