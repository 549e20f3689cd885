// How the page writes numbers: sizes as the CLI writes them (one formatter for both), times and
// errors short enough for a table cell.

export { formatBytes } from '../../src/describe.js';

/** "0.4 s", "12 s", "3 min 05 s", "1 h 02 min": a duration for a person, not a log. */
export function formatDuration(milliseconds: number): string {
  if (!Number.isFinite(milliseconds) || milliseconds < 0) return '—';
  const seconds = milliseconds / 1000;
  if (seconds < 10) return `${seconds.toFixed(1)} s`;
  if (seconds < 60) return `${Math.round(seconds)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${String(Math.round(seconds - minutes * 60)).padStart(2, '0')} s`;
  const hours = Math.floor(minutes / 60);
  return `${hours} h ${String(minutes - hours * 60).padStart(2, '0')} min`;
}

/** An error value in 4 significant digits (exponent form below 0.001), or "—" when there is none. */
export function formatError(value: number | undefined): string {
  if (value === undefined || !Number.isFinite(value)) return '—';
  if (value === 0) return '0';
  return Math.abs(value) < 1e-3 ? value.toExponential(3) : value.toPrecision(4);
}

/** A shape as the CLI prints it: [4096, 4096]; a scalar is []. */
export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** "1 tensor", "12 tensors". */
export function plural(count: number, noun: string): string {
  return `${count.toLocaleString('en-US')} ${noun}${count === 1 ? '' : 's'}`;
}

/** A new element with its class and text: the page builds its DOM from these, never from HTML strings of data. */
export function element<K extends keyof HTMLElementTagNameMap>(tag: K, className?: string, text?: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** The element with `id`, of the type the page's markup gives it; a missing one is a build error, said plainly. */
export function byId<T extends HTMLElement>(id: string, type: new () => T): T {
  const node = document.getElementById(id);
  if (!(node instanceof type)) throw new Error(`app/index.html has no <${type.name}> with id "${id}"; the page and its script disagree.`);
  return node;
}

/** A tensor name as text with a break opportunity after each / . and _ : names are long paths read from the end. */
export function breakable(name: string): Node[] {
  return name.split(/(?<=[/._])/).flatMap((part, i) => (i === 0 ? [document.createTextNode(part)] : [document.createElement('wbr'), document.createTextNode(part)]));
}
