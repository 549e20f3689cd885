// The interface between src/backends/webgpu/backend.ts and every kernel: one Job record per tensor (a
// uniform slot picked with a dynamic offset) and the buffers all kernels share. The field order
// is written by writeJob in src/backends/webgpu/plan.ts: change both together.

const WORKGROUP_SIZE: u32 = 256u;
// Elements one workgroup covers in the chunked kernels (16 per invocation); equal to
// CHUNK_SIZE in src/backends/webgpu/plan.ts.
const CHUNK_SIZE: u32 = 4096u;

const FLAG_ASYMMETRIC: u32 = 1u;
const FLAG_STOCHASTIC: u32 = 2u;
const FLAG_BLEND: u32 = 4u;
// Binary and ternary: the kernels read mean |x| from the statistics.
const FLAG_MEAN: u32 = 8u;
// Symmetric on the full grid (grid.wgsl): scales of either sign.
const FLAG_FULL: u32 = 16u;

struct Job {
  // Element offset of the tensor in `data`.
  base: u32,
  length: u32,
  groupSize: u32,
  groupCount: u32,
  chunksPerGroup: u32,
  // Indices into `partials`. With one chunk per group the chunk region is the group region.
  chunkStatsBase: u32,
  groupStatsBase: u32,
  thresholdChunkBase: u32,
  thresholdGroupBase: u32,
  // This tensor's slot in `status` (after the shared flag).
  statusIndex: u32,
  flags: u32,
  // Stochastic rounding: seed, step and tensor folded by src/noise.ts.
  key: u32,
  // Always 0; the compiler cannot know it (see `unfused` in rounding.wgsl).
  opaqueZero: u32,
  // 2^(1-b) symmetric (both grids), 2^-b asymmetric: the reference's "/ 2^b" as an exact product.
  scaleFactor: f32,
  lo: f32,
  hi: f32,
  ratio: f32,
  rest: f32,
}

// A reduction over a range: min, max, sum |x| (of |x| * 2^-33 where stats.wgsl's
// sumMayOverflow holds) and how many elements were summed.
struct Partial {
  lo: f32,
  hi: f32,
  sum: f32,
  count: u32,
}

@group(0) @binding(0) var<storage, read_write> data: array<f32>;
@group(0) @binding(1) var<storage, read_write> partials: array<Partial>;
// status[0] becomes 1 once any tensor of the submission holds a NaN or ±Inf; status[1 + i] is
// the first such index in tensor i (0xffffffff while none). Every kernel that writes `data`
// checks status[0] first, so a bad tensor anywhere leaves all of them untouched.
@group(0) @binding(2) var<storage, read_write> status: array<atomic<u32>>;
@group(0) @binding(3) var<uniform> job: Job;

// The workgroup's place in its dispatch (every kernel's first parameter). Only values that are
// uniform across the workgroup belong here, so kernels may return early before a barrier.
struct Workgroup {
  @builtin(workgroup_id) id: vec3<u32>,
  @builtin(num_workgroups) count: vec3<u32>,
}

// Dispatches wider than 65535 workgroups are folded into a second dimension.
fn workgroupIndex(workgroup: Workgroup) -> u32 {
  return workgroup.id.x + workgroup.id.y * workgroup.count.x;
}

// Kernels with one invocation per small group: the group.
fn invocationIndex(workgroup: Workgroup, local: u32) -> u32 {
  return workgroupIndex(workgroup) * WORKGROUP_SIZE + local;
}

fn writesAllowed() -> bool {
  return atomicLoad(&status[0]) == 0u;
}

fn hasFlag(flag: u32) -> bool {
  return (job.flags & flag) != 0u;
}
