// Ternary (2 bits, symmetric, nearest), as DeepSpeed's quantize_tenary (the twin of
// assembly/ternary.ts):
//   m = mean |x|, thr = 0.7 * m, alpha = mean of |x| over |x| > thr,
//   y = +alpha where x > thr, -alpha where x < -thr, 0 elsewhere.
// The sums run in a different order than on the CPU (so the means agree to float32 rounding,
// not bit for bit). Where no |x| passes the threshold, alpha is 0, not the reference's 0 / 0:
// in an all-zero group, and at the bottom of the subnormals, where 0.7 * mean can round up past
// every |x|. Such a group takes 0 (takeZeroPoint): an all-zero group is left as it is, -0
// included, and on a device that flushes subnormals (grid.wgsl) the values it read as zeros
// become 0, as packing stores them.

// Sum and count of |x| over the elements above the threshold; the sum in units of `unit`
// (sumUnit of the group's statistics).
fn withAbove(p: Partial, x: f32, threshold: f32, unit: f32) -> Partial {
  let a = abs(x);
  if (a > threshold) {
    return Partial(p.lo, p.hi, p.sum + a * unit, p.count + 1u);
  }
  return p;
}

struct TernaryGroup {
  threshold: f32,
  alpha: f32,
}

fn ternaryGroup(stats: Partial, above: Partial) -> TernaryGroup {
  let alpha = select(0.0, meanOf(above, f32(above.count), stats), above.count > 0u);
  return TernaryGroup(THRESHOLD_FACTOR * meanAbs(stats), alpha);
}

// Small group g, read whole by one invocation (ternarySmallGroups and packing).
fn smallTernaryGroup(g: u32) -> TernaryGroup {
  let stats = smallGroupPartial(g);
  let threshold = THRESHOLD_FACTOR * meanAbs(stats);
  let unit = sumUnit(stats);
  let start = job.base + g * job.groupSize;
  var above = emptyPartial();
  for (var i = start; i < start + job.groupSize; i++) {
    above = withAbove(above, data[i], threshold, unit);
  }
  return ternaryGroup(stats, above);
}

// -1, 0 or +1: where x lies against the threshold (packing stores it plus 1 as the code).
fn ternarySign(x: f32, threshold: f32) -> f32 {
  return select(select(0.0, -1.0, x < -threshold), 1.0, x > threshold);
}

fn ternaryValue(x: f32, group: TernaryGroup) -> f32 {
  return finishValue(x, ternarySign(x, group.threshold) * group.alpha);
}

// Element i of the tensor, by both writers.
fn writeTernary(i: u32, group: TernaryGroup) {
  if (group.alpha > 0.0) {
    data[job.base + i] = ternaryValue(data[job.base + i], group);
  } else {
    takeZeroPoint(i, 0.0);
  }
}

// Runs before any writer (it only reads the data): the above-threshold Partial of each chunk.
@compute @workgroup_size(WORKGROUP_SIZE)
fn aboveThresholdChunks(workgroup: Workgroup, @builtin(local_invocation_index) local: u32) {
  let index = workgroupIndex(workgroup);
  if (index >= chunkCount()) {
    return;
  }
  let chunk = chunkAt(index);
  let stats = partials[job.groupStatsBase + chunk.group];
  let threshold = THRESHOLD_FACTOR * meanAbs(stats);
  let unit = sumUnit(stats);
  var acc = emptyPartial();
  for (var i = chunk.start + local; i < chunk.end; i += WORKGROUP_SIZE) {
    acc = withAbove(acc, data[job.base + i], threshold, unit);
  }
  let total = reduceWorkgroup(acc, local);
  if (local == 0u) {
    partials[job.thresholdChunkBase + index] = total;
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn combineAboveThreshold(workgroup: Workgroup, @builtin(local_invocation_index) local: u32) {
  let group = workgroupIndex(workgroup);
  if (group >= job.groupCount) {
    return;
  }
  combineChunks(group, job.thresholdChunkBase, job.thresholdGroupBase, local);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn ternaryChunks(workgroup: Workgroup, @builtin(local_invocation_index) local: u32) {
  let chunk = writerChunk(workgroup);
  let stats = partials[job.groupStatsBase + chunk.group];
  let group = ternaryGroup(stats, partials[job.thresholdGroupBase + chunk.group]);
  for (var i = chunk.start + local; i < chunk.end; i += WORKGROUP_SIZE) {
    writeTernary(i, group);
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn ternarySmallGroups(workgroup: Workgroup, @builtin(local_invocation_index) local: u32) {
  let g = invocationIndex(workgroup, local);
  if (g >= job.groupCount || !writesAllowed()) {
    return;
  }
  let group = smallTernaryGroup(g);
  let start = g * job.groupSize;
  for (var i = start; i < start + job.groupSize; i++) {
    writeTernary(i, group);
  }
}
