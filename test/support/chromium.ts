// Headless Chromium as the browser suites launch it: Debian's binary driven by playwright-core,
// with WebGPU on SwiftShader and nothing phoning home (docs/ENVIRONMENT.md), and the checks
// that say whether it (and its WebGPU) is there.

import { existsSync } from 'node:fs';
import { runtimeAvailable } from './runtimes.js';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export { CHROMIUM_ARGS } from './chromium-flags.mjs';

/** Whether Chromium is installed, and whether its WebGPU can run (recorded or failed as runtimes.ts says). */
export async function chromiumAvailability(): Promise<{ available: boolean; webGpuAvailable: boolean }> {
  const available = await runtimeAvailable({ name: 'Chromium headless (playwright-core)', install: 'apt-get install -y chromium libvulkan1' }, async () =>
    existsSync(CHROMIUM) ? null : `${CHROMIUM} not found (set CHROMIUM_PATH to use another)`,
  );
  // Chromium's WebGPU runs on the SwiftShader Vulkan driver it ships, through the Vulkan loader.
  const webGpuAvailable =
    available &&
    (await runtimeAvailable({ name: 'WebGPU in Chromium (SwiftShader)', install: 'apt-get install -y chromium libvulkan1' }, async () => {
      if (!existsSync('/usr/lib/chromium/libvk_swiftshader.so')) return "Chromium without SwiftShader's Vulkan driver";
      const loaders = ['x86_64', 'aarch64'].map((arch) => `/usr/lib/${arch}-linux-gnu/libvulkan.so.1`);
      return loaders.some(existsSync) ? null : 'no Vulkan loader (libvulkan.so.1)';
    }));
  return { available, webGpuAvailable };
}

/**
 * Opens `url` in a new page that records the body size of every response under `prefix`, and
 * waits for the page to set `window.ready`. The map fills as responses finish (poll it).
 */
export async function openRecordingPage(browser: import('playwright-core').Browser, url: string, prefix: string): Promise<{ page: import('playwright-core').Page; fetched: Map<string, number> }> {
  const fetched = new Map<string, number>();
  const page = await browser.newPage();
  page.on('requestfinished', async (request) => {
    const path = new URL(request.url()).pathname;
    if (path.startsWith(prefix)) fetched.set(path, (await request.sizes()).responseBodySize);
  });
  await page.goto(url);
  await page.waitForFunction(() => (window as { ready?: boolean }).ready === true);
  return { page, fetched };
}
