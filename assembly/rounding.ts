// Rounding: nearest (round half to even, as torch.round) and the counter-based noise used by
// stochastic rounding. The noise for element `index` is a pure function of (index, key), where
// the host folds seed, step and tensor id into `key`: results are reproducible and identical in
// both WebAssembly builds and in shaders/rounding.wgsl.

// Weyl multiplier: spreads consecutive indices over all 32 bits before the key is mixed in,
// so two keys never produce shifted copies of one stream.
const INDEX_MULTIPLIER: u32 = 0x9e3779b9;
// Two-round multiply/xorshift finalizer (constants from Wellons' hash-prospector search).
const MIX_A: u32 = 0x21f0aaad;
const MIX_B: u32 = 0x735a2d97;
// 24 random bits scaled to [0, 1): every value is exact in float32.
const UNIT: f32 = 1.0 / 16777216.0;

@inline export function noiseBits(index: u32, key: u32): u32 {
  let x = (index * INDEX_MULTIPLIER) ^ key;
  x ^= x >>> 16;
  x *= MIX_A;
  x ^= x >>> 15;
  x *= MIX_B;
  x ^= x >>> 15;
  return x;
}

/** Uniform offset in [-0.5, 0.5) added before rounding (DeepSpeed's `p`). */
@inline export function stochasticOffset(index: u32, key: u32): f32 {
  return <f32>(noiseBits(index, key) >>> 8) * UNIT - 0.5;
}

/**
 * The lanes (first + k) * INDEX_MULTIPLIER, k = 0..3: the hash's first step for four
 * consecutive indices. Loops add SPREAD_STEP4 for the next four, the same product mod 2^32,
 * which saves a vector multiply per four offsets.
 */
@inline export function spreadIndices4(first: u32): v128 {
  return i32x4.mul(i32x4.add(i32x4.splat(first), i32x4(0, 1, 2, 3)), i32x4.splat(INDEX_MULTIPLIER));
}

export const SPREAD_STEP4: u32 = INDEX_MULTIPLIER * 4;

/** Four consecutive offsets from their spread indices (spreadIndices4). */
@inline export function stochasticOffset4(spread: v128, key: v128): v128 {
  let x = v128.xor(spread, key);
  x = v128.xor(x, i32x4.shr_u(x, 16));
  x = i32x4.mul(x, i32x4.splat(MIX_A));
  x = v128.xor(x, i32x4.shr_u(x, 15));
  x = i32x4.mul(x, i32x4.splat(MIX_B));
  x = v128.xor(x, i32x4.shr_u(x, 15));
  // After the shift the value fits 24 bits: the signed conversion (one instruction on x86,
  // unlike the unsigned one) is exact.
  const unit = f32x4.convert_i32x4_s(i32x4.shr_u(x, 8));
  return f32x4.sub(f32x4.mul(unit, f32x4.splat(UNIT)), f32x4.splat(0.5));
}

/** Exported for tests and for checking the WGSL twin: `count` offsets from `first`. */
export function fillStochasticOffsets(out: usize, first: u32, count: i32, key: u32): void {
  for (let i = 0; i < count; i++) {
    store<f32>(out + (<usize>i << 2), stochasticOffset(first + <u32>i, key));
  }
}
