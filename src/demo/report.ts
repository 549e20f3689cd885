// moq-report.html: one self-contained page (inline SVG and CSS, no script) with what the demo's
// table cannot show: how the bits and the blend moved, how accuracy developed in each run, and
// what quantization did to one layer's weights.

import { coveringTicks, escapeXml, histogramChart, lineChart, type Series } from './charts.js';
import { histogram, largestMagnitude } from './histogram.js';
import type { MoqRunResult, RunResult } from './train.js';

export const RUN_COLORS = { full: '#4e79a7', moq: '#e15759', ptq: '#59a14f' } as const;
const LAYER_COLORS = ['#e15759', '#4e79a7', '#f28e2b', '#76b7b2', '#59a14f', '#b07aa1'];
const HISTOGRAM_BINS = 121;

export interface TextTable {
  header: string[];
  rows: string[][];
}

export interface ReportInput {
  title: string;
  /** The setup, as [what, how] pairs. */
  setup: readonly (readonly [string, string])[];
  results: TextTable;
  /** Sentences under the results table. */
  notes: readonly string[];
  /** Per-seed accuracies, when several seeds ran. */
  seeds?: TextTable;
  /** The runs the charts show (the first seed's). */
  runs: { full: RunResult; moq: MoqRunResult; ptq: RunResult };
  /** The weight whose histogram is drawn. */
  histogramWeight: string;
  steps: number;
  /** The precision every quantized weight starts at (step 0). */
  startBits: number;
}

/** [step, value] at step 1 and wherever the value changes, and at the last step. */
export function changePoints(trace: readonly number[]): [number, number][] {
  const points: [number, number][] = [];
  trace.forEach((value, i) => {
    if (i === 0 || value !== trace[i - 1] || i === trace.length - 1) points.push([i + 1, value]);
  });
  return points;
}

/** A y range around `values` that ends on round ticks (at most [0, 1]). */
function zoomedRange(values: readonly number[]): [number, number] {
  if (values.length === 0) return [0, 1];
  const ticks = coveringTicks(Math.min(...values), Math.max(...values), 5);
  return [Math.max(0, ticks[0]!), Math.min(1, ticks.at(-1)!)];
}

function htmlTable(table: TextTable): string {
  const row = (cells: string[], tag: string) => `<tr>${cells.map((c) => `<${tag}>${escapeXml(c)}</${tag}>`).join('')}</tr>`;
  return `<table>\n<thead>${row(table.header, 'th')}</thead>\n<tbody>\n${table.rows.map((r) => row(r, 'td')).join('\n')}\n</tbody>\n</table>`;
}

function section(id: string, heading: string, note: string, body: string): string {
  return `<section id="${id}">\n<h2>${escapeXml(heading)}</h2>\n<p>${escapeXml(note)}</p>\n${body}\n</section>`;
}

export function renderReport(input: ReportInput): string {
  const { full, moq, ptq } = input.runs;
  const layers = Object.keys(moq.bitsTrace);
  const bitsSeries: Series[] = layers.map((name, i) => ({
    label: name, color: LAYER_COLORS[i % LAYER_COLORS.length]!, step: true, dashed: i % 2 === 1,
    points: [[0, input.startBits], ...changePoints(moq.bitsTrace[name]!)],
  }));
  const bitsValues = [input.startBits, ...layers.flatMap((name) => moq.bitsTrace[name]!)];
  const accuracySeries: Series[] = [
    { label: 'full precision', color: RUN_COLORS.full, points: full.curve.map((p) => [p.step, p.accuracy]) },
    { label: 'MoQ (forward weights)', color: RUN_COLORS.moq, points: moq.curve.map((p) => [p.step, p.accuracy]) },
    { label: 'full precision + PTQ', color: RUN_COLORS.ptq, dashed: true, points: ptq.curve.map((p) => [p.step, p.accuracy]) },
  ];
  const before = full.weights.find((w) => w.name === input.histogramWeight)!;
  const after = moq.weights.find((w) => w.name === input.histogramWeight)!;
  const extent = largestMagnitude(before.values, after.values) || 1;
  const range = { min: -extent, max: extent, bins: HISTOGRAM_BINS };

  const sections = [
    section('bits', 'Bits per layer', 'Each quantized weight’s precision after every optimizer step. 1-D weights (biases) stay float32.', lineChart({
      title: 'MoQ precision schedule', xLabel: 'optimizer step', yLabel: 'bits', series: bitsSeries, xDomain: [0, input.steps],
      yDomain: [Math.min(...bitsValues) - 0.5, Math.max(...bitsValues) + 0.5],
    })),
    section('blend', 'Blend ratio', 'The forward weights are ratio × full precision + (1 − ratio) × quantized: the ratio jumps back to 1 at every precision switch and falls to 0, where the weights sit on the grid.', lineChart({
      title: 'Mixed-precision blend ratio', xLabel: 'optimizer step', yLabel: 'ratio', xDomain: [0, input.steps], yDomain: [0, 1],
      series: [{ label: 'ratio', color: RUN_COLORS.moq, points: [[0, 1], ...moq.ratioTrace.map((r, i) => [i + 1, r] as [number, number])] }],
    })),
    section('accuracy', 'Test accuracy', 'Measured on the 2,000 held-out digits. MoQ is evaluated on the weights its forward pass uses; the PTQ curve quantizes the full-precision weights reached at that point. The y axis is zoomed on the last 90% of training.', lineChart({
      title: 'Test accuracy during training', xLabel: 'optimizer step', yLabel: 'accuracy', series: accuracySeries, xDomain: [0, input.steps],
      yDomain: zoomedRange(accuracySeries.flatMap((s) => s.points.filter(([step]) => step >= input.steps / 10).map(([, a]) => a))),
    })),
    section('histogram', `Weights of ${input.histogramWeight}`, `The layer’s final weights: full precision, and the MoQ run’s quantized forward weights (${after.bits} bits, one scale per group).`, histogramChart({
      title: `${input.histogramWeight}: ${before.values.length.toLocaleString('en-US')} weights`, xLabel: 'weight value', min: range.min, max: range.max,
      panels: [
        { label: 'full precision', color: RUN_COLORS.full, counts: histogram(before.values, range) },
        { label: `MoQ, ${after.bits} bits`, color: RUN_COLORS.moq, counts: histogram(after.values, range) },
      ],
    })),
  ];
  if (input.seeds) sections.push(section('seeds', 'Every seed', 'The charts above show the first seed.', htmlTable(input.seeds)));

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeXml(input.title)}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 700px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { padding: 0.3em 0.8em; border-bottom: 1px solid #ddd; text-align: left; font-variant-numeric: tabular-nums; }
table.setup th { font-weight: normal; color: #666; vertical-align: top; }
section { margin-top: 2em; }
svg { max-width: 100%; height: auto; }
</style>
</head>
<body>
<h1>${escapeXml(input.title)}</h1>
<table class="setup">\n${input.setup.map(([what, how]) => `<tr><th>${escapeXml(what)}</th><td>${escapeXml(how)}</td></tr>`).join('\n')}\n</table>
${htmlTable(input.results)}
${input.notes.map((note) => `<p>${escapeXml(note)}</p>`).join('\n')}
${sections.join('\n')}
</body>
</html>
`;
}
