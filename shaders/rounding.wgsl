// Rounding: the counter-based noise of stochastic rounding (the twin of assembly/rounding.ts:
// the same integer operations, so every backend draws the same numbers for a seed), and the
// float32 arithmetic whose rounding the reference pins down: products rounded on their own and
// a correctly rounded division.

const INDEX_MULTIPLIER: u32 = 0x9e3779b9u;
const MIX_A: u32 = 0x21f0aaadu;
const MIX_B: u32 = 0x735a2d97u;
// 24 random bits scaled to [0, 1): every value is exact in float32.
const UNIT: f32 = 0x1p-24f;

fn noiseBits(index: u32, key: u32) -> u32 {
  var x = (index * INDEX_MULTIPLIER) ^ key;
  x ^= x >> 16u;
  x *= MIX_A;
  x ^= x >> 15u;
  x *= MIX_B;
  x ^= x >> 15u;
  return x;
}

/// Uniform offset in [-0.5, 0.5) added before rounding (DeepSpeed's `p`).
fn stochasticOffset(index: u32, key: u32) -> f32 {
  return f32(noiseBits(index, key) >> 8u) * UNIT - 0.5;
}

// A GPU compiler may fuse a product into the addition that consumes it (one rounding instead
// of two); the reference rounds the product first. XOR with a zero the compiler cannot see
// leaves only the rounded product to add.
fn unfused(product: f32) -> f32 {
  return bitcast<f32>(bitcast<u32>(product) ^ job.opaqueZero);
}

// v rounded to its 12 leading significant bits: a product of two such halves is exact in
// float32, and the rest (v - half) fits in 12 bits too (Veltkamp's split, done on the bits).
fn highHalf(v: f32) -> f32 {
  return bitcast<f32>((bitcast<u32>(v) + 0x800u) & 0xfffff000u);
}

// a - q*b, exact whenever that value is representable: the rounding error of q*b comes from
// Dekker's product of halves, and a - q*b is exact by Sterbenz's lemma while q is near a/b.
fn remainderOf(a: f32, b: f32, q: f32) -> f32 {
  let product = unfused(q * b);
  let qHigh = highHalf(q);
  let qLow = q - qHigh;
  let bHigh = highHalf(b);
  let bLow = b - bHigh;
  let productError = ((qHigh * bHigh - product) + qHigh * bLow + qLow * bHigh) + qLow * bLow;
  return (a - product) - productError;
}

// Moves q to its neighbour toward a/b when a/b lies beyond their midpoint (b > 0). Exact once
// q is within an ulp of a/b, because the remainder is then representable; a quotient of two
// floats is never exactly a midpoint, so there is no tie to break.
fn towardQuotient(a: f32, b: f32, q: f32) -> f32 {
  let remainder = remainderOf(a, b, q);
  if (remainder == 0.0 || q == 0.0) {
    return q;
  }
  let bits = bitcast<u32>(q);
  let fartherFromZero = (remainder > 0.0) == (q > 0.0);
  let neighbour = bitcast<f32>(select(bits - 1u, bits + 1u, fartherFromZero));
  let halfGap = (neighbour - q) * 0.5;
  return select(q, neighbour, abs(remainder) > abs(halfGap * b));
}

// The correctly rounded a / b for b in [1, 2), from an estimate within thousands of ulps of it
// (WGSL promises 2.5). Adding remainder / b, itself within a few ulps of a value far below q's
// ulp, leaves q within half an ulp of a/b plus a sliver: the rounded quotient or the neighbour
// on the other side of a/b's midpoint, which one midpoint test tells apart.
fn correctedQuotient(a: f32, b: f32, estimate: f32) -> f32 {
  let q = estimate + remainderOf(a, b, estimate) / b;
  return towardQuotient(a, b, q);
}

// a / b correctly rounded, for normal b in (0, 2^127). WGSL's `/` may be 2.5 ulp off, and the
// zero point and every grid index depend on the exact quotient. Both operands are first scaled
// by the power of two that brings b into [1, 2), so the exact products above cannot underflow
// for any |a/b| >= 2^-60; smaller quotients may be an ulp off, which cannot change any rounding
// here (they vanish next to the noise offsets and round to 0).
fn divideRounded(a: f32, b: f32) -> f32 {
  let exponentBits = (bitcast<u32>(b) >> 23u) & 0xffu;
  let toUnit = bitcast<f32>((254u - exponentBits) << 23u);
  let divisor = b * toUnit;
  let dividend = a * toUnit;
  return correctedQuotient(dividend, divisor, dividend / divisor);
}
