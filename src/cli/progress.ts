// Progress on stderr: a redrawn bar on a terminal, plain lines (one per item) when piped, so
// logs stay readable.

export interface Progress {
  /** `fraction` of the whole job is done; `label` names the current item. */
  update(fraction: number, label: string): void;
  done(): void;
}

const BAR_WIDTH = 28;
const REDRAW_MS = 100;

export function createProgress(title: string, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY) {
    let lastLabel = '';
    return {
      update(fraction, label) {
        if (label === lastLabel || !label) return;
        lastLabel = label;
        stream.write(`${title}: ${(fraction * 100).toFixed(0).padStart(3)}% ${label}\n`);
      },
      done() {
        stream.write(`${title}: 100% done\n`);
      },
    };
  }
  let lastDraw = 0;
  const draw = (fraction: number, label: string) => {
    const filled = Math.round(fraction * BAR_WIDTH);
    const room = Math.max(10, (stream.columns ?? 80) - BAR_WIDTH - title.length - 12);
    const shown = label.length > room ? `…${label.slice(label.length - room + 1)}` : label;
    stream.write(`\r\x1b[K${title} [${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}% ${shown}`);
  };
  return {
    update(fraction, label) {
      const now = Date.now();
      if (now - lastDraw < REDRAW_MS) return;
      lastDraw = now;
      draw(fraction, label);
    },
    done() {
      draw(1, 'done');
      stream.write('\n');
    },
  };
}
