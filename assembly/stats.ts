// Group statistics, the first of the two passes every quantization makes: per group the range
// (min, max) or the mean |x|, and whether the group holds a NaN or ±Inf. The host reads the
// verdict for the whole tensor before the second pass writes anything, so bad input leaves the
// data untouched. Because NaN is ruled out first, the reductions can use pmin/pmax, which V8
// lowers to single instructions (f32x4.min/max are NaN-exact and about 4x slower).

// Sums run over 16 lanes (four v128 accumulators) so the adds pipeline; the scalar build keeps
// the same 16 partial sums in locals, so both builds add in the same order, bit for bit.
const SUM_LANES = 16;

/** Written by absSum: how many elements passed its threshold. */
export let absSumCount: i32 = 0;

/**
 * Writes min and max of each group to `out` (two float32 per group) and returns the index of
 * the first group holding a NaN or ±Inf, or -1.
 */
export function groupRanges(data: usize, groupCount: i32, groupSize: i32, out: usize): i32 {
  let firstBad = -1;
  for (let g = 0; g < groupCount; g++) {
    const base = data + (<usize>g * <usize>groupSize << 2);
    if (!rangeOf(base, groupSize, out + (<usize>g << 3)) && firstBad < 0) firstBad = g;
  }
  return firstBad;
}

/**
 * Writes (-m, m) for each group to `out`, m = max |x|: the range symmetric quantization reads
 * (its scale depends on max(|min|, |max|) alone), found with one integer max per vector instead
 * of groupRanges' two float reductions and NaN test. Returns the index of the first group
 * holding a NaN or ±Inf, before writing its pair, or -1.
 */
export function groupAbsRanges(data: usize, groupCount: i32, groupSize: i32, out: usize): i32 {
  for (let g = 0; g < groupCount; g++) {
    const bits = absMaxBits(data + (<usize>g * <usize>groupSize << 2), groupSize);
    if (bits >= NON_FINITE_BITS) return g;
    const o = out + (<usize>g << 3);
    store<f32>(o, -reinterpret<f32>(bits));
    store<f32>(o, reinterpret<f32>(bits), 4);
  }
  return -1;
}

/**
 * Writes mean |x| of each group to `out` (one float32 per group) and returns the index of the
 * first group holding a NaN or ±Inf, or -1.
 */
export function groupAbsMeans(data: usize, groupCount: i32, groupSize: i32, out: usize): i32 {
  let firstBad = -1;
  for (let g = 0; g < groupCount; g++) {
    const mean = groupAbsMean(data + (<usize>g * <usize>groupSize << 2), groupSize);
    store<f32>(out + (<usize>g << 2), mean);
    if (mean != mean && firstBad < 0) firstBad = g;
  }
  return firstBad;
}

/** Group g's mean |x|: stored in `means` (two passes), or computed from its data (fused). */
@inline export function groupMeanAbs(data: usize, n: i32, means: usize, g: i32): f32 {
  return means ? load<f32>(means + (<usize>g << 2)) : groupAbsMean(data, n);
}

/**
 * mean |x| of data[0..n) in float32 (DeepSpeed: norm(p=1) / n), or NaN when a NaN or ±Inf is
 * present. Where the sum overflows from finite values the mean is 2^33 * mean(|x| * 2^-33)
 * (see scaledAbsSum).
 */
@inline export function groupAbsMean(data: usize, n: i32): f32 {
  const sum = absSum(data, n, 0, false);
  if (isFinite(sum)) return sum / <f32>n;
  return hasNonFinite(data, n) ? NaN : scaledAbsSum(data, n, 0, false) / <f32>n * SCALED_SUM_UNIT;
}

/**
 * mean |x| over the elements of data[0..n) with |x| > threshold (ternary's alpha), and 0 when
 * there are none: at the bottom of the subnormals 0.7 * mean can round up past every |x|, and
 * alpha is then stored by packing, where 0 / 0 would decode as NaN. Only a group whose whole sum
 * overflowed can overflow here: it is summed again as groupAbsMean does.
 */
@inline export function aboveThresholdMean(data: usize, n: i32, threshold: f32): f32 {
  const sum = absSum(data, n, threshold, true);
  if (absSumCount == 0) return 0;
  if (isFinite(sum)) return sum / <f32>absSumCount;
  return scaledAbsSum(data, n, threshold, true) / <f32>absSumCount * SCALED_SUM_UNIT;
}

/** Per group: min, max, abs-max, mean |x| (four float32 each) into `out`. */
export function groupStats(data: usize, groupCount: i32, groupSize: i32, out: usize): void {
  for (let g = 0; g < groupCount; g++) {
    const base = data + (<usize>g * <usize>groupSize << 2);
    const o = out + (<usize>g << 4);
    rangeOf(base, groupSize, o);
    store<f32>(o, max2(abs<f32>(load<f32>(o)), abs<f32>(load<f32>(o, 4))), 8);
    store<f32>(o, groupAbsMean(base, groupSize), 12);
  }
}

/** min and max of data[0..n) into out[0], out[1]; false when a NaN or ±Inf is present. */
@inline export function rangeOf(data: usize, n: i32, out: usize): bool {
  let lo = load<f32>(data);
  let hi = lo;
  let nan = false;
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    if (n >= 16) {
      let lo0 = v128.load(data), lo1 = v128.load(data, 16), lo2 = v128.load(data, 32), lo3 = v128.load(data, 48);
      let hi0 = lo0, hi1 = lo1, hi2 = lo2, hi3 = lo3;
      // pmin/pmax may drop a NaN, so NaN lanes (x != x) are collected separately;
      // ±Inf shows in the range itself.
      let poison = v128.or(v128.or(f32x4.ne(lo0, lo0), f32x4.ne(lo1, lo1)), v128.or(f32x4.ne(lo2, lo2), f32x4.ne(lo3, lo3)));
      for (i = 16; i + 16 <= n; i += 16) {
        const p = data + (<usize>i << 2);
        const x0 = v128.load(p), x1 = v128.load(p, 16), x2 = v128.load(p, 32), x3 = v128.load(p, 48);
        lo0 = f32x4.pmin(lo0, x0); hi0 = f32x4.pmax(hi0, x0);
        lo1 = f32x4.pmin(lo1, x1); hi1 = f32x4.pmax(hi1, x1);
        lo2 = f32x4.pmin(lo2, x2); hi2 = f32x4.pmax(hi2, x2);
        lo3 = f32x4.pmin(lo3, x3); hi3 = f32x4.pmax(hi3, x3);
        poison = v128.or(poison, v128.or(v128.or(f32x4.ne(x0, x0), f32x4.ne(x1, x1)), v128.or(f32x4.ne(x2, x2), f32x4.ne(x3, x3))));
      }
      const l = f32x4.pmin(f32x4.pmin(lo0, lo1), f32x4.pmin(lo2, lo3));
      const h = f32x4.pmax(f32x4.pmax(hi0, hi1), f32x4.pmax(hi2, hi3));
      lo = min2(min2(f32x4.extract_lane(l, 0), f32x4.extract_lane(l, 1)), min2(f32x4.extract_lane(l, 2), f32x4.extract_lane(l, 3)));
      hi = max2(max2(f32x4.extract_lane(h, 0), f32x4.extract_lane(h, 1)), max2(f32x4.extract_lane(h, 2), f32x4.extract_lane(h, 3)));
      nan = v128.any_true(poison);
    }
  }
  if (!ASC_FEATURE_SIMD) {
    // Two independent chains per bound, so compare-and-select latencies overlap.
    let lo1 = lo, hi1 = hi;
    for (; i + 2 <= n; i += 2) {
      const x0 = load<f32>(data + (<usize>i << 2)), x1 = load<f32>(data + (<usize>i << 2), 4);
      lo = min2(lo, x0); hi = max2(hi, x0);
      lo1 = min2(lo1, x1); hi1 = max2(hi1, x1);
      nan = nan | (x0 != x0) | (x1 != x1);
    }
    lo = min2(lo, lo1);
    hi = max2(hi, hi1);
  }
  for (; i < n; i++) {
    const x = load<f32>(data + (<usize>i << 2));
    lo = min2(lo, x);
    hi = max2(hi, x);
    nan = nan | (x != x);
  }
  store<f32>(out, lo);
  store<f32>(out, hi, 4);
  return !nan && isFinite(lo) && isFinite(hi);
}

/**
 * The bit pattern of max |x| over data[0..n). Non-negative floats order like their bits, so an
 * integer max finds it in two instructions per vector, and NaN and ±Inf (exponent all ones,
 * 0x7f800000 and above) win the max: a result >= NON_FINITE_BITS means one is present.
 */
@inline export function absMaxBits(data: usize, n: i32): u32 {
  let m: u32 = 0;
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    const magnitude = i32x4.splat(0x7fffffff);
    let m0 = i32x4.splat(0), m1 = m0, m2 = m0, m3 = m0;
    for (; i + 16 <= n; i += 16) {
      const p = data + (<usize>i << 2);
      m0 = i32x4.max_u(m0, v128.and(v128.load(p), magnitude));
      m1 = i32x4.max_u(m1, v128.and(v128.load(p, 16), magnitude));
      m2 = i32x4.max_u(m2, v128.and(v128.load(p, 32), magnitude));
      m3 = i32x4.max_u(m3, v128.and(v128.load(p, 48), magnitude));
    }
    const v = i32x4.max_u(i32x4.max_u(m0, m1), i32x4.max_u(m2, m3));
    m = max<u32>(max<u32>(i32x4.extract_lane(v, 0), i32x4.extract_lane(v, 1)), max<u32>(i32x4.extract_lane(v, 2), i32x4.extract_lane(v, 3)));
  }
  if (!ASC_FEATURE_SIMD) {
    // Four independent chains: one compare-and-select chain waits on itself every element.
    let m1: u32 = 0, m2: u32 = 0, m3: u32 = 0;
    for (; i + 4 <= n; i += 4) {
      const p = data + (<usize>i << 2);
      m = max<u32>(m, load<u32>(p) & 0x7fffffff);
      m1 = max<u32>(m1, load<u32>(p, 4) & 0x7fffffff);
      m2 = max<u32>(m2, load<u32>(p, 8) & 0x7fffffff);
      m3 = max<u32>(m3, load<u32>(p, 12) & 0x7fffffff);
    }
    m = max<u32>(max<u32>(m, m1), max<u32>(m2, m3));
  }
  for (; i < n; i++) m = max<u32>(m, load<u32>(data + (<usize>i << 2)) & 0x7fffffff);
  return m;
}

export const NON_FINITE_BITS: u32 = 0x7f800000;

/**
 * The index of the first of `groupCount` groups holding a NaN or ±Inf, or -1: the check of
 * host data before anything is written. One integer max over the whole span decides the
 * common case; only a span holding one is searched group by group.
 */
export function firstNonFiniteGroup(data: usize, groupCount: i32, groupSize: i32): i32 {
  if (!anyNonFinite(data, groupCount * groupSize)) return -1;
  for (let g = 0; g < groupCount; g++) {
    if (anyNonFinite(data + (<usize>g * <usize>groupSize << 2), groupSize)) return g;
  }
  return -1;
}

/** Whether data[0..n) holds a NaN or ±Inf. */
@inline function anyNonFinite(data: usize, n: i32): bool {
  if (ASC_FEATURE_SIMD) return absMaxBits(data, n) >= NON_FINITE_BITS;
  // Two floats per 64-bit word, half the operations of absMaxBits' scalar loop: a half is NaN or
  // ±Inf when its exponent bits are all ones, and only then does adding 2^23 to those bits carry
  // into the half's sign bit (31 or 63); the low half's sum stays below 2^32, so nothing carries
  // across the halves.
  let any0: u64 = 0, any1: u64 = 0;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const p = data + (<usize>i << 2);
    any0 |= (load<u64>(p) & 0x7f8000007f800000) + 0x0080000000800000;
    any1 |= (load<u64>(p, 8) & 0x7f8000007f800000) + 0x0080000000800000;
  }
  let bad = ((any0 | any1) & 0x8000000080000000) != 0;
  for (; i < n; i++) bad = bad | ((load<u32>(data + (<usize>i << 2)) & NON_FINITE_BITS) == NON_FINITE_BITS);
  return bad;
}

function hasNonFinite(data: usize, n: i32): bool {
  for (let i = 0; i < n; i++) {
    if (!isFinite(load<f32>(data + (<usize>i << 2)))) return true;
  }
  return false;
}

// Same selection rule as f32x4.pmin/pmax, so both builds agree even on the sign of zero.
@inline function min2(a: f32, b: f32): f32 { return select<f32>(b, a, b < a); }
@inline function max2(a: f32, b: f32): f32 { return select<f32>(b, a, a < b); }

@inline function maskedAbs(p: usize, offset: usize, threshold: f32, MASKED: bool): f32 {
  const a = abs<f32>(load<f32>(p + offset));
  return MASKED ? keepWhere(a, a > threshold) : a;
}

/**
 * x where `keep`, else +0, as select<f32>(x, 0, keep) gives it, but on the bits: V8 compiles a
 * float select to a branch, and where the condition follows the sign or size of random weights
 * that branch is mispredicted about every other element (the scalar ternary kernel ran 4x
 * slower than the grid's for it).
 */
@inline export function keepWhere(x: f32, keep: bool): f32 {
  return reinterpret<f32>(reinterpret<u32>(x) & -<u32>keep);
}

// n values near FLT_MAX sum past it although their mean fits. Such a group is summed again as
// |x| * 2^-33 and its mean scaled back by 2^33: the formula on x * 2^-33, which is the formula
// itself (a power-of-two scaling is exact) save for |x| < 2^-93, whose lost bits cannot reach a
// sum past 2^128. No group that fits in memory (under 2^32 elements) can overflow at 2^-33.
// shaders/stats.wgsl sums at the same scale.
const SCALED_SUM_UNIT: f32 = 8589934592.0; // 2^33

/**
 * The sum of |x| * 2^-33 over data[0..n) (with `masked`, over |x| > threshold only); sets
 * absSumCount. Only overflowing groups come here: one element at a time, the same order in both
 * builds.
 */
function scaledAbsSum(data: usize, n: i32, threshold: f32, masked: bool): f32 {
  let total: f32 = 0;
  let count = 0;
  for (let i = 0; i < n; i++) {
    const a = abs<f32>(load<f32>(data + (<usize>i << 2)));
    if (!masked || a > threshold) {
      total += a * (1 / SCALED_SUM_UNIT);
      count++;
    }
  }
  absSumCount = count;
  return total;
}

/**
 * Sum of |x| in a fixed 16-lane order: over all of data[0..n) (a NaN or Inf then shows in the
 * sum), or with MASKED over the elements with |x| > threshold only; sets absSumCount.
 */
@inline export function absSum(data: usize, n: i32, threshold: f32, MASKED: bool): f32 {
  let total: f32 = 0;
  let count = 0;
  let i = 0;
  const blocks = n & ~(SUM_LANES - 1);
  if (ASC_FEATURE_SIMD) {
    const t = f32x4.splat(threshold);
    let s0 = f32x4.splat(0), s1 = s0, s2 = s0, s3 = s0;
    let c = i32x4.splat(0);
    for (; i < blocks; i += SUM_LANES) {
      const p = data + (<usize>i << 2);
      const a0 = f32x4.abs(v128.load(p)), a1 = f32x4.abs(v128.load(p, 16));
      const a2 = f32x4.abs(v128.load(p, 32)), a3 = f32x4.abs(v128.load(p, 48));
      if (MASKED) {
        const m0 = f32x4.gt(a0, t), m1 = f32x4.gt(a1, t), m2 = f32x4.gt(a2, t), m3 = f32x4.gt(a3, t);
        s0 = f32x4.add(s0, v128.and(a0, m0));
        s1 = f32x4.add(s1, v128.and(a1, m1));
        s2 = f32x4.add(s2, v128.and(a2, m2));
        s3 = f32x4.add(s3, v128.and(a3, m3));
        // A true mask lane is -1: subtracting counts it.
        c = i32x4.sub(c, i32x4.add(i32x4.add(m0, m1), i32x4.add(m2, m3)));
      } else {
        s0 = f32x4.add(s0, a0);
        s1 = f32x4.add(s1, a1);
        s2 = f32x4.add(s2, a2);
        s3 = f32x4.add(s3, a3);
      }
    }
    // Lane k of (s0 + s1) + (s2 + s3), then (k0 + k1) + (k2 + k3): mirrored below.
    const s = f32x4.add(f32x4.add(s0, s1), f32x4.add(s2, s3));
    total = (f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1)) + (f32x4.extract_lane(s, 2) + f32x4.extract_lane(s, 3));
    count = MASKED ? i32x4.extract_lane(c, 0) + i32x4.extract_lane(c, 1) + i32x4.extract_lane(c, 2) + i32x4.extract_lane(c, 3) : blocks;
  } else {
    let l0: f32 = 0, l1: f32 = 0, l2: f32 = 0, l3: f32 = 0, l4: f32 = 0, l5: f32 = 0, l6: f32 = 0, l7: f32 = 0;
    let l8: f32 = 0, l9: f32 = 0, l10: f32 = 0, l11: f32 = 0, l12: f32 = 0, l13: f32 = 0, l14: f32 = 0, l15: f32 = 0;
    for (; i < blocks; i += SUM_LANES) {
      const p = data + (<usize>i << 2);
      l0 += maskedAbs(p, 0, threshold, MASKED); l1 += maskedAbs(p, 4, threshold, MASKED);
      l2 += maskedAbs(p, 8, threshold, MASKED); l3 += maskedAbs(p, 12, threshold, MASKED);
      l4 += maskedAbs(p, 16, threshold, MASKED); l5 += maskedAbs(p, 20, threshold, MASKED);
      l6 += maskedAbs(p, 24, threshold, MASKED); l7 += maskedAbs(p, 28, threshold, MASKED);
      l8 += maskedAbs(p, 32, threshold, MASKED); l9 += maskedAbs(p, 36, threshold, MASKED);
      l10 += maskedAbs(p, 40, threshold, MASKED); l11 += maskedAbs(p, 44, threshold, MASKED);
      l12 += maskedAbs(p, 48, threshold, MASKED); l13 += maskedAbs(p, 52, threshold, MASKED);
      l14 += maskedAbs(p, 56, threshold, MASKED); l15 += maskedAbs(p, 60, threshold, MASKED);
    }
    const k0 = (l0 + l4) + (l8 + l12), k1 = (l1 + l5) + (l9 + l13);
    const k2 = (l2 + l6) + (l10 + l14), k3 = (l3 + l7) + (l11 + l15);
    total = (k0 + k1) + (k2 + k3);
    if (MASKED) {
      for (let j = 0; j < blocks; j++) count += <i32>(abs<f32>(load<f32>(data + (<usize>j << 2))) > threshold);
    } else {
      count = blocks;
    }
  }
  for (; i < n; i++) {
    const a = abs<f32>(load<f32>(data + (<usize>i << 2)));
    // Adding +0 for a masked-out element leaves the sum as it is (it is never -0).
    const taken = !MASKED || a > threshold;
    total += select<f32>(a, 0, taken);
    count += <i32>taken;
  }
  absSumCount = count;
  return total;
}

/**
 * How far `b` lies from `a` (n float32 each), added to `out` (five float64): out[0] the largest
 * |a[i] - b[i]| (NaN once one is NaN), out[1 + (phase + i) % 4] the squares, each lane summed in
 * order of i. The differences are taken in float64, where they are exact. Both builds, and
 * addErrors in src/packed/errors.ts, add in this order, so an error summary has the same bits
 * whichever packer made it and however its tensor was split.
 */
export function errorSums(a: usize, b: usize, n: i32, phase: i32, out: usize): void {
  let max = load<f64>(out);
  let i = 0;
  // One at a time up to the first element of lane 0.
  for (; i < n && ((phase + i) & 3) != 0; i++) max = addError(a, b, i, out + (<usize>(((phase + i) & 3) + 1) << 3), max);
  const whole = i + ((n - i) & ~3);
  if (ASC_FEATURE_SIMD) {
    let low = v128.load(out, 8);
    let high = v128.load(out, 24);
    let top = f64x2.splat(max);
    for (; i < whole; i += 4) {
      const x = v128.load(a + (<usize>i << 2));
      const y = v128.load(b + (<usize>i << 2));
      const d0 = f64x2.sub(f64x2.promote_low_f32x4(x), f64x2.promote_low_f32x4(y));
      const d1 = f64x2.sub(f64x2.promote_low_f32x4(v128.shuffle<i64>(x, x, 1, 1)), f64x2.promote_low_f32x4(v128.shuffle<i64>(y, y, 1, 1)));
      low = f64x2.add(low, f64x2.mul(d0, d0));
      high = f64x2.add(high, f64x2.mul(d1, d1));
      // pmax, a single instruction where the NaN-exact max is several: a NaN shows in the sums.
      top = f64x2.pmax(top, f64x2.pmax(f64x2.abs(d0), f64x2.abs(d1)));
    }
    v128.store(out, low, 8);
    v128.store(out, high, 24);
    max = bigger(max, bigger(f64x2.extract_lane(top, 0), f64x2.extract_lane(top, 1)));
  } else {
    let s0 = load<f64>(out, 8), s1 = load<f64>(out, 16), s2 = load<f64>(out, 24), s3 = load<f64>(out, 32);
    for (; i < whole; i += 4) {
      const p = a + (<usize>i << 2);
      const q = b + (<usize>i << 2);
      const d0 = <f64>load<f32>(p) - <f64>load<f32>(q);
      const d1 = <f64>load<f32>(p, 4) - <f64>load<f32>(q, 4);
      const d2 = <f64>load<f32>(p, 8) - <f64>load<f32>(q, 8);
      const d3 = <f64>load<f32>(p, 12) - <f64>load<f32>(q, 12);
      s0 += d0 * d0;
      s1 += d1 * d1;
      s2 += d2 * d2;
      s3 += d3 * d3;
      max = bigger(max, bigger(bigger(Math.abs(d0), Math.abs(d1)), bigger(Math.abs(d2), Math.abs(d3))));
    }
    store<f64>(out, s0, 8);
    store<f64>(out, s1, 16);
    store<f64>(out, s2, 24);
    store<f64>(out, s3, 32);
  }
  for (; i < n; i++) max = addError(a, b, i, out + (<usize>(((phase + i) & 3) + 1) << 3), max);
  // A NaN difference made its lane's sum NaN (NaN + x is NaN), and no comparison kept it.
  const sums = load<f64>(out, 8) + load<f64>(out, 16) + load<f64>(out, 24) + load<f64>(out, 32);
  store<f64>(out, sums != sums ? NaN : max);
}

/** The larger of two differences (comparisons, not the NaN-exact max: errorSums finds NaN in its sums). */
@inline function bigger(x: f64, y: f64): f64 {
  return x > y ? x : y;
}

/** Element i's squared difference added to the sum at `sum`; returns the new largest difference. */
@inline function addError(a: usize, b: usize, i: i32, sum: usize, max: f64): f64 {
  const d = <f64>load<f32>(a + (<usize>i << 2)) - <f64>load<f32>(b + (<usize>i << 2));
  store<f64>(sum, load<f64>(sum) + d * d);
  return bigger(max, Math.abs(d));
}
