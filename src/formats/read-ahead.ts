// A ByteSource that serves small reads from a read-ahead block: a checkpoint of 100,000 small
// tensors is read in a few hundred large reads instead of 100,000 small ones (each a system
// call, or a promise round trip, in most sources). Bytes the block holds are never asked of the
// source again, so a forward-only source (a stream) read in increasing offsets stays forward.
// Reads are serialized, since they share the block. A small read that jumps away from where the
// last one ended (a strided read of a transposed tensor, axis.ts) is read directly: reading a
// block there would fetch a block per piece.

import type { ByteSource } from './safetensors.js';

const SMALL_READ_BYTES = 64 << 10;
const BLOCK_BYTES = 1 << 20;
/**
 * Reads at most this far apart count as one sequence: reading the gap costs less than another
 * call (measured on a file: 131k reads of 2 KiB 32 KiB apart took 13 s; reading through the gaps, 2 s).
 */
export const COALESCE_GAP_BYTES = 256 << 10;

export function readAheadSource(source: ByteSource): ByteSource {
  let block = new Uint8Array(0);
  let blockOffset = 0;
  let blockLength = 0;
  let queue: Promise<void> = Promise.resolve();
  // Where the last read ended (-1: no read yet, which counts as a sequence's start).
  let lastEnd = -1;

  const read = async (offset: number, into: Uint8Array) => {
    const sequential = lastEnd < 0 || (offset >= lastEnd && offset - lastEnd <= COALESCE_GAP_BYTES);
    lastEnd = offset + into.length;
    // The part of the request the block already holds.
    const blockEnd = blockOffset + blockLength;
    const heldFrom = offset >= blockOffset && offset < blockEnd ? offset : -1;
    const held = heldFrom < 0 ? 0 : Math.min(into.length, blockEnd - offset);
    if (held > 0) into.set(block.subarray(offset - blockOffset, offset - blockOffset + held));
    if (held === into.length) return;
    const rest = into.subarray(held);
    const restOffset = offset + held;
    if (rest.length > SMALL_READ_BYTES || !sequential) {
      await source.read(restOffset, rest);
      return;
    }
    if (block.length === 0) block = new Uint8Array(BLOCK_BYTES);
    const length = Math.max(rest.length, Math.min(BLOCK_BYTES, source.size - restOffset));
    blockLength = 0;
    await source.read(restOffset, block.subarray(0, length));
    blockOffset = restOffset;
    blockLength = length;
    rest.set(block.subarray(0, rest.length));
  };

  return {
    size: source.size,
    read(offset, into) {
      const result = queue.then(() => read(offset, into));
      queue = result.catch(() => undefined);
      return result;
    },
  };
}
