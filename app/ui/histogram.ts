// A tensor's values before and after quantization as two stacked histograms over the input's
// range, drawn as inline SVG by the same chart code as the demo's report (src/demo/charts.ts).

import { histogramChart } from '../../src/demo/charts.js';
import type { Reply } from '../protocol.js';
import { element } from './format.js';

type HistogramReply = Extract<Reply, { type: 'histogram' }>;

export function showHistogramLoading(figure: HTMLElement, tensor: string): void {
  figure.hidden = false;
  figure.setAttribute('aria-busy', 'true');
  figure.dataset.tensor = tensor;
  figure.replaceChildren(element('figcaption', 'hint', `Counting the values of ${tensor}…`));
}

export function drawHistogram(figure: HTMLElement, reply: HistogramReply): void {
  const min = reply.edges[0];
  const max = reply.edges.at(-1);
  figure.hidden = false;
  figure.removeAttribute('aria-busy');
  figure.dataset.tensor = reply.tensor;
  if (min === undefined || max === undefined || !(max > min)) {
    // Every value the same (a constant tensor): there is no range to draw bins over.
    figure.replaceChildren(element('figcaption', undefined, `${reply.tensor}: every value is ${min ?? 'the same'}, before and after.`));
    return;
  }
  const svg = histogramChart({
    title: reply.tensor,
    xLabel: 'value',
    min,
    max,
    panels: [
      { label: 'before', color: '#4c78a8', counts: reply.before },
      { label: 'after quantization', color: '#e45756', counts: reply.after },
    ],
  });
  // The chart escapes every text it writes (tensor names come from the file), so its markup is safe to parse.
  const holder = element('div', 'chart');
  holder.innerHTML = svg;
  const caption = element('figcaption', 'hint', `${reply.before.length} bins over the input's range [${min.toPrecision(4)}, ${max.toPrecision(4)}]; each count scale is its own.`);
  figure.replaceChildren(holder, caption);
}
