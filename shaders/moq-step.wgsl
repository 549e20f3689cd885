// The GPU path of MoQ training on tfjs's WebGPU backend (src/tfjs/gpu-kernels.ts runs these):
// the finiteness check of a step, the straight-through update of the masters, and the
// restoration of a step that was not finite. WebAssembly has no twin: on the host path the same
// work is done in JavaScript (src/tfjs/weights.ts), in doubles.

// The host reads this from here (src/tfjs/gpu-kernels.ts): one source for both.
const WORKGROUP_SIZE: u32 = 256u;

struct Params {
  length: u32,
  // 1 while the variable held the master itself: the new master is then the updated values.
  heldIsMaster: u32,
  // Always 0; the compiler cannot know it (see opaque).
  opaqueZero: u32,
}

@group(0) @binding(0) var<storage, read_write> destination: array<f32>;
@group(0) @binding(1) var<storage, read> first: array<f32>;
@group(0) @binding(2) var<storage, read> second: array<f32>;
// Nonzero once any value checked this step was NaN or infinite.
@group(0) @binding(3) var<storage, read_write> nonFinite: atomic<u32>;
@group(0) @binding(4) var<uniform> params: Params;

fn elementIndex(id: vec3<u32>, groups: vec3<u32>) -> u32 {
  return id.x + id.y * groups.x * WORKGROUP_SIZE;
}

// x as computed: an XOR with a zero the compiler cannot see, so it can neither fold nor reorder
// the sum x came from.
fn opaque(x: f32) -> f32 {
  return bitcast<f32>(bitcast<u32>(x) ^ params.opaqueZero);
}

// a + b as the float32 sum and its exact rounding error.
fn twoSum(a: f32, b: f32) -> vec2<f32> {
  let sum = opaque(a + b);
  let aPart = opaque(sum - b);
  let bPart = opaque(sum - aPart);
  return vec2<f32>(sum, opaque(opaque(a - aPart) + opaque(b - bPart)));
}

// first: a variable's values after the optimizer's update.
@compute @workgroup_size(WORKGROUP_SIZE)
fn checkFinite(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = elementIndex(id, groups);
  if (i < params.length && (bitcast<u32>(first[i]) & 0x7f800000u) == 0x7f800000u) {
    atomicOr(&nonFinite, 1u);
  }
}

// destination: the master, updated in place; first: the updated values; second: the held values.
@compute @workgroup_size(WORKGROUP_SIZE)
fn straightThrough(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = elementIndex(id, groups);
  if (i >= params.length || atomicLoad(&nonFinite) != 0u) {
    return;
  }
  if (params.heldIsMaster != 0u) {
    destination[i] = first[i];
    return;
  }
  let difference = twoSum(first[i], -second[i]);
  let sum = twoSum(destination[i], difference.x);
  destination[i] = opaque(sum.x + opaque(sum.y + difference.y));
}

// destination: what the variable is to hold; first: what it held after the last step.
@compute @workgroup_size(WORKGROUP_SIZE)
fn restoreIfNonFinite(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = elementIndex(id, groups);
  if (i < params.length && atomicLoad(&nonFinite) != 0u) {
    destination[i] = first[i];
  }
}
