// Deno (the npm package's binary): `edge-moq` resolved from node_modules by package name, so
// Deno's `deno` export condition picks the entry. The whole conformance file runs on each
// backend, and examples/deno runs as its README says.

import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { conformanceFile, CONFORMANCE_PATH } from './support/fixtures.js';
import { linkedPackageDir, PACKAGE_ROOT } from './support/package-link.js';
import { runtimeAvailable } from './support/runtimes.js';

const run = promisify(execFile);
const DENO = join(PACKAGE_ROOT, 'node_modules/.bin/deno');

const available = await runtimeAvailable({ name: 'Deno (npm package deno)', install: 'npm ci' }, async () => {
  if (!existsSync(DENO)) return `${DENO} is missing`;
  const { stdout } = await run(DENO, ['--version']);
  return /^deno 2\./.test(stdout) ? null : `unexpected deno version: ${stdout.split('\n')[0]}`;
});

// Deno's WebGPU needs a Vulkan driver; without a GPU that is Mesa's lavapipe.
const webGpuAvailable =
  available &&
  (await runtimeAvailable({ name: 'WebGPU in Deno (Mesa lavapipe)', install: 'apt-get install -y mesa-vulkan-drivers libvulkan1' }, async () => {
    const { stdout } = await run(DENO, ['eval', 'console.log((await navigator.gpu?.requestAdapter())?.info.description ?? "none")']);
    return stdout.trim() === 'none' ? 'Deno found no WebGPU adapter (no Vulkan driver)' : null;
  }));

function deno(dir: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run(DENO, ['run', '--allow-read', '--allow-env', ...args], { cwd: dir, timeout: 120_000, env: { ...process.env, NO_COLOR: '1' } });
}

describe.skipIf(!available)('Deno', () => {
  let dir: string;

  beforeAll(() => {
    dir = linkedPackageDir('deno');
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module', dependencies: { 'edge-moq': '*' } }));
    copyFileSync(join(PACKAGE_ROOT, 'test/fixtures/deno-conformance.mjs'), join(dir, 'conformance.mjs'));
    copyFileSync(join(PACKAGE_ROOT, 'test/fixtures/conformance-summary.mjs'), join(dir, 'conformance-summary.mjs'));
    copyFileSync(join(PACKAGE_ROOT, 'examples/deno/main.ts'), join(dir, 'main.ts'));
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('resolves edge-moq through the deno export condition', async () => {
    writeFileSync(join(dir, 'resolve.mjs'), 'console.log(import.meta.resolve("edge-moq"));');
    const { stdout } = await deno(dir, ['resolve.mjs']);
    expect(stdout.trim()).toMatch(/\/dist\/bundles\/index\.js$/);
  });

  async function passesConformance(kind: string): Promise<void> {
    const { stdout } = await deno(dir, ['conformance.mjs', CONFORMANCE_PATH, kind]);
    const report = JSON.parse(stdout.trim().split('\n').at(-1)!);
    expect(report.failures).toEqual([]);
    expect(report.backend).toBe(kind);
    expect(report.passed).toBe(conformanceFile().cases.length);
    console.log(`Deno ${kind}: ${summary(report)}`);
  }

  it.each(['wasm-simd', 'wasm'])('passes the whole conformance file on %s', passesConformance);

  describe.skipIf(!webGpuAvailable)('WebGPU', () => {
    it('passes the whole conformance file on webgpu', () => passesConformance('webgpu'));
  });

  it('runs examples/deno as shown', async () => {
    const { stdout } = await deno(dir, ['main.ts']);
    expect(stdout).toMatch(/^backend: /m);
    expect(stdout).toMatch(/4 bits: 4096 distinct values became \d+/);
    expect(stdout).toMatch(/after 40 steps: 4 bits/);
  });
});

/** The counts, and for WebGPU the adapter that ran them. */
function summary(report: { backend: string; adapter: string | null; subgroups: boolean | null; passed: number; failed: number; schedulePassed: number }): string {
  const gpu = report.backend === 'webgpu' ? `, adapter "${report.adapter || 'unnamed'}"${report.subgroups ? ' with subgroups' : ''}` : '';
  return `${report.passed} passed, ${report.failed} failed (${report.schedulePassed} schedule cases)${gpu}`;
}
