// moq-report.html: one self-contained page (inline SVG and CSS, no script) with the demo's tables
// and what they cannot show: how the bits and the blend moved, how accuracy developed in each run,
// and what quantization did to one layer's weights, at every target.

import { coveringTicks, escapeXml, histogramChart, lineChart, type Series } from './charts.js';
import { histogram, largestMagnitude } from './histogram.js';
import type { TargetResult, TextTable } from './summary.js';
import type { MoqRunResult, RunResult } from './train.js';

const FULL_COLOR = '#4e79a7';
/** One colour per target, MoQ drawn solid and PTQ dashed in it. */
const TARGET_COLORS = ['#e15759', '#f28e2b', '#b07aa1', '#59a14f', '#76b7b2', '#edc948', '#9c755f', '#ff9da7'];
const HISTOGRAM_BINS = 121;

export interface ReportInput {
  title: string;
  /** The setup, as [what, how] pairs. */
  setup: readonly (readonly [string, string])[];
  results: TextTable;
  /** Sentences under the results table. */
  notes: readonly string[];
  /** Per-seed accuracies, when several seeds ran. */
  seeds?: TextTable;
  /** The packed models as exported and loaded back (no table when none was), and what that showed. */
  exports: { table: TextTable | undefined; notes: readonly string[] };
  /** The runs the charts show (the first seed's). */
  full: RunResult;
  targets: readonly TargetResult[];
  /** The weight whose histograms are drawn. */
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
  const caption = table.caption ? `<caption>${escapeXml(table.caption)}</caption>\n` : '';
  return `<table>\n${caption}<thead>${row(table.header, 'th')}</thead>\n<tbody>\n${table.rows.map((r) => row(r, 'td')).join('\n')}\n</tbody>\n</table>`;
}

function section(id: string, heading: string, note: string, body: string): string {
  return `<section id="${id}">\n<h2>${escapeXml(heading)}</h2>\n<p>${escapeXml(note)}</p>\n${body}\n</section>`;
}

const colorOf = (t: number) => TARGET_COLORS[t % TARGET_COLORS.length]!;

/**
 * Each target's precision schedule: one line when every layer followed the same one (the plain
 * schedule), else one per layer, alternately dashed (eigenvalues stretch each layer's own).
 */
function bitsSeries(targets: readonly TargetResult[], startBits: number): Series[] {
  return targets.flatMap(({ bits, moq }, t) => {
    const traces = Object.entries(moq.bitsTrace);
    const same = traces.every(([, trace]) => trace.every((b, i) => b === traces[0]![1][i]));
    const series = (label: string, trace: readonly number[], dashed: boolean): Series => ({
      label,
      color: colorOf(t),
      step: true,
      dashed,
      points: [[0, startBits], ...changePoints(trace)],
    });
    return same ? [series(`-> ${bits} bits`, traces[0]![1], false)] : traces.map(([name, trace], i) => series(`-> ${bits}: ${name.replace(/\/kernel$/, '')}`, trace, i % 2 === 1));
  });
}

export function renderReport(input: ReportInput): string {
  const { full, targets } = input;
  const allBits = [input.startBits, ...targets.flatMap((t) => Object.values(t.moq.bitsTrace).flat())];
  const accuracySeries: Series[] = [
    { label: 'full precision', color: FULL_COLOR, points: full.curve.map((p) => [p.step, p.accuracy]) },
    ...targets.flatMap(({ bits, moq, ptq }, t): Series[] => [
      { label: `MoQ ${bits}`, color: colorOf(t), points: moq.curve.map((p) => [p.step, p.accuracy]) },
      { label: `PTQ ${bits}`, color: colorOf(t), dashed: true, points: ptq.curve.map((p) => [p.step, p.accuracy]) },
    ]),
  ];
  const weightOf = (run: RunResult | MoqRunResult) => run.weights.find((w) => w.name === input.histogramWeight)!;
  const before = weightOf(full);
  const after = targets.map((t) => weightOf(t.moq));
  const extent = largestMagnitude(before.values, ...after.map((w) => w.values)) || 1;
  const range = { min: -extent, max: extent, bins: HISTOGRAM_BINS };

  const sections = [
    section(
      'export',
      'Packed and loaded back',
      'Each MoQ model of the first seed, exported packed, written as a tfjs model folder and loaded back from it.',
      [input.exports.table ? htmlTable(input.exports.table) : '', ...input.exports.notes.map((note) => `<p>${escapeXml(note)}</p>`)].filter(Boolean).join('\n'),
    ),
    section(
      'bits',
      'Bits per layer',
      'Each quantized weight’s precision after every optimizer step, one MoQ run per target. 1-D weights (biases) stay float32.',
      lineChart({
        title: 'MoQ precision schedules',
        xLabel: 'optimizer step',
        yLabel: 'bits',
        series: bitsSeries(targets, input.startBits),
        xDomain: [0, input.steps],
        yDomain: [Math.min(...allBits) - 0.5, Math.max(...allBits) + 0.5],
      }),
    ),
    section(
      'blend',
      'Blend ratio',
      'The forward weights are ratio × full precision + (1 − ratio) × quantized: the ratio jumps back to 1 at every precision switch and falls to 0, where the weights sit on the grid.',
      lineChart({
        title: 'Mixed-precision blend ratio',
        xLabel: 'optimizer step',
        yLabel: 'ratio',
        xDomain: [0, input.steps],
        yDomain: [0, 1],
        series: targets.map(({ bits, moq }, t) => ({
          label: `-> ${bits} bits`,
          color: colorOf(t),
          points: [[0, 1], ...moq.ratioTrace.map((r, i) => [i + 1, r] as [number, number])],
        })),
      }),
    ),
    section(
      'accuracy',
      'Test accuracy',
      'Measured on the 2,000 held-out digits. MoQ (solid) is evaluated on the weights its forward pass uses; each PTQ curve (dashed, same colour as its target) quantizes the full-precision weights reached at that point. The y axis is zoomed on the last 90% of training.',
      lineChart({
        title: 'Test accuracy during training',
        xLabel: 'optimizer step',
        yLabel: 'accuracy',
        series: accuracySeries,
        xDomain: [0, input.steps],
        yDomain: zoomedRange(accuracySeries.flatMap((s) => s.points.filter(([step]) => step >= input.steps / 10).map(([, a]) => a))),
      }),
    ),
    section(
      'histogram',
      `Weights of ${input.histogramWeight}`,
      'The layer’s final weights: full precision, and each MoQ run’s quantized forward weights (one scale per group).',
      histogramChart({
        title: `${input.histogramWeight}: ${before.values.length.toLocaleString('en-US')} weights`,
        xLabel: 'weight value',
        min: range.min,
        max: range.max,
        panels: [
          { label: 'full precision', color: FULL_COLOR, counts: histogram(before.values, range) },
          ...after.map((w, t) => ({ label: `MoQ, ${w.bits} bits`, color: colorOf(t), counts: histogram(w.values, range) })),
        ],
      }),
    ),
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
caption { text-align: left; color: #666; padding-bottom: 0.3em; }
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
