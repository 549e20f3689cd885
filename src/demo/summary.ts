// What the demo prints and the report repeats: per target the three accuracies side by side with
// MoQ's lead over PTQ (mean ± sd over seeds) and the packed size; per seed every accuracy; and
// the packed models as exported and loaded back.

import { formatBytes } from '../describe.js';
import { packedBytes } from './memory.js';
import { formatSpread, spread } from './stats.js';
import type { MoqRunResult, RunResult } from './train.js';

export interface TextTable {
  /** A sentence above the table saying what its cells hold. */
  caption?: string;
  header: string[];
  rows: string[][];
}

/** One target precision of one seed: MoQ trained to it, and the full-precision run quantized to it. */
export interface TargetResult {
  bits: number;
  moq: MoqRunResult;
  ptq: RunResult;
}

export interface SeedResult {
  seed: number;
  full: RunResult;
  /** In the order the targets were given. */
  targets: TargetResult[];
}

const layerOf = (kernel: string) => kernel.replace(/\/kernel$/, '');

/** `low-high`, or one value when all agree. */
function range(values: readonly number[], format: (value: number) => string = String, separator = '-'): string {
  const [low, high] = [Math.min(...values), Math.max(...values)];
  return low === high ? format(low) : `${format(low)}${separator}${format(high)}`;
}

/** A difference with its sign, so that a lead and a loss read differently at a glance. */
export function signed(value: number, digits = 4): string {
  const text = value.toFixed(digits);
  if (Number(text) === 0) return (0).toFixed(digits);
  return text.startsWith('-') ? text : `+${text}`;
}

function accuracyCell(values: readonly number[]): string {
  return values.length > 1 ? formatSpread(spread(values)) : values[0]!.toFixed(4);
}

/** The lead's mean ± sd over seeds and in how many seeds it was positive, "+0.0128 ± 0.0096 (3/3)". */
function leadCell(leads: readonly number[]): string {
  if (leads.length === 1) return signed(leads[0]!);
  const { mean, sd } = spread(leads);
  return `${signed(mean)} ± ${sd.toFixed(4)} (${leads.filter((l) => l > 0).length}/${leads.length})`;
}

/**
 * One row per target: full precision, MoQ, PTQ, MoQ's lead over PTQ (paired by seed) and the
 * weights' packed size. The bits each kernel ended at follow the table (moqOutcome), since MoQ
 * ends short of its target only when the schedule runs out of steps.
 */
export function sweepTable(results: readonly SeedResult[], startBits: number, groups: number): TextTable {
  const seeds = results.length;
  const floatSize = range(
    results.map((r) => packedBytes(r.full.weights, { groups })),
    formatBytes,
    ' - ',
  );
  const caption =
    seeds > 1
      ? `Test accuracy, mean ± sd over ${seeds} seeds; MoQ - PTQ paired by seed, with the seeds where MoQ led. Weights packed: codes and scales (float32: ${floatSize}).`
      : `Test accuracy. Weights packed: codes and scales (float32: ${floatSize}).`;
  const header = ['target', 'full precision', `MoQ ${startBits} -> target`, 'FP + PTQ', 'MoQ - PTQ', 'weights packed'];
  const rows = results[0]!.targets.map((target, t) => {
    const runs = results.map((r) => r.targets[t]!);
    const size = (run: 'moq' | 'ptq') =>
      range(
        runs.map((r) => packedBytes(r[run].weights, { groups })),
        formatBytes,
        ' - ',
      );
    const [moqSize, ptqSize] = [size('moq'), size('ptq')];
    return [
      `${target.bits} bits`,
      accuracyCell(results.map((r) => r.full.accuracy)),
      accuracyCell(runs.map((r) => r.moq.accuracy)),
      accuracyCell(runs.map((r) => r.ptq.accuracy)),
      leadCell(runs.map((r) => r.moq.accuracy - r.ptq.accuracy)),
      moqSize === ptqSize ? moqSize : `MoQ ${moqSize}, PTQ ${ptqSize}`,
    ];
  });
  return { caption, header, rows };
}

/** Each seed's accuracies (their mean ± sd are in the sweep table). */
export function perSeedTable(results: readonly SeedResult[]): TextTable {
  const columns: { label: string; accuracy: (r: SeedResult) => number }[] = [
    { label: 'full precision', accuracy: (r) => r.full.accuracy },
    ...results[0]!.targets.flatMap((target, t) => [
      { label: `MoQ ${target.bits}`, accuracy: (r: SeedResult) => r.targets[t]!.moq.accuracy },
      { label: `PTQ ${target.bits}`, accuracy: (r: SeedResult) => r.targets[t]!.ptq.accuracy },
    ]),
  ];
  const rows = results.map((r) => [String(r.seed), ...columns.map((c) => c.accuracy(r).toFixed(4))]);
  return { caption: 'Test accuracy of each seed.', header: ['seed', ...columns.map((c) => c.label)], rows };
}

/** When MoQ reached the target bits in each layer, and whether its final weights sit on the grid. */
export function moqOutcome(moq: MoqRunResult, targetBits: number, kernels: readonly string[]): string {
  const reached = kernels.map((k) => {
    const trace = moq.bitsTrace[k]!;
    const at = trace.indexOf(targetBits);
    return at < 0 ? `ended at ${trace.at(-1)} bits` : `reached ${targetBits} bits at step ${at + 1}`;
  });
  const when = reached.every((r) => r === reached[0]) ? `${reached[0]} in every layer` : kernels.map((k, i) => `${layerOf(k)} ${reached[i]}`).join(', ');
  const ratio = moq.ratioTrace.at(-1)!;
  const grid =
    ratio === 0
      ? 'blend ratio 0 at the end: the forward weights are on the grid'
      : `blend ratio ${ratio.toFixed(3)} at the end: the forward weights are still partly full precision; lengthen --steps or shorten --period`;
  return `${when}; ${grid}`;
}

/** One exported model: what was written, what it costs to download, and what it scores once loaded back. */
export interface ExportedModel {
  bits: number;
  /** The folder holding model.json and its weights file. */
  folder: string;
  /** model.json plus the weights file: what a browser fetches. */
  downloadBytes: number;
  /** The same model as a stock float32 tfjs save (model.json plus its weights file). */
  floatDownloadBytes: number;
  /** The MoQ run's final accuracy, on the forward weights training ended with. */
  trainedAccuracy: number;
  /** The accuracy of the model loaded back from the packed files. */
  reloadedAccuracy: number;
}

/** A model the export refused (a schedule that left the mixed-precision blend active), and why. */
export interface RefusedExport {
  bits: number;
  refused: string;
}

export type ExportRow = ExportedModel | RefusedExport;

const isExported = (row: ExportRow): row is ExportedModel => !('refused' in row);

/** The exported models, one row per target, then the float32 model a stock tfjs save gives; undefined when none was exported. */
export function exportTable(rows: readonly ExportRow[]): TextTable | undefined {
  const exported = rows.filter(isExported);
  if (exported.length === 0) return undefined;
  const float = exported[0]!.floatDownloadBytes;
  const caption = 'Download: model.json and its weights file. Test accuracy of the model loaded back from those files, and of the trained model.';
  const header = ['packed tfjs model', 'download', 'loaded back', 'trained', 'folder'];
  const cells = exported.map((row) => [
    `MoQ ${row.bits} bits`,
    `${formatBytes(row.downloadBytes)} (${(float / row.downloadBytes).toFixed(1)}x smaller)`,
    row.reloadedAccuracy.toFixed(4),
    `${row.trainedAccuracy.toFixed(4)}, ${row.reloadedAccuracy === row.trainedAccuracy ? 'equal' : 'DIFFERENT'}`,
    row.folder,
  ]);
  cells.push(['float32 (stock tfjs save)', formatBytes(float), '', '', 'not written']);
  return { caption, header, rows: cells };
}

/** Whether every exported model scored, loaded back, exactly what its training ended with. */
export function reloadedAsTrained(rows: readonly ExportRow[]): boolean {
  return rows.filter(isExported).every((row) => row.reloadedAccuracy === row.trainedAccuracy);
}

/** What the export showed: the models refused and why, and whether the loaded models score as trained. */
export function exportNotes(rows: readonly ExportRow[], modelsFolder: string): string[] {
  const notes = rows.filter((row): row is RefusedExport => 'refused' in row).map((row) => `MoQ ${row.bits} bits not exported: ${row.refused}`);
  if (!rows.some(isExported)) return notes;
  notes.push(
    reloadedAsTrained(rows)
      ? `Loaded back from the files in ${modelsFolder}/, each packed model scores exactly what its training ended with: the codes decode to the forward weights bit for bit.`
      : 'A packed model loaded back scores differently from its training: the export did not reproduce the forward weights (a bug in edge-moq; please report it).',
  );
  return notes;
}
