// What the demo prints and the report repeats: per run its accuracy (mean ± sd over seeds), the
// bits each layer ended at and the packed size; per seed the three accuracies side by side.

import { formatBytes } from '../cli/table.js';
import { packedBytes } from './memory.js';
import type { TextTable } from './report.js';
import { formatSpread, spread } from './stats.js';
import type { MoqRunResult, RunResult } from './train.js';

export interface SeedResult {
  seed: number;
  full: RunResult;
  moq: MoqRunResult;
  ptq: RunResult;
}

export type RunLabels = Record<'full' | 'moq' | 'ptq', string>;

const RUNS = ['full', 'moq', 'ptq'] as const;

const layerOf = (kernel: string) => kernel.replace(/\/kernel$/, '');

/** `low-high`, or one number when all agree. */
function range(values: readonly number[], format: (value: number) => string = String, separator = '-'): string {
  const [low, high] = [Math.min(...values), Math.max(...values)];
  return low === high ? format(low) : `${format(low)}${separator}${format(high)}`;
}

export function summaryTable(results: readonly SeedResult[], labels: RunLabels, kernels: readonly string[], groups: number): TextTable {
  const header = [
    'run', results.length > 1 ? `test accuracy (mean ± sd, ${results.length} seeds)` : 'test accuracy',
    `bits at end (${kernels.map(layerOf).join(', ')})`, 'weights if packed',
  ];
  const rows = RUNS.map((run) => {
    const accuracies = results.map((r) => r[run].accuracy);
    const accuracy = results.length > 1 ? formatSpread(spread(accuracies)) : accuracies[0]!.toFixed(4);
    const bits = kernels.map((k) => range(results.map((r) => r[run].weights.find((w) => w.name === k)!.bits)));
    const size = range(results.map((r) => packedBytes(r[run].weights, { groups })), formatBytes, ' - ');
    return [labels[run], accuracy, bits.join(', '), run === 'full' ? `${size} (float32)` : size];
  });
  return { header, rows };
}

/** Each seed's accuracies and MoQ's lead over PTQ, then their mean ± sd. */
export function perSeedTable(results: readonly SeedResult[], labels: RunLabels): TextTable {
  const lead = (r: SeedResult) => r.moq.accuracy - r.ptq.accuracy;
  const rows = results.map((r) => [String(r.seed), ...RUNS.map((run) => r[run].accuracy.toFixed(4)), lead(r).toFixed(4)]);
  rows.push(['mean ± sd', ...RUNS.map((run) => formatSpread(spread(results.map((r) => r[run].accuracy)))), formatSpread(spread(results.map(lead)))]);
  return { header: ['seed', ...RUNS.map((run) => labels[run]), 'MoQ - PTQ'], rows };
}

/** When MoQ reached the target bits in each layer, and whether its final weights sit on the grid. */
export function moqOutcome(moq: MoqRunResult, targetBits: number, kernels: readonly string[]): string {
  const reached = kernels.map((k) => {
    const trace = moq.bitsTrace[k]!;
    const at = trace.indexOf(targetBits);
    return at < 0 ? `ended at ${trace.at(-1)} bits` : `reached ${targetBits} bits at step ${at + 1}`;
  });
  const when = reached.every((r) => r === reached[0])
    ? `${reached[0]} in every layer`
    : kernels.map((k, i) => `${layerOf(k)} ${reached[i]}`).join(', ');
  const ratio = moq.ratioTrace.at(-1)!;
  const grid = ratio === 0
    ? 'blend ratio 0 at the end: the forward weights are on the grid'
    : `blend ratio ${ratio.toFixed(3)} at the end: the forward weights are still partly full precision; lengthen --steps or shorten --period`;
  return `${when}; ${grid}`;
}
