// Progress on stderr: a redrawn bar on a terminal; when piped, a plain line when the item changes,
// at most one a second, so that a log of a 100,000-tensor run stays readable. Labels (tensor
// names) come from files: they are escaped.

import { charWidth, displayWidth, escapeForTerminal } from './terminal.js';

export interface Progress {
  /** `fraction` of the whole job is done; `label` names the current item. */
  update(fraction: number, label: string): void;
  done(): void;
}

/** What progress needs of a stream (process.stderr, or a test's stand-in). */
export interface ProgressStream {
  readonly isTTY?: boolean;
  readonly columns?: number;
  write(text: string): unknown;
}

export interface ProgressOptions {
  /** Print nothing at all (--quiet). */
  quiet?: boolean;
  /** Default process.stderr. */
  stream?: ProgressStream;
  /** Milliseconds, default Date.now. */
  now?: () => number;
}

const BAR_WIDTH = 28;
const REDRAW_MS = 100;
const LINE_MS = 1000;

export function createProgress(title: string, options: ProgressOptions = {}): Progress {
  const { quiet = false, stream = process.stderr, now = Date.now } = options;
  if (quiet) return { update() {}, done() {} };
  const percent = (fraction: number) => `${(fraction * 100).toFixed(0).padStart(3)}%`;
  if (!stream.isTTY) {
    let lastLabel = '';
    let lastLine = -Infinity;
    return {
      update(fraction, label) {
        if (label === lastLabel || !label) return;
        const time = now();
        // A skipped label is not remembered: if its item is still running at the next update
        // after the interval, it gets its line then.
        if (time - lastLine < LINE_MS) return;
        lastLabel = label;
        lastLine = time;
        stream.write(`${title}: ${percent(fraction)} ${escapeForTerminal(label)}\n`);
      },
      done() {
        stream.write(`${title}: 100% done\n`);
      },
    };
  }
  let lastDraw = -Infinity;
  const draw = (fraction: number, label: string) => {
    const filled = Math.round(fraction * BAR_WIDTH);
    const room = Math.max(10, (stream.columns ?? 80) - BAR_WIDTH - displayWidth(title) - 12);
    stream.write(`\r\x1b[K${title} [${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}] ${percent(fraction)} ${fitEnd(escapeForTerminal(label), room)}`);
  };
  return {
    update(fraction, label) {
      const time = now();
      if (time - lastDraw < REDRAW_MS) return;
      lastDraw = time;
      draw(fraction, label);
    },
    done() {
      draw(1, 'done');
      stream.write('\n');
    },
  };
}

/** `text` in at most `columns` columns, keeping its end (a tensor name's last part tells most). */
function fitEnd(text: string, columns: number): string {
  if (displayWidth(text) <= columns) return text;
  const chars = Array.from(text);
  let start = chars.length;
  let width = 1;
  while (start > 0 && width + charWidth(chars[start - 1]!) <= columns) width += charWidth(chars[--start]!);
  return `…${chars.slice(start).join('')}`;
}
