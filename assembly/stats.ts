// Group statistics: min, max, abs-max and mean |x| of a contiguous group of float32 values.
// The host validates finiteness (firstNonFinite) before any kernel runs, so the reductions
// can use pmin/pmax, which V8 lowers to single instructions (f32x4.min/max are NaN-exact and
// about 4x slower).

/** Written by groupMinMax: multi-value returns would cost a pointer round trip per group. */
export let groupMin: f32 = 0;
export let groupMax: f32 = 0;
/** Written by absSum: how many elements passed the threshold. */
export let absSumCount: i32 = 0;

// Sums run over 16 lanes (four v128 accumulators) so the adds pipeline; the scalar build keeps
// the same 16 partial sums in this scratch so both builds add in the same order, bit for bit.
const SUM_LANES = 16;
const scalarLanes = memory.data(SUM_LANES * 4);

/** Index of the first NaN or ±Inf in `data[0..n)`, or -1. */
export function firstNonFinite(data: usize, n: i32): i32 {
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    // x - x is 0 for finite x and NaN otherwise; NaN survives the sum, so a block is checked
    // once at its end and scanned element by element only when it holds a bad value.
    const BLOCK = 1024;
    for (; i + BLOCK <= n; i += BLOCK) {
      let poison = f32x4.splat(0);
      const blockEnd = data + (<usize>(i + BLOCK) << 2);
      for (let p = data + (<usize>i << 2); p < blockEnd; p += 16) {
        const x = v128.load(p);
        poison = f32x4.add(poison, f32x4.sub(x, x));
      }
      if (v128.any_true(f32x4.ne(poison, poison))) break;
    }
  }
  for (; i < n; i++) {
    const x = load<f32>(data + (<usize>i << 2));
    if (x - x != 0) return i;
  }
  return -1;
}

/** Sets groupMin and groupMax for `data[0..n)` (n >= 1, all finite). */
@inline export function groupMinMax(data: usize, n: i32): void {
  let lo = load<f32>(data);
  let hi = lo;
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    if (n >= 16) {
      let lo0 = v128.load(data), lo1 = v128.load(data, 16), lo2 = v128.load(data, 32), lo3 = v128.load(data, 48);
      let hi0 = lo0, hi1 = lo1, hi2 = lo2, hi3 = lo3;
      for (i = 16; i + 16 <= n; i += 16) {
        const p = data + (<usize>i << 2);
        const x0 = v128.load(p), x1 = v128.load(p, 16), x2 = v128.load(p, 32), x3 = v128.load(p, 48);
        lo0 = f32x4.pmin(lo0, x0); hi0 = f32x4.pmax(hi0, x0);
        lo1 = f32x4.pmin(lo1, x1); hi1 = f32x4.pmax(hi1, x1);
        lo2 = f32x4.pmin(lo2, x2); hi2 = f32x4.pmax(hi2, x2);
        lo3 = f32x4.pmin(lo3, x3); hi3 = f32x4.pmax(hi3, x3);
      }
      const l = f32x4.pmin(f32x4.pmin(lo0, lo1), f32x4.pmin(lo2, lo3));
      const h = f32x4.pmax(f32x4.pmax(hi0, hi1), f32x4.pmax(hi2, hi3));
      lo = min2(min2(f32x4.extract_lane(l, 0), f32x4.extract_lane(l, 1)), min2(f32x4.extract_lane(l, 2), f32x4.extract_lane(l, 3)));
      hi = max2(max2(f32x4.extract_lane(h, 0), f32x4.extract_lane(h, 1)), max2(f32x4.extract_lane(h, 2), f32x4.extract_lane(h, 3)));
    }
  }
  for (; i < n; i++) {
    const x = load<f32>(data + (<usize>i << 2));
    lo = min2(lo, x);
    hi = max2(hi, x);
  }
  groupMin = lo;
  groupMax = hi;
}

// Same selection rule as f32x4.pmin/pmax, so both builds agree even on the sign of zero.
@inline function min2(a: f32, b: f32): f32 { return b < a ? b : a; }
@inline function max2(a: f32, b: f32): f32 { return a < b ? b : a; }

/**
 * Sum of |x| over the elements of `data[0..n)` with |x| > threshold (all of them when the
 * threshold is negative), in a fixed 16-lane order; sets absSumCount.
 */
@inline export function absSum(data: usize, n: i32, threshold: f32): f32 {
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
      const m0 = f32x4.gt(a0, t), m1 = f32x4.gt(a1, t), m2 = f32x4.gt(a2, t), m3 = f32x4.gt(a3, t);
      s0 = f32x4.add(s0, v128.and(a0, m0));
      s1 = f32x4.add(s1, v128.and(a1, m1));
      s2 = f32x4.add(s2, v128.and(a2, m2));
      s3 = f32x4.add(s3, v128.and(a3, m3));
      // A true mask lane is -1: subtracting counts it.
      c = i32x4.sub(c, i32x4.add(i32x4.add(m0, m1), i32x4.add(m2, m3)));
    }
    const s = f32x4.add(f32x4.add(s0, s1), f32x4.add(s2, s3));
    total = (f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1)) + (f32x4.extract_lane(s, 2) + f32x4.extract_lane(s, 3));
    count = i32x4.extract_lane(c, 0) + i32x4.extract_lane(c, 1) + i32x4.extract_lane(c, 2) + i32x4.extract_lane(c, 3);
  } else {
    memory.fill(scalarLanes, 0, SUM_LANES * 4);
    for (; i < blocks; i += SUM_LANES) {
      for (let lane = 0; lane < SUM_LANES; lane++) {
        const a = abs<f32>(load<f32>(data + (<usize>(i + lane) << 2)));
        if (a > threshold) {
          const slot = scalarLanes + (<usize>lane << 2);
          store<f32>(slot, load<f32>(slot) + a);
          count++;
        }
      }
    }
    total = combineLanes();
  }
  for (; i < n; i++) {
    const a = abs<f32>(load<f32>(data + (<usize>i << 2)));
    if (a > threshold) {
      total += a;
      count++;
    }
  }
  absSumCount = count;
  return total;
}

// The SIMD build's reduction order: lane k of (s0 + s1) + (s2 + s3), then (k0 + k1) + (k2 + k3).
@inline function combineLanes(): f32 {
  const k0 = lanePair(0), k1 = lanePair(1), k2 = lanePair(2), k3 = lanePair(3);
  return (k0 + k1) + (k2 + k3);
}

@inline function lanePair(k: i32): f32 {
  const p = scalarLanes + (<usize>k << 2);
  return (load<f32>(p) + load<f32>(p, 16)) + (load<f32>(p, 32) + load<f32>(p, 48));
}

/** Per group: min, max, abs-max, mean |x| (four float32 each) into `out`. */
export function groupStats(data: usize, groupCount: i32, groupSize: i32, out: usize): void {
  for (let g = 0; g < groupCount; g++) {
    const base = data + (<usize>g * <usize>groupSize << 2);
    groupMinMax(base, groupSize);
    const o = out + (<usize>g << 4);
    store<f32>(o, groupMin);
    store<f32>(o, groupMax, 4);
    store<f32>(o, max2(abs<f32>(groupMin), abs<f32>(groupMax)), 8);
    store<f32>(o, absSum(base, groupSize, -1) / <f32>groupSize, 12);
  }
}
