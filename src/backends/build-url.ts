// URLs relative to the package. This module sits two levels below the package root, as
// dist/bundles/*.js do: one relative path serves the plain modules and the bundles that inline
// this one. Keep it at this depth (the wasm loader, one level deeper, could not).

/** `path` resolved as the WebAssembly loader always has: against dist/backends/. */
export function packageUrl(path: string): URL {
  return new URL(path, import.meta.url);
}

/** Where `npm run build` puts a WebAssembly build. */
export function defaultWasmUrl(build: 'simd' | 'scalar'): URL {
  return packageUrl(`../../build/edge-moq-${build}.wasm`);
}
