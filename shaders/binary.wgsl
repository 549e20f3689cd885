// Binary (1 bit, symmetric, nearest), as DeepSpeed's quantize_binary (the twin of
// assembly/binary.ts): y = sign(x) * mean |x|, with sign(0) = 0.

fn binaryValue(x: f32, mean: f32) -> f32 {
  var q = 0.0;
  if (x > 0.0) {
    q = mean;
  } else if (x < 0.0) {
    q = -mean;
  }
  return finishValue(x, q);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn binaryChunks(workgroup: Workgroup, @builtin(local_invocation_index) local: u32) {
  let chunk = writerChunk(workgroup);
  let mean = meanAbs(partials[job.groupStatsBase + chunk.group]);
  for (var i = chunk.start + local; i < chunk.end; i += WORKGROUP_SIZE) {
    data[job.base + i] = binaryValue(data[job.base + i], mean);
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn binarySmallGroups(workgroup: Workgroup, @builtin(local_invocation_index) local: u32) {
  let g = invocationIndex(workgroup, local);
  if (g >= job.groupCount || !writesAllowed()) {
    return;
  }
  let mean = meanAbs(smallGroupPartial(g));
  let start = job.base + g * job.groupSize;
  for (var i = start; i < start + job.groupSize; i++) {
    data[i] = binaryValue(data[i], mean);
  }
}
