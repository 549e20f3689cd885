// The package as users install it: the exports map gives each runtime its entry, the web
// entries carry nothing Node-only, the size budget holds, and a runtime entry's WebAssembly
// sources become the defaults.

import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackend } from '../src/backends/select.js';
import { useWasmSources } from '../src/backends/wasm/loader.js';
import { linkedPackageDir, PACKAGE_ROOT } from './support/package-link.js';

const run = promisify(execFile);

describe('exports map', () => {
  let dir: string;
  beforeAll(() => {
    dir = linkedPackageDir('exports');
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  // Node resolves with its own conditions plus those given with -C, as a bundler would.
  it.each([
    ['workerd', 'workerd.js'],
    ['worker', 'workerd.js'],
    ['browser', 'browser.js'],
    ['deno', 'index.js'],
    [null, 'index.js'],
  ])('condition %s resolves to dist/bundles/%s', async (condition, file) => {
    const args = [...(condition ? ['-C', condition] : []), '--input-type=module', '-e', 'console.log(import.meta.resolve("edge-moq"))'];
    const { stdout } = await run(process.execPath, args, { cwd: dir });
    expect(stdout.trim()).toBe(`file://${PACKAGE_ROOT}dist/bundles/${file}`);
  });

  it.each([
    ['workerd', 'workerd-'],
    ['browser', 'browser-'],
    ['deno', ''],
    [null, ''],
  ])('condition %s resolves edge-moq/packed and edge-moq/conformance beside the main entry', async (condition, prefix) => {
    for (const entry of ['packed', 'conformance']) {
      const args = [...(condition ? ['-C', condition] : []), '--input-type=module', '-e', `console.log(import.meta.resolve("edge-moq/${entry}"))`];
      const { stdout } = await run(process.execPath, args, { cwd: dir });
      expect(stdout.trim()).toBe(`file://${PACKAGE_ROOT}dist/bundles/${prefix}${entry}.js`);
    }
  });

  it('shares one backend between the main entry and edge-moq/packed', async () => {
    const script = `import { createBackend } from 'edge-moq';
      import { createPacker } from 'edge-moq/packed';
      const backend = await createBackend({ kind: 'wasm-simd' });
      const packer = await createPacker(backend);
      const packed = await packer.pack(Float32Array.of(-8, 7, 0, 1), { bits: 4 });
      console.log(packer.kind, Array.from(packed.codes).join(' '), Array.from(await packer.unpack(packed)).join(' '));`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: dir });
    expect(stdout.trim()).toBe('wasm-simd 240 152 -8 7 0 1');
  });

  it('works in Node by package name, reading the .wasm from the package', async () => {
    const script = `import { createBackend } from 'edge-moq';
      const backend = await createBackend();
      const data = await backend.fakeQuantize(Float32Array.of(-1, -0.25, 0.3, 1), { bits: 3 });
      console.log(backend.kind, Array.from(data).join(' '));`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: dir });
    expect(stdout.trim()).toBe('wasm-simd -1 -0.25 0.25 0.75');
  });

  it('publishes every file the exports map and the bundles refer to', async () => {
    const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: PACKAGE_ROOT });
    const published = new Set((JSON.parse(stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path));
    const manifest = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { exports: Record<string, string | Record<string, string>> };
    const targets = Object.values(manifest.exports).flatMap((target) => (typeof target === 'string' ? [target] : Object.values(target)));
    const needed = [...targets.map((t) => t.replace(/^\.\//, '')), 'build/edge-moq-simd.wasm', 'build/edge-moq-scalar.wasm'];
    expect(needed.filter((path) => !published.has(path))).toEqual([]);
  });

  it('keeps Node built-ins and the Dawn bindings out of the browser and Workers bundles', () => {
    const webFiles = readdirSync(join(PACKAGE_ROOT, 'dist/bundles')).filter((f) => /^(browser|workerd)/.test(f));
    expect(webFiles.length).toBeGreaterThanOrEqual(6);
    for (const name of webFiles) {
      const code = readFileSync(join(PACKAGE_ROOT, 'dist/bundles', name), 'utf8');
      // Static and dynamic imports only: the error messages mention the `webgpu` package by name.
      expect(code, name).not.toMatch(/^import\b[^;]*from\s*["'](node:|webgpu["'])|\bimport\(\s*["'](node:|webgpu["'])/m);
    }
  });
});

describe('size budget', () => {
  it('each .wasm is at most 32 KB and each bundle at most 75 KB minified', async () => {
    const { stdout } = await run(process.execPath, [join(PACKAGE_ROOT, 'scripts/size.mjs')]);
    for (const file of ['edge-moq-simd.wasm', 'edge-moq-scalar.wasm', 'workerd.js', 'browser.js', 'index.js']) {
      expect(stdout).toMatch(new RegExp(`${file.replace('.', '\\.')}.* ok$`, 'm'));
    }
  });
});

describe('useWasmSources', () => {
  it('makes the given sources the defaults createBackend loads', async () => {
    const bytes = readFileSync(join(PACKAGE_ROOT, 'build/edge-moq-scalar.wasm'));
    useWasmSources({ scalar: await WebAssembly.compile(bytes) });
    expect((await createBackend({ kind: 'wasm' })).kind).toBe('wasm');
    useWasmSources({ scalar: new URL('file:///nonexistent/edge-moq-scalar.wasm') });
    await expect(createBackend({ kind: 'wasm' })).rejects.toThrow(/could not load the scalar WebAssembly build/);
  });
});
