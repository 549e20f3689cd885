// Packing: the integer codes of `edge-moq.packed/1` (see src/packed/layout.ts) and back. The
// codes come from the same formulas as grid.ts, ternary.ts and binary.ts, so unpacking gives
// exactly what fake quantization writes. Codes go into a little-endian bit stream: element i
// occupies stream bits [i*b, (i+1)*b), stream bit j being bit j mod 8 of byte j / 8.
//
//   symmetric:  code = clamp(round(x / s + p), -2^(b-1), 2^(b-1) - 1) + 2^(b-1)
//   asymmetric: code = clamp(round((x - zp) / s + p), 0, 2^b - 1)
//   ternary:    code = 2 where x > thr, 0 where x < -thr, else 1
//   binary:     code = 1 where x >= 0, else 0
//
// Like the fused fake-quantization pass, packing computes each group's statistics as it goes
// and stops at the first group holding a NaN or ±Inf (the host discards what was written).
//
// An asymmetric group quantized at half scale (grid.ts) stores its scale and zero point at full
// scale, 2s and 2zp, both finite; unpacking finds such a group by its scale (atHalfScale) and
// evaluates code * s + zp at half scale too, where code * s alone could overflow.

import { rangeOf, absMaxBits, NON_FINITE_BITS, groupAbsMean, aboveThresholdMean } from './stats';
import { stochasticOffset, stochasticOffset4 } from './rounding';
import { asymmetricGroup, atHalfScale, groupHalved, groupScale, groupZero, halvedIndex } from './grid';

const THRESHOLD_FACTOR: f32 = 0.7;
const groupRange = memory.data(8);

/** Type numbers shared with src/packed/wasm-packer.ts. */
const SYMMETRIC = 0;
const ASYMMETRIC = 1;
const TERNARY = 2;
const BINARY = 3;

// The bit stream being written: codes collect in `pending` and leave 32 bits at a time.
let cursor: usize = 0;
let pending: u64 = 0;
let pendingBits: u32 = 0;

@inline function putCode(code: u32, bits: u32): void {
  pending |= <u64>code << pendingBits;
  pendingBits += bits;
  if (pendingBits >= 32) {
    store<u32>(cursor, <u32>pending);
    cursor += 4;
    pending >>= 32;
    pendingBits -= 32;
  }
}

@inline function flushCodes(): void {
  while (pendingBits > 0) {
    store<u8>(cursor, <u8>pending);
    cursor++;
    pending >>= 8;
    pendingBits = pendingBits > 8 ? pendingBits - 8 : 0;
  }
}

/**
 * Packs `groupCount` groups of `groupSize` float32 values at `src` into `codes` (the bit
 * stream), `scales` and, asymmetric, `zeros` (one float32 per group each). Returns -1, or the
 * first group holding a NaN or ±Inf. `firstIndex` is the tensor index of src[0]: the counter of
 * the stochastic noise, so a tensor packed chunk by chunk packs as it would whole.
 */
export function packCodes(
  src: usize, codes: usize, scales: usize, zeros: usize, groupCount: i32, groupSize: i32, bits: i32,
  type: i32, stochastic: bool, key: u32, firstIndex: u32,
): i32 {
  cursor = codes;
  pending = 0;
  pendingBits = 0;
  for (let g = 0; g < groupCount; g++) {
    const from = src + (<usize>g * <usize>groupSize << 2);
    const first = firstIndex + <u32>g * <u32>groupSize;
    let scale: f32;
    if (type == SYMMETRIC || type == ASYMMETRIC) {
      const asymmetric = type == ASYMMETRIC;
      if (asymmetric) {
        if (!rangeOf(from, groupSize, groupRange)) return g;
        const groupMin = load<f32>(groupRange);
        asymmetricGroup(groupMin, load<f32>(groupRange, 4), <f32>1.0 / <f32>(1 << bits));
        // A constant group has no grid: its constant is the zero point, every code 0.
        let zero = groupScale > 0 ? groupZero : groupMin;
        if (groupHalved) {
          halvedCodes(from, groupSize, bits, groupScale, zero, stochastic, key, first);
          scale = groupScale * 2;
          zero *= 2;
        } else {
          scale = groupScale;
          gridCodes(from, groupSize, bits, scale, zero, true, stochastic, key, first);
        }
        store<f32>(zeros + (<usize>g << 2), zero);
      } else {
        const bitsOfMax = absMaxBits(from, groupSize);
        if (bitsOfMax >= NON_FINITE_BITS) return g;
        scale = reinterpret<f32>(bitsOfMax) * (<f32>2.0 / <f32>(1 << bits));
        gridCodes(from, groupSize, bits, scale, 0, false, stochastic, key, first);
      }
    } else {
      const mean = groupAbsMean(from, groupSize);
      if (mean != mean) return g;
      if (type == TERNARY) {
        const threshold = THRESHOLD_FACTOR * mean;
        scale = mean > 0 ? aboveThresholdMean(from, groupSize, threshold) : 0;
        for (let i = 0; i < groupSize; i++) {
          const x = load<f32>(from + (<usize>i << 2));
          putCode(select<u32>(2, select<u32>(0, 1, x < -threshold), x > threshold), 2);
        }
      } else {
        scale = mean;
        for (let i = 0; i < groupSize; i++) putCode(<u32>(load<f32>(from + (<usize>i << 2)) >= 0), 1);
      }
    }
    store<f32>(scales + (<usize>g << 2), scale);
  }
  flushCodes();
  return -1;
}

@inline function gridCodes(
  from: usize, n: i32, bits: i32, scale: f32, zero: f32, ASYMMETRIC: bool, STOCHASTIC: bool, key: u32, first: u32,
): void {
  const half = 1 << (bits - 1);
  const lo: f32 = ASYMMETRIC ? 0 : <f32>-half;
  const hi: f32 = ASYMMETRIC ? <f32>((1 << bits) - 1) : <f32>(half - 1);
  const offset: i32 = ASYMMETRIC ? 0 : half;
  const ubits = <u32>bits;
  if (!(scale > 0)) {
    // All zero (symmetric) or constant (asymmetric): every value is the zero of the grid.
    for (let i = 0; i < n; i++) putCode(<u32>offset, ubits);
    return;
  }
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    const vScale = f32x4.splat(scale), vZero = f32x4.splat(zero);
    const vLo = f32x4.splat(lo), vHi = f32x4.splat(hi);
    const vOffset = i32x4.splat(offset), vKey = i32x4.splat(key);
    let index = i32x4.add(i32x4.splat(first), i32x4(0, 1, 2, 3));
    for (; i + 4 <= n; i += 4) {
      const x = v128.load(from + (<usize>i << 2));
      let v = f32x4.div(ASYMMETRIC ? f32x4.sub(x, vZero) : x, vScale);
      if (STOCHASTIC) {
        v = f32x4.add(v, stochasticOffset4(index, vKey));
        index = i32x4.add(index, i32x4.splat(4));
      }
      const codes = i32x4.add(i32x4.trunc_sat_f32x4_s(f32x4.pmin(f32x4.pmax(f32x4.nearest(v), vLo), vHi)), vOffset);
      putCode(i32x4.extract_lane(codes, 0), ubits);
      putCode(i32x4.extract_lane(codes, 1), ubits);
      putCode(i32x4.extract_lane(codes, 2), ubits);
      putCode(i32x4.extract_lane(codes, 3), ubits);
    }
  }
  for (; i < n; i++) {
    const x = load<f32>(from + (<usize>i << 2));
    let v = (ASYMMETRIC ? x - zero : x) / scale;
    if (STOCHASTIC) v += stochasticOffset(first + <u32>i, key);
    let r = nearest<f32>(v);
    r = select<f32>(lo, r, r < lo);
    r = select<f32>(hi, r, hi < r);
    putCode(<u32>(<i32>r + offset), ubits);
  }
}

/** The codes of a group at half scale (grid.ts: asymmetricGroup): one element at a time. */
function halvedCodes(from: usize, n: i32, bits: i32, scale: f32, zero: f32, stochastic: bool, key: u32, first: u32): void {
  const hi = <f32>((1 << bits) - 1);
  for (let i = 0; i < n; i++) {
    const x = load<f32>(from + (<usize>i << 2));
    putCode(<u32><i32>halvedIndex(x, scale, zero, 0, hi, stochastic, key, first + <u32>i), <u32>bits);
  }
}

/**
 * Writes the float32 values of `groupCount` groups of `groupSize` codes to `dst`. The codes
 * region must be readable 3 bytes past its end (codes are read 4 bytes at a time).
 */
export function unpackCodes(
  codes: usize, scales: usize, zeros: usize, dst: usize, groupCount: i32, groupSize: i32, bits: i32, type: i32,
): void {
  // value = (code * step + shift) * scale + zero
  const step: i32 = type == BINARY ? 2 : 1;
  const shift: i32 = type == SYMMETRIC ? -(1 << (bits - 1)) : type == ASYMMETRIC ? 0 : -1;
  const mask: u32 = bits == 32 ? 0xffffffff : (1 << bits) - 1;
  const invLevels = <f32>1.0 / <f32>(1 << bits);
  let bit: u64 = 0;
  for (let g = 0; g < groupCount; g++) {
    const scale = load<f32>(scales + (<usize>g << 2));
    const zero: f32 = type == ASYMMETRIC ? load<f32>(zeros + (<usize>g << 2)) : 0;
    const to = dst + (<usize>g * <usize>groupSize << 2);
    if (type == ASYMMETRIC && atHalfScale(scale, invLevels)) {
      bit = unpackGroup(codes, bit, to, groupSize, bits, mask, step, shift, type, scale * 0.5, zero * 0.5, true);
    } else {
      bit = unpackGroup(codes, bit, to, groupSize, bits, mask, step, shift, type, scale, zero, false);
    }
  }
}

/** One group of unpackCodes from stream bit `bit`; returns the bit after it. */
@inline function unpackGroup(
  codes: usize, bit: u64, to: usize, n: i32, bits: i32, mask: u32, step: i32, shift: i32, type: i32,
  scale: f32, zero: f32, HALVED: bool,
): u64 {
  for (let i = 0; i < n; i++) {
    const code = (load<u32>(codes + <usize>(bit >> 3)) >>> <u32>(bit & 7)) & mask;
    bit += <u64>bits;
    const level = <f32>(<i32>code * step + shift);
    const value = type == ASYMMETRIC ? level * scale + zero : level * scale;
    store<f32>(to + (<usize>i << 2), HALVED ? value * 2 : value);
  }
  return bit;
}
