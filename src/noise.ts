// Host side of the counter-based noise: folds (seed, step, tensor id) into the 32-bit key that
// the kernels mix with each element's index (assembly/rounding.ts, shaders/rounding.wgsl).

/** murmur3's 32-bit finalizer: every input bit affects every output bit. */
function finalize32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export function noiseKey(seed: number, step: number, tensorId: number): number {
  return finalize32(finalize32(finalize32(tensorId ^ 0x632be5ab) ^ step) ^ seed);
}

/** Stable tensor id for a parameter name (FNV-1a), so ids survive reordering and resumes. */
export function tensorIdOf(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
