// Finding and compiling the two WebAssembly builds. Compiled modules are cached per build, so
// every backend after the first instantiates without recompiling.

import { BackendError } from '../errors.js';

export type WasmBuild = 'simd' | 'scalar';
/** Where a build comes from: a compiled module, its bytes, or a URL/path to fetch or read. */
export type WasmSource = WebAssembly.Module | ArrayBuffer | ArrayBufferView | URL | string;

// (module (func (result v128) (i32x4.splat (i32.const 0)))): validates only with SIMD.
const SIMD_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, // type section: () -> v128
  0x03, 0x02, 0x01, 0x00, // function section
  0x0a, 0x08, 0x01, 0x06, 0x00, 0x41, 0x00, 0xfd, 0x11, 0x0b, // code: i32.const 0; i32x4.splat
]);

export function runtimeHasSimd(): boolean {
  return typeof WebAssembly === 'object' && WebAssembly.validate(SIMD_PROBE);
}

export function defaultWasmUrl(build: WasmBuild): URL {
  return new URL(`../../build/edge-moq-${build}.wasm`, import.meta.url);
}

const compiled = new Map<WasmBuild, Promise<WebAssembly.Module>>();

export function compileWasm(build: WasmBuild, source?: WasmSource): Promise<WebAssembly.Module> {
  if (source instanceof WebAssembly.Module) return Promise.resolve(source);
  if (source !== undefined) return compileFrom(build, source as ArrayBuffer | ArrayBufferView | URL | string);
  let module = compiled.get(build);
  if (!module) {
    module = compileFrom(build, defaultWasmUrl(build));
    module.catch(() => compiled.delete(build));
    compiled.set(build, module);
  }
  return module;
}

async function compileFrom(build: WasmBuild, source: ArrayBuffer | ArrayBufferView | URL | string): Promise<WebAssembly.Module> {
  try {
    if (source instanceof ArrayBuffer || ArrayBuffer.isView(source)) return await WebAssembly.compile(source as BufferSource);
    const url = typeof source === 'string' ? new URL(source, import.meta.url) : source;
    if (url.protocol === 'file:') {
      const fs = await import('node:fs/promises');
      return await WebAssembly.compile(await fs.readFile(url));
    }
    const response = await fetch(url);
    if (!response.ok) throw new Error(`HTTP ${response.status} for ${url.href}`);
    return await WebAssembly.compile(await response.arrayBuffer());
  } catch (cause) {
    throw new BackendError('BACKEND_UNAVAILABLE',
      `could not load the ${build} WebAssembly build (${(cause as Error).message}); ` +
      `run "npm run build", or pass the module yourself: createBackend({ wasm: { ${build}: moduleOrBytes } }).`, { cause });
  }
}
