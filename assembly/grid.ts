// The integer grid at 3..16 bits, symmetric and asymmetric, nearest or stochastic rounding,
// optionally blended with the input (mixed fp16). Either the second of two passes (the ranges
// come from groupRanges in stats.ts, the write is in place), or a single fused pass from a
// source to a separate destination that stops at the first group holding a NaN or ±Inf.
//
//   symmetric:  s = 2 * max(|min|, |max|) / 2^b,  y = clamp(round(x / s + p), -2^(b-1), 2^(b-1) - 1) * s
//   asymmetric: s = (max - min) / 2^b,  zp = round(min / s) * s,
//               y = clamp(round((x - zp) / s + p), 0, 2^b - 1) * s + zp
//   full:       s = m / -2^(b-1), m = max if |max| > |min| else min (the value of largest
//               magnitude; the negative one on a tie, as onnxruntime's blockwise quantizer),
//               y = clamp(round(x / s + p), -2^(b-1), 2^(b-1) - 1) * s
//
// The full grid (the `grid: 'full'` option, symmetric only) maps m to level -2^(b-1) exactly:
// m / s is exactly -2^(b-1) wherever s is normal, and every other value of the group lands within
// [-2^(b-1), 2^(b-1)] steps, the top one clamped. |s| <= |m| / 2^(b-1) and every grid point is
// within ±|m|, so nothing overflows, even at ±FLT_MAX. s is negative when m is positive.
//
// Scaling by a power of two is exact, so `* 2^-b` equals the reference's `/ 2^b` bit for bit
// (and 2 * absmax cannot overflow). The division by `s` must stay a true division: multiplying
// by 1/s moves values that sit near a rounding tie.
//
// At the top of float32 the asymmetric formula overflows (the symmetric one cannot: its grid
// stays within ±absMax). An asymmetric group whose range reaches 2^127 is quantized at half
// scale, y = 2 * Q(x / 2): there max - min, x - zp and every grid point are finite, and since
// halving is exact this is the formula itself wherever the formula is finite. One thing the
// formula cannot give finitely: a zero point beyond -FLT_MAX (min within half a step of it,
// rounded down). It is clamped to -FLT_MAX, moving the grid up by under half a step, so every
// value stays finite and packing can store the group. The rest of the data takes the loops below
// untouched; the half-scale groups, rare, take a scalar loop of their own.

import { rangeOf, absMaxBits, NON_FINITE_BITS } from './stats';
import { SPREAD_STEP4, spreadIndices4, stochasticOffset, stochasticOffset4 } from './rounding';
import { blendValue, blend4 } from './blend';

const fusedRange = memory.data(8);

const FLOAT_MAX: f32 = 3.4028234663852886e38;
export const HALVING_RANGE: f32 = 1.7014118346046923e38; // 2^127

/** Set by asymmetricGroup: the group's scale and zero point, at half scale when groupHalved. */
export let groupScale: f32 = 0;
export let groupZero: f32 = 0;
export let groupHalved = false;

/**
 * Whether an asymmetric group whose full-scale scale is `scale` is quantized at half scale (its
 * range reaches 2^127). A function of the scale alone, so unpacking finds it from a stored scale.
 */
@inline export function atHalfScale(scale: f32, invLevels: f32): bool {
  return scale >= HALVING_RANGE * invLevels;
}

/** An asymmetric group's scale and zero point (0 when the scale is 0), into groupScale etc. */
@inline export function asymmetricGroup(groupMin: f32, groupMax: f32, invLevels: f32): void {
  // Halved first: max - min itself may overflow.
  const halfScale = (groupMax * 0.5 - groupMin * 0.5) * invLevels;
  groupHalved = atHalfScale(halfScale * 2, invLevels);
  if (groupHalved) {
    groupScale = halfScale;
    groupZero = max<f32>(nearest<f32>(groupMin * 0.5 / halfScale) * halfScale, FLOAT_MAX * -0.5);
  } else {
    groupScale = (groupMax - groupMin) * invLevels;
    groupZero = groupScale > 0 ? max<f32>(nearest<f32>(groupMin / groupScale) * groupScale, -FLOAT_MAX) : 0;
  }
}

/**
 * The full grid's scale m / -2^(b-1) from the group's range (`invHalf` = 2^-(b-1): dividing by a
 * power of two and multiplying by its inverse round alike). An all-zero group gets +0.
 */
@inline export function fullScale(groupMin: f32, groupMax: f32, invHalf: f32): f32 {
  const m = select<f32>(groupMax, groupMin, abs<f32>(groupMax) > abs<f32>(groupMin));
  const scale = m * -invHalf;
  return select<f32>(0, scale, scale == 0);
}

/** The grid index of x in a group at half scale: clamp(round((x/2 - zp) / s + p), lo, hi). */
@inline export function halvedIndex(x: f32, scale: f32, zero: f32, lo: f32, hi: f32, stochastic: bool, key: u32, index: u32): f32 {
  let v = (x * 0.5 - zero) / scale;
  if (stochastic) v += stochasticOffset(index, key);
  const r = nearest<f32>(v);
  return select<f32>(hi, select<f32>(lo, r, r < lo), hi < r);
}

/**
 * Quantizes `groupCount` contiguous groups of `groupSize` float32 values from `src` into `dst`
 * (the same address quantizes in place). With `ranges` (min, max per group, from groupRanges)
 * the groups are known finite; with ranges = 0 each group's range is computed here and the
 * kernel returns the index of the first group holding a NaN or ±Inf before writing it.
 * Returns -1 when every group was written. `firstIndex` is the tensor index of src[0] (the
 * counter of the stochastic noise). A group whose scale is 0 (all zero, or constant when
 * asymmetric) is copied unchanged. `full` (symmetric only) selects the full grid.
 */
export function quantizeGrid(
  src: usize, dst: usize, groupCount: i32, groupSize: i32, ranges: usize, bits: i32, asymmetric: bool, full: bool,
  stochastic: bool, key: u32, firstIndex: u32, blend: bool, ratio: f32, rest: f32,
): i32 {
  const levels = <f32>(1 << bits);
  const invLevels: f32 = 1.0 / levels;
  const lo: f32 = asymmetric ? 0 : -levels * 0.5;
  const hi: f32 = asymmetric ? levels - 1 : levels * 0.5 - 1;
  const variant = (asymmetric ? 4 : 0) | (stochastic ? 2 : 0) | (blend ? 1 : 0);
  for (let g = 0; g < groupCount; g++) {
    const offset = <usize>g * <usize>groupSize << 2;
    const from = src + offset, to = dst + offset;
    const first = firstIndex + <u32>g * <u32>groupSize;
    let scale: f32, zero: f32 = 0;
    if (asymmetric || full) {
      // One range pass for both grids that need the signed ends (inlined once: it is large).
      let range = ranges + (<usize>g << 3);
      if (!ranges) {
        range = fusedRange;
        if (!rangeOf(from, groupSize, range)) return g;
      }
      if (full) {
        scale = fullScale(load<f32>(range), load<f32>(range, 4), invLevels * 2);
      } else {
        asymmetricGroup(load<f32>(range), load<f32>(range, 4), invLevels);
        scale = groupScale;
        zero = groupZero;
        if (groupHalved) {
          halvedGroup(from, to, groupSize, first, scale, zero, hi, stochastic, key, blend, ratio, rest);
          continue;
        }
      }
    } else {
      let absMax: f32;
      if (ranges) {
        absMax = max<f32>(abs<f32>(load<f32>(ranges + (<usize>g << 3))), abs<f32>(load<f32>(ranges + (<usize>g << 3), 4)));
      } else {
        const bitsOfMax = absMaxBits(from, groupSize);
        if (bitsOfMax >= NON_FINITE_BITS) return g;
        absMax = reinterpret<f32>(bitsOfMax);
      }
      scale = absMax * (invLevels * 2);
    }
    if (scale == 0) {
      if (to != from) memory.copy(to, from, <usize>groupSize << 2);
      continue;
    }
    // Literal flags let the optimizer specialise one loop per variant.
    switch (variant) {
      case 0: gridGroup(from, to, groupSize, first, scale, zero, lo, hi, false, false, false, key, ratio, rest); break;
      case 1: gridGroup(from, to, groupSize, first, scale, zero, lo, hi, false, false, true, key, ratio, rest); break;
      case 2: gridGroup(from, to, groupSize, first, scale, zero, lo, hi, false, true, false, key, ratio, rest); break;
      case 3: gridGroup(from, to, groupSize, first, scale, zero, lo, hi, false, true, true, key, ratio, rest); break;
      case 4: gridGroup(from, to, groupSize, first, scale, zero, lo, hi, true, false, false, key, ratio, rest); break;
      case 5: gridGroup(from, to, groupSize, first, scale, zero, lo, hi, true, false, true, key, ratio, rest); break;
      case 6: gridGroup(from, to, groupSize, first, scale, zero, lo, hi, true, true, false, key, ratio, rest); break;
      default: gridGroup(from, to, groupSize, first, scale, zero, lo, hi, true, true, true, key, ratio, rest);
    }
  }
  return -1;
}

@inline function gridGroup(
  from: usize, to: usize, n: i32, first: u32, scale: f32, zero: f32, lo: f32, hi: f32,
  ASYMMETRIC: bool, STOCHASTIC: bool, BLEND: bool, key: u32, ratio: f32, rest: f32,
): void {
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    const vScale = f32x4.splat(scale), vZero = f32x4.splat(zero);
    const vLo = f32x4.splat(lo), vHi = f32x4.splat(hi);
    const vRatio = f32x4.splat(ratio), vRest = f32x4.splat(rest);
    const vKey = i32x4.splat(key);
    const vStep = i32x4.splat(SPREAD_STEP4);
    let spread = spreadIndices4(first);
    for (; i + 4 <= n; i += 4) {
      const offset = <usize>i << 2;
      const x = v128.load(from + offset);
      let v = f32x4.div(ASYMMETRIC ? f32x4.sub(x, vZero) : x, vScale);
      if (STOCHASTIC) {
        v = f32x4.add(v, stochasticOffset4(spread, vKey));
        spread = i32x4.add(spread, vStep);
      }
      let q = f32x4.mul(f32x4.pmin(f32x4.pmax(f32x4.nearest(v), vLo), vHi), vScale);
      if (ASYMMETRIC) q = f32x4.add(q, vZero);
      v128.store(to + offset, BLEND ? blend4(x, q, vRatio, vRest) : q);
    }
  }
  for (; i < n; i++) {
    const offset = <usize>i << 2;
    const x = load<f32>(from + offset);
    let v = (ASYMMETRIC ? x - zero : x) / scale;
    if (STOCHASTIC) v += stochasticOffset(first + <u32>i, key);
    let r = nearest<f32>(v);
    r = select<f32>(lo, r, r < lo);
    r = select<f32>(hi, r, hi < r);
    let q = r * scale;
    if (ASYMMETRIC) q += zero;
    store<f32>(to + offset, BLEND ? blendValue(x, q, ratio, rest) : q);
  }
}

/** A group at half scale (see asymmetricGroup): y = 2 * (q * s + zp), one element at a time. */
function halvedGroup(
  from: usize, to: usize, n: i32, first: u32, scale: f32, zero: f32, hi: f32,
  stochastic: bool, key: u32, blend: bool, ratio: f32, rest: f32,
): void {
  for (let i = 0; i < n; i++) {
    const offset = <usize>i << 2;
    const x = load<f32>(from + offset);
    const q = (halvedIndex(x, scale, zero, 0, hi, stochastic, key, first + <u32>i) * scale + zero) * 2;
    store<f32>(to + offset, blend ? blendValue(x, q, ratio, rest) : q);
  }
}
