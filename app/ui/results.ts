// The per-tensor result table: the CLI's summary rows, sortable by any column (click a header;
// again to reverse), a row selectable by click or keyboard to ask for its histogram.

import type { ResultRow } from '../protocol.js';
import { breakable, element, formatBytes, formatError, formatShape } from './format.js';

type Key = 'name' | 'shape' | 'packedAs' | 'bytesIn' | 'bytesOut' | 'maxAbsError' | 'rmsError';

interface Column {
  key: Key;
  title: string;
  numeric: boolean;
  text: (row: ResultRow) => string;
  compare: (a: ResultRow, b: ResultRow) => number;
}

const byNumber = (value: (row: ResultRow) => number | undefined) => (a: ResultRow, b: ResultRow) => {
  // Rows without a value (kept tensors have no error) sort after every number, in either direction's first pass.
  const x = value(a) ?? Number.NEGATIVE_INFINITY;
  const y = value(b) ?? Number.NEGATIVE_INFINITY;
  return x === y ? 0 : x < y ? -1 : 1;
};
const byText = (value: (row: ResultRow) => string) => (a: ResultRow, b: ResultRow) => value(a).localeCompare(value(b), 'en', { numeric: true });
const elements = (shape: readonly number[]) => shape.reduce((n, d) => n * d, 1);

const COLUMNS: readonly Column[] = [
  { key: 'name', title: 'Name', numeric: false, text: (r) => r.name, compare: byText((r) => r.name) },
  {
    key: 'shape',
    title: 'Shape',
    numeric: false,
    text: (r) => formatShape(r.shape),
    // By size first: a shape column is read as "which tensors are big".
    compare: (a, b) => byNumber((r) => elements(r.shape))(a, b) || byText((r) => formatShape(r.shape))(a, b),
  },
  { key: 'packedAs', title: 'Packed as', numeric: false, text: (r) => r.packedAs, compare: byText((r) => r.packedAs) },
  { key: 'bytesIn', title: 'Bytes in', numeric: true, text: (r) => formatBytes(r.bytesIn), compare: byNumber((r) => r.bytesIn) },
  { key: 'bytesOut', title: 'Bytes out', numeric: true, text: (r) => formatBytes(r.bytesOut), compare: byNumber((r) => r.bytesOut) },
  { key: 'maxAbsError', title: 'Max |err|', numeric: true, text: (r) => formatError(r.maxAbsError), compare: byNumber((r) => r.maxAbsError) },
  { key: 'rmsError', title: 'RMS err', numeric: true, text: (r) => formatError(r.rmsError), compare: byNumber((r) => r.rmsError) },
];

export class ResultsTable {
  private rows: readonly ResultRow[] = [];
  /** null: the worker's order (the file's order). */
  private sort: { key: Key; descending: boolean } | null = null;
  private selected: string | null = null;
  private readonly head: HTMLTableSectionElement;
  private readonly body: HTMLTableSectionElement;

  constructor(
    table: HTMLTableElement,
    private readonly onSelect: (row: ResultRow) => void,
  ) {
    this.head = table.tHead ?? table.createTHead();
    this.body = table.tBodies[0] ?? table.createTBody();
    const tr = element('tr');
    for (const column of COLUMNS) {
      const th = element('th');
      th.scope = 'col';
      th.dataset.key = column.key;
      if (column.numeric) th.className = 'numeric';
      const button = element('button', 'sort', column.title);
      button.type = 'button';
      button.dataset.sort = column.key;
      button.addEventListener('click', () => this.sortBy(column.key));
      th.append(button);
      tr.append(th);
    }
    this.head.replaceChildren(tr);
  }

  show(rows: readonly ResultRow[]): void {
    this.rows = rows;
    this.selected = null;
    this.render();
  }

  clear(): void {
    this.show([]);
  }

  private sortBy(key: Key): void {
    // Numbers start largest first (the biggest tensors, the worst errors); text starts A to Z.
    const numeric = COLUMNS.find((c) => c.key === key)!.numeric;
    this.sort = this.sort?.key === key ? { key, descending: !this.sort.descending } : { key, descending: numeric };
    this.render();
  }

  private select(row: ResultRow, tr: HTMLTableRowElement): void {
    this.selected = row.name;
    for (const other of Array.from(this.body.rows)) {
      other.classList.toggle('selected', other === tr);
      other.setAttribute('aria-selected', String(other === tr));
    }
    this.onSelect(row);
  }

  private render(): void {
    for (const th of Array.from(this.head.querySelectorAll<HTMLTableCellElement>('th'))) {
      const sorted = this.sort?.key === th.dataset.key;
      th.setAttribute('aria-sort', sorted ? (this.sort!.descending ? 'descending' : 'ascending') : 'none');
    }
    let rows = [...this.rows];
    if (this.sort) {
      const { compare } = COLUMNS.find((c) => c.key === this.sort!.key)!;
      const sign = this.sort.descending ? -1 : 1;
      rows = rows
        .map((row, index) => ({ row, index }))
        // Ties keep the file's order, whichever way the column runs.
        .sort((a, b) => sign * compare(a.row, b.row) || a.index - b.index)
        .map((entry) => entry.row);
    }
    this.body.replaceChildren(
      ...rows.map((row) => {
        const tr = element('tr');
        tr.dataset.tensor = row.name;
        tr.tabIndex = 0;
        tr.classList.toggle('kept', !row.packed);
        tr.classList.toggle('selected', row.name === this.selected);
        tr.setAttribute('aria-selected', String(row.name === this.selected));
        for (const column of COLUMNS) {
          const td = element('td', column.numeric ? 'numeric' : column.key);
          if (column.key === 'name') td.append(...breakable(row.name));
          else td.textContent = column.text(row);
          tr.append(td);
        }
        tr.addEventListener('click', () => this.select(row, tr));
        tr.addEventListener('keydown', (event) => {
          if (event.key === 'Enter' || event.key === ' ') {
            event.preventDefault();
            this.select(row, tr);
          }
        });
        return tr;
      }),
    );
  }
}
