// The web app (app/, built into dist/app/) driven in headless Chromium as a user would: files
// chosen through its file input, options typed into its form, downloads clicked and saved. Every
// request the page and its worker make is recorded, so that a suite can assert that nothing
// leaves the app's own origin and files. Also: the CLI's outputs for the same inputs and options
// (the reference the downloads are compared with, byte for byte), and the synthetic inputs.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { encodeFloat32, encodeSafetensors, type Dtype, type TensorBytes } from '../../src/formats/safetensors.js';
import { CHROMIUM, CHROMIUM_ARGS } from './chromium.js';
import { randomTensor } from './fixtures.js';
import { buildApp } from '../../scripts/build-app.mjs';
import { serveDirectory } from '../../scripts/serve.mjs';

/** The app built and served on 127.0.0.1, and a Chromium to open it in. */
export interface AppServer {
  url: string;
  origin: string;
  /** The files dist/app/ holds: the only paths the page may request. */
  files: ReadonlySet<string>;
  browser: Browser;
  close(): Promise<void>;
}

export async function startApp(): Promise<AppServer> {
  const folder = (await buildApp()) as string;
  const files = new Set(readdirSync(folder).map((name) => `/${name}`));
  const server = (await serveDirectory(folder)) as { url: string; close(): Promise<void> };
  const { chromium } = await import('playwright-core');
  let browser: Browser;
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  } catch (error) {
    await server.close();
    throw error;
  }
  return {
    url: `${server.url}/`,
    origin: new URL(server.url).origin,
    files,
    browser,
    close: async () => {
      await browser.close();
      await server.close();
    },
  };
}

/** An open page of the app and every URL its context requested (page and worker alike). */
export interface AppPage {
  page: Page;
  context: BrowserContext;
  requests: string[];
  /** Requests that went anywhere but the app's origin and its own files (blob: URLs of its downloads excepted). */
  foreignRequests(): string[];
  close(): Promise<void>;
}

/**
 * A tab on the app. `query` (e.g. "?storage=memory&memoryLimit=N") goes to the page and from it to
 * its worker, whose storage settings it sets; those two URLs may carry it, no other may.
 */
export async function openApp(app: AppServer, viewport = { width: 1280, height: 900 }, query = ''): Promise<AppPage> {
  const context = await app.browser.newContext({ viewport, acceptDownloads: true });
  const requests: string[] = [];
  // The context sees the dedicated worker's fetches (its script, the .wasm) as well as the page's.
  context.on('request', (request) => void requests.push(request.url()));
  const page = await context.newPage();
  const consoleErrors: string[] = [];
  page.on('pageerror', (error) => void consoleErrors.push(error.message));
  await page.goto(new URL(query, app.url).href);
  await page.waitForFunction(() => (window as { ready?: boolean }).ready === true);
  return {
    page,
    context,
    requests,
    foreignRequests: () =>
      requests.filter((url) => {
        if (url.startsWith(`blob:${app.origin}/`)) return false;
        const parsed = new URL(url);
        const path = parsed.pathname === '/' ? '/index.html' : parsed.pathname;
        const queryAllowed = path === '/index.html' || path === '/worker.js' ? ['', query] : [''];
        return parsed.origin !== app.origin || !app.files.has(path) || !queryAllowed.includes(parsed.search);
      }),
    close: () => context.close(),
  };
}

/** Sets one form control: a <select> by its value, anything else by typing into it. */
export async function setControl(page: Page, selector: string, value: string): Promise<void> {
  const control = page.locator(selector);
  if (await control.evaluate((element) => element.tagName === 'SELECT')) await control.selectOption(value);
  else await control.fill(value);
}

export type Outcome = 'done' | 'error' | 'cancelled';

/** The page's state (document.body.dataset.state, app/main.ts): idle, opening, ready, quantizing, done, cancelled, error. */
export async function waitForState(page: Page, states: readonly string[], timeout = 60_000): Promise<string> {
  const handle = await page.waitForFunction(
    (wanted) => {
      const state = document.body.dataset.state ?? '';
      return wanted.includes(state) ? state : false;
    },
    states,
    { timeout, polling: 20 },
  );
  return (await handle.jsonValue()) as string;
}

/** Waits for the run (or the opening of files) to end and says how. */
export async function waitForOutcome(page: Page, timeout = 60_000): Promise<Outcome> {
  return (await waitForState(page, ['done', 'error', 'cancelled'], timeout)) as Outcome;
}

/** Clicks every download link in #downloads and returns the saved files by suggested name. */
export async function downloadAll(page: Page): Promise<Map<string, Buffer>> {
  const links = page.locator('#downloads a[download]');
  const files = new Map<string, Buffer>();
  for (let i = 0; i < (await links.count()); i++) {
    const [download] = await Promise.all([page.waitForEvent('download'), links.nth(i).click()]);
    const path = await download.path();
    files.set(download.suggestedFilename(), readFileSync(path));
  }
  return files;
}

const run = promisify(execFile);

/** The command line as `npm run build` leaves it. */
export const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

/** A scratch folder removed by `removeScratch`. */
export function scratchFolder(prefix = 'edge-moq-app-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeScratch(folder: string): void {
  rmSync(folder, { recursive: true, force: true });
}

/**
 * The CLI's output for `input` written under the names the page gave its downloads: `outputs`
 * names the entry output (the .onnx, the model.json or, for a sharded checkpoint, the index) by
 * what the page called it. Returns every file the CLI wrote, by name.
 */
export async function cliOutputs(input: string, entryName: string, flags: readonly string[], folder: string, sharded = false): Promise<Map<string, Buffer>> {
  mkdirSync(folder, { recursive: true });
  // A sharded checkpoint's output is a folder of shards and an index named like the input's.
  const output = sharded ? folder : join(folder, entryName);
  // The built binary, not runCli in-process: a sharded checkpoint runs on worker threads, which
  // load the compiled module (dist/), as they do for users.
  try {
    await run(process.execPath, [CLI, 'quantize', input, '-o', output, ...flags, '--quiet']);
  } catch (error) {
    throw new Error(`edge-moq quantize ${basename(input)} failed: ${(error as { stderr?: string }).stderr ?? (error as Error).message}`);
  }
  return new Map(
    readdirSync(folder)
      .sort()
      .map((name) => [name, readFileSync(join(folder, name))]),
  );
}

const floatTensor = (name: string, dtype: Dtype, shape: number[], seed: number): TensorBytes => {
  const length = shape.reduce((a, b) => a * b, 1);
  if (dtype === 'I64') return { name, dtype, shape, data: new Uint8Array(length * 8).fill(seed & 0xff) };
  return { name, dtype, shape, data: encodeFloat32(randomTensor(length, seed), dtype as 'F32') };
};

export const SHARDED_INDEX = 'model.safetensors.index.json';
export const shardName = (k: number, count: number): string => `model-${String(k + 1).padStart(5, '0')}-of-${String(count).padStart(5, '0')}.safetensors`;

/**
 * A Hugging Face sharded checkpoint (as test/sharded.test.ts builds one): three shards of float
 * matrices in every float dtype, vectors and an integer tensor, and the index. Returns every
 * path, the index first.
 */
export function writeShardedCheckpoint(folder: string): string[] {
  const count = 3;
  const weightMap: Record<string, string> = {};
  let total = 0;
  const paths: string[] = [];
  for (let k = 0; k < count; k++) {
    const tensors = [
      floatTensor(`layers.${k}.attn.weight`, (['F32', 'F16', 'BF16'] as const)[k]!, [8, 64], k * 100 + 1),
      floatTensor(`layers.${k}.attn.bias`, 'F32', [8], k * 100 + 2),
      floatTensor(`layers.${k}.mlp.weight`, 'F32', [32, 48], k * 100 + 3),
      ...(k === 0 ? [floatTensor('position_ids', 'I64', [1, 4], 7)] : []),
    ];
    const path = join(folder, shardName(k, count));
    writeFileSync(path, encodeSafetensors(tensors, { format: 'pt' }));
    paths.push(path);
    for (const t of tensors) {
      weightMap[t.name] = shardName(k, count);
      total += t.data.length;
    }
  }
  const index = join(folder, SHARDED_INDEX);
  writeFileSync(index, JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2));
  return [index, ...paths];
}

/**
 * A single safetensors file of `tensors` float32 matrices of `rows`×`columns` (4·rows·columns
 * bytes each): large enough that a run can be cancelled between its progress reports. The values
 * are cheap to make (a sine, not random draws): only the size matters here.
 */
export function writeLargeSafetensors(path: string, tensors: number, rows: number, columns: number): string {
  const values = new Float32Array(rows * columns);
  for (let i = 0; i < values.length; i++) values[i] = Math.sin(i * 0.37) * (1 + (i % 7));
  const data = new Uint8Array(values.buffer);
  const list: TensorBytes[] = Array.from({ length: tensors }, (_, k) => ({ name: `blocks.${k}.weight`, dtype: 'F32', shape: [rows, columns], data }));
  writeFileSync(path, encodeSafetensors(list, { format: 'pt' }));
  return path;
}

/** A small valid safetensors file, and the same file cut short (its data ends early). */
export function writeTruncatedSafetensors(folder: string): string {
  const bytes = encodeSafetensors([floatTensor('w', 'F32', [16, 64], 3)], { format: 'pt' });
  const path = join(folder, 'truncated.safetensors');
  writeFileSync(path, bytes.subarray(0, bytes.length - 1000));
  return path;
}
