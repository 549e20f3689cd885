// The mixed-fp16 blend of DeepSpeed's MoQ (the twin of assembly/blend.ts): y = ratio * x +
// (1 - ratio) * q, each product rounded to float32 and then the sum, as torch computes it.
// `ratio` and `rest` arrive already rounded to float32.

fn blendValue(x: f32, q: f32) -> f32 {
  return unfused(job.ratio * x) + unfused(job.rest * q);
}

fn finishValue(x: f32, q: f32) -> f32 {
  if (hasFlag(FLAG_BLEND)) {
    return blendValue(x, q);
  }
  return q;
}
