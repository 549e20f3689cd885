// Plain-text tables for the CLI's summaries.

import { displayWidth, escapeForTerminal } from './terminal.js';

/**
 * Columns padded to the widest cell. Cells are escaped (they hold tensor names and metadata from
 * files) and measured in terminal columns, so wide characters and escapes keep columns aligned.
 */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const lines = [header, ...rows].map((cells) => cells.map((cell) => escapeForTerminal(cell)));
  const widths = header.map(() => 0);
  for (const cells of lines) cells.forEach((cell, i) => (widths[i] = Math.max(widths[i]!, displayWidth(cell))));
  // padEnd counts code units; a cell's padding is what its display width leaves of the column.
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => cell.padEnd(cell.length + widths[i]! - displayWidth(cell)))
      .join('  ')
      .trimEnd();
  return [line(lines[0]!), line(widths.map((width) => '-'.repeat(width))), ...lines.slice(1).map(line)].join('\n');
}
