// The packed layout read as its text states it, bit by bit and in float32: what the pack tests
// on every backend compare the kernels against.

import { allocatePacked, type PackedTensor, planPack } from '../../src/packed/layout.js';
import { uniforms } from './fixtures.js';

const f = Math.fround;

/** Element i's code: stream bits [i*b, (i+1)*b), stream bit j being bit j mod 8 of byte j/8. */
export function codeAt(codes: Uint8Array, bits: number, i: number): number {
  let code = 0;
  for (let k = 0; k < bits; k++) {
    const j = i * bits + k;
    code |= ((codes[j >> 3]! >> (j & 7)) & 1) << k;
  }
  return code;
}

/** Writes element i's code into the stream (for tests that build or damage packed data). */
export function setCodeAt(codes: Uint8Array, bits: number, i: number, code: number): void {
  for (let k = 0; k < bits; k++) {
    const j = i * bits + k;
    codes[j >> 3] = (codes[j >> 3]! & ~(1 << (j & 7))) | (((code >> k) & 1) << (j & 7));
  }
}

/** Element i's value, dequantized in float32 by the plain formula of its type. */
export function valueAt(packed: PackedTensor, i: number): number {
  const code = codeAt(packed.codes, packed.bits, i);
  const g = Math.floor(i / packed.groupSize);
  const s = packed.scales[g]!;
  switch (packed.type) {
    case 'symmetric':
      return f((code - 2 ** (packed.bits - 1)) * s);
    case 'asymmetric':
      return f(f(code * s) + packed.zeros![g]!);
    case 'ternary':
      return f((code - 1) * s);
    case 'binary':
      return f((2 * code - 1) * s);
  }
}

/**
 * valueAt, with the layout's one edge: an asymmetric group whose stored s >= 2^(127-b) is read
 * at half scale, 2 * (code * (s/2) + zero/2). (Each step is one float32 operation: a double
 * holds every product of a code and a float32 exactly, and rounding a double sum of two
 * float32 to float32 is the float32 sum.)
 */
export function layoutValueAt(packed: PackedTensor, i: number): number {
  const g = Math.floor(i / packed.groupSize);
  const s = packed.scales[g]!;
  if (packed.type !== 'asymmetric' || s < 2 ** (127 - packed.bits)) return valueAt(packed, i);
  return f(2 * f(f(codeAt(packed.codes, packed.bits, i) * f(s / 2)) + f(packed.zeros![g]! / 2)));
}

/**
 * The first element an unpack must refuse, or -1, by the layout's rules: a group's first element
 * when its scale is not finite and >= 0 (of either sign on the full grid) or its zero point not
 * finite, else an element whose ternary code is 3 or whose layout value is not finite.
 */
export function firstInvalidElement(packed: PackedTensor): number {
  const { groupSize, length } = packed;
  for (let g = 0; g < length / groupSize; g++) {
    const start = g * groupSize;
    const scale = packed.scales[g]!;
    if (!Number.isFinite(scale) || (scale < 0 && packed.grid !== 'full')) return start;
    if (packed.zeros && !Number.isFinite(packed.zeros[g]!)) return start;
    for (let i = start; i < start + groupSize; i++) {
      if (packed.type === 'ternary' && codeAt(packed.codes, 2, i) === 3) return i;
      if (!Number.isFinite(layoutValueAt(packed, i))) return i;
    }
  }
  return -1;
}

/**
 * One packed tensor of each bit width and type, 93 values in groups of 31, its codes, scales and
 * zero points drawn at random (seeded), and the values the layout text gives for it: what a
 * decoder built elsewhere must return.
 */
export function* randomLayouts(): Generator<{ bits: number; type: PackedTensor['type']; packed: PackedTensor; expected: Float32Array }> {
  const next = uniforms(17);
  for (let bits = 1; bits <= 16; bits++) {
    for (const type of bits >= 3 ? (['symmetric', 'asymmetric'] as const) : [bits === 1 ? ('binary' as const) : ('ternary' as const)]) {
      const [length, groupSize] = [93, 31];
      const packed = allocatePacked(planPack(length, { bits, groupSize, ...(type === 'asymmetric' ? { type } : {}) }));
      packed.codes.forEach((_, k) => {
        packed.codes[k] = Math.floor(next() * 256);
      });
      packed.codes[packed.codes.length - 1]! &= 0xff >> ((8 - ((length * bits) % 8)) % 8);
      // Ternary has no code 3 (unpack refuses it: test/packed-validation.test.ts).
      if (type === 'ternary') for (let i = 0; i < length; i++) if (codeAt(packed.codes, 2, i) === 3) setCodeAt(packed.codes, 2, i, i % 3);
      packed.scales.forEach((_, g) => {
        packed.scales[g] = Math.fround(next() * 0.01 + 1e-4);
      });
      packed.zeros?.forEach((_, g) => {
        packed.zeros![g] = Math.fround(next() - 0.5);
      });
      yield { bits, type, packed, expected: Float32Array.from({ length }, (_, i) => valueAt(packed, i)) };
    }
  }
}
