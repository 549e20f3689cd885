// Histograms of weight values, for the report's before/after picture of one layer.

/** Counts of `values` in `bins` equal bins over [min, max]; values outside land in the end bins. */
export function histogram(values: ArrayLike<number>, range: { min: number; max: number; bins: number }): number[] {
  const { min, max, bins } = range;
  if (!Number.isInteger(bins) || bins < 1) throw new RangeError(`bins must be a positive integer, got ${bins}`);
  if (!(max > min)) throw new RangeError(`the range must have max > min, got [${min}, ${max}]`);
  const counts = new Array<number>(bins).fill(0);
  const width = (max - min) / bins;
  for (let i = 0; i < values.length; i++) {
    const bin = Math.floor((values[i]! - min) / width);
    counts[Math.min(bins - 1, Math.max(0, bin))]!++;
  }
  return counts;
}

/** The largest |value| over all arrays: a range [-m, m] that holds them all and centres zero. */
export function largestMagnitude(...arrays: ArrayLike<number>[]): number {
  let largest = 0;
  for (const values of arrays) for (let i = 0; i < values.length; i++) largest = Math.max(largest, Math.abs(values[i]!));
  return largest;
}
