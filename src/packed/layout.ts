// The packed layout `edge-moq.packed/1`: integer codes in a little-endian bit stream plus one
// scale (and, asymmetric, one zero point) per group. Fixed so that other tools can read it;
// README "Packed weights" states it in full. For 4-bit symmetric codes with groups along the
// last dimension it is byte for byte onnxruntime's MatMulNBits weight layout (blocks along K,
// low nibble first, zero point 8).
//
//   codes:  symmetric q + 2^(b-1); asymmetric q (0..2^b-1); ternary t + 1; binary 1 for x >= 0
//   scale:  s (grid), alpha (ternary), mean |x| (binary). Symmetric codes are on DeepSpeed's grid
//           (s = 2 * absmax / 2^b) or, with `grid: 'full'`, on the full grid (s = m / -2^(b-1),
//           m the group's value of largest magnitude with its sign, the minimum on a tie; +0
//           for an all-zero group): the value formula is the same, but s is negative where m > 0.
//   zero:   asymmetric only, round(min / s) * s; a constant group (s = 0) stores the constant
//   value:  symmetric (code - 2^(b-1)) * s; asymmetric code * s + zero; ternary (code - 1) * alpha;
//           binary (2 * code - 1) * m
//   An asymmetric group whose range reaches 2^127 (stored s >= 2^(127-b)) was quantized at half
//   scale, 2 * Q(x / 2): its value is 2 * (code * (s/2) + zero/2), the same bits as the plain
//   formula wherever that one is finite (at the top codes it would overflow).
//   A group left unchanged although its scale underflowed to 0 (its values a few subnormals
//   apart) is stored with s = 2^-149, the step every float32 is a multiple of: its codes are
//   exact (assembly/pack.ts).
//   valid: s finite and >= 0 (±0 included; of either sign on the full grid), zero finite, ternary
//   codes 0..2, and every code's value finite; unpack checks all of it before writing (invalidPackedError says what failed).

import { float32Length, planFakeQuantizeLength, type FakeQuantizeOptions, type Grid, type KernelPlan } from '../kernel-plan.js';
import { describeValue } from '../describe.js';
import { InvalidInputError } from '../errors.js';

/** The `format` of a packed record in the layout above, without `axis` or the full `grid`. */
export const PACKED_FORMAT = 'edge-moq.packed/1';
/**
 * The same layout with records that may name an `axis` or the full `grid`: a reader of /1 that
 * ignored those fields would decode such a tensor in the wrong order or with the wrong sign, so
 * files that use them say /2, which such a reader refuses instead.
 */
export const PACKED_FORMAT_V2 = 'edge-moq.packed/2';

const FLOAT_MAX = 3.4028234663852886e38;

/** How a packed tensor's codes are read: the grid for 3 to 8 bits, ternary at 2, binary at 1. */
export type PackedType = 'symmetric' | 'asymmetric' | 'ternary' | 'binary';

/** One tensor's codes and per-group parameters. */
export interface PackedTensor {
  bits: number;
  type: PackedType;
  /** Elements in the tensor. */
  length: number;
  groupSize: number;
  /** ceil(length * bits / 8) bytes: element i's code is stream bits [i*bits, (i+1)*bits). */
  codes: Uint8Array;
  /** One per group. */
  scales: Float32Array;
  /** One per group, asymmetric only (else null). */
  zeros: Float32Array | null;
  /**
   * The symmetric grid the codes were made on (absent: 'deepspeed'). 'full' only with type
   * 'symmetric'; its scales are m / -2^(b-1), negative where the group's largest magnitude is
   * positive. Values decode by the same formula on both grids.
   */
  grid?: Grid;
}

/** Fake-quantization options that make sense for packing (no blend: codes are the point). */
export type PackOptions = Omit<FakeQuantizeOptions, 'blendRatio'> & {
  /**
   * The tensor index of data[0] when packing a tensor chunk by chunk: stochastic noise is a
   * function of the index in the tensor, so chunks pack exactly as the whole tensor would.
   */
  firstIndex?: number;
};

/** A validated pack call: the kernel plan plus what the packed tensor records. */
export interface PackPlan extends KernelPlan {
  type: PackedType;
  /** The grid a PackedTensor of this plan records: 'full' only for a full symmetric grid. */
  grid: Grid;
  firstIndex: number;
  codeBytes: number;
}

/**
 * The packed type of a width.
 * @param bits The code width, 1 to 8.
 * @param asymmetric Whether the grid has a zero point (ignored at 1 and 2 bits).
 * @returns 'binary' at 1 bit, 'ternary' at 2, else the grid's type.
 */
export function packedType(bits: number, asymmetric: boolean): PackedType {
  if (bits === 1) return 'binary';
  if (bits === 2) return 'ternary';
  return asymmetric ? 'asymmetric' : 'symmetric';
}

/**
 * The size of a packed tensor's code stream.
 * @param length The number of values.
 * @param bits The code width.
 * @returns Bytes: length × bits, rounded up to whole bytes.
 */
export function codeBytes(length: number, bits: number): number {
  return Math.ceil((length * bits) / 8);
}

/** Validates a pack call on a host array before anything is allocated or touched. */
export function planPackData(data: unknown, options: PackOptions, label = 'data'): PackPlan {
  // Read through the typed-array intrinsics: a Proxy or a subclass lying about its length is a
  // typed error, not a raw TypeError or a wrong size.
  return planPack(float32Length(data, label), options, label);
}

/**
 * Validates a pack call on `length` float32 values (held anywhere).
 * @param length How many float32 values.
 * @param options Width, group size and grid (no blend).
 * @param label What the values are called in error messages.
 * @returns The kernel plan and what the packed tensor records.
 */
export function planPack(length: number, options: PackOptions, label = 'data'): PackPlan {
  if (options !== null && typeof options === 'object' && 'blendRatio' in options) {
    throw new InvalidInputError('INVALID_ARGUMENT', 'options.blendRatio has no packed form (a blend is not on any grid); pack without it, or use fakeQuantize.');
  }
  const { firstIndex = 0, ...rest } = (options ?? {}) as PackOptions;
  if (!Number.isInteger(firstIndex) || firstIndex < 0 || firstIndex > 0xffffffff) {
    throw new InvalidInputError('INVALID_ARGUMENT', `options.firstIndex must be an integer in 0..2^32-1, got ${String(firstIndex)}.`);
  }
  const plan = planFakeQuantizeLength(length, rest, label);
  return {
    ...plan,
    type: packedType(plan.bits, plan.asymmetric),
    grid: plan.full ? 'full' : 'deepspeed',
    firstIndex,
    codeBytes: codeBytes(length, plan.bits),
  };
}

/**
 * Empty arrays of the right sizes for `plan` (reuse them across calls of the same shape).
 * @param plan The plan from planPack.
 * @returns A PackedTensor with zeroed codes, scales and (asymmetric) zero points.
 */
export function allocatePacked(plan: PackPlan): PackedTensor {
  return {
    bits: plan.bits,
    type: plan.type,
    length: plan.length,
    groupSize: plan.groupSize,
    codes: new Uint8Array(plan.codeBytes),
    scales: new Float32Array(plan.groupCount),
    zeros: plan.type === 'asymmetric' ? new Float32Array(plan.groupCount) : null,
    grid: plan.grid,
  };
}

/** Checks that `into` has the sizes `plan` needs. */
export function validateInto(into: PackedTensor, plan: PackPlan): void {
  validatePacked(into, 'into');
  if (into.bits !== plan.bits || into.type !== plan.type || into.length !== plan.length || into.groupSize !== plan.groupSize) {
    throw new InvalidInputError(
      'INVALID_ARGUMENT',
      `into holds ${into.length} ${into.type} ${into.bits}-bit codes in groups of ${into.groupSize}, but this call packs ` +
        `${plan.length} ${plan.type} ${plan.bits}-bit codes in groups of ${plan.groupSize}; allocate it with allocatePacked(planPack(...)).`,
    );
  }
  if ((into.grid ?? 'deepspeed') !== plan.grid) {
    throw new InvalidInputError(
      'INVALID_ARGUMENT',
      `into is for codes on the ${into.grid ?? 'deepspeed'} grid, but this call packs on the ${plan.grid} grid; allocate it with allocatePacked(planPack(...)).`,
    );
  }
}

/**
 * What is wrong with a packed tensor's description — bits, type, group size and grid, the
 * fields a PackedTensor and a file's packed record share — or null. The one check of them:
 * validatePacked and the safetensors reader (formats/packed-metadata.ts) both use it.
 */
export function packedDescriptionProblem({ bits, type, groupSize, grid }: { bits: unknown; type: unknown; groupSize: unknown; grid?: unknown }): string | null {
  if (!Number.isInteger(bits) || (bits as number) < 1 || (bits as number) > 16) return `bits must be an integer in 1..16, got ${describeValue(bits)}.`;
  if (type !== packedType(bits as number, type === 'asymmetric')) {
    return `type ${describeValue(type)} does not fit bits ${bits as number} (1: binary, 2: ternary, 3..16: symmetric or asymmetric).`;
  }
  if (!Number.isInteger(groupSize) || (groupSize as number) <= 0) return `groupSize must be a positive integer, got ${describeValue(groupSize)}.`;
  return packedGridProblem({ grid, type: type as PackedType });
}

/**
 * Checks a PackedTensor's fields against each other (it may come from a file).
 * @param packed The tensor to check.
 * @param label What it is called in error messages.
 */
export function validatePacked(packed: PackedTensor, label = 'packed'): void {
  const fail = (what: string) => {
    throw new InvalidInputError('INVALID_ARGUMENT', `${label}: ${what}`);
  };
  if (packed === null || typeof packed !== 'object') fail('must be a PackedTensor ({ bits, type, length, groupSize, codes, scales, zeros }).');
  const { bits, type, length, groupSize, codes, scales, zeros } = packed;
  const problem = packedDescriptionProblem(packed);
  if (problem) fail(problem);
  if (!Number.isInteger(length) || length <= 0) fail(`length must be a positive integer, got ${describeValue(length)}.`);
  if (length % groupSize !== 0) fail(`groupSize ${groupSize} must divide length ${length}.`);
  if (!(codes instanceof Uint8Array) || codes.length !== codeBytes(length, bits)) fail(`codes must be a Uint8Array of ceil(${length}*${bits}/8) = ${codeBytes(length, bits)} bytes.`);
  const groups = length / groupSize;
  if (!(scales instanceof Float32Array) || scales.length !== groups) fail(`scales must be a Float32Array of ${groups} values (one per group).`);
  if (type === 'asymmetric') {
    if (!(zeros instanceof Float32Array) || zeros.length !== groups) fail(`zeros must be a Float32Array of ${groups} values for asymmetric codes.`);
  } else if (zeros !== null && zeros !== undefined) {
    fail(`zeros must be null for ${type} codes.`);
  }
}

/** What is wrong with a packed tensor's `grid` field, or null. */
export function packedGridProblem({ grid, type }: { grid?: unknown; type: PackedType }): string | null {
  if (grid !== undefined && grid !== 'deepspeed' && grid !== 'full') return `grid must be "deepspeed" or "full", got ${describeValue(grid)}.`;
  if (grid === 'full' && type !== 'symmetric') return `grid "full" is a symmetric grid, but the codes are ${type}.`;
  return null;
}

/** The pack options that give a packed tensor of this shape (to plan its arrays). */
export function shapeOptions({ bits, type, groupSize, grid }: { bits: number; type: PackedType; groupSize: number; grid?: Grid }): PackOptions {
  return { bits, groupSize, ...(type === 'asymmetric' ? { type } : {}), ...(grid === 'full' ? { grid } : {}) };
}

/**
 * The error of an unpack that found `element` to be the first invalid one (the kernels' verdict;
 * a group's first element when its scale or zero point is bad). It names the group, its elements
 * and what is wrong, with `location.group`.
 */
export function invalidPackedError(packed: PackedTensor, element: number): InvalidInputError {
  const { group, what } = invalidPackedReason(packed, element);
  const first = group * packed.groupSize;
  return new InvalidInputError(
    'INVALID_ARGUMENT',
    `packed: group ${group} (elements ${first}..${first + packed.groupSize - 1}): ${what}. The packed data is damaged or was not ` +
      'written by a packer: pack the weights again. Nothing was written.',
    { location: { group, index: element } },
  );
}

/**
 * Why `element` of `packed` (as a kernel reported it) cannot be unpacked, and its group. Element
 * numbers in the text count from `firstElement` (where `packed` is a chunk of a larger tensor).
 */
export function invalidPackedReason(packed: PackedTensor, element: number, firstElement = 0): { group: number; what: string } {
  const { groupSize, bits, type } = packed;
  const group = Math.floor(element / groupSize);
  const scale = packed.scales[group]!;
  const zero = packed.zeros?.[group];
  let what: string;
  if (!(Math.abs(scale) <= FLOAT_MAX) || (scale < 0 && packed.grid !== 'full')) {
    what =
      packed.grid === 'full'
        ? `its scale is ${describeValue(scale)}, but a scale must be finite`
        : `its scale is ${describeValue(scale)}, but a scale must be finite and >= 0 (negative scales are for codes on the full grid, grid: 'full')`;
  } else if (zero !== undefined && !Number.isFinite(zero)) {
    what = `its zero point is ${describeValue(zero)}, but a zero point must be finite`;
  } else {
    let code = 0;
    for (let k = 0; k < bits; k++) {
      const j = element * bits + k;
      code |= ((packed.codes[j >> 3]! >> (j & 7)) & 1) << k;
    }
    const at = firstElement + element;
    what =
      type === 'ternary'
        ? `element ${at} has code 3, but ternary codes are 0, 1 and 2`
        : `element ${at}'s code ${code} decodes beyond float32 (scale ${describeValue(scale)}` + `${zero === undefined ? '' : `, zero point ${describeValue(zero)}`})`;
  }
  return { group, what };
}
