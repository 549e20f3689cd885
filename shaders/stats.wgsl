// Group statistics (the twin of assembly/stats.ts): min, max and sum |x| per group, with the
// finiteness check folded into the same read of the data.
//
// A group of any size is covered by chunks of CHUNK_SIZE elements, one workgroup each:
// chunkStats reduces a chunk to one Partial, and combineStats folds a group's chunk Partials
// when it has more than one. Groups of at most SMALL_GROUP_MAX elements (src/backends/
// webgpu/plan.ts) take one invocation each instead (smallGroupPartial, called by the writers),
// where a workgroup per group would leave almost every invocation idle. reduceWorkgroup comes
// from stats-workgroup.wgsl, or from stats-subgroup.wgsl when the device has `subgroups`.

const FLOAT_MAX: f32 = 0x1.fffffep+127f;

// n values near FLT_MAX sum past it although their mean fits. As in assembly/stats.ts, such a
// group's mean is 2^33 * mean(|x| * 2^-33): the formula itself (a power-of-two scaling is exact)
// save for |x| < 2^-93, whose lost bits cannot reach a sum that large, and finite for any group
// under 2^32 elements. WGSL leaves an overflowed float indeterminate, so the groups summed at
// 2^-33 are picked before summing, from the range: those whose absMax * count reaches 2^127
// (sumMayOverflow). For those, and for nothing else, the statistics passes sum the group again
// at 2^-33 and store that sum instead (scaledAbsSum), and the sums above ternary's threshold are
// taken at 2^-33 too. Only binary and ternary jobs (FLAG_MEAN) read the sums.
const SCALED_SUM_UNIT: f32 = 0x1p33f;
const SCALED_SUM_STEP: f32 = 0x1p-33f;

// The identity of combinePartials. Infinities are avoided: WGSL lets compilers assume none.
fn emptyPartial() -> Partial {
  return Partial(FLOAT_MAX, -FLOAT_MAX, 0.0, 0u);
}

fn combinePartials(a: Partial, b: Partial) -> Partial {
  return Partial(min(a.lo, b.lo), max(a.hi, b.hi), a.sum + b.sum, a.count + b.count);
}

fn withValue(p: Partial, x: f32) -> Partial {
  return Partial(min(p.lo, x), max(p.hi, x), p.sum + abs(x), p.count + 1u);
}

// Whether the sum of |x| over the `count` values of `stats` may overflow float32: whether it is
// kept at 2^-33. absMax * 2^-33 is exact, and the product cannot overflow.
fn sumMayOverflow(stats: Partial) -> bool {
  return max(abs(stats.lo), abs(stats.hi)) * SCALED_SUM_STEP * f32(stats.count) >= 0x1p94f;
}

// 2^-33 for the sums of a group kept at that scale, else 1 (multiplying by it is exact).
fn sumUnit(stats: Partial) -> f32 {
  return select(1.0, SCALED_SUM_STEP, sumMayOverflow(stats));
}

// The mean of `sums.sum` over `count` values: the float32 division of assembly/stats.ts, scaled
// back where the group's sums are kept at 2^-33.
fn meanOf(sums: Partial, count: f32, stats: Partial) -> f32 {
  let mean = divideRounded(sums.sum, count);
  if (sumMayOverflow(stats)) {
    return mean * SCALED_SUM_UNIT;
  }
  return mean;
}

// mean |x| of a group, from its statistics.
fn meanAbs(stats: Partial) -> f32 {
  return meanOf(stats, f32(job.groupSize), stats);
}

var<workgroup> sharedFlag: bool;

// The whole workgroup's `flag` (it must agree) as a value uniform across it, so that kernels may
// reduce again under it.
fn workgroupFlag(flag: bool, local: u32) -> bool {
  if (local == 0u) {
    sharedFlag = flag;
  }
  return workgroupUniformLoad(&sharedFlag);
}

// The sum of |x| * 2^-33 over elements [start, end) of the job, by one invocation.
fn scaledAbsSum(start: u32, end: u32) -> f32 {
  var sum = 0.0;
  for (var i = start; i < end; i++) {
    sum += abs(data[job.base + i]) * SCALED_SUM_STEP;
  }
  return sum;
}

// The same by the whole workgroup.
fn workgroupScaledAbsSum(start: u32, end: u32, local: u32) -> f32 {
  var acc = emptyPartial();
  for (var i = start + local; i < end; i += WORKGROUP_SIZE) {
    acc.sum += abs(data[job.base + i]) * SCALED_SUM_STEP;
  }
  return reduceWorkgroup(acc, local).sum;
}

// Decided on the bits: a compiler may fold float comparisons that only fail for NaN or Inf.
fn isFiniteValue(x: f32) -> bool {
  return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

fn reportNonFinite(index: u32) {
  atomicMin(&status[1u + job.statusIndex], index);
  atomicMax(&status[0], 1u);
}

// Chunk `index` of the job: its group and its element range within the tensor.
struct Chunk {
  group: u32,
  start: u32,
  end: u32,
}

fn chunkAt(index: u32) -> Chunk {
  let group = index / job.chunksPerGroup;
  let groupStart = group * job.groupSize;
  let start = groupStart + (index % job.chunksPerGroup) * CHUNK_SIZE;
  return Chunk(group, start, min(start + CHUNK_SIZE, groupStart + job.groupSize));
}

fn chunkCount() -> u32 {
  return job.groupCount * job.chunksPerGroup;
}

// The chunk a writer's workgroup covers: empty, so the writer does nothing, past the last chunk
// or once any tensor of the submission holds a NaN or ±Inf (writesAllowed).
fn writerChunk(workgroup: Workgroup) -> Chunk {
  let index = workgroupIndex(workgroup);
  if (index >= chunkCount() || !writesAllowed()) {
    return Chunk(0u, 0u, 0u);
  }
  return chunkAt(index);
}

// Statistics of a small group, read by one invocation.
fn smallGroupPartial(group: u32) -> Partial {
  let start = job.base + group * job.groupSize;
  var total = emptyPartial();
  for (var i = start; i < start + job.groupSize; i++) {
    total = withValue(total, data[i]);
  }
  if (hasFlag(FLAG_MEAN) && sumMayOverflow(total)) {
    total.sum = scaledAbsSum(group * job.groupSize, (group + 1u) * job.groupSize);
  }
  return total;
}

// The small-group path validates separately: its writers recompute the statistics in the same
// invocation instead of storing them.
@compute @workgroup_size(WORKGROUP_SIZE)
fn checkFinite(workgroup: Workgroup, @builtin(local_invocation_index) local: u32) {
  let start = workgroupIndex(workgroup) * CHUNK_SIZE;
  let end = min(start + CHUNK_SIZE, job.length);
  for (var i = start + local; i < end; i += WORKGROUP_SIZE) {
    if (!isFiniteValue(data[job.base + i])) {
      reportNonFinite(i);
      break;
    }
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn chunkStats(workgroup: Workgroup, @builtin(local_invocation_index) local: u32) {
  let index = workgroupIndex(workgroup);
  if (index >= chunkCount()) {
    return;
  }
  let chunk = chunkAt(index);
  var acc = emptyPartial();
  var firstBad = 0xffffffffu;
  for (var i = chunk.start + local; i < chunk.end; i += WORKGROUP_SIZE) {
    let x = data[job.base + i];
    if (!isFiniteValue(x) && firstBad == 0xffffffffu) {
      firstBad = i;
    }
    acc = withValue(acc, x);
  }
  if (firstBad != 0xffffffffu) {
    reportNonFinite(firstBad);
  }
  var total = reduceWorkgroup(acc, local);
  if (local == 0u) {
    // Summed again by this invocation alone (a chunk at most, and rare) rather than with one more
    // barrier in every job's hottest kernel. A group of several chunks is summed in combineStats.
    if (hasFlag(FLAG_MEAN) && job.chunksPerGroup == 1u && sumMayOverflow(total)) {
      total.sum = scaledAbsSum(chunk.start, chunk.end);
    }
    partials[job.chunkStatsBase + index] = total;
  }
}

// Folds the chunk Partials of group `group` from `chunkRegion` into `groupRegion` and returns
// the group's.
fn combineChunks(group: u32, chunkRegion: u32, groupRegion: u32, local: u32) -> Partial {
  var acc = emptyPartial();
  for (var c = local; c < job.chunksPerGroup; c += WORKGROUP_SIZE) {
    acc = combinePartials(acc, partials[chunkRegion + group * job.chunksPerGroup + c]);
  }
  let total = reduceWorkgroup(acc, local);
  if (local == 0u) {
    partials[groupRegion + group] = total;
  }
  return total;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn combineStats(workgroup: Workgroup, @builtin(local_invocation_index) local: u32) {
  let group = workgroupIndex(workgroup);
  if (group >= job.groupCount) {
    return;
  }
  let total = combineChunks(group, job.chunkStatsBase, job.groupStatsBase, local);
  if (hasFlag(FLAG_MEAN) && workgroupFlag(sumMayOverflow(total), local)) {
    let start = group * job.groupSize;
    let sum = workgroupScaledAbsSum(start, start + job.groupSize, local);
    if (local == 0u) {
      partials[job.groupStatsBase + group].sum = sum;
    }
  }
}
