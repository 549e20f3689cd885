// The workgroup reduction of stats.wgsl without subgroup operations: a tree over workgroup
// memory, halving the active invocations at each of log2(WORKGROUP_SIZE) barriers.

var<workgroup> reduceSlots: array<Partial, WORKGROUP_SIZE>;

// Every invocation passes its value and receives the workgroup's total.
fn reduceWorkgroup(value: Partial, local: u32) -> Partial {
  reduceSlots[local] = value;
  workgroupBarrier();
  for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride >>= 1u) {
    if (local < stride) {
      reduceSlots[local] = combinePartials(reduceSlots[local], reduceSlots[local + stride]);
    }
    workgroupBarrier();
  }
  return reduceSlots[0];
}
