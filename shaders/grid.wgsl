// The integer grid at 3..16 bits, symmetric and asymmetric, nearest or stochastic rounding,
// optionally blended (the twin of assembly/grid.ts):
//
//   symmetric:  s = 2 * max(|min|, |max|) / 2^b,  y = clamp(round(x / s + p), -2^(b-1), 2^(b-1) - 1) * s
//   asymmetric: s = (max - min) / 2^b,  zp = round(min / s) * s,
//               y = clamp(round((x - zp) / s + p), 0, 2^b - 1) * s + zp
//   full:       s = m / -2^(b-1), m = max if |max| > |min| else min,
//               y = clamp(round(x / s + p), -2^(b-1), 2^(b-1) - 1) * s
//
// The full grid (FLAG_FULL, symmetric only; assembly/grid.ts says why it stays finite) has a
// negative scale wherever m > 0: x / s is divided as -x / -s, the same quotient (a correctly
// rounded division is symmetric in sign) by a positive divisor, as divideRounded needs.
//
// Both divisions are correctly rounded (divideRounded), so every value lands where the
// reference puts it, ties included.
//
// A group whose scale is 0 takes its zero point: 0, or an asymmetric group's minimum
// (takeZeroPoint). All-zero and constant groups are thus left as they are. Where the
// WebAssembly kernels also leave unchanged a group whose scale underflows although its values
// differ, the GPU cannot: WGSL lets a device flush subnormals to zero in any operation
// (SwiftShader does), so on such a device any group whose scale would be subnormal (|x| under
// 2^(b-127) symmetric, a range under 2^(b-126) asymmetric) gets scale 0, with values that no
// grid of b bits could store. They become the zero point, the value packing stores for them.
//
// At the top of float32, as in assembly/grid.ts: an asymmetric group whose range reaches 2^127
// is quantized at half scale, y = 2 * Q(x / 2) (the formula itself wherever the formula is
// finite, since halving is exact), and a zero point beyond -FLT_MAX is clamped to -FLT_MAX.

const HALVING_RANGE: f32 = 0x1p127f;

struct GridGroup {
  // Of x / 2 when `halved`; with scale 0 (quantize false) the zero point is the whole grid.
  scale: f32,
  zero: f32,
  quantize: bool,
  halved: bool,
}

// Whether an asymmetric group whose scale (at full scale) is `scale` is quantized at half scale:
// a function of the scale alone, so packing finds it again from a stored scale.
fn atHalfScale(scale: f32) -> bool {
  return hasFlag(FLAG_ASYMMETRIC) && scale >= HALVING_RANGE * job.scaleFactor;
}

// round(lo / s) * s, clamped to -limit. The clamp is decided at half size: WGSL leaves an
// overflowing product indeterminate.
fn zeroPoint(lo: f32, scale: f32, limit: f32) -> f32 {
  let steps = round(divideRounded(lo, scale));
  if (steps * (scale * 0.5) < -0.5 * limit) {
    return -limit;
  }
  return unfused(steps * scale);
}

// The full grid's scale m / -2^(b-1) (job.scaleFactor is 2^(1-b)): m is the value of largest
// magnitude, the minimum on a tie, as in assembly/grid.ts fullScale.
fn fullScale(stats: Partial) -> f32 {
  let m = select(stats.lo, stats.hi, abs(stats.hi) > abs(stats.lo));
  return m * -job.scaleFactor;
}

fn gridGroup(stats: Partial) -> GridGroup {
  let asymmetric = hasFlag(FLAG_ASYMMETRIC);
  if (asymmetric) {
    // Halved first: hi - lo itself may overflow.
    let halfScale = (stats.hi * 0.5 - stats.lo * 0.5) * job.scaleFactor;
    if (atHalfScale(halfScale * 2.0)) {
      return GridGroup(halfScale, zeroPoint(stats.lo * 0.5, halfScale, 0.5 * FLOAT_MAX), true, true);
    }
  }
  var scale: f32;
  if (asymmetric) {
    scale = (stats.hi - stats.lo) * job.scaleFactor;
  } else if (hasFlag(FLAG_FULL)) {
    scale = fullScale(stats);
  } else {
    scale = max(abs(stats.lo), abs(stats.hi)) * job.scaleFactor;
  }
  if (!(abs(scale) > 0.0)) {
    return GridGroup(0.0, select(0.0, stats.lo, asymmetric), false, false);
  }
  var zero = 0.0;
  if (asymmetric) {
    zero = zeroPoint(stats.lo, scale, FLOAT_MAX);
  }
  return GridGroup(scale, zero, true, false);
}

// A scale or zero point as packing stores it: at full scale (2s and 2zp at half scale, both
// finite).
fn atFullScale(value: f32, group: GridGroup) -> f32 {
  return select(value, value * 2.0, group.halved);
}

// The group of a stored scale and zero point.
fn storedGridGroup(scale: f32, zero: f32) -> GridGroup {
  if (atHalfScale(scale)) {
    return GridGroup(scale * 0.5, zero * 0.5, true, true);
  }
  return GridGroup(scale, zero, abs(scale) > 0.0, false);
}

// The grid index of x: clamp(round((x - zp) / s + p), lo, hi), an integer held in a float
// (zp is 0 when symmetric, and x - 0 is x). Packing (shaders/pack.wgsl) stores it as a code;
// `index` is the element's index in its tensor, the counter of the stochastic noise.
fn gridIndex(x: f32, index: u32, group: GridGroup) -> f32 {
  let a = select(x, x * 0.5, group.halved) - group.zero;
  let negative = group.scale < 0.0;
  var v = divideRounded(select(a, -a, negative), select(group.scale, -group.scale, negative));
  if (hasFlag(FLAG_STOCHASTIC)) {
    v += stochasticOffset(index, job.key);
  }
  return clamp(round(v), job.lo, job.hi);
}

// The value of grid index q: q * s, plus zp when asymmetric (unpacking uses it too).
fn gridPoint(q: f32, group: GridGroup) -> f32 {
  var y = unfused(q * group.scale);
  if (hasFlag(FLAG_ASYMMETRIC)) {
    y = y + group.zero;
  }
  if (group.halved) {
    y = y * 2.0;
  }
  return y;
}

fn gridValue(x: f32, index: u32, group: GridGroup) -> f32 {
  return finishValue(x, gridPoint(gridIndex(x, index, group), group));
}

// Whether x holds `value` already: the same bits, or both zeros (a zero keeps its sign).
// Decided on the bits: a device that flushes subnormals compares them equal to 0.
fn holds(x: f32, value: f32) -> bool {
  let a = bitcast<u32>(x);
  let b = bitcast<u32>(value);
  return a == b || ((a | b) & 0x7fffffffu) == 0u;
}

// Element i of the job becomes `value` (a group's zero point) unless it holds it already. Assigned,
// not computed: no arithmetic a device could flush.
fn takeZeroPoint(i: u32, value: f32) {
  if (!holds(data[job.base + i], value)) {
    data[job.base + i] = value;
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn gridChunks(workgroup: Workgroup, @builtin(local_invocation_index) local: u32) {
  let chunk = writerChunk(workgroup);
  let group = gridGroup(partials[job.groupStatsBase + chunk.group]);
  for (var i = chunk.start + local; i < chunk.end; i += WORKGROUP_SIZE) {
    if (group.quantize) {
      data[job.base + i] = gridValue(data[job.base + i], i, group);
    } else {
      takeZeroPoint(i, group.zero);
    }
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn gridSmallGroups(workgroup: Workgroup, @builtin(local_invocation_index) local: u32) {
  let g = invocationIndex(workgroup, local);
  if (g >= job.groupCount || !writesAllowed()) {
    return;
  }
  let group = gridGroup(smallGroupPartial(g));
  let start = g * job.groupSize;
  for (var i = start; i < start + job.groupSize; i++) {
    if (group.quantize) {
      data[job.base + i] = gridValue(data[job.base + i], i, group);
    } else {
      takeZeroPoint(i, group.zero);
    }
  }
}
