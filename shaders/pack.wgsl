// Packing to `edge-moq.packed/1` and back (the twin of assembly/pack.ts; src/packed/layout.ts
// states the layout). Composed after the fake-quantization kernels, whose statistics passes
// run first for large groups (small groups are read by one invocation, as their writers do),
// so every group gets the very statistics fakeQuantize uses on this device, summed in the same
// order. The codes come from the formulas the fake-quantization writers use (gridIndex,
// ternarySign), and unpacking from gridPoint, so unpack(pack(x)) is fakeQuantize(x).
//
//   symmetric:  code = gridIndex + 2^(b-1)     value = (code - 2^(b-1)) * s
//   asymmetric: code = gridIndex               value = code * s + zp
//   ternary:    code = ternarySign + 1         value = (code - 1) * alpha
//   binary:     code = 1 where x >= 0, else 0  value = (2 * code - 1) * mean |x|
//
// An asymmetric group at half scale (grid.wgsl) stores 2s and 2zp, both finite, and is found
// again by its scale (storedGridGroup), its values taken at half scale: code * s alone could
// overflow. A grid group of scale 0 decodes to its zero point, and a binary one to +-mean, by
// assignment as the writers do it: arithmetic could flush a subnormal they keep.
//
// Unpacking reads data that may come from a damaged or hostile file: checkGroups (and, ternary,
// checkTernaryCodes) run first and report the first invalid element, as assembly/pack.ts
// defines it, in the status; then unpackCodes writes nothing.
//
// Element i's code is bits [i*b, (i+1)*b) of a little-endian stream of u32 words, so the bytes
// of `codes` are the layout's bytes. Each word is written whole by one invocation, which
// computes every element overlapping it: no atomics, and elements straddling two words are
// computed twice.

struct Pack {
  bits: u32,
  // The tensor index of data[0]: stochastic noise continues across chunks of a tensor.
  firstIndex: u32,
  wordCount: u32,
  // 1 when groups are small (src/backends/webgpu/plan.ts): no statistics pass ran for them, and
  // each invocation reads its group itself, as the *SmallGroups writers do.
  smallGroups: u32,
}

@group(0) @binding(4) var<storage, read_write> codes: array<u32>;
@group(0) @binding(5) var<storage, read_write> scales: array<f32>;
// Bound to a small unused buffer unless the codes are asymmetric.
@group(0) @binding(6) var<storage, read_write> zeros: array<f32>;
@group(0) @binding(7) var<uniform> pack: Pack;

fn isGrid() -> bool {
  return pack.bits >= 3u;
}

fn groupStats(g: u32) -> Partial {
  if (pack.smallGroups != 0u) {
    return smallGroupPartial(g);
  }
  return partials[job.groupStatsBase + g];
}

fn ternaryThreshold(stats: Partial) -> f32 {
  return THRESHOLD_FACTOR * meanAbs(stats);
}

fn ternaryAlpha(g: u32, stats: Partial) -> f32 {
  if (pack.smallGroups == 0u) {
    return ternaryGroup(stats, partials[job.thresholdGroupBase + g]).alpha;
  }
  let threshold = ternaryThreshold(stats);
  let unit = sumUnit(stats);
  let start = job.base + g * job.groupSize;
  var above = emptyPartial();
  for (var i = start; i < start + job.groupSize; i++) {
    above = withAbove(above, data[i], threshold, unit);
  }
  return ternaryGroup(stats, above).alpha;
}

// One invocation per group: its scale and, asymmetric, its zero point. A group of scale 0
// stores scale 0 and, asymmetric, its minimum as the zero point (grid.wgsl).
@compute @workgroup_size(WORKGROUP_SIZE)
fn packGroups(workgroup: Workgroup, @builtin(local_invocation_index) local: u32) {
  let g = invocationIndex(workgroup, local);
  if (g >= job.groupCount || !writesAllowed()) {
    return;
  }
  let stats = groupStats(g);
  if (isGrid()) {
    let group = gridGroup(stats);
    scales[g] = atFullScale(group.scale, group);
    if (hasFlag(FLAG_ASYMMETRIC)) {
      zeros[g] = atFullScale(group.zero, group);
    }
  } else if (pack.bits == 2u) {
    scales[g] = ternaryAlpha(g, stats);
  } else {
    scales[g] = meanAbs(stats);
  }
}

// What computing a group's codes needs. packGroups ran first: a grid group is its stored
// scale and zero point, which are gridGroup's (storedGridGroup undoes atFullScale).
struct CodeGroup {
  grid: GridGroup,
  threshold: f32,
}

fn codeGroup(g: u32) -> CodeGroup {
  if (isGrid()) {
    var zero = 0.0;
    if (hasFlag(FLAG_ASYMMETRIC)) {
      zero = zeros[g];
    }
    return CodeGroup(storedGridGroup(scales[g], zero), 0.0);
  }
  var threshold = 0.0;
  if (pack.bits == 2u) {
    threshold = ternaryThreshold(groupStats(g));
  }
  return CodeGroup(GridGroup(0.0, 0.0, false, false), threshold);
}

// The code of element i of the tensor; job.lo is -2^(b-1) symmetric, 0 asymmetric.
fn codeOf(x: f32, i: u32, group: CodeGroup) -> u32 {
  if (isGrid()) {
    var q = 0.0;
    if (group.grid.quantize) {
      q = gridIndex(x, pack.firstIndex + i, group.grid);
    }
    return u32(q - job.lo);
  }
  if (pack.bits == 2u) {
    return u32(ternarySign(x, group.threshold) + 1.0);
  }
  return select(0u, 1u, x >= 0.0);
}

// One invocation per word w, covering stream bits [32w, 32w + 32). With w = b*q + r, the
// elements overlapping it run from 32q + floor(32r / b) to 32q + floor((32r + 31) / b), and
// element 32q + k starts k*b - 32r bits into it (negative: in the word before): no product
// here outgrows u32, though 32w itself may.
@compute @workgroup_size(WORKGROUP_SIZE)
fn packCodes(workgroup: Workgroup, @builtin(local_invocation_index) local: u32) {
  let w = invocationIndex(workgroup, local);
  if (w >= pack.wordCount || !writesAllowed()) {
    return;
  }
  let b = pack.bits;
  let origin = 32u * (w / b);
  let r = w % b;
  let last = min(origin + (32u * r + 31u) / b, job.length - 1u);
  var word = 0u;
  var groupIndex = 0xffffffffu;
  var group: CodeGroup;
  for (var i = origin + (32u * r) / b; i <= last; i++) {
    let g = i / job.groupSize;
    if (g != groupIndex) {
      groupIndex = g;
      group = codeGroup(g);
    }
    let code = codeOf(data[job.base + i], i, group);
    let offset = i32((i - origin) * b) - i32(32u * r);
    if (offset >= 0) {
      word |= code << u32(offset);
    } else {
      word |= code >> u32(-offset);
    }
  }
  codes[w] = word;
}

// Element i's code: bit i*b of the stream is bit (k*b) mod 32 of word q*b + floor(k*b / 32),
// with i = 32q + k; a code runs into the next word when it does not fit in this one.
fn codeAt(i: u32) -> u32 {
  let b = pack.bits;
  let k = i % 32u;
  let word = (i / 32u) * b + (k * b) / 32u;
  let offset = (k * b) % 32u;
  var code = codes[word] >> offset;
  if (offset + b > 32u) {
    code |= codes[word + 1u] << (32u - offset);
  }
  return code & ((1u << b) - 1u);
}

// Whether gridPoint(q, group) overflows float32, decided at 2^-32 scale, where nothing can
// overflow (WGSL leaves an overflowing operation indeterminate). Scaling by a power of two is
// exact on normal values and float32 arithmetic is correctly rounded, so the scaled result
// reaches 2^96 (2^95 before a half-scale group's doubling) exactly when the real one rounds to
// ±Inf. Operands that turn subnormal when scaled (|s|, |zp| < 2^-94) are too small to matter.
fn gridPointOverflows(q: f32, group: GridGroup) -> bool {
  let product = unfused(q * (group.scale * 0x1p-32f));
  var sum = product;
  if (hasFlag(FLAG_ASYMMETRIC)) {
    sum = product + group.zero * 0x1p-32f;
  }
  return abs(product) >= 0x1p96f || abs(sum) >= select(0x1p96f, 0x1p95f, group.halved);
}

// Groups one invocation of checkGroups checks: a software GPU pays for every invocation, and
// groups of one element would otherwise double the cost of unpacking.
const CHECKED_GROUPS: u32 = 16u;
const NONE: u32 = 0xffffffffu;

fn zeroOf(g: u32) -> f32 {
  if (hasFlag(FLAG_ASYMMETRIC)) {
    return zeros[g];
  }
  return 0.0;
}

// Whether a scale has a valid sign: on the bits, negative scales (which would flip signs) fail,
// ±0 passes; on the full grid either sign is valid.
fn validSign(scale: f32) -> bool {
  return hasFlag(FLAG_FULL) | (bitcast<u32>(scale) <= 0x80000000u);
}

// Whether a group's scale and zero point are valid and, grid, so moderate that every code
// decodes to a finite value: symmetric 2^(b-1) * |s| <= FLT_MAX; asymmetric (2^b - 1) * s and
// |zp| under 2^126, so their sum too. Non-short-circuit operators: no branches.
fn plainGroup(scale: f32, zero: f32) -> bool {
  // NaN and ±Inf fail.
  let valid = isFiniteValue(scale) & validSign(scale) & isFiniteValue(zero);
  let asymmetricModerate = (scale <= 0x1p126f * job.scaleFactor) & (abs(zero) <= 0x1p126f);
  let moderate = (abs(scale) <= FLOAT_MAX * job.scaleFactor) & (!hasFlag(FLAG_ASYMMETRIC) | asymmetricModerate);
  return valid & (!isGrid() | moderate);
}

// The first invalid element of group g, or NONE: its first for a scale or zero point that is
// invalid, else a code that decodes beyond float32 (only in damaged data), the value of a code
// being monotonic in it.
fn firstInvalidIn(g: u32) -> u32 {
  let scale = scales[g];
  let zero = zeroOf(g);
  let start = g * job.groupSize;
  if (!isFiniteValue(scale) || !validSign(scale) || !isFiniteValue(zero)) {
    return start;
  }
  let group = storedGridGroup(scale, zero);
  if (!isGrid() || !(gridPointOverflows(job.lo, group) || gridPointOverflows(job.hi, group))) {
    return NONE;
  }
  for (var i = start; i < start + job.groupSize; i++) {
    if (gridPointOverflows(f32(codeAt(i)) + job.lo, group)) {
      return i;
    }
  }
  return NONE;
}

// A workgroup per WORKGROUP_SIZE * CHECKED_GROUPS groups, its invocations reading neighbouring
// groups at each step. Only where one is not plain does an invocation look closer; it reports
// the first invalid element as packing reports a NaN.
@compute @workgroup_size(WORKGROUP_SIZE)
fn checkGroups(workgroup: Workgroup, @builtin(local_invocation_index) local: u32) {
  let first = workgroupIndex(workgroup) * WORKGROUP_SIZE * CHECKED_GROUPS + local;
  let end = min(first + WORKGROUP_SIZE * CHECKED_GROUPS, job.groupCount);
  var plain = true;
  for (var g = first; g < end; g += WORKGROUP_SIZE) {
    plain = plain & plainGroup(scales[g], zeroOf(g));
  }
  if (plain) {
    return;
  }
  for (var g = first; g < end; g += WORKGROUP_SIZE) {
    let invalid = firstInvalidIn(g);
    if (invalid != NONE) {
      reportNonFinite(invalid);
      return;
    }
  }
}

// Ternary only, one invocation per word of 16 codes: the first code 3 in it.
@compute @workgroup_size(WORKGROUP_SIZE)
fn checkTernaryCodes(workgroup: Workgroup, @builtin(local_invocation_index) local: u32) {
  let w = invocationIndex(workgroup, local);
  if (w >= pack.wordCount) {
    return;
  }
  let word = codes[w];
  // Bit 2k is set where code k of the word is 3; bits past the last code are no codes.
  var threes = word & (word >> 1u) & 0x55555555u;
  let first = 16u * w;
  if (job.length - first < 16u) {
    threes &= (1u << (2u * (job.length - first))) - 1u;
  }
  if (threes != 0u) {
    reportNonFinite(first + countTrailingZeros(threes) / 2u);
  }
}

// One invocation per element: data[i] = the value of its code (nothing once the checks above
// found the data invalid).
@compute @workgroup_size(WORKGROUP_SIZE)
fn unpackCodes(workgroup: Workgroup, @builtin(local_invocation_index) local: u32) {
  let i = invocationIndex(workgroup, local);
  if (i >= job.length || !writesAllowed()) {
    return;
  }
  let code = codeAt(i);
  let g = i / job.groupSize;
  let scale = scales[g];
  let level = f32(code);
  var value: f32;
  if (isGrid()) {
    let group = storedGridGroup(scale, zeroOf(g));
    value = select(group.zero, gridPoint(level + job.lo, group), group.quantize);
  } else if (pack.bits == 2u) {
    value = (level - 1.0) * scale;
  } else {
    value = select(-scale, scale, code == 1u);
  }
  data[job.base + i] = value;
}
