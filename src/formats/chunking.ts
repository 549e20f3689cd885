// How a packed tensor is cut into chunks, the same way when it is written (quantize-file.ts)
// and read back (dequantize-file.ts), so that memory stays near the chunk size whatever the
// tensor and its groups.

export const DEFAULT_CHUNK_BYTES = 16 << 20;

/**
 * Ternary and binary scales are means over a group, summed in the kernel's order, so such a
 * group is packed whole even when it is larger than a chunk: up to this size (64Mi values).
 */
export const MAX_WHOLE_GROUP_BYTES = 256 << 20;

export interface ChunkShape {
  groupSize: number;
  bits: number;
  length: number;
}

/** Whole groups per chunk, a multiple of the groups that fill whole bytes of the code stream. */
export function chunkElementsFor(plan: ChunkShape, chunkBytes: number): number {
  const gcd = (a: number, b: number): number => (b ? gcd(b, a % b) : a);
  const groupsPerByteStep = 8 / gcd(8, (plan.groupSize * plan.bits) % 8 || 8);
  const step = groupsPerByteStep * plan.groupSize;
  return Math.min(plan.length, Math.max(step, Math.floor(chunkBytes / 4 / step) * step));
}

/**
 * How a tensor is cut into chunks of at most `chunkBytes` of float32: whole groups per chunk
 * (`groupsPerChunk`, byte-aligned where that fits), or, for groups larger than a chunk, each
 * group in pieces of `pieceElements` (groupsPerChunk 0). A tensor whose groups run down columns
 * of `columnLength` (axis.ts) takes whole columns per chunk where one fits: each chunk is then
 * one box of strided reads.
 */
export function chunkingFor(plan: ChunkShape, chunkBytes: number, columnLength = plan.length): { groupsPerChunk: number; pieceElements: number } {
  const capacity = Math.max(1, Math.floor(chunkBytes / 4));
  if (columnLength < plan.length && columnLength <= capacity) {
    return { groupsPerChunk: (Math.floor(capacity / columnLength) * columnLength) / plan.groupSize, pieceElements: 0 };
  }
  const aligned = chunkElementsFor(plan, chunkBytes);
  if (aligned <= capacity) return { groupsPerChunk: aligned / plan.groupSize, pieceElements: 0 };
  if (plan.groupSize <= capacity) return { groupsPerChunk: Math.floor(capacity / plan.groupSize), pieceElements: 0 };
  return { groupsPerChunk: 0, pieceElements: capacity };
}
