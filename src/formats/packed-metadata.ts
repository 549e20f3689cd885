// The `__metadata__` of an `edge-moq.packed/1` safetensors file: "format" names the layout and
// "edge-moq" is a JSON string mapping each packed tensor name to how it was packed. Readers
// check it against the tensors before trusting it.

import { describeValue } from '../describe.js';
import { FormatError } from '../errors.js';
import type { Grid } from '../kernel-plan.js';
import { codeBytes, PACKED_FORMAT, PACKED_FORMAT_V2, packedDescriptionProblem, type PackedType } from '../packed/layout.js';
import { axisProblem } from './axis.js';
import type { Dtype, SafetensorsFile, TensorInfo } from './safetensors.js';
import { parseStrictJson } from './strict-json.js';

/** How one tensor was packed (its `edge-moq` metadata entry). */
export interface PackedEntry {
  bits: number;
  type: PackedType;
  groupSize: number;
  shape: number[];
  /** The original dtype. */
  dtype: Dtype;
  /** The dimension the groups run along (axis.ts); absent: the last (the layout before axes). */
  axis?: number;
  /** The symmetric grid; absent: 'deepspeed'. Only 'full' is ever written. */
  grid?: Grid;
}

/** A packed tensor's parts in a file: `N.q`, `N.scale` and (asymmetric) `N.zero`. */
export interface PackedParts {
  name: string;
  entry: PackedEntry;
  length: number;
  codes: TensorInfo;
  scales: TensorInfo;
  zeros: TensorInfo | null;
}

const RECORDS = 'it must be a JSON object mapping tensor names to { bits, type, groupSize, shape, dtype } (and optionally axis, grid)';

/**
 * A tensor's record, with `axis` and `grid` only where they differ from the defaults, so that
 * a file packed the way files were before axes and grids reads the same everywhere.
 */
export function packedEntry(plan: { bits: number; type: PackedType; groupSize: number; grid?: Grid }, shape: readonly number[], dtype: Dtype, axis = shape.length - 1): PackedEntry {
  return {
    bits: plan.bits,
    type: plan.type,
    groupSize: plan.groupSize,
    shape: [...shape],
    dtype: dtype as PackedEntry['dtype'],
    ...(axis !== shape.length - 1 ? { axis } : {}),
    ...(plan.grid === 'full' ? { grid: plan.grid } : {}),
  };
}

export const packedNames = (name: string) => ({ codes: `${name}.q`, scales: `${name}.scale`, zeros: `${name}.zero` });

export function packedMetadata(entries: ReadonlyMap<string, PackedEntry>, extra: Readonly<Record<string, string>> = {}): Record<string, string> {
  const extended = [...entries.values()].some((entry) => entry.axis !== undefined || entry.grid !== undefined);
  return { ...extra, format: extended ? PACKED_FORMAT_V2 : PACKED_FORMAT, 'edge-moq': JSON.stringify(Object.fromEntries(entries)) };
}

/**
 * Whether `file` says it is packed by edge-moq.
 * @param file - an opened safetensors file
 * @returns whether its `__metadata__.format` is one of the packed formats
 */
export function isPackedFile(file: SafetensorsFile): boolean {
  return file.metadata.format === PACKED_FORMAT || file.metadata.format === PACKED_FORMAT_V2;
}

/**
 * The packed tensors of `file`, checked against their metadata; tensors not listed are stored
 * unchanged. Throws FormatError naming the first inconsistency.
 * @param file - an opened packed file
 * @returns the packed tensors (codes, scales, zero points and entry), and the tensors stored as they were
 */
export function readPackedLayout(file: SafetensorsFile): { packed: PackedParts[]; plain: TensorInfo[] } {
  if (!isPackedFile(file)) {
    throw new FormatError(
      `this file is not packed by edge-moq (its __metadata__.format is ${describeValue(file.metadata.format ?? null)}, ` +
        `not "${PACKED_FORMAT}" or "${PACKED_FORMAT_V2}"); quantize it first with "edge-moq quantize".`,
    );
  }
  const records = file.metadata['edge-moq'];
  if (records === undefined) throw new FormatError(`__metadata__["edge-moq"] is missing; ${RECORDS}.`);
  // Strictly: a tensor listed twice would otherwise lose its first record without a word.
  const entries = parseStrictJson(records, (problem, index) => {
    throw new FormatError(`__metadata__["edge-moq"] ${problem} (at character ${index}); ${RECORDS}.`);
  });
  if (entries === null || typeof entries !== 'object' || Array.isArray(entries)) {
    throw new FormatError(`__metadata__["edge-moq"] is ${describeValue(entries)}; ${RECORDS}.`);
  }
  const byName = new Map(file.tensors.map((t) => [t.name, t]));
  const used = new Set<string>();
  const packed = Object.entries(entries as Record<string, unknown>).map(([name, raw]) => {
    const entry = checkEntry(name, raw);
    if (file.metadata.format === PACKED_FORMAT && (entry.axis !== undefined || entry.grid !== undefined)) {
      throw new FormatError(
        `__metadata__["edge-moq"][${describeValue(name)}] names an axis or grid, which a "${PACKED_FORMAT}" file cannot hold (its readers ignore them); such files say "${PACKED_FORMAT_V2}".`,
      );
    }
    const length = entry.shape.reduce((a, b) => a * b, 1);
    if (length % entry.groupSize !== 0) throw new FormatError(`${describeValue(name)}: groupSize ${entry.groupSize} does not divide its ${length} elements.`);
    if (entry.axis !== undefined) {
      const problem = axisProblem(entry.shape, entry.axis, entry.groupSize);
      if (problem) throw new FormatError(`__metadata__["edge-moq"][${describeValue(name)}]: ${problem}.`);
    }
    const names = packedNames(name);
    const part = (partName: string, dtype: Dtype, elements: number): TensorInfo => {
      const tensor = byName.get(partName);
      if (!tensor) throw new FormatError(`${describeValue(name)} is listed as packed but the file has no tensor ${describeValue(partName)}.`);
      if (tensor.dtype !== dtype || tensor.length !== elements || tensor.shape.length !== 1) {
        throw new FormatError(`${describeValue(partName)} must be ${dtype} of shape [${elements}], got ${tensor.dtype} [${tensor.shape.join(', ')}].`);
      }
      used.add(partName);
      return tensor;
    };
    const groups = length / entry.groupSize;
    return {
      name,
      entry,
      length,
      codes: part(names.codes, 'U8', codeBytes(length, entry.bits)),
      scales: part(names.scales, 'F32', groups),
      zeros: entry.type === 'asymmetric' ? part(names.zeros, 'F32', groups) : null,
    };
  });
  return { packed, plain: file.tensors.filter((t) => !used.has(t.name)) };
}

function checkEntry(name: string, raw: unknown): PackedEntry {
  const fail = (what: string): never => {
    throw new FormatError(`__metadata__["edge-moq"][${describeValue(name)}]: ${what}`);
  };
  if (raw === null || typeof raw !== 'object') fail('must be an object { bits, type, groupSize, shape, dtype }.');
  const { bits, type, groupSize, shape, dtype, axis, grid } = raw as Record<string, unknown>;
  const problem = packedDescriptionProblem({ bits, type, groupSize, grid });
  if (problem) fail(problem);
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d > 0) || shape.reduce((a: number, b: number) => a * b, 1) > Number.MAX_SAFE_INTEGER) {
    fail(`shape must be a list of positive integers, got ${describeValue(shape)}.`);
  }
  if (dtype !== 'F32' && dtype !== 'F16' && dtype !== 'BF16') fail(`dtype must be F32, F16 or BF16, got ${describeValue(dtype)}.`);
  // The axis is checked against the shape and group size by the caller (axisProblem).
  if (axis !== undefined && !Number.isInteger(axis)) fail(`axis must be an integer dimension index, got ${describeValue(axis)}.`);
  return {
    bits,
    type,
    groupSize,
    shape,
    dtype,
    ...(axis !== undefined ? { axis } : {}),
    ...(grid !== undefined ? { grid } : {}),
  } as PackedEntry;
}
