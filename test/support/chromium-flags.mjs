// Chromium's command line for the browser suites (test/support/chromium.ts) and the app bench
// (bench/app.mjs), so both measure the same browser: WebGPU on SwiftShader, nothing phoning home.

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--use-vulkan=swiftshader',
  '--use-webgpu-adapter=swiftshader',
  '--use-angle=swiftshader',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];
