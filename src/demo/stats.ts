// Mean and spread of one accuracy over several seeds: what `--seeds N` reports.

export interface Spread {
  mean: number;
  /** Sample standard deviation (n - 1); 0 for a single value. */
  sd: number;
  min: number;
  max: number;
}

export function spread(values: readonly number[]): Spread {
  if (values.length === 0) throw new RangeError('spread of no values');
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const squares = values.reduce((a, v) => a + (v - mean) ** 2, 0);
  const sd = values.length > 1 ? Math.sqrt(squares / (values.length - 1)) : 0;
  return { mean, sd, min: Math.min(...values), max: Math.max(...values) };
}

export function formatSpread(s: Spread, digits = 4): string {
  return `${s.mean.toFixed(digits)} ± ${s.sd.toFixed(digits)}`;
}
