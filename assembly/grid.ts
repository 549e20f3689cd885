// The integer grid at 3..16 bits, symmetric and asymmetric, nearest or stochastic rounding,
// optionally blended with the input (mixed fp16). The second pass: it reads each group's range
// from groupRanges (stats.ts) and writes the group in place.
//
//   symmetric:  s = 2 * max(|min|, |max|) / 2^b,  y = clamp(round(x / s + p), -2^(b-1), 2^(b-1) - 1) * s
//   asymmetric: s = (max - min) / 2^b,  zp = round(min / s) * s,
//               y = clamp(round((x - zp) / s + p), 0, 2^b - 1) * s + zp
//
// Scaling by a power of two is exact, so `* 2^-b` equals the reference's `/ 2^b` bit for bit
// (and 2 * absmax cannot overflow). The division by `s` must stay a true division: multiplying
// by 1/s moves values that sit near a rounding tie.

import { stochasticOffset, stochasticOffset4 } from './rounding';
import { blendValue, blend4 } from './blend';

/**
 * Quantizes `groupCount` contiguous groups of `groupSize` float32 values at `data` in place,
 * given their ranges (min, max per group, as written by groupRanges).
 * `firstIndex` is the tensor index of data[0] (the counter of the stochastic noise).
 * A group whose scale is 0 (all zero, or constant when asymmetric) is left unchanged.
 */
export function quantizeGrid(
  data: usize, groupCount: i32, groupSize: i32, ranges: usize, bits: i32, asymmetric: bool,
  stochastic: bool, key: u32, firstIndex: u32, blend: bool, ratio: f32, rest: f32,
): void {
  const levels = <f32>(1 << bits);
  const invLevels: f32 = 1.0 / levels;
  const lo: f32 = asymmetric ? 0 : -levels * 0.5;
  const hi: f32 = asymmetric ? levels - 1 : levels * 0.5 - 1;
  const variant = (asymmetric ? 4 : 0) | (stochastic ? 2 : 0) | (blend ? 1 : 0);
  for (let g = 0; g < groupCount; g++) {
    const base = data + (<usize>g * <usize>groupSize << 2);
    const groupMin = load<f32>(ranges + (<usize>g << 3));
    const groupMax = load<f32>(ranges + (<usize>g << 3), 4);
    let scale: f32, zero: f32 = 0;
    if (asymmetric) {
      scale = (groupMax - groupMin) * invLevels;
      if (!(scale > 0)) continue;
      zero = nearest<f32>(groupMin / scale) * scale;
    } else {
      const absMax = max<f32>(abs<f32>(groupMin), abs<f32>(groupMax));
      scale = absMax * (invLevels * 2);
      if (!(scale > 0)) continue;
    }
    const first = firstIndex + <u32>g * <u32>groupSize;
    // Literal flags let the optimizer specialise one loop per variant.
    switch (variant) {
      case 0: gridGroup(base, groupSize, first, scale, zero, lo, hi, false, false, false, key, ratio, rest); break;
      case 1: gridGroup(base, groupSize, first, scale, zero, lo, hi, false, false, true, key, ratio, rest); break;
      case 2: gridGroup(base, groupSize, first, scale, zero, lo, hi, false, true, false, key, ratio, rest); break;
      case 3: gridGroup(base, groupSize, first, scale, zero, lo, hi, false, true, true, key, ratio, rest); break;
      case 4: gridGroup(base, groupSize, first, scale, zero, lo, hi, true, false, false, key, ratio, rest); break;
      case 5: gridGroup(base, groupSize, first, scale, zero, lo, hi, true, false, true, key, ratio, rest); break;
      case 6: gridGroup(base, groupSize, first, scale, zero, lo, hi, true, true, false, key, ratio, rest); break;
      default: gridGroup(base, groupSize, first, scale, zero, lo, hi, true, true, true, key, ratio, rest);
    }
  }
}

@inline function gridGroup(
  base: usize, n: i32, first: u32, scale: f32, zero: f32, lo: f32, hi: f32,
  ASYMMETRIC: bool, STOCHASTIC: bool, BLEND: bool, key: u32, ratio: f32, rest: f32,
): void {
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    const vScale = f32x4.splat(scale), vZero = f32x4.splat(zero);
    const vLo = f32x4.splat(lo), vHi = f32x4.splat(hi);
    const vRatio = f32x4.splat(ratio), vRest = f32x4.splat(rest);
    const vKey = i32x4.splat(key);
    let index = i32x4.add(i32x4.splat(first), i32x4(0, 1, 2, 3));
    for (; i + 4 <= n; i += 4) {
      const p = base + (<usize>i << 2);
      const x = v128.load(p);
      let v = f32x4.div(ASYMMETRIC ? f32x4.sub(x, vZero) : x, vScale);
      if (STOCHASTIC) {
        v = f32x4.add(v, stochasticOffset4(index, vKey));
        index = i32x4.add(index, i32x4.splat(4));
      }
      let q = f32x4.mul(f32x4.pmin(f32x4.pmax(f32x4.nearest(v), vLo), vHi), vScale);
      if (ASYMMETRIC) q = f32x4.add(q, vZero);
      v128.store(p, BLEND ? blend4(x, q, vRatio, vRest) : q);
    }
  }
  for (; i < n; i++) {
    const p = base + (<usize>i << 2);
    const x = load<f32>(p);
    let v = (ASYMMETRIC ? x - zero : x) / scale;
    if (STOCHASTIC) v += stochasticOffset(first + <u32>i, key);
    let r = nearest<f32>(v);
    r = r < lo ? lo : r;
    r = hi < r ? hi : r;
    let q = r * scale;
    if (ASYMMETRIC) q += zero;
    store<f32>(p, BLEND ? blendValue(x, q, ratio, rest) : q);
  }
}
