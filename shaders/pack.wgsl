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
// overflow.
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
  if (!(meanAbs(stats) > 0.0)) {
    return 0.0;
  }
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

// One invocation per group: its scale and, asymmetric, its zero point. A group fakeQuantize
// leaves unchanged (scale 0) stores scale 0 and, asymmetric, its constant as the zero point.
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
      zeros[g] = select(stats.lo, atFullScale(group.zero, group), group.quantize);
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

// One invocation per element: data[i] = the value of its code.
@compute @workgroup_size(WORKGROUP_SIZE)
fn unpackCodes(workgroup: Workgroup, @builtin(local_invocation_index) local: u32) {
  let i = invocationIndex(workgroup, local);
  if (i >= job.length) {
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
    value = gridPoint(code + job.lo, storedGridGroup(scale, zero));
  } else if (pack.bits == 2u) {
    value = (code - 1.0) * scale;
  } else {
    value = (2.0 * code - 1.0) * scale;
  }
  data[job.base + i] = value;
}
