// Inline SVG charts for the HTML report: no script and no external file, so the report opens
// anywhere and can be mailed or archived as one file. Coordinates are rounded to 0.1 px, which
// keeps the files small and identical from run to run.

export interface Series {
  label: string;
  color: string;
  points: readonly (readonly [number, number])[];
  /** Drawn as a staircase (the value holds until the next point), for bits. */
  step?: boolean;
  dashed?: boolean;
}

export interface LineChartSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly Series[];
  /** Default: the data's range (the y range padded to nice ticks). */
  xDomain?: readonly [number, number];
  yDomain?: readonly [number, number];
}

export interface HistogramPanel {
  label: string;
  color: string;
  counts: readonly number[];
}

export interface HistogramSpec {
  title: string;
  xLabel: string;
  /** The range the bins cover, equally wide. */
  min: number;
  max: number;
  panels: readonly HistogramPanel[];
}

const WIDTH = 640;
const PLOT = { left: 64, right: 16, top: 48, bottom: 44 };
const LINE_HEIGHT = 260;
const PANEL_HEIGHT = 140;

export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** About `count` round tick values (1, 2 or 5 times a power of ten apart) covering [min, max]. */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!(max > min)) return [min];
  const rough = (max - min) / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough)!;
  const ticks: number[] = [];
  // Integer multiples of the step, so that 0.1 + 0.2 never prints as 0.30000000000000004.
  for (let k = Math.ceil(min / step - 1e-9); k * step <= max + step * 1e-9; k++) ticks.push(Number((k * step).toPrecision(12)));
  return ticks;
}

/** niceTicks extended by whole steps until they reach past both ends: axes that end on a tick. */
export function coveringTicks(min: number, max: number, count = 5): number[] {
  const ticks = niceTicks(min, max, count);
  if (ticks.length < 2) return ticks;
  const step = ticks[1]! - ticks[0]!;
  if (ticks[0]! > min) ticks.unshift(Number((ticks[0]! - step).toPrecision(12)));
  if (ticks.at(-1)! < max) ticks.push(Number((ticks.at(-1)! + step).toPrecision(12)));
  return ticks;
}

function formatTick(value: number): string {
  return Number(value.toPrecision(6)).toString();
}

const px = (value: number) => (Math.round(value * 10) / 10).toString();

/** Drops points that lie on the straight line between their neighbours (within 0.05 px). */
export function simplifyPolyline(points: readonly (readonly [number, number])[]): [number, number][] {
  const kept: [number, number][] = [];
  for (const point of points) {
    const p: [number, number] = [point[0], point[1]];
    while (kept.length >= 2) {
      const [a, b] = [kept[kept.length - 2]!, kept[kept.length - 1]!];
      const cross = (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]);
      const length = Math.hypot(p[0] - a[0], p[1] - a[1]);
      if (length > 0 && Math.abs(cross) / length > 0.05) break;
      kept.pop();
    }
    kept.push(p);
  }
  return kept;
}

interface Frame {
  x: (value: number) => number;
  y: (value: number) => number;
  parts: string[];
}

function frame(title: string, height: number, xDomain: readonly [number, number], yDomain: readonly [number, number], top: number): Frame {
  const [x0, x1] = xDomain;
  const [y0, y1] = yDomain;
  const innerWidth = WIDTH - PLOT.left - PLOT.right;
  const innerHeight = height - top - PLOT.bottom;
  return {
    x: (v) => PLOT.left + ((v - x0) / (x1 - x0 || 1)) * innerWidth,
    y: (v) => top + innerHeight - ((v - y0) / (y1 - y0 || 1)) * innerHeight,
    parts: [`<text x="${PLOT.left}" y="18" font-size="14" font-weight="bold">${escapeXml(title)}</text>`],
  };
}

function axes(f: Frame, xTicks: readonly number[], yTicks: readonly number[], xLabel: string, yLabel: string, height: number, top: number): string[] {
  const bottom = height - PLOT.bottom;
  const out = [`<g stroke="#ccc" stroke-width="1">`];
  for (const t of yTicks) out.push(`<line x1="${PLOT.left}" x2="${WIDTH - PLOT.right}" y1="${px(f.y(t))}" y2="${px(f.y(t))}"/>`);
  out.push('</g>', `<g font-size="11" fill="#444">`);
  for (const t of yTicks) out.push(`<text x="${PLOT.left - 6}" y="${px(f.y(t) + 4)}" text-anchor="end">${formatTick(t)}</text>`);
  for (const t of xTicks) out.push(`<text x="${px(f.x(t))}" y="${bottom + 16}" text-anchor="middle">${formatTick(t)}</text>`);
  out.push(`<text x="${PLOT.left + (WIDTH - PLOT.left - PLOT.right) / 2}" y="${height - 6}" text-anchor="middle">${escapeXml(xLabel)}</text>`);
  out.push(`<text transform="translate(14 ${px((top + bottom) / 2)}) rotate(-90)" text-anchor="middle">${escapeXml(yLabel)}</text>`, '</g>');
  out.push(`<line x1="${PLOT.left}" x2="${WIDTH - PLOT.right}" y1="${bottom}" y2="${bottom}" stroke="#444"/>`);
  return out;
}

const LEGEND_ROW = 18;

/** Legend entries left to right, wrapping to a new row where the next would pass the plot's right edge. */
function legend(items: readonly { label: string; color: string; dashed?: boolean }[]): { parts: string[]; rows: number } {
  const out: string[] = [];
  let x = PLOT.left;
  let row = 0;
  for (const item of items) {
    const width = 24 + 7 * item.label.length + 18;
    if (x > PLOT.left && x + width - 18 > WIDTH - PLOT.right) {
      x = PLOT.left;
      row++;
    }
    const y = 34 + row * LEGEND_ROW;
    out.push(`<line x1="${x}" x2="${x + 18}" y1="${y}" y2="${y}" stroke="${item.color}" stroke-width="2.5"${item.dashed ? ' stroke-dasharray="5 3"' : ''}/>`);
    out.push(`<text x="${x + 24}" y="${y + 4}" font-size="12">${escapeXml(item.label)}</text>`);
    x += width;
  }
  return { parts: out, rows: row + 1 };
}

function svg(height: number, label: string, parts: readonly string[]): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${height}" width="${WIDTH}" height="${height}" role="img" aria-label="${escapeXml(label)}" font-family="system-ui, sans-serif">\n${parts.join('\n')}\n</svg>`;
}

export function lineChart(spec: LineChartSpec): string {
  const xs = spec.series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = spec.series.flatMap((s) => s.points.map((p) => p[1]));
  const xDomain = spec.xDomain ?? ([Math.min(...xs), Math.max(...xs)] as const);
  const yTicks = spec.yDomain ? niceTicks(...spec.yDomain) : coveringTicks(Math.min(...ys), Math.max(...ys));
  const yDomain = spec.yDomain ?? ([yTicks[0]!, yTicks.at(-1)!] as const);
  const key = legend(spec.series);
  // Each extra legend row moves the plot down and makes the chart taller: the plot keeps its size.
  const top = PLOT.top + (key.rows - 1) * LEGEND_ROW;
  const height = LINE_HEIGHT + (key.rows - 1) * LEGEND_ROW;
  const f = frame(spec.title, height, xDomain, yDomain, top);
  const parts = [...f.parts, ...key.parts, ...axes(f, niceTicks(xDomain[0], xDomain[1], 8), yTicks, spec.xLabel, spec.yLabel, height, top)];
  // A nested svg clips what lies outside the plot (points below a zoomed y range) without an id
  // that several charts in one page would have to keep unique; its viewBox keeps the coordinates.
  const clip = { x: PLOT.left, y: top - 2, width: WIDTH - PLOT.left - PLOT.right, height: height - top - PLOT.bottom + 4 };
  parts.push(`<svg x="${clip.x}" y="${clip.y}" width="${clip.width}" height="${clip.height}" viewBox="${clip.x} ${clip.y} ${clip.width} ${clip.height}">`);
  for (const s of spec.series) {
    if (s.points.length === 0) continue;
    let pixels = s.points.map(([x, y]) => [f.x(x), f.y(y)] as [number, number]);
    if (s.step) pixels = pixels.flatMap((p, i) => (i === 0 ? [p] : [[p[0], pixels[i - 1]![1]], p]));
    const path = simplifyPolyline(pixels)
      .map(([x, y], i) => `${i === 0 ? 'M' : 'L'}${px(x)} ${px(y)}`)
      .join('');
    parts.push(`<path d="${path}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}><title>${escapeXml(s.label)}</title></path>`);
  }
  parts.push('</svg>');
  return svg(height, spec.title, parts);
}

/** One panel per histogram, stacked over a shared x axis; each panel has its own count scale. */
export function histogramChart(spec: HistogramSpec): string {
  const height = PLOT.top + spec.panels.length * PANEL_HEIGHT + PLOT.bottom;
  const bottom = height - PLOT.bottom;
  const left = PLOT.left;
  const right = WIDTH - PLOT.right;
  const x = (v: number) => left + ((v - spec.min) / (spec.max - spec.min)) * (right - left);
  const parts = [`<text x="${left}" y="18" font-size="14" font-weight="bold">${escapeXml(spec.title)}</text>`];
  spec.panels.forEach((panel, p) => {
    const top = PLOT.top + p * PANEL_HEIGHT;
    const base = top + PANEL_HEIGHT - 28;
    const yTicks = coveringTicks(0, Math.max(1, ...panel.counts), 3);
    const yMax = yTicks.at(-1)!;
    const y = (v: number) => base - (v / yMax) * (base - top);
    const binWidth = (right - left) / panel.counts.length;
    const bars = panel.counts.map((count, i) => (count === 0 ? '' : `M${px(left + i * binWidth)} ${base}V${px(y(count))}h${px(binWidth)}V${base}z`)).join('');
    parts.push(`<g stroke="#ddd">${yTicks.map((t) => `<line x1="${left}" x2="${right}" y1="${px(y(t))}" y2="${px(y(t))}"/>`).join('')}</g>`);
    parts.push(`<g font-size="11" fill="#444">${yTicks.map((t) => `<text x="${left - 6}" y="${px(y(t) + 4)}" text-anchor="end">${formatTick(t)}</text>`).join('')}</g>`);
    parts.push(`<path d="${bars}" fill="${panel.color}"><title>${escapeXml(panel.label)}</title></path>`);
    parts.push(`<text x="${right}" y="${top + 4}" font-size="12" text-anchor="end">${escapeXml(panel.label)}</text>`);
    parts.push(`<line x1="${left}" x2="${right}" y1="${base}" y2="${base}" stroke="#444"/>`);
  });
  parts.push(
    `<g font-size="11" fill="#444">${niceTicks(spec.min, spec.max, 8)
      .map((t) => `<text x="${px(x(t))}" y="${bottom + 16}" text-anchor="middle">${formatTick(t)}</text>`)
      .join('')}`,
  );
  parts.push(`<text x="${(left + right) / 2}" y="${height - 6}" text-anchor="middle">${escapeXml(spec.xLabel)}</text>`);
  parts.push(`<text transform="translate(14 ${px((PLOT.top + bottom) / 2)}) rotate(-90)" text-anchor="middle">count</text></g>`);
  return svg(height, spec.title, parts);
}
