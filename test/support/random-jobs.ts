// Random fake-quantize jobs for the property suites (properties.test.ts, the backend contract):
// a tensor of whole groups and options valid for it, drawn by fast-check.

import fc from 'fast-check';
import type { FakeQuantizeOptions } from '../../src/kernel-plan.js';

export interface JobShape {
  groupSize: number;
  groups: number;
  bits: number;
  asymmetric: boolean;
  stochastic: boolean;
  seed: number;
  blend: number | undefined;
}

/** A tensor split into `groups` groups of `values`, with options valid for it. */
export const tensorOf = (values: fc.Arbitrary<number>, blendRatio: fc.Arbitrary<number> = fc.double({ min: 0, max: 1, noNaN: true })) =>
  fc
    .record({
      groupSize: fc.integer({ min: 1, max: 70 }),
      groups: fc.integer({ min: 1, max: 6 }),
      bits: fc.integer({ min: 1, max: 16 }),
      asymmetric: fc.boolean(),
      stochastic: fc.boolean(),
      seed: fc.nat(),
      blend: fc.option(blendRatio, { nil: undefined }),
    })
    .chain((shape) =>
      fc.record({
        shape: fc.constant<JobShape>(shape),
        data: fc.array(values, { minLength: shape.groupSize * shape.groups, maxLength: shape.groupSize * shape.groups }),
      }),
    );

/** The job's options; 1- and 2-bit jobs are symmetric and round to nearest, as those kernels require. */
export function optionsOf({ shape }: { shape: Omit<JobShape, 'groupSize'> }): FakeQuantizeOptions {
  const lowBits = shape.bits <= 2;
  return {
    bits: shape.bits,
    groups: shape.groups,
    type: shape.asymmetric && !lowBits ? 'asymmetric' : 'symmetric',
    rounding: shape.stochastic && !lowBits ? 'stochastic' : 'nearest',
    seed: shape.seed,
    ...(shape.blend === undefined ? {} : { blendRatio: shape.blend }),
  };
}
