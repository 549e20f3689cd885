// Cloudflare Workers in the real workerd (through miniflare), bundled the way wrangler bundles a
// Worker: `edge-moq` resolved by package name (from a linked copy of this package) with
// wrangler's conditions, .wasm files kept as files and handed to workerd as compiled modules,
// and .safetensors files as Data modules (wrangler's `rules = [{ type = "Data", globs = [...] }]`).

import { rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import * as esbuild from 'esbuild';
import type { Miniflare } from 'miniflare';
import { afterAll, beforeAll } from 'vitest';
import { linkedPackageDir } from './package-link.js';
import { runtimeAvailable } from './runtimes.js';

/** Whether miniflare (workerd) can run; records the skip, or fails under CI, when it cannot. */
export function workerdAvailable(): Promise<boolean> {
  return runtimeAvailable({ name: 'Cloudflare Workers (workerd through miniflare)', install: 'npm ci' }, async () => {
    const { Miniflare } = await import('miniflare');
    return typeof Miniflare === 'function' ? null : 'the miniflare package has no Miniflare class';
  });
}

export interface WorkerSource {
  /** The Worker: a file, or code (named `name`) whose imports resolve from `resolveDir`. */
  entry: string | { contents: string; resolveDir: string; name: string };
  /**
   * 'neutral' for edge-moq alone; 'browser' where tfjs is bundled, whose packages name their
   * Node-only imports (util, crypto) in package.json "browser" maps that esbuild applies for
   * that platform only.
   */
  platform: 'neutral' | 'browser';
  /** Imports `${prefix}/<file>` read `<folder>/<file>` (a model's files carried in the upload). */
  files?: { prefix: string; folder: string };
}

/**
 * Bundles `source` into `<dir>/worker` (dir from linkedPackageDir, so that `edge-moq` resolves
 * to this package) and starts it in workerd.
 */
export async function startBundledWorker(dir: string, source: WorkerSource): Promise<Miniflare> {
  const outdir = join(dir, 'worker');
  const script = typeof source.entry === 'string' ? basename(source.entry).replace(/\.ts$/, '.js') : source.entry.name;
  const { files } = source;
  await esbuild.build({
    ...(typeof source.entry === 'string'
      ? { entryPoints: [source.entry], outdir }
      : { stdin: { contents: source.entry.contents, resolveDir: source.entry.resolveDir, sourcefile: script, loader: 'js' }, outfile: join(outdir, script) }),
    bundle: true,
    format: 'esm',
    platform: source.platform,
    conditions: ['workerd', 'worker', 'browser'],
    mainFields: ['browser', 'module', 'main'],
    nodePaths: [join(dir, 'node_modules')],
    loader: { '.wasm': 'copy', '.safetensors': 'copy' },
    assetNames: '[name]',
    logLevel: 'error',
    plugins: files
      ? [
          {
            name: 'carried-files',
            setup(build) {
              const filter = new RegExp(`^${files.prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/`);
              build.onResolve({ filter }, (args) => ({ path: join(files.folder, args.path.slice(files.prefix.length + 1)) }));
            },
          },
        ]
      : [],
  });
  const { Miniflare } = await import('miniflare');
  const worker = new Miniflare({
    modules: true,
    scriptPath: join(outdir, script),
    modulesRoot: outdir,
    modulesRules: [
      { type: 'CompiledWasm', include: ['**/*.wasm'] },
      { type: 'Data', include: ['**/*.safetensors'] },
    ],
    compatibilityDate: '2025-09-01',
  });
  await worker.ready;
  return worker;
}

/**
 * A Worker for the enclosing suite: `source` (called before the suite's tests, so it may use what
 * earlier hooks made) bundled in a folder from linkedPackageDir(prefix) and started; disposed and
 * the folder removed after the tests. Read the fields inside the tests.
 */
export function useBundledWorker(prefix: string, source: () => WorkerSource | Promise<WorkerSource>): { dir: string; worker: Miniflare } {
  const started = {} as { dir: string; worker: Miniflare };
  beforeAll(async () => {
    const resolved = await source();
    started.dir = linkedPackageDir(prefix);
    started.worker = await startBundledWorker(started.dir, resolved);
  });
  afterAll(async () => {
    await started.worker?.dispose();
    if (started.dir) rmSync(started.dir, { recursive: true, force: true });
  });
  return started;
}
