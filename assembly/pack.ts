// Packing: the integer codes of `edge-moq.packed/1` (see src/packed/layout.ts) and back. The
// codes come from the same formulas as grid.ts, ternary.ts and binary.ts, so unpacking gives
// exactly what fake quantization writes. Codes go into a little-endian bit stream: element i
// occupies stream bits [i*b, (i+1)*b), stream bit j being bit j mod 8 of byte j / 8.
//
//   symmetric:  code = clamp(round(x / s + p), -2^(b-1), 2^(b-1) - 1) + 2^(b-1)
//               (on both symmetric grids; the full grid's s, grid.ts fullScale, may be negative)
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
//
// A group whose scale underflows to 0 although its values differ (all within 2^(b-2) smallest
// subnormals of 0, symmetric, or 2^(b-1) of each other, asymmetric) is left unchanged by fake
// quantization. Every float32 is a multiple of the smallest subnormal, so such a group lies
// exactly on the grid of that step: packing stores it there (scale 2^-149, the minimum as the zero
// point, no noise), and its codes decode to the group itself. The same holds on the full grid
// (all within 2^(b-2) smallest subnormals of 0), stored with the positive scale 2^-149.
//
// Unpacking reads data that may come from a damaged or hostile file. It checks every group before
// writing anything: a scale that is NaN, infinite or negative (negative is valid on the full grid
// only), a zero point that is NaN or
// infinite, a ternary code 3, or a code whose value overflows float32 makes it return the first
// element concerned (a group's first element for its scale and zero point).

import { rangeOf, absMaxBits, NON_FINITE_BITS, groupAbsMean, aboveThresholdMean } from './stats';
import { SPREAD_STEP4, spreadIndices4, stochasticOffset, stochasticOffset4 } from './rounding';
import { asymmetricGroup, atHalfScale, fullScale, groupHalved, groupScale, groupZero, halvedIndex, HALVING_RANGE } from './grid';
// The type numbers are packCodes' and unpackCodes' `type` argument (src/backends/wasm/packer.ts).
import { THRESHOLD_FACTOR, SYMMETRIC, ASYMMETRIC, TERNARY, BINARY, FULL } from './interface';

const FLOAT_MAX: f32 = 3.4028234663852886e38;
const SMALLEST_SUBNORMAL: f32 = 1.401298464324817e-45; // 2^-149
const groupRange = memory.data(8);

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

/**
 * Whether the stream is at a whole byte; if so, its pending bytes are written out, so that the
 * SIMD paths can store whole bytes at `cursor` (and putCode go on after them).
 */
@inline function atWholeByte(): bool {
  if ((pendingBits & 7) != 0) return false;
  flushCodes();
  return true;
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
    if (type == SYMMETRIC || type == ASYMMETRIC || type == FULL) {
      const asymmetric = type == ASYMMETRIC;
      // One range pass for both grids that need the signed ends (inlined once: it is large).
      if ((asymmetric || type == FULL) && !rangeOf(from, groupSize, groupRange)) return g;
      const groupMin = load<f32>(groupRange), groupMax = load<f32>(groupRange, 4);
      if (asymmetric) {
        asymmetricGroup(groupMin, groupMax, <f32>1.0 / <f32>(1 << bits));
        // A constant group has no grid: its constant is the zero point, every code 0.
        let zero = groupScale > 0 ? groupZero : groupMin;
        if (groupHalved) {
          halvedCodes(from, groupSize, bits, groupScale, zero, stochastic, key, first);
          scale = groupScale * 2;
          zero *= 2;
        } else {
          const underflowed = groupScale == 0 && groupMax > groupMin;
          scale = underflowed ? SMALLEST_SUBNORMAL : groupScale;
          gridCodes(from, groupSize, bits, scale, zero, true, stochastic && !underflowed, key, first);
        }
        store<f32>(zeros + (<usize>g << 2), zero);
      } else {
        // Both symmetric grids: the full one from the signed ends, DeepSpeed's from the largest |x|.
        let underflowed: bool;
        if (type == FULL) {
          scale = fullScale(groupMin, groupMax, <f32>2.0 / <f32>(1 << bits));
          underflowed = scale == 0 && (groupMin != 0 || groupMax != 0);
        } else {
          const bitsOfMax = absMaxBits(from, groupSize);
          if (bitsOfMax >= NON_FINITE_BITS) return g;
          scale = reinterpret<f32>(bitsOfMax) * (<f32>2.0 / <f32>(1 << bits));
          underflowed = scale == 0 && bitsOfMax != 0;
        }
        if (underflowed) scale = SMALLEST_SUBNORMAL;
        gridCodes(from, groupSize, bits, scale, 0, false, stochastic && !underflowed, key, first);
      }
    } else {
      const mean = groupAbsMean(from, groupSize);
      if (mean != mean) return g;
      if (type == TERNARY) {
        const threshold = THRESHOLD_FACTOR * mean;
        scale = aboveThresholdMean(from, groupSize, threshold);
        let i = 0;
        if (ASC_FEATURE_SIMD && atWholeByte()) {
          // 16 codes at a time, as bytes, then each 32-bit lane's four joined into its low byte
          // (2 bits each), written as four bytes.
          const vHigh = f32x4.splat(threshold), vLow = f32x4.splat(-threshold), vOne = i32x4.splat(1);
          for (; i + 16 <= groupSize; i += 16) {
            const at = from + (<usize>i << 2);
            const bytes = i8x16.narrow_i16x8_u(
              i16x8.narrow_i32x4_u(ternaryCodes4(v128.load(at), vHigh, vLow, vOne), ternaryCodes4(v128.load(at, 16), vHigh, vLow, vOne)),
              i16x8.narrow_i32x4_u(ternaryCodes4(v128.load(at, 32), vHigh, vLow, vOne), ternaryCodes4(v128.load(at, 48), vHigh, vLow, vOne)),
            );
            const joined = v128.or(
              v128.or(v128.and(bytes, i32x4.splat(0xff)), v128.and(i32x4.shr_u(bytes, 6), i32x4.splat(0x0c))),
              v128.or(v128.and(i32x4.shr_u(bytes, 12), i32x4.splat(0x30)), v128.and(i32x4.shr_u(bytes, 18), i32x4.splat(0xc0))),
            );
            const narrowed = i16x8.narrow_i32x4_u(joined, joined);
            store<u32>(cursor, i32x4.extract_lane(i8x16.narrow_i16x8_u(narrowed, narrowed), 0));
            cursor += 4;
          }
        }
        for (; i < groupSize; i++) {
          const x = load<f32>(from + (<usize>i << 2));
          putCode(select<u32>(2, select<u32>(0, 1, x < -threshold), x > threshold), 2);
        }
      } else {
        scale = mean;
        let i = 0;
        if (ASC_FEATURE_SIMD && atWholeByte()) {
          // 16 signs at a time, the comparisons' bitmasks written as two bytes.
          const vZero = f32x4.splat(0);
          for (; i + 16 <= groupSize; i += 16) {
            const at = from + (<usize>i << 2);
            const signs =
              i32x4.bitmask(f32x4.ge(v128.load(at), vZero)) |
              (i32x4.bitmask(f32x4.ge(v128.load(at, 16), vZero)) << 4) |
              (i32x4.bitmask(f32x4.ge(v128.load(at, 32), vZero)) << 8) |
              (i32x4.bitmask(f32x4.ge(v128.load(at, 48), vZero)) << 12);
            store<u16>(cursor, <u16>signs);
            cursor += 2;
          }
        }
        for (; i < groupSize; i++) putCode(<u32>(load<f32>(from + (<usize>i << 2)) >= 0), 1);
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
  if (scale == 0) {
    // All zero (symmetric) or constant (asymmetric): every value is the zero of the grid.
    for (let i = 0; i < n; i++) putCode(<u32>offset, ubits);
    return;
  }
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    const vScale = f32x4.splat(scale), vZero = f32x4.splat(zero);
    const vLo = f32x4.splat(lo), vHi = f32x4.splat(hi);
    const vOffset = i32x4.splat(offset), vKey = i32x4.splat(key);
    const vStep = i32x4.splat(SPREAD_STEP4);
    let spread = spreadIndices4(first);
    if ((bits == 8 || bits == 4) && atWholeByte()) {
      // 16 codes at a time straight into the stream (narrowed to bytes; at 4 bits each byte's
      // pair joined), not one putCode each.
      for (; i + 16 <= n; i += 16) {
        const at = from + (<usize>i << 2);
        const c0 = codes4(v128.load(at), spread, vScale, vZero, vLo, vHi, vOffset, vKey, ASYMMETRIC, STOCHASTIC);
        if (STOCHASTIC) spread = i32x4.add(spread, vStep);
        const c1 = codes4(v128.load(at, 16), spread, vScale, vZero, vLo, vHi, vOffset, vKey, ASYMMETRIC, STOCHASTIC);
        if (STOCHASTIC) spread = i32x4.add(spread, vStep);
        const c2 = codes4(v128.load(at, 32), spread, vScale, vZero, vLo, vHi, vOffset, vKey, ASYMMETRIC, STOCHASTIC);
        if (STOCHASTIC) spread = i32x4.add(spread, vStep);
        const c3 = codes4(v128.load(at, 48), spread, vScale, vZero, vLo, vHi, vOffset, vKey, ASYMMETRIC, STOCHASTIC);
        if (STOCHASTIC) spread = i32x4.add(spread, vStep);
        const bytes = i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_u(c0, c1), i16x8.narrow_i32x4_u(c2, c3));
        if (bits == 8) {
          v128.store(cursor, bytes);
          cursor += 16;
        } else {
          // A 16-bit lane holds codes 2k and 2k + 1 (each below 16) in its two bytes: shifted
          // right by 4, the second lands in the high nibble of the low byte.
          const pairs = v128.or(v128.and(bytes, i16x8.splat(0xff)), i16x8.shr_u(bytes, 4));
          store<u64>(cursor, i64x2.extract_lane(i8x16.narrow_i16x8_u(pairs, pairs), 0));
          cursor += 8;
        }
      }
    }
    for (; i + 4 <= n; i += 4) {
      const codes = codes4(v128.load(from + (<usize>i << 2)), spread, vScale, vZero, vLo, vHi, vOffset, vKey, ASYMMETRIC, STOCHASTIC);
      if (STOCHASTIC) spread = i32x4.add(spread, vStep);
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

/** Four ternary codes: 2 above the threshold, 0 below its negative, else 1 (masks are -1 where true). */
@inline function ternaryCodes4(x: v128, high: v128, low: v128, one: v128): v128 {
  return i32x4.add(i32x4.sub(one, f32x4.gt(x, high)), f32x4.lt(x, low));
}

/** Four elements' codes on the grid (with the noise of the four indices `spread` stands for). */
@inline function codes4(
  x: v128, spread: v128, scale: v128, zero: v128, lo: v128, hi: v128, offset: v128, key: v128, ASYMMETRIC: bool, STOCHASTIC: bool,
): v128 {
  let v = f32x4.div(ASYMMETRIC ? f32x4.sub(x, zero) : x, scale);
  if (STOCHASTIC) v = f32x4.add(v, stochasticOffset4(spread, key));
  return i32x4.add(i32x4.trunc_sat_f32x4_s(f32x4.pmin(f32x4.pmax(f32x4.nearest(v), lo), hi)), offset);
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
 * Writes the float32 values of `groupCount` groups of `groupSize` codes to `dst` and returns -1,
 * or, writing nothing, the first invalid element (see the top of this file). The codes region
 * must be readable 3 bytes past its end (codes are read 4 bytes at a time).
 */
export function unpackCodes(
  codes: usize, scales: usize, zeros: usize, dst: usize, groupCount: i32, groupSize: i32, bits: i32, type: i32,
): i32 {
  // value = (code * step + shift) * scale + zero
  const step: i32 = type == BINARY ? 2 : 1;
  const shift: i32 = type == SYMMETRIC || type == FULL ? -(1 << (bits - 1)) : type == ASYMMETRIC ? 0 : -1;
  const mask: u32 = (1 << bits) - 1;
  const invLevels = <f32>1.0 / <f32>(1 << bits);
  const invalid = firstInvalid(codes, scales, zeros, groupCount, groupSize, bits, type, step, shift, mask, invLevels);
  if (invalid >= 0) return invalid;
  let bit: u64 = 0;
  for (let g = 0; g < groupCount; g++) {
    const scale = load<f32>(scales + (<usize>g << 2));
    const zero: f32 = type == ASYMMETRIC ? load<f32>(zeros + (<usize>g << 2)) : 0;
    const to = dst + (<usize>g * <usize>groupSize << 2);
    if (type == ASYMMETRIC && atHalfScale(scale, invLevels)) {
      bit = unpackGroup(codes, bit, to, groupSize, bits, mask, step, shift, true, scale * 0.5, zero * 0.5, true);
    } else {
      bit = unpackGroup(codes, bit, to, groupSize, bits, mask, step, shift, type == ASYMMETRIC, scale, zero, false);
    }
  }
  return -1;
}

/** The value of a grid level (or ternary/binary sign), as unpacking writes it. */
@inline function levelValue(level: f32, scale: f32, zero: f32, ASYMMETRIC: bool, HALVED: bool): f32 {
  const value = ASYMMETRIC ? level * scale + zero : level * scale;
  return HALVED ? value * 2 : value;
}

/** levelValue of four codes: the level in integers, then the same float32 operations. */
@inline function levelValues4(codes: v128, step: v128, shift: v128, scale: v128, zero: v128, two: v128, ASYMMETRIC: bool, HALVED: bool): v128 {
  const level = f32x4.convert_i32x4_s(i32x4.add(i32x4.mul(codes, step), shift));
  const value = ASYMMETRIC ? f32x4.add(f32x4.mul(level, scale), zero) : f32x4.mul(level, scale);
  return HALVED ? f32x4.mul(value, two) : value;
}

@inline function codeAt(codes: usize, bit: u64, mask: u32): u32 {
  return (load<u32>(codes + <usize>(bit >> 3)) >>> <u32>(bit & 7)) & mask;
}

/** One group of unpackCodes from stream bit `bit`; returns the bit after it. */
@inline function unpackGroup(
  codes: usize, bit: u64, to: usize, n: i32, bits: i32, mask: u32, step: i32, shift: i32, ASYMMETRIC: bool,
  scale: f32, zero: f32, HALVED: bool,
): u64 {
  let i = 0;
  // Codes of 2, 1, 8 and 4 bits that start on a byte, 16 at a time: the same integer level and
  // the same float32 multiply (and add) per element as the loop at the end, so the same bits.
  if (ASC_FEATURE_SIMD && bits == 2 && (bit & 7) == 0) {
    // Ternary, 16 codes (four bytes) at a time: a byte's four codes masked in place and scaled
    // down by exact powers of two, then level = code - 1.
    const vMasks = i32x4(3, 12, 48, 192), vDown = f32x4(1, 0.25, 0.0625, 0.015625), vOne = f32x4.splat(1), vScale = f32x4.splat(scale);
    for (; i + 16 <= n; i += 16) {
      const at = codes + <usize>(bit >> 3);
      const out = to + (<usize>i << 2);
      for (let k = 0; k < 4; k++) {
        const code = f32x4.mul(f32x4.convert_i32x4_s(v128.and(i32x4.splat(<i32>load<u8>(at + <usize>k)), vMasks)), vDown);
        v128.store(out + (<usize>k << 4), f32x4.mul(f32x4.sub(code, vOne), vScale));
      }
      bit += 32;
    }
  }
  if (ASC_FEATURE_SIMD && bits == 1 && (bit & 7) == 0) {
    // Binary, 16 codes (two bytes) at a time: each lane picks its bit, level = code * 2 - 1.
    const vBits = i32x4(1, 2, 4, 8), vOne = f32x4.splat(1), vMinusOne = f32x4.splat(-1), vScale = f32x4.splat(scale);
    for (; i + 16 <= n; i += 16) {
      const signs = <i32>load<u16>(codes + <usize>(bit >> 3));
      const out = to + (<usize>i << 2);
      for (let k = 0; k < 4; k++) {
        const set = i32x4.ne(v128.and(i32x4.splat(signs >> (k << 2)), vBits), i32x4.splat(0));
        v128.store(out + (<usize>k << 4), f32x4.mul(v128.bitselect(vOne, vMinusOne, set), vScale));
      }
      bit += 16;
    }
  }
  if (ASC_FEATURE_SIMD && (bits == 8 || bits == 4) && (bit & 7) == 0) {
    const vStep = i32x4.splat(step), vShift = i32x4.splat(shift);
    const vScale = f32x4.splat(scale), vZero = f32x4.splat(zero), vTwo = f32x4.splat(2);
    for (; i + 16 <= n; i += 16) {
      const at = codes + <usize>(bit >> 3);
      let bytes: v128;
      if (bits == 8) {
        bytes = v128.load(at);
      } else {
        // Byte j holds code 2j in its low nibble and code 2j + 1 in its high one.
        const packed = v128.load64_zero(at);
        bytes = v128.shuffle<u8>(v128.and(packed, i8x16.splat(0x0f)), i8x16.shr_u(packed, 4), 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
      }
      const low = i16x8.extend_low_i8x16_u(bytes);
      const high = i16x8.extend_high_i8x16_u(bytes);
      const out = to + (<usize>i << 2);
      v128.store(out, levelValues4(i32x4.extend_low_i16x8_u(low), vStep, vShift, vScale, vZero, vTwo, ASYMMETRIC, HALVED));
      v128.store(out, levelValues4(i32x4.extend_high_i16x8_u(low), vStep, vShift, vScale, vZero, vTwo, ASYMMETRIC, HALVED), 16);
      v128.store(out, levelValues4(i32x4.extend_low_i16x8_u(high), vStep, vShift, vScale, vZero, vTwo, ASYMMETRIC, HALVED), 32);
      v128.store(out, levelValues4(i32x4.extend_high_i16x8_u(high), vStep, vShift, vScale, vZero, vTwo, ASYMMETRIC, HALVED), 48);
      bit += <u64>(bits << 4);
    }
  }
  for (; i < n; i++) {
    const level = <f32>(<i32>codeAt(codes, bit, mask) * step + shift);
    bit += <u64>bits;
    store<f32>(to + (<usize>i << 2), levelValue(level, scale, zero, ASYMMETRIC, HALVED));
  }
  return bit;
}

/**
 * The first invalid element of unpackCodes' input, or -1. Cheap next to the writes: most groups
 * are plain, their scale (and zero point) such that every code decodes to a finite value, which
 * the SIMD build shows four groups at a time. A group that is not plain is bounded by its lowest
 * and highest codes, a code's value being monotonic in it; only when one of those overflows are
 * its codes read one by one. Ternary codes are scanned 64 at a time.
 */
function firstInvalid(
  codes: usize, scales: usize, zeros: usize, groupCount: i32, groupSize: i32, bits: i32, type: i32,
  step: i32, shift: i32, mask: u32, invLevels: f32,
): i32 {
  const length = groupCount * groupSize;
  const badCode = type == TERNARY ? firstTernaryThree(codes, length) : length;
  const asymmetric = type == ASYMMETRIC;
  const full = type == FULL;
  const lowest = <f32>shift;
  const highest = <f32>(<i32>mask * step + shift);
  // Plain scales: symmetric 2^(b-1) * |s| <= FLT_MAX (exact: a power of two); asymmetric, below
  // half scale, with a finite highest value checked alongside.
  const plainScale: f32 = type == SYMMETRIC || full ? FLOAT_MAX * invLevels * 2 : asymmetric ? HALVING_RANGE * invLevels : FLOAT_MAX;
  let g = 0;
  if (ASC_FEATURE_SIMD) {
    const vZero = f32x4.splat(0), vPlain = f32x4.splat(plainScale), vMax = f32x4.splat(FLOAT_MAX), vHighest = f32x4.splat(highest);
    for (; g + 4 <= groupCount; g += 4) {
      // On the full grid a scale's sign is free: its magnitude is checked (abs keeps NaN).
      const stored = v128.load(scales + (<usize>g << 2));
      const scale = full ? f32x4.abs(stored) : stored;
      let plain = v128.and(f32x4.ge(scale, vZero), asymmetric ? f32x4.lt(scale, vPlain) : f32x4.le(scale, vPlain));
      if (asymmetric) {
        const zero = v128.load(zeros + (<usize>g << 2));
        const top = f32x4.add(f32x4.mul(vHighest, scale), zero);
        plain = v128.and(plain, v128.and(f32x4.le(f32x4.abs(zero), vMax), f32x4.le(f32x4.abs(top), vMax)));
      }
      if (!i32x4.all_true(plain)) break;
    }
    if (badCode < g * groupSize) return badCode;
  }
  for (; g < groupCount; g++) {
    const start = g * groupSize;
    const scale = load<f32>(scales + (<usize>g << 2));
    // False for NaN, for ±Inf and, except on the full grid, for negative scales, which would
    // flip signs; ±0 passes.
    if (!((full ? abs<f32>(scale) : scale) >= 0 && abs<f32>(scale) <= FLOAT_MAX)) return start;
    let zero: f32 = 0;
    if (asymmetric) {
      zero = load<f32>(zeros + (<usize>g << 2));
      if (!isFinite(zero)) return start;
    }
    // Plain as in the vector loop; any other grid group is bounded by its lowest and highest codes.
    const plain = asymmetric ? scale < plainScale && isFinite(levelValue(highest, scale, zero, true, false)) : abs<f32>(scale) <= plainScale;
    if (!plain) {
      const halved = asymmetric && atHalfScale(scale, invLevels);
      const s = halved ? scale * 0.5 : scale;
      const z = halved ? zero * 0.5 : zero;
      if (!isFinite(levelValue(lowest, s, z, asymmetric, halved)) || !isFinite(levelValue(highest, s, z, asymmetric, halved))) {
        let bit = <u64>start * <u64>bits;
        for (let i = 0; i < groupSize; i++) {
          const level = <f32>(<i32>codeAt(codes, bit, mask) + shift);
          bit += <u64>bits;
          if (!isFinite(levelValue(level, s, z, asymmetric, halved))) return start + i;
        }
      }
    }
    if (badCode < start + groupSize) return badCode;
  }
  return -1;
}

/** The first of `length` 2-bit codes that is 3 (both bits set), or `length`. */
function firstTernaryThree(codes: usize, length: i32): i32 {
  const wholeBytes = length >> 2;
  let k = 0;
  // Bit 2j of a byte is set in byte & (byte >> 1) & 0x55 when code j of the byte is 3.
  if (ASC_FEATURE_SIMD) {
    const evenBits = i8x16.splat(0x55);
    for (; k + 16 <= wholeBytes; k += 16) {
      const x = v128.load(codes + <usize>k);
      if (v128.any_true(v128.and(v128.and(x, i8x16.shr_u(x, 1)), evenBits))) break;
    }
  } else {
    for (; k + 4 <= wholeBytes; k += 4) {
      const x = load<u32>(codes + <usize>k);
      if ((x & (x >>> 1) & 0x55555555) != 0) break;
    }
  }
  for (; k <= wholeBytes; k++) {
    const byte = <u32>load<u8>(codes + <usize>k);
    // The last byte holds length % 4 codes, and bits past them are no codes.
    const valid: u32 = k < wholeBytes ? 0x55 : 0x55 & ((1 << ((length & 3) << 1)) - 1);
    const threes = byte & (byte >>> 1) & valid;
    if (threes != 0) return (k << 2) + <i32>(ctz(threes) >> 1);
  }
  return length;
}
