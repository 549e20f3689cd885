// Seeded randomness for the demo. Math.random would make two runs with the same --seed differ;
// everything random here (the train/test split, the batch order) comes from these streams.

/** mulberry32: a small, fast generator of uniforms in [0, 1), a pure function of its seed. */
export function createRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A uniformly random permutation of 0..count-1 (Fisher-Yates). */
export function permutation(count: number, random: () => number): Uint32Array {
  const order = new Uint32Array(count);
  for (let i = 0; i < count; i++) order[i] = i;
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const swap = order[i]!;
    order[i] = order[j]!;
    order[j] = swap;
  }
  return order;
}

/**
 * Batches of `size` indices into `count` samples, endlessly: each epoch visits every sample once
 * in a fresh order, and a batch never spans two epochs (the few left over are dropped).
 */
export function batchOrder(count: number, size: number, seed: number): () => Uint32Array {
  const random = createRandom(seed);
  let epoch = permutation(count, random);
  let next = 0;
  return () => {
    if (next + size > count) {
      epoch = permutation(count, random);
      next = 0;
    }
    next += size;
    return epoch.subarray(next - size, next);
  };
}
