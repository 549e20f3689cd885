// A ByteSource that serves small reads from a read-ahead block: a checkpoint of 100,000 small
// tensors is read in a few hundred large reads instead of 100,000 small ones (each a system
// call, or a promise round trip, in most sources). Reads must not overlap a block's refill, so
// fills are serialized; large reads go straight to the source.

import type { ByteSource } from './safetensors.js';

const SMALL_READ_BYTES = 64 << 10;
const BLOCK_BYTES = 1 << 20;

export function readAheadSource(source: ByteSource): ByteSource {
  const block = { bytes: new Uint8Array(0), offset: 0, length: 0 };
  let fills: Promise<void> = Promise.resolve();
  const readSmall = (offset: number, into: Uint8Array): Promise<void> => {
    const result = fills.then(async () => {
      if (offset < block.offset || offset + into.length > block.offset + block.length) {
        if (block.bytes.length === 0) block.bytes = new Uint8Array(BLOCK_BYTES);
        const length = Math.max(into.length, Math.min(BLOCK_BYTES, source.size - offset));
        block.length = 0;
        await source.read(offset, block.bytes.subarray(0, length));
        block.offset = offset;
        block.length = length;
      }
      into.set(block.bytes.subarray(offset - block.offset, offset - block.offset + into.length));
    });
    fills = result.catch(() => undefined);
    return result;
  };
  return {
    size: source.size,
    read: (offset, into) => (into.length <= SMALL_READ_BYTES ? readSmall(offset, into) : source.read(offset, into)),
  };
}
