// Seeded data shared by the tests (test/support/fixtures.ts) and the soak run (scripts/soak.mjs).

/**
 * Seeded uniforms in [0, 1) (xorshift32), for reproducible tensors.
 * @param {number} seed
 * @returns {() => number}
 */
export function uniforms(seed) {
  let s = seed >>> 0 || 0x9e3779b9;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}
