// Group statistics (the twin of assembly/stats.ts): min, max and sum |x| per group, with the
// finiteness check folded into the same read of the data.
//
// A group of any size is covered by chunks of CHUNK_SIZE elements, one workgroup each:
// chunkStats reduces a chunk to one Partial, and combineStats folds a group's chunk Partials
// when it has more than one. Groups of at most SMALL_GROUP_MAX elements (src/backends/
// webgpu-plan.ts) take one invocation each instead (smallGroupPartial, called by the writers),
// where a workgroup per group would leave almost every invocation idle. reduceWorkgroup comes
// from stats-workgroup.wgsl, or from stats-subgroup.wgsl when the device has `subgroups`.

const FLOAT_MAX: f32 = 0x1.fffffep+127f;

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

// mean |x| of a group, from its statistics: the float32 division of assembly/stats.ts.
fn meanAbs(stats: Partial) -> f32 {
  return divideRounded(stats.sum, f32(job.groupSize));
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

// Statistics of a small group, read by one invocation.
fn smallGroupPartial(group: u32) -> Partial {
  let start = job.base + group * job.groupSize;
  var total = emptyPartial();
  for (var i = start; i < start + job.groupSize; i++) {
    total = withValue(total, data[i]);
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
  let total = reduceWorkgroup(acc, local);
  if (local == 0u) {
    partials[job.chunkStatsBase + index] = total;
  }
}

// Folds the chunk Partials of group `group` from `chunkRegion` into `groupRegion`.
fn combineChunks(group: u32, chunkRegion: u32, groupRegion: u32, local: u32) {
  var acc = emptyPartial();
  for (var c = local; c < job.chunksPerGroup; c += WORKGROUP_SIZE) {
    acc = combinePartials(acc, partials[chunkRegion + group * job.chunksPerGroup + c]);
  }
  let total = reduceWorkgroup(acc, local);
  if (local == 0u) {
    partials[groupRegion + group] = total;
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn combineStats(workgroup: Workgroup, @builtin(local_invocation_index) local: u32) {
  let group = workgroupIndex(workgroup);
  if (group >= job.groupCount) {
    return;
  }
  combineChunks(group, job.chunkStatsBase, job.groupStatsBase, local);
}
