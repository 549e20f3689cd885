// The recipe editor: a table of rules (the CLI's recipe.json, one row a rule) with add, remove
// and reorder, load and save, and a live preview of the tensors each rule catches. The table is
// checked by the library's own compileRecipe, so the page accepts exactly what the CLI accepts
// and says what is wrong in the CLI's words.

import { compileRecipe, isDeepSpeedConfig, recipeFromDeepSpeed, type CompiledRecipe, type Recipe, type RecipeRule } from '../../src/formats/recipe.js';
import { breakable, element, plural } from './format.js';

/** One rule as the table holds it: the text of its cells, before any checking. */
interface RuleRow {
  match: string;
  bits: string;
  groupSize: string;
  type: '' | 'symmetric' | 'asymmetric';
  grid: '' | 'full' | 'deepspeed';
  axis: string;
  keep: boolean;
  /** Fields a loaded recipe may hold that the table has no column for; saved back unchanged. */
  extra: Record<string, unknown>;
}

export interface RecipeEditorElements {
  table: HTMLTableElement;
  add: HTMLButtonElement;
  load: HTMLInputElement;
  save: HTMLButtonElement;
  clear: HTMLButtonElement;
  error: HTMLElement;
  summary: HTMLElement;
}

/** What the table holds now: no recipe, a valid one, or the message saying why it is not. */
export type RecipeState = { kind: 'none' } | { kind: 'valid'; recipe: Recipe } | { kind: 'invalid'; message: string };

/** How many names a rule's preview lists before it says "and N more". */
const PREVIEW_NAMES = 40;

const emptyRow = (): RuleRow => ({ match: '', bits: '', groupSize: '', type: '', grid: '', axis: '', keep: false, extra: {} });

/** A cell's text as a rule's value: blank is "not set", an integer is a number, anything else stays text so compileRecipe names it. */
function numberCell(text: string): number | string | undefined {
  const trimmed = text.trim();
  if (trimmed === '') return undefined;
  return /^[+-]?\d+$/.test(trimmed) ? Number(trimmed) : trimmed;
}

function ruleOf(row: RuleRow): Record<string, unknown> {
  const rule: Record<string, unknown> = { match: row.match };
  if (row.keep) {
    rule.keep = true;
    return rule;
  }
  const set = (key: string, value: unknown) => {
    if (value !== undefined && value !== '') rule[key] = value;
  };
  set('bits', numberCell(row.bits));
  set('groupSize', numberCell(row.groupSize));
  set('type', row.type);
  set('grid', row.grid);
  set('axis', numberCell(row.axis));
  for (const [key, value] of Object.entries(row.extra)) set(key, value);
  return rule;
}

function rowOf(rule: RecipeRule): RuleRow {
  const { match, bits, groupSize, type, grid, axis, keep, ...extra } = rule;
  return {
    match,
    bits: bits === undefined ? '' : String(bits),
    groupSize: groupSize === undefined ? '' : String(groupSize),
    type: type ?? '',
    grid: grid ?? '',
    axis: axis === undefined ? '' : String(axis),
    keep: keep === true,
    extra: Object.fromEntries(Object.entries(extra).filter(([, value]) => value !== undefined)),
  };
}

export class RecipeEditor {
  private rows: RuleRow[] = [];
  private tensors: readonly string[] = [];
  /** A recipe file that did not load: it keeps the recipe invalid until the table is edited, so a run never silently uses another recipe than the one the user meant. */
  private loadError: string | null = null;
  private readonly body: HTMLTableSectionElement;
  /** The page hears of changes only once the editor is built (its first render is not a change). */
  private built = false;

  constructor(
    private readonly els: RecipeEditorElements,
    private readonly onChange: () => void,
  ) {
    this.body = els.table.tBodies[0] ?? els.table.createTBody();
    els.add.addEventListener('click', () => {
      this.rows.push(emptyRow());
      this.edited();
      this.render();
      this.body.querySelector<HTMLInputElement>('tr:last-child input[data-field="match"]')?.focus();
    });
    els.clear.addEventListener('click', () => {
      this.rows = [];
      this.edited();
      this.render();
    });
    els.save.addEventListener('click', () => this.save());
    els.load.addEventListener('change', () => {
      const file = els.load.files?.[0];
      els.load.value = ''; // the same file again is a new load
      if (file) void this.loadFile(file);
    });
    this.render();
    this.built = true;
  }

  /** The opened model's tensor names, for the preview column. */
  setTensors(names: readonly string[]): void {
    this.tensors = names;
    this.refresh();
  }

  /** The recipe the table holds now. */
  state(): RecipeState {
    if (this.loadError) return { kind: 'invalid', message: this.loadError };
    if (this.rows.length === 0) return { kind: 'none' };
    try {
      const compiled = compileRecipe({ rules: this.rows.map(ruleOf) });
      return { kind: 'valid', recipe: { rules: compiled.rules.map((r) => r.rule) } };
    } catch (error) {
      return { kind: 'invalid', message: (error as Error).message };
    }
  }

  /** Replaces the table with a parsed recipe.json (or a DeepSpeed config, as the CLI's --recipe takes). */
  loadJson(json: unknown, fileName: string): void {
    const recipe = isDeepSpeedConfig(json) ? recipeFromDeepSpeed(json) : json;
    const compiled = compileRecipe(recipe, fileName);
    this.rows = compiled.rules.map((r) => rowOf(r.rule));
    this.loadError = null;
    this.render();
  }

  private async loadFile(file: File): Promise<void> {
    try {
      let json: unknown;
      try {
        json = JSON.parse(await file.text());
      } catch (error) {
        throw new Error(`${file.name} is not JSON (${(error as Error).message}); a recipe is { "rules": [{ "match": "<pattern>", "bits": 8 }, ...] }.`);
      }
      this.loadJson(json, file.name);
    } catch (error) {
      this.loadError = `${(error as Error).message} The table is unchanged; edit it, clear it or load another file.`;
      this.refresh();
    }
  }

  private save(): void {
    const state = this.state();
    if (state.kind !== 'valid') return;
    const url = URL.createObjectURL(new Blob([`${JSON.stringify({ rules: state.recipe.rules }, null, 2)}\n`], { type: 'application/json' }));
    const link = element('a');
    link.href = url;
    link.download = 'recipe.json';
    link.click();
    // The click has started the download; the URL is not needed after this turn.
    setTimeout(() => URL.revokeObjectURL(url), 0);
  }

  private edited(): void {
    this.loadError = null;
  }

  private move(index: number, by: number): void {
    const to = index + by;
    if (to < 0 || to >= this.rows.length) return;
    const [row] = this.rows.splice(index, 1);
    this.rows.splice(to, 0, row!);
    this.edited();
    this.render();
    this.body.rows[to]?.querySelector<HTMLButtonElement>(by < 0 ? 'button[data-action="up"]' : 'button[data-action="down"]')?.focus();
  }

  /** Rebuilds the rows (after add, remove, move, load); typing only refreshes, so focus stays. */
  private render(): void {
    this.body.replaceChildren(...this.rows.map((row, index) => this.renderRow(row, index)));
    this.refresh();
  }

  private renderRow(row: RuleRow, index: number): HTMLTableRowElement {
    const tr = element('tr');
    tr.dataset.rule = String(index);
    const cell = (...children: Node[]) => {
      const td = element('td');
      td.append(...children);
      tr.append(td);
      return td;
    };
    const label = (text: string) => `Rule ${index + 1} ${text}`;
    const settings: (HTMLInputElement | HTMLSelectElement)[] = [];
    const text = (field: 'match' | 'bits' | 'groupSize' | 'axis', numeric: boolean, placeholder: string) => {
      const input = element('input');
      input.type = numeric ? 'number' : 'text';
      input.step = '1';
      if (numeric) input.inputMode = 'numeric';
      input.spellcheck = false;
      input.placeholder = placeholder;
      input.value = row[field];
      input.dataset.field = field;
      input.setAttribute('aria-label', label(field === 'groupSize' ? 'group size' : field));
      input.addEventListener('input', () => {
        row[field] = input.value;
        this.edited();
        this.refresh();
      });
      if (field !== 'match') settings.push(input);
      return input;
    };
    const choice = <F extends 'type' | 'grid'>(field: F, options: readonly RuleRow[F][]) => {
      const select = element('select');
      for (const value of options) select.append(new Option(value === '' ? 'default' : value, value));
      select.value = row[field];
      select.dataset.field = field;
      select.setAttribute('aria-label', label(field));
      select.addEventListener('change', () => {
        row[field] = select.value as RuleRow[F];
        this.edited();
        this.refresh();
      });
      settings.push(select);
      return select;
    };

    cell(document.createTextNode(String(index + 1))).className = 'index';
    const matchCell = cell(text('match', false, 'pattern, e.g. attn|mlp'));
    matchCell.className = 'match';
    const extra = Object.entries(row.extra);
    if (extra.length) matchCell.append(element('span', 'hint extra', `also ${extra.map(([key, value]) => `${key}: ${String(value)}`).join(', ')}`));
    cell(text('bits', true, '—'));
    cell(text('groupSize', true, '—'));
    cell(choice('type', ['', 'symmetric', 'asymmetric']));
    cell(choice('grid', ['', 'full', 'deepspeed']));
    cell(text('axis', true, '—'));
    const keep = element('input');
    keep.type = 'checkbox';
    keep.checked = row.keep;
    keep.dataset.field = 'keep';
    keep.setAttribute('aria-label', label('keeps its tensors unchanged'));
    // A kept tensor is stored as it is, so the rule's settings would do nothing: they are greyed out.
    const syncKeep = () => settings.forEach((s) => (s.disabled = keep.checked));
    keep.addEventListener('change', () => {
      row.keep = keep.checked;
      syncKeep();
      this.edited();
      this.refresh();
    });
    syncKeep();
    cell(keep).className = 'keep';
    cell().className = 'preview';

    const actions = element('div', 'row-actions');
    const action = (name: string, symbol: string, title: string, run: () => void, disabled: boolean) => {
      const button = element('button', 'icon', symbol);
      button.type = 'button';
      button.dataset.action = name;
      button.title = title;
      button.setAttribute('aria-label', label(title.toLowerCase()));
      button.disabled = disabled;
      button.addEventListener('click', run);
      actions.append(button);
    };
    action('up', '↑', 'Move up', () => this.move(index, -1), index === 0);
    action('down', '↓', 'Move down', () => this.move(index, 1), index === this.rows.length - 1);
    action(
      'remove',
      '×',
      'Remove',
      () => {
        this.rows.splice(index, 1);
        this.edited();
        this.render();
      },
      false,
    );
    cell(actions);
    return tr;
  }

  /** Re-checks the recipe and redraws the previews, the message and the summary; tells the page. */
  private refresh(): void {
    const state = this.state();
    this.els.error.hidden = state.kind !== 'invalid';
    this.els.error.textContent = state.kind === 'invalid' ? state.message : '';
    this.els.save.disabled = state.kind !== 'valid';
    this.els.table.classList.toggle('invalid', state.kind === 'invalid');
    // An empty table is only a row of headings; the summary line says there are no rules.
    const frame = this.els.table.closest<HTMLElement>('.table-scroll') ?? this.els.table;
    frame.hidden = this.rows.length === 0;

    // Each row alone says whether it is the broken one; the whole recipe decides what each catches.
    this.rows.forEach((row, index) => {
      let ok = true;
      try {
        compileRecipe([ruleOf(row)]);
      } catch {
        ok = false;
      }
      this.body.rows[index]?.classList.toggle('invalid', !ok);
    });
    const compiled = state.kind === 'valid' ? compileRecipe(state.recipe) : null;
    const caught = this.rows.map((): string[] => []);
    let unmatched = 0;
    if (compiled) {
      for (const name of this.tensors) {
        const rule = compiled.ruleFor(name);
        if (rule) caught[rule.index]!.push(name);
        else unmatched++;
      }
    }
    this.rows.forEach((_, index) => {
      const td = this.body.rows[index]?.querySelector<HTMLTableCellElement>('td.preview');
      if (td) td.replaceChildren(this.preview(compiled, caught[index]!));
    });
    this.els.summary.textContent = this.summary(state, compiled, unmatched);
    if (this.built) this.onChange();
  }

  private preview(compiled: CompiledRecipe | null, names: readonly string[]): Node {
    if (!compiled) return element('span', 'hint', '—');
    if (this.tensors.length === 0) return element('span', 'hint', 'open a model');
    if (names.length === 0) return element('span', 'hint', 'no tensor');
    const details = element('details');
    details.append(element('summary', undefined, plural(names.length, 'tensor')));
    const list = element('ul', 'names');
    for (const name of names.slice(0, PREVIEW_NAMES)) {
      const item = element('li');
      item.append(...breakable(name));
      list.append(item);
    }
    if (names.length > PREVIEW_NAMES) list.append(element('li', 'hint', `and ${names.length - PREVIEW_NAMES} more`));
    details.append(list);
    return details;
  }

  private summary(state: RecipeState, compiled: CompiledRecipe | null, unmatched: number): string {
    if (state.kind === 'none') return 'No rules: every tensor takes the options above.';
    if (!compiled || this.tensors.length === 0) return `${plural(this.rows.length, 'rule')}; tensors no rule matches take the options above.`;
    return `${plural(this.rows.length, 'rule')}; ${plural(unmatched, 'tensor')} match${unmatched === 1 ? 'es' : ''} no rule and take${unmatched === 1 ? 's' : ''} the options above.`;
  }
}
