// The mixed-fp16 blend of DeepSpeed's MoQ: y = ratio * x + (1 - ratio) * q, each product
// rounded to float32 and then the sum (no fused multiply-add), exactly as torch computes it.
// The write kernels of every family call these so the blend costs no extra pass over memory.

@inline export function blendValue(x: f32, q: f32, ratio: f32, rest: f32): f32 {
  return ratio * x + rest * q;
}

@inline export function blend4(x: v128, q: v128, ratio: v128, rest: v128): v128 {
  return f32x4.add(f32x4.mul(ratio, x), f32x4.mul(rest, q));
}
