// The workgroup reduction of stats.wgsl with subgroup operations (the host prepends
// `enable subgroups;` and uses this file only when the device has the feature): one barrier
// instead of log2(WORKGROUP_SIZE). Nothing here assumes how the implementation assigns
// invocations to subgroups, nor that subgroups are full.

var<workgroup> subgroupTotals: array<Partial, WORKGROUP_SIZE>;

fn reduceSubgroup(value: Partial) -> Partial {
  return Partial(subgroupMin(value.lo), subgroupMax(value.hi), subgroupAdd(value.sum), subgroupAdd(value.count));
}

// Every invocation passes its value and receives the workgroup's total.
fn reduceWorkgroup(value: Partial, local: u32) -> Partial {
  // Each subgroup's total goes to the slot of its lowest invocation; other slots stay empty.
  let total = reduceSubgroup(value);
  if (local == subgroupMin(local)) {
    subgroupTotals[local] = total;
  } else {
    subgroupTotals[local] = emptyPartial();
  }
  workgroupBarrier();
  // Every subgroup then folds all slots, its active invocations striding over them.
  let rank = subgroupExclusiveAdd(1u);
  let members = subgroupAdd(1u);
  var folded = emptyPartial();
  for (var slot = rank; slot < WORKGROUP_SIZE; slot += members) {
    folded = combinePartials(folded, subgroupTotals[slot]);
  }
  return reduceSubgroup(folded);
}
