// Headless Chromium (Debian's, driven by playwright-core). One browser for the whole suite; the
// pages load the browser bundle over http from 127.0.0.1. The conformance file runs on the page
// and in a module Web Worker, and examples/browser renders its histograms.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { conformanceFile, CONFORMANCE_PATH } from './support/fixtures.js';
import { CHROMIUM, CHROMIUM_ARGS, chromiumAvailability } from './support/chromium.js';
import { PACKAGE_ROOT } from './support/package-link.js';
import { serveDirectory } from '../scripts/serve.mjs';

const { available, webGpuAvailable } = await chromiumAvailability();

interface Report {
  backend: string;
  adapter: string | null;
  subgroups: boolean | null;
  passed: number;
  failed: number;
  schedulePassed: number;
  failures: unknown[];
}

describe.skipIf(!available)('Chromium', () => {
  let server: { url: string; close(): Promise<void> };
  let browser: Browser;
  let page: Page;
  const total = conformanceFile().cases.length;

  beforeAll(async () => {
    server = await serveDirectory(PACKAGE_ROOT, { aliases: { '/conformance.json': CONFORMANCE_PATH } });
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    page = await browser.newPage();
    await page.goto(`${server.url}/test/fixtures/browser/index.html`);
    await page.waitForFunction(() => (window as { ready?: boolean }).ready === true);
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  function check(report: Report, kind: string, where: string): void {
    expect(report.failures).toEqual([]);
    expect(report.backend).toBe(kind);
    expect(report.passed).toBe(total);
    console.log(`Chromium ${where} ${kind}: ${summary(report)}`);
  }

  it.each(['wasm-simd', 'wasm'])('passes the whole conformance file on the page on %s', async (kind) => {
    const report = await page.evaluate((k) => (window as unknown as { onPage(k: string): Promise<Report> }).onPage(k), kind);
    check(report, kind, 'page');
  });

  it.each(['wasm-simd', 'wasm'])('passes the whole conformance file in a Web Worker on %s', async (kind) => {
    const report = await page.evaluate((k) => (window as unknown as { inWorker(k: string): Promise<Report> }).inWorker(k), kind);
    check(report, kind, 'worker');
  });

  describe.skipIf(!webGpuAvailable)('WebGPU', () => {
    it('passes the whole conformance file on the page on webgpu', async () => {
      check(await page.evaluate(() => (window as unknown as { onPage(k: string): Promise<Report> }).onPage('webgpu')), 'webgpu', 'page');
    });

    it('passes the whole conformance file in a Web Worker on webgpu', async () => {
      check(await page.evaluate(() => (window as unknown as { inWorker(k: string): Promise<Report> }).inWorker('webgpu')), 'webgpu', 'worker');
    });
  });

  it('renders examples/browser: which backend ran, histograms before and after', async () => {
    const example = await browser.newPage();
    const errors: string[] = [];
    example.on('pageerror', (error) => errors.push(error.message));
    try {
      await example.goto(`${server.url}/examples/browser/?backend=wasm-simd&bits=3`);
      await example.waitForFunction(() => document.body.dataset.backend || document.body.dataset.error, null, { timeout: 20_000 });
      expect(errors).toEqual([]);
      expect(await example.evaluate(() => document.body.dataset.error)).toBeUndefined();
      expect(await example.evaluate(() => document.body.dataset.backend)).toBe('wasm-simd');
      expect(Number(await example.evaluate(() => document.body.dataset.levels))).toBeLessThanOrEqual(8);
      expect(await example.textContent('#explain')).toMatch(/backend: wasm-simd \(requested: wasm-simd\)/);
      const painted = await example.evaluate(() =>
        ['before', 'after'].map((id) => {
          const canvas = document.getElementById(id) as HTMLCanvasElement;
          const pixels = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
          return pixels.some((v, i) => i % 4 === 3 && v > 0);
        }),
      );
      expect(painted).toEqual([true, true]);
    } finally {
      await example.close();
    }
  });
});

/** The counts, and for WebGPU the adapter that ran them. */
function summary(report: { backend: string; adapter: string | null; subgroups: boolean | null; passed: number; failed: number; schedulePassed: number }): string {
  const gpu = report.backend === 'webgpu' ? `, adapter "${report.adapter || 'unnamed'}"${report.subgroups ? ' with subgroups' : ''}` : '';
  return `${report.passed} passed, ${report.failed} failed (${report.schedulePassed} schedule cases)${gpu}`;
}
