// The page: opens a model's files, collects the options and the recipe, and runs the
// quantization in a Web Worker (app/worker.ts, messages in app/protocol.ts), then shows the
// result and offers the outputs as downloads. Nothing here reaches the network: the files are
// read by the worker in this tab, and the downloads are object URLs of the worker's Blobs.
//
// What the browser tests drive (stable ids; each also has data-testid with the same name):
//   #files          <input type=file multiple>: the model's files (the whole set at once)
//   #drop           the drop zone (a drop of files does what #files does)
//   #bits #group-size #grid #type #axis #backend #include #exclude   the options (blank = default)
//   #options-error  why the options are refused (Quantize is disabled meanwhile)
//   #recipe-table   the rules: tbody tr[data-rule=i], inputs/selects with data-field =
//                   match|bits|groupSize|type|grid|axis|keep, td.preview (what the rule catches),
//                   buttons data-action = up|down|remove
//   #recipe-add #recipe-load (input type=file) #recipe-save #recipe-clear
//   #recipe-error   why the recipe is refused (Quantize is disabled meanwhile)
//   #quantize #cancel
//   #progress       <progress>, value 0..1; #progress-text names the tensor, bytes and time left
//   #status         one line: what the page is doing or has done
//   #error          role=alert; hidden unless the last request failed; data-code = the error code
//   #results        the per-tensor table: thead button[data-sort=name|shape|packedAs|bytesIn|
//                   bytesOut|maxAbsError|rmsError], tbody tr[data-tensor=<name>] (click: histogram)
//   #totals         sizes before and after, ratio, time; #backend-explain which backend ran and why
//   #downloads      a[download] per output file (href is an object URL), #download-all
//   #histogram      <figure data-tensor=<name>> with the before/after SVG once drawn
//   #model-info     format (#model-format), entry (#model-entry), tensors, size after opening
// document.body.dataset.state is idle | opening | ready | quantizing | done | cancelled | error,
// and window.ready is true once the page has wired itself up.

import type { ModelFormat, Reply, Request, ResultRow } from './protocol.js';
import { drawHistogram, showHistogramLoading } from './ui/histogram.js';
import { byId, element, formatBytes, formatDuration, plural } from './ui/format.js';
import { readOptions, syncGrid, type OptionsElements } from './ui/options.js';
import { ProgressView } from './ui/progress.js';
import { RecipeEditor } from './ui/recipe-editor.js';
import { ResultsTable } from './ui/results.js';

type PageState = 'idle' | 'opening' | 'ready' | 'quantizing' | 'done' | 'cancelled' | 'error';

/** Bins of a tensor's histogram: enough to show the grid's levels at 4 bits and below. */
const HISTOGRAM_BINS = 96;

const FORMAT_NAMES: Record<ModelFormat, string> = {
  safetensors: 'safetensors',
  'safetensors-index': 'safetensors, sharded (index and shards)',
  onnx: 'ONNX',
  tfjs: 'TensorFlow.js (model.json and weight shards)',
};

const $ = {
  files: byId('files', HTMLInputElement),
  drop: byId('drop', HTMLElement),
  modelInfo: byId('model-info', HTMLElement),
  modelFormat: byId('model-format', HTMLElement),
  modelEntry: byId('model-entry', HTMLElement),
  modelTensors: byId('model-tensors', HTMLElement),
  modelBytes: byId('model-bytes', HTMLElement),
  optionsForm: byId('options', HTMLFormElement),
  optionsError: byId('options-error', HTMLElement),
  quantize: byId('quantize', HTMLButtonElement),
  cancel: byId('cancel', HTMLButtonElement),
  status: byId('status', HTMLElement),
  error: byId('error', HTMLElement),
  resultPanel: byId('result-panel', HTMLElement),
  totals: byId('totals', HTMLElement),
  explain: byId('backend-explain', HTMLElement),
  warnings: byId('warnings', HTMLUListElement),
  downloads: byId('downloads', HTMLElement),
  downloadAll: byId('download-all', HTMLButtonElement),
  histogram: byId('histogram', HTMLElement),
};

const optionFields: OptionsElements = {
  bits: byId('bits', HTMLInputElement),
  groupSize: byId('group-size', HTMLInputElement),
  type: byId('type', HTMLSelectElement),
  grid: byId('grid', HTMLSelectElement),
  axis: byId('axis', HTMLInputElement),
  backend: byId('backend', HTMLSelectElement),
  include: byId('include', HTMLInputElement),
  exclude: byId('exclude', HTMLInputElement),
};

const progress = new ProgressView(byId('progress', HTMLProgressElement), byId('progress-text', HTMLElement));
const results = new ResultsTable(byId('results', HTMLTableElement), (row) => requestHistogram(row));

let state: PageState = 'idle';
/** The files the user gave, once the worker has opened them as a model. */
let model: { files: File[]; format: ModelFormat } | null = null;
/** The request whose replies the page is waiting for (open or quantize); a reply to an older one is stale. */
let current: { id: number; kind: 'open' | 'quantize' } | null = null;
let histogramId = -1;
let nextId = 1;
let downloadUrls: string[] = [];
/** The files of the open request in flight; they become the model once the worker has read them. */
let pendingFiles: File[] = [];
let worker = startWorker();

const recipe = new RecipeEditor(
  {
    table: byId('recipe-table', HTMLTableElement),
    add: byId('recipe-add', HTMLButtonElement),
    load: byId('recipe-load', HTMLInputElement),
    save: byId('recipe-save', HTMLButtonElement),
    clear: byId('recipe-clear', HTMLButtonElement),
    error: byId('recipe-error', HTMLElement),
    summary: byId('recipe-empty', HTMLElement),
  },
  () => updateControls(),
);

function startWorker(): Worker {
  // The page's query string goes to the worker: its storage settings (worker.js?storage=memory) are read there.
  const started = new Worker(new URL(`./worker.js${location.search}`, import.meta.url), { type: 'module' });
  started.addEventListener('message', (event: MessageEvent<Reply>) => onReply(event.data));
  // A worker that dies (a script error, memory) is replaced: the page stays usable, the job is lost.
  started.addEventListener('error', (event) => {
    event.preventDefault();
    restartWorker(`The quantization worker stopped: ${event.message || 'it could not start or ran out of memory'}.`);
  });
  started.addEventListener('messageerror', () => restartWorker('A message from the quantization worker could not be read.'));
  return started;
}

function restartWorker(message: string): void {
  worker.terminate();
  worker = startWorker();
  const wasOpening = current?.kind === 'open';
  current = null;
  if (wasOpening) model = null;
  showError('WORKER', message);
  progress.reset();
  setState('error');
}

function send(request: Request): void {
  worker.postMessage(request);
}

function setState(next: PageState): void {
  state = next;
  document.body.dataset.state = next;
  updateControls();
}

/** Enables what makes sense now; Quantize needs an opened model, valid options and no broken recipe. */
function updateControls(): void {
  const busy = state === 'opening' || state === 'quantizing';
  const read = readOptions(optionFields);
  $.optionsError.hidden = read.ok;
  $.optionsError.textContent = read.ok ? '' : read.message;
  for (const field of Object.values(optionFields)) field.toggleAttribute('aria-invalid', !read.ok && read.field === field);
  const recipeState = recipe.state();
  $.quantize.disabled = busy || model === null || !read.ok || recipeState.kind === 'invalid';
  $.cancel.disabled = state !== 'quantizing';
  $.files.disabled = busy;
  $.drop.classList.toggle('disabled', busy);
  $.drop.setAttribute('aria-disabled', String(busy));
}

function status(text: string): void {
  $.status.textContent = text;
}

function showError(code: string, message: string): void {
  $.error.hidden = false;
  $.error.dataset.code = code;
  const title = element('strong', undefined, code === 'INTERNAL' ? 'Something went wrong. ' : 'That did not work. ');
  const detail = element('span', 'code', ` (${code})`);
  $.error.replaceChildren(title, document.createTextNode(message), detail);
  // The message may be a screen away from the control that caused it (the file picker is at the top).
  $.error.scrollIntoView({ block: 'nearest' });
}

function clearError(): void {
  $.error.hidden = true;
  delete $.error.dataset.code;
  $.error.replaceChildren();
}

function clearResult(): void {
  for (const url of downloadUrls) URL.revokeObjectURL(url);
  downloadUrls = [];
  $.downloads.replaceChildren();
  $.resultPanel.hidden = true;
  $.histogram.hidden = true;
  $.histogram.replaceChildren();
  delete $.histogram.dataset.tensor;
  $.warnings.hidden = true;
  $.warnings.replaceChildren();
  results.clear();
}

function openFiles(list: FileList | File[]): void {
  const files = Array.from(list);
  if (files.length === 0 || state === 'opening' || state === 'quantizing') return;
  clearError();
  clearResult();
  model = null;
  $.modelInfo.hidden = true;
  recipe.setTensors([]);
  progress.reset();
  const id = nextId++;
  current = { id, kind: 'open' };
  status(`Reading ${plural(files.length, 'file')}…`);
  setState('opening');
  // Kept until 'opened': a quantize sends the same files again (the worker keeps no model between jobs).
  pendingFiles = files;
  send({ type: 'open', id, files });
}

function quantize(): void {
  if (!model || state === 'opening' || state === 'quantizing') return;
  const read = readOptions(optionFields);
  if (!read.ok) {
    read.field.focus();
    return;
  }
  const recipeState = recipe.state();
  if (recipeState.kind === 'invalid') return;
  const options = recipeState.kind === 'valid' ? { ...read.options, recipe: recipeState.recipe } : read.options;
  clearError();
  clearResult();
  const id = nextId++;
  current = { id, kind: 'quantize' };
  progress.start();
  status(`Quantizing on ${read.backend === 'auto' ? 'the best backend available' : read.backend}…`);
  setState('quantizing');
  send({ type: 'quantize', id, files: model.files, options, backend: read.backend });
}

function cancel(): void {
  if (state !== 'quantizing') return;
  status('Cancelling…');
  $.cancel.disabled = true;
  send({ type: 'cancel', id: nextId++ });
}

function requestHistogram(row: ResultRow): void {
  histogramId = nextId++;
  showHistogramLoading($.histogram, row.name);
  send({ type: 'histogram', id: histogramId, tensor: row.name, bins: HISTOGRAM_BINS });
}

function onReply(reply: Reply): void {
  switch (reply.type) {
    case 'opened': {
      if (current?.id !== reply.id) return;
      current = null;
      model = { files: pendingFiles, format: reply.format };
      $.modelInfo.hidden = false;
      $.modelFormat.textContent = FORMAT_NAMES[reply.format] ?? reply.format;
      $.modelEntry.textContent = reply.entry;
      $.modelTensors.textContent = reply.tensors.length.toLocaleString('en-US');
      $.modelBytes.textContent = formatBytes(reply.bytes);
      recipe.setTensors(reply.tensors.map((t) => t.name));
      status(`Opened ${reply.entry}: ${plural(reply.tensors.length, 'tensor')}, ${formatBytes(reply.bytes)}. Choose the options and quantize.`);
      setState('ready');
      return;
    }
    case 'progress':
      if (current?.id === reply.id) progress.update(reply);
      return;
    case 'done':
      if (current?.id !== reply.id) return;
      current = null;
      showResult(reply);
      setState('done');
      return;
    case 'cancelled':
      // The reply may carry the job's id or the cancel's; either way the running job has stopped.
      if (current?.kind !== 'quantize') return;
      current = null;
      progress.reset('Cancelled: the partial output was discarded.');
      status('Cancelled. Nothing was written; change the options or quantize again.');
      setState('cancelled');
      return;
    case 'histogram':
      if (reply.id === histogramId && $.histogram.dataset.tensor === reply.tensor) drawHistogram($.histogram, reply);
      return;
    case 'error': {
      if (reply.id === histogramId) {
        $.histogram.removeAttribute('aria-busy');
        $.histogram.replaceChildren(element('figcaption', 'field-error', `No histogram: ${reply.message}`));
        return;
      }
      if (current?.id !== reply.id) return;
      const wasOpening = current.kind === 'open';
      current = null;
      if (wasOpening) {
        model = null;
        status("Could not open these files. Give a model's files (see above).");
      } else {
        status('Quantization failed; nothing was downloaded.');
      }
      progress.reset();
      clearResult();
      showError(reply.code, reply.message);
      setState('error');
      return;
    }
  }
}

function showResult(reply: Extract<Reply, { type: 'done' }>): void {
  $.resultPanel.hidden = false;
  const packed = reply.rows.filter((r) => r.packed).length;
  $.totals.replaceChildren(
    element('strong', undefined, `${formatBytes(reply.bytesIn)} → ${formatBytes(reply.bytesOut)}`),
    // An ONNX model's rows are the weights converted (as the CLI lists them), so only kept rows are counted as kept.
    document.createTextNode(
      ` (${sizeChange(reply.bytesIn, reply.bytesOut)}) · ${plural(packed, 'tensor')} packed${reply.rows.length > packed ? `, ${reply.rows.length - packed} kept` : ''} · ${formatDuration(reply.milliseconds)}`,
    ),
  );
  $.explain.replaceChildren(element('span', 'label', 'Backend: '), element('strong', 'kind', reply.backend.kind), element('span', 'why', reply.backend.explain));
  $.warnings.hidden = reply.warnings.length === 0;
  $.warnings.replaceChildren(...reply.warnings.map((w) => element('li', undefined, w)));
  results.show(reply.rows);
  const links = reply.outputs.map(({ name, file }) => {
    const url = URL.createObjectURL(file);
    downloadUrls.push(url);
    const link = element('a', 'download');
    link.href = url;
    link.download = name;
    link.dataset.testid = 'download';
    link.append(element('span', 'file-name', name), element('span', 'file-size', formatBytes(file.size)));
    return link;
  });
  $.downloads.replaceChildren(...links);
  $.downloadAll.hidden = links.length < 2;
  progress.finish(`Done: ${plural(reply.rows.length, 'tensor')} in ${formatDuration(reply.milliseconds)}.`);
  status(`Done on ${reply.backend.kind}. Download the ${links.length === 1 ? 'file' : `${links.length} files`} below.`);
}

/** "3.87× smaller", or "1.76× larger" when the scales outweigh the savings (tiny tensors): never a ratio below 1 called smaller. */
function sizeChange(before: number, after: number): string {
  if (after === 0 || before === 0) return 'nothing to compare';
  if (after === before) return 'same size';
  return after < before ? `${(before / after).toFixed(2)}× smaller` : `${(after / before).toFixed(2)}× larger`;
}

/** One click per file, a moment apart: browsers drop downloads started in the same instant. */
async function downloadAll(): Promise<void> {
  for (const link of Array.from($.downloads.querySelectorAll<HTMLAnchorElement>('a[download]'))) {
    link.click();
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

// Wiring.
$.files.addEventListener('change', () => {
  if ($.files.files) openFiles($.files.files);
  $.files.value = ''; // choosing the same files again opens them again
});
$.drop.addEventListener('click', (event) => {
  // The "choose files" label opens the picker itself (and is the keyboard's way in); a click elsewhere in the zone does too.
  if (!(event.target instanceof Element && event.target.closest('label')) && !$.files.disabled) $.files.click();
});
for (const name of ['dragenter', 'dragover'] as const) {
  $.drop.addEventListener(name, (event) => {
    event.preventDefault();
    if (event.dataTransfer) event.dataTransfer.dropEffect = $.files.disabled ? 'none' : 'copy';
    $.drop.classList.add('over');
  });
}
$.drop.addEventListener('dragleave', (event) => {
  if (!(event.relatedTarget instanceof Node && $.drop.contains(event.relatedTarget))) $.drop.classList.remove('over');
});
$.drop.addEventListener('drop', (event) => {
  event.preventDefault();
  $.drop.classList.remove('over');
  if (event.dataTransfer?.files.length) openFiles(event.dataTransfer.files);
});
// A file dropped beside the zone would make the browser navigate to it, leaving the page.
window.addEventListener('dragover', (event) => event.preventDefault());
window.addEventListener('drop', (event) => event.preventDefault());

$.optionsForm.addEventListener('input', () => updateControls());
$.optionsForm.addEventListener('change', () => {
  syncGrid(optionFields);
  updateControls();
});
$.optionsForm.addEventListener('submit', (event) => {
  event.preventDefault();
  quantize();
});
$.quantize.addEventListener('click', () => quantize());
$.cancel.addEventListener('click', () => cancel());
$.downloadAll.addEventListener('click', () => void downloadAll());
window.addEventListener('pagehide', () => {
  for (const url of downloadUrls) URL.revokeObjectURL(url);
});

syncGrid(optionFields);
setState('idle');
(window as { ready?: boolean }).ready = true;
