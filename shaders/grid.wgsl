// The integer grid at 3..16 bits, symmetric and asymmetric, nearest or stochastic rounding,
// optionally blended (the twin of assembly/grid.ts):
//
//   symmetric:  s = 2 * max(|min|, |max|) / 2^b,  y = clamp(round(x / s + p), -2^(b-1), 2^(b-1) - 1) * s
//   asymmetric: s = (max - min) / 2^b,  zp = round(min / s) * s,
//               y = clamp(round((x - zp) / s + p), 0, 2^b - 1) * s + zp
//
// Both divisions are correctly rounded (divideRounded), so every value lands where the
// reference puts it, ties included. A group whose scale is 0 is left unchanged.

struct GridGroup {
  scale: f32,
  zero: f32,
  quantize: bool,
}

fn gridGroup(stats: Partial) -> GridGroup {
  let asymmetric = hasFlag(FLAG_ASYMMETRIC);
  var scale: f32;
  if (asymmetric) {
    scale = (stats.hi - stats.lo) * job.scaleFactor;
  } else {
    scale = max(abs(stats.lo), abs(stats.hi)) * job.scaleFactor;
  }
  if (!(scale > 0.0)) {
    return GridGroup(0.0, 0.0, false);
  }
  var zero = 0.0;
  if (asymmetric) {
    zero = unfused(round(divideRounded(stats.lo, scale)) * scale);
  }
  return GridGroup(scale, zero, true);
}

// The grid index of x: clamp(round((x - zp) / s + p), lo, hi), an integer held in a float
// (zp is 0 when symmetric, and x - 0 is x). Packing (shaders/pack.wgsl) stores it as a code;
// `index` is the element's index in its tensor, the counter of the stochastic noise.
fn gridIndex(x: f32, index: u32, group: GridGroup) -> f32 {
  var v = divideRounded(x - group.zero, group.scale);
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
  return y;
}

fn gridValue(x: f32, index: u32, group: GridGroup) -> f32 {
  return finishValue(x, gridPoint(gridIndex(x, index, group), group));
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn gridChunks(workgroup: Workgroup, @builtin(local_invocation_index) local: u32) {
  let index = workgroupIndex(workgroup);
  if (index >= chunkCount() || !writesAllowed()) {
    return;
  }
  let chunk = chunkAt(index);
  let group = gridGroup(partials[job.groupStatsBase + chunk.group]);
  if (!group.quantize) {
    return;
  }
  for (var i = chunk.start + local; i < chunk.end; i += WORKGROUP_SIZE) {
    data[job.base + i] = gridValue(data[job.base + i], i, group);
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn gridSmallGroups(workgroup: Workgroup, @builtin(local_invocation_index) local: u32) {
  let g = invocationIndex(workgroup, local);
  if (g >= job.groupCount || !writesAllowed()) {
    return;
  }
  let group = gridGroup(smallGroupPartial(g));
  if (!group.quantize) {
    return;
  }
  let start = g * job.groupSize;
  for (var i = start; i < start + job.groupSize; i++) {
    data[job.base + i] = gridValue(data[job.base + i], i, group);
  }
}
