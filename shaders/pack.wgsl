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
// Unpacking reads data that may come from a damaged or hostile file: checkCodes runs first and
// reports the first invalid element (as assembly/pack.ts defines it) in the status, and then
// unpackCodes writes nothing.
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
  // 1 when groups are small (src/backends/webgpu-plan.ts): no statistics pass ran for them, and
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

// What checking and unpacking a group need, from its stored scale and zero point.
struct StoredGroup {
  grid: GridGroup,
  // Its scale and zero point are valid (see checkCodes).
  valid: bool,
  // Some code may decode beyond float32: every code is checked.
  checkEach: bool,
}

fn storedGroup(g: u32) -> StoredGroup {
  let scale = scales[g];
  var zero = 0.0;
  if (hasFlag(FLAG_ASYMMETRIC)) {
    zero = zeros[g];
  }
  let bits = bitcast<u32>(scale);
  // On the bits: NaN, ±Inf and negative scales (which would flip signs) fail, ±0 passes.
  let valid = isFiniteValue(scale) && isFiniteValue(zero) && (bits <= 0x80000000u);
  let grid = storedGridGroup(scale, zero);
  var checkEach = pack.bits == 2u;
  if (isGrid() && grid.quantize) {
    // The value of a code is monotonic in it: the lowest and highest codes bound the group.
    checkEach = gridPointOverflows(job.lo, grid) || gridPointOverflows(job.hi, grid);
  }
  return StoredGroup(grid, valid, checkEach);
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

// Whether element i's code decodes to a finite value (codes 0..2 for ternary).
fn codeValid(i: u32, group: StoredGroup) -> bool {
  let code = codeAt(i);
  if (pack.bits == 2u) {
    return code != 3u;
  }
  return !gridPointOverflows(f32(code) + job.lo, group.grid);
}

// One invocation per word of codes, covering the elements that overlap it (as packCodes): the
// first invalid element of its groups and codes, reported as packing reports a NaN. A group
// whose scale or zero point is invalid reports its first element.
@compute @workgroup_size(WORKGROUP_SIZE)
fn checkCodes(workgroup: Workgroup, @builtin(local_invocation_index) local: u32) {
  let w = invocationIndex(workgroup, local);
  if (w >= pack.wordCount) {
    return;
  }
  let b = pack.bits;
  let origin = 32u * (w / b);
  let r = w % b;
  let last = min(origin + (32u * r + 31u) / b, job.length - 1u);
  var groupIndex = 0xffffffffu;
  var group: StoredGroup;
  for (var i = origin + (32u * r) / b; i <= last; i++) {
    let g = i / job.groupSize;
    if (g != groupIndex) {
      groupIndex = g;
      group = storedGroup(g);
      if (!group.valid) {
        reportNonFinite(g * job.groupSize);
        return;
      }
    }
    if (group.checkEach && !codeValid(i, group)) {
      reportNonFinite(i);
      return;
    }
  }
}

// One invocation per element: data[i] = the value of its code.
@compute @workgroup_size(WORKGROUP_SIZE)
fn unpackCodes(workgroup: Workgroup, @builtin(local_invocation_index) local: u32) {
  let i = invocationIndex(workgroup, local);
  if (i >= job.length || !writesAllowed()) {
    return;
  }
  let code = f32(codeAt(i));
  let g = i / job.groupSize;
  let scale = scales[g];
  var value: f32;
  if (isGrid()) {
    var zero = 0.0;
    if (hasFlag(FLAG_ASYMMETRIC)) {
      zero = zeros[g];
    }
    let group = storedGridGroup(scale, zero);
    value = select(group.zero, gridPoint(code + job.lo, group), group.quantize);
  } else if (pack.bits == 2u) {
    value = (code - 1.0) * scale;
  } else {
    value = select(-scale, scale, code == 1.0);
  }
  data[job.base + i] = value;
}
